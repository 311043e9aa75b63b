// Rate limits per credential (issue 7): a token bucket per credential subject (a user's MC service ID, a partner
// system's domain, the operator), taken after authentication and before the body is read. A client over its rate
// is answered 429 with Retry-After; other clients keep their own buckets, so one cannot starve the others.
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { MusterError } from '../../domain/errors.ts';
import { toUnprocessedReply } from './error-reply.ts';
import type { CredentialVerifier } from './credentials.ts';
import type { PartnerGate } from '../../adapters/partner-gate.ts';
import { HOP_CREDENTIAL } from './intermediate-node.ts';

export interface RateLimit {
  /** Tokens added per second. */
  perSecond: number;
  /** Bucket size: the requests a client may send at once after being idle. */
  burst: number;
}

/** Idle buckets are looked for at most this often; a full bucket is the same as no bucket, so it is dropped. */
const SWEEP_EVERY_MS = 10_000;

/** Token buckets by key; memory is bounded: full (idle) buckets are dropped, and at most `maxKeys` are kept. */
export class TokenBuckets {
  /** Insertion order is use order: the first entry is the least recently used. */
  private readonly buckets = new Map<string, { tokens: number; at: number }>();
  private lastSweep: number;

  constructor(
    readonly limit: RateLimit,
    private readonly now: () => number = Date.now,
    private readonly maxKeys = 100_000,
  ) {
    this.lastSweep = now();
  }

  /** Takes a token for `key`: 0 when granted, otherwise the whole seconds until one is there (at least 1). */
  take(key: string): number {
    const now = this.now();
    this.sweep(now);
    const bucket = this.buckets.get(key);
    let tokens = this.limit.burst;
    if (bucket) {
      tokens = this.level(bucket, now);
      this.buckets.delete(key);
    } else if (this.buckets.size >= this.maxKeys) {
      // More active clients than we keep: the least recently seen one starts afresh (a full bucket).
      this.buckets.delete(this.buckets.keys().next().value!);
    }
    const granted = tokens >= 1;
    this.buckets.set(key, { tokens: granted ? tokens - 1 : tokens, at: now });
    return granted ? 0 : Math.max(1, Math.ceil((1 - tokens) / this.limit.perSecond));
  }

  get size(): number {
    return this.buckets.size;
  }

  private level(bucket: { tokens: number; at: number }, now: number): number {
    return Math.min(this.limit.burst, bucket.tokens + (Math.max(0, now - bucket.at) / 1000) * this.limit.perSecond);
  }

  private sweep(now: number): void {
    if (now - this.lastSweep < SWEEP_EVERY_MS) return;
    this.lastSweep = now;
    for (const [key, bucket] of this.buckets) if (this.level(bucket, now) >= this.limit.burst) this.buckets.delete(key);
  }
}

/**
 * Registers the check on every route: `subjectOf` authenticates the caller (undefined when it cannot: the route
 * then answers 401 itself). A request is one token whatever it does; an event stream is one token when opened.
 * `buckets` are the system's, shared with the SIP face: a user has one budget whichever face it uses.
 */
export function limitRatePerCredential(app: FastifyInstance, buckets: TokenBuckets, subjectOf: (req: FastifyRequest) => Promise<string | undefined>): void {
  const { limit } = buckets;
  app.addHook('onRequest', async (req, reply) => {
    if (req.routeOptions.url === '/healthz') return;
    const subject = await subjectOf(req);
    if (subject === undefined) return;
    const wait = buckets.take(subject);
    if (wait === 0) return;
    const { status, body } = toUnprocessedReply(new MusterError('rate-limited', `more than ${limit.perSecond} requests a second (burst ${limit.burst}) for this credential; retry after ${wait} s`));
    return reply.code(status).header('retry-after', String(wait)).send(body);
  });
}

/**
 * The caller's bucket key, from the same verifiers the routes use (verified credentials are cached, so the route's
 * own check costs a lookup): a user's MC service ID, the operator, or a partner system's domain for server credentials.
 * A partner has one budget here whether it asks this system as group host or relays through it.
 */
export function callerSubject(verifier: CredentialVerifier, partnerGate: PartnerGate): (req: FastifyRequest) => Promise<string | undefined> {
  const partnerOf = async (header: string | string[] | undefined): Promise<string | undefined> => {
    if (typeof header !== 'string' || header === '') return undefined;
    try {
      return await partnerGate.verify(header);
    } catch {
      return undefined;
    }
  };
  return async (req) => {
    const authorization = req.headers.authorization;
    if (req.url.startsWith('/federation/')) {
      // Partner servers' credentials, signed with the secret shared with that partner: the hop credential of a request
      // to relay (intermediate-node.ts), else the end-to-end one of a request for our groups.
      const partner = (await partnerOf(req.headers[HOP_CREDENTIAL])) ?? (await partnerOf(authorization));
      // None: the route answers 401 (a relay 407, before it forwards anything).
      return partner === undefined ? undefined : `server:${partner}`;
    }
    if (!authorization) return undefined;
    try {
      const cred = await verifier.verify(authorization);
      return `${cred.role}:${cred.subject}`;
    } catch {
      return undefined; // not authenticated: the route answers 401
    }
  };
}

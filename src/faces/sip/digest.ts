// Digest authentication, server side (RFC 3261 §22.4, RFC 7616 §3.3-3.4 with qop=auth, RFC 8760 for SHA-256 in
// SIP). No well-kept Node library verifies digest as a server, so it is written here with node:crypto.
// Passwords are derived from the system secret (sipDigestPassword): no password store, and a new secret (credential
// rotation) revokes SIP passwords and bearer credentials alike. Nonces are signed and carry their issue time and the
// issuing process's epoch (random at start): the nonce count (nc) is remembered per nonce, in that process, to refuse
// a replayed Authorization, so only that process accepts its nonces. Another instance, or this one after a restart
// (which forgot the counts), answers a right digest on a foreign nonce as stale, and the client authenticates again
// with a nonce of its own: a replay on another instance gets nowhere.
import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { HeaderList } from './outgoing-message.ts';

export const DIGEST_ALGORITHMS = ['SHA-256', 'MD5'] as const;
export type DigestAlgorithm = (typeof DIGEST_ALGORITHMS)[number];
const NODE_HASH: Record<DigestAlgorithm, string> = { 'SHA-256': 'sha256', MD5: 'md5' };

/** The SIP digest password of one MC service ID: HMAC-SHA-256(secret, "sip-digest:" + id), base64url. */
export function sipDigestPassword(secret: string, mcServiceId: string): string {
  return createHmac('sha256', secret).update(`sip-digest:${mcServiceId}`).digest('base64url');
}

export interface DigestInput {
  algorithm: DigestAlgorithm;
  username: string;
  realm: string;
  password: string;
  method: string;
  uri: string;
  nonce: string;
  nc: string;
  cnonce: string;
}

/** RFC 7616 §3.4.1 with qop=auth: KD(H(A1), nonce:nc:cnonce:qop:H(A2)), A1 = user:realm:password, A2 = method:uri. */
export function digestResponse(p: DigestInput): string {
  const h = (s: string): string => createHash(NODE_HASH[p.algorithm]).update(s, 'utf8').digest('hex');
  return h(`${h(`${p.username}:${p.realm}:${p.password}`)}:${p.nonce}:${p.nc}:${p.cnonce}:auth:${h(`${p.method}:${p.uri}`)}`);
}

/** The auth-params of `Digest k=v, k="quoted", ...` (RFC 7616 §3.4, RFC 3261 §25.1 quoted-string); undefined if not Digest. */
export function parseDigestParams(value: string): Map<string, string> | undefined {
  const m = /^\s*Digest\s+/i.exec(value);
  if (!m) return undefined;
  const params = new Map<string, string>();
  const re = /\s*([A-Za-z0-9_-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,"]*))\s*(?:,|$)/y;
  re.lastIndex = m[0].length;
  while (re.lastIndex < value.length) {
    const p = re.exec(value);
    if (!p) return undefined; // not an auth-param list
    const key = p[1]!.toLowerCase();
    if (params.has(key)) return undefined; // RFC 7616 §3.4: each directive at most once
    params.set(key, p[2] !== undefined ? p[2].replace(/\\(.)/g, '$1') : p[3]!);
  }
  return params;
}

export type DigestVerdict = { ok: true; username: string } | { ok: false; stale: boolean; why: string };

export interface DigestOptions {
  secret: string;
  realm: string;
  now: () => number;
  /** How long a nonce is accepted after it was issued. */
  nonceLifetimeMs?: number;
  /** Bound on the nonces whose last nc is remembered (oldest forgotten first). */
  maxNonces?: number;
  /** Offered in this order, most preferred first (default SHA-256, MD5). */
  algorithms?: readonly DigestAlgorithm[];
}

export class DigestAuthenticator {
  private readonly nonceKey: Buffer;
  private readonly lifetimeMs: number;
  private readonly maxNonces: number;
  private readonly algorithms: readonly DigestAlgorithm[];
  /** nonce -> [highest nc accepted, issue time]; insertion order is roughly issue order, so expiry prunes from the front. */
  private readonly seen = new Map<string, [number, number]>();
  /** This authenticator's (process's) mark in its nonces: the counts of no other nonces are known here. */
  private readonly epoch = randomBytes(6).toString('base64url');

  constructor(private readonly opts: DigestOptions) {
    // A key of its own, so nonces are not MACs under the key that derives passwords.
    this.nonceKey = createHmac('sha256', opts.secret).update('sip-digest-nonce').digest();
    this.lifetimeMs = opts.nonceLifetimeMs ?? 300_000;
    this.maxNonces = opts.maxNonces ?? 100_000;
    this.algorithms = opts.algorithms ?? DIGEST_ALGORITHMS;
  }

  /** A fresh nonce: issue time (base36), 9 random bytes, this process's epoch, and a MAC over the three. */
  nonce(): string {
    const body = `${this.opts.now().toString(36)}.${randomBytes(9).toString('base64url')}.${this.epoch}`;
    return `${body}.${this.mac(body)}`;
  }

  /** RFC 8760 §2.4: one WWW-Authenticate per algorithm, the most preferred first, each with its own nonce. */
  challenges(stale = false): HeaderList {
    return this.algorithms.map((algorithm) => ['WWW-Authenticate', `Digest realm="${this.opts.realm}", nonce="${this.nonce()}", algorithm=${algorithm}, qop="auth"${stale ? ', stale=true' : ''}`]);
  }

  /** Checks one `Authorization: Digest ...` of a request against the password of its username. */
  verify(authorization: string, method: string, requestUri: string): DigestVerdict {
    const p = parseDigestParams(authorization);
    if (!p) return fail('Authorization is not a Digest auth-param list');
    const username = p.get('username');
    const nonce = p.get('nonce');
    const response = p.get('response')?.toLowerCase();
    const cnonce = p.get('cnonce');
    const nc = p.get('nc');
    // RFC 7616 §3.4: no algorithm directive means MD5.
    const asked = (p.get('algorithm') ?? 'MD5').toUpperCase();
    const algorithm = this.algorithms.find((a) => a === asked);
    if (!username || !nonce || !response || !p.has('uri')) return fail('Digest needs username, nonce, uri and response');
    if (p.get('realm') !== this.opts.realm) return fail(`Digest realm must be ${this.opts.realm}`);
    if (!algorithm) return fail(`Digest algorithm ${asked} is not offered`);
    if (p.get('qop') !== 'auth' || !cnonce || !nc || !/^[0-9a-fA-F]{8}$/.test(nc)) return fail('Digest needs qop=auth with cnonce and an 8-hex-digit nc');
    // RFC 3261 §22.4 / RFC 7616 §3.4.6: the digest-uri is the Request-URI of this request.
    if (p.get('uri') !== requestUri) return fail('Digest uri is not the Request-URI');
    const issued = this.issued(nonce);
    if (issued === undefined) return fail('Digest nonce was not issued here');
    const issuedAt = issued.at;

    const expected = digestResponse({ algorithm, username, realm: this.opts.realm, password: sipDigestPassword(this.opts.secret, username), method, uri: p.get('uri')!, nonce, nc, cnonce });
    const right = response.length === expected.length && timingSafeEqual(Buffer.from(response), Buffer.from(expected));
    if (!right) return fail('Digest response does not match the password of ' + username);
    // RFC 7616 §3.3: stale=true only when the digest was right but the nonce is too old, or (here) not this process's.
    if (this.opts.now() - issuedAt > this.lifetimeMs) return { ok: false, stale: true, why: 'Digest nonce expired' };
    if (issued.epoch !== this.epoch) return { ok: false, stale: true, why: 'Digest nonce of another instance (or from before a restart)' };

    const count = parseInt(nc, 16);
    const last = this.seen.get(nonce);
    if (last && count <= last[0]) return fail(`Digest nc ${nc} was already used with this nonce`);
    this.remember(nonce, count, issuedAt);
    return { ok: true, username };
  }

  private remember(nonce: string, count: number, issuedAt: number): void {
    this.seen.delete(nonce);
    this.seen.set(nonce, [count, issuedAt]);
    const oldest = this.opts.now() - this.lifetimeMs;
    for (const [n, [, at]] of this.seen) {
      if (at >= oldest && this.seen.size <= this.maxNonces) break;
      this.seen.delete(n);
    }
  }

  /** A nonce signed with this secret: its issue time and epoch; undefined when it is not one. */
  private issued(nonce: string): { at: number; epoch: string } | undefined {
    const parts = nonce.split('.');
    if (parts.length !== 4) return undefined;
    const body = parts.slice(0, 3).join('.');
    const mac = Buffer.from(parts[3]!);
    const want = Buffer.from(this.mac(body));
    if (mac.length !== want.length || !timingSafeEqual(mac, want)) return undefined;
    const at = parseInt(parts[0]!, 36);
    return Number.isFinite(at) ? { at, epoch: parts[2]! } : undefined;
  }

  private mac(body: string): string {
    return createHmac('sha256', this.nonceKey).update(body).digest('base64url').slice(0, 22);
  }
}

function fail(why: string): DigestVerdict {
  return { ok: false, stale: false, why };
}

// What the SIP face's user agent servers work with (SIP.js's UserAgentCore delegate habit): the MC service
// server's procedures and ports, the face's own state, and the seam through which NOTIFYs are asked for.
import type { McServiceServer } from '../../procedures/context.ts';
import type { CredentialVerifier } from '../http/credentials.ts';
import type { DigestAuthenticator } from './digest.ts';
import type { McUri } from '../../domain/ids.ts';
import type { McService } from '../../domain/services.ts';
import { MusterError } from '../../domain/errors.ts';
import { InvalidId, parseMcUri } from '../../domain/ids.ts';
import type { Publications } from './publication-state.ts';
import type { AuditRecorder } from '../../adapters/audit-recorder.ts';
import type { TokenBuckets } from '../http/rate-limit.ts';
import type { Subscriptions } from './subscription-state.ts';
import type { IncomingRequest } from './message.ts';
import { SipRefusal } from './sip-refusal.ts';
import { addressOfRecord } from './name-addr.ts';
import type { LocalAddress } from './notify-user-agent-client.ts';
import type { Flow } from './transport.ts';

export interface SipFaceContext {
  server: McServiceServer;
  verifier: CredentialVerifier;
  /** Digest challenges and checks for senders that are neither trusted peers nor Bearer holders. */
  digest: DigestAuthenticator;
  psi: McUri;
  trustedPeers: readonly string[];
  /** This server's address on a flow's transport, as clients reach it (Contact, Via). */
  localOf(flow: Flow): LocalAddress;
  /** Live subscriptions one watcher may hold here (configuration `sip.maxSubscriptionsPerWatcher`). */
  maxSubscriptionsPerWatcher: number;
  /** The host part of our Warning headers and the realm of our 401s. */
  agent: string;
  publications: Publications;
  subscriptions: Subscriptions;
  /** Each sender's token bucket (the system's rateLimit), taken once identity is known (identity.ts). */
  senderRate: TokenBuckets;
  /** The audit log's writer (sip-audit.ts records through it). */
  audit: AuditRecorder;
  /** Runs `fn` alone for this user: PUBLISHes of one user are applied one after the other. */
  exclusive<T>(userId: McUri, fn: () => Promise<T>): Promise<T>;
  /**
   * Asks for a NOTIFY to every subscription to this user's status, carrying `pId` when it answers that PUBLISH (none
   * otherwise, also while the PUBLISH under way is not answered yet).
   */
  notifyWatchers(userId: McUri, service: McService, pId?: string): void;
}

/** RFC 3265/6665 §7.2.2 and RFC 3903 §7: the only event package served here is presence. */
export function requirePresenceEvent(req: IncomingRequest): string | undefined {
  const event = req.headers.get('event');
  const pkg = event?.split(';')[0]?.trim().toLowerCase();
  if (pkg !== 'presence') throw new SipRefusal(489, `event package ${pkg ?? '(none)'} is not served`, [['Allow-Events', 'presence']]);
  const id = event?.match(/;\s*id\s*=\s*([^;\s]+)/i)?.[1];
  return id;
}

/** The Request-URI must be the server's PSI (STAGE3.md "Identifiers and markers"). */
export function requirePsi(req: IncomingRequest, psi: McUri): void {
  let target: McUri | undefined;
  try {
    target = parseMcUri(addressOfRecord(req.uri));
  } catch (e) {
    if (!(e instanceof InvalidId)) throw e;
  }
  if (target !== psi) throw new SipRefusal(404, `${req.uri} is not this server's public service identity`);
}

/** RFC 3261 §20.19: Expires is delta-seconds (a 32-bit number). */
export function expiresOf(req: IncomingRequest, fallback: number): number {
  const raw = req.headers.get('expires');
  if (raw === undefined) return fallback;
  if (!/^[0-9]{1,10}$/.test(raw.trim())) throw new MusterError('bad-request', 'Expires must be delta-seconds');
  return Math.min(Number(raw.trim()), 4294967295);
}

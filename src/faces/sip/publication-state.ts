// RFC 3903 §6: the event state compositor's publications, one per (served user, MC service) — the PIDF states
// the whole wanted set, so a new one replaces the old. Each has its own entity-tag (never shared, §6 step 8).
// Held in memory for this slice: affiliations themselves are durable in the store; after a restart a client's
// SIP-If-Match gets 412 and it publishes its full set again (RFC 3903 §6 step 4).
import { randomBytes } from 'node:crypto';
import type { McUri } from '../../domain/ids.ts';
import type { McService } from '../../domain/services.ts';
import type { Clock } from '../../ports/clock.ts';

/** TS 24.379 clients ask for 4294967295 s: "until I take it back". No timer then. */
export const EXPIRES_FOREVER = 4294967295;
export const DEFAULT_PUBLISH_EXPIRES = 3600;
/** Longest timer a Node timeout can hold (2**31-1 ms); longer grants are cut to it. */
const MAX_TIMER_SECONDS = Math.floor((2 ** 31 - 1) / 1000);

export interface Publication {
  userId: McUri;
  service: McService;
  etag: string;
  /** Granted seconds; EXPIRES_FOREVER for no expiry. */
  expires: number;
  pId: string | undefined;
  tupleId: string | undefined;
  cancelExpiry: () => void;
}

const key = (userId: McUri, service: McService): string => `${service}|${userId}`;

export class Publications {
  private readonly byUser = new Map<string, Publication>();
  /** The p-id of the last PUBLISH per (user, service), kept after its publication ended, for NOTIFY bodies. */
  private readonly lastPId = new Map<string, string>();
  private readonly lastTuple = new Map<string, string>();

  constructor(private readonly clock: Clock) {}

  get(userId: McUri, service: McService): Publication | undefined {
    return this.byUser.get(key(userId, service));
  }

  /** §6 step 8: the granted time; the expiry handler runs when it passes without a refresh. */
  grant(requested: number): number {
    return requested >= EXPIRES_FOREVER ? EXPIRES_FOREVER : Math.min(requested, MAX_TIMER_SECONDS);
  }

  /** Stores (or replaces) the publication with a fresh entity-tag. */
  put(userId: McUri, service: McService, expires: number, doc: { pId: string | undefined; tupleId: string | undefined }, onExpire: (etag: string) => void): Publication {
    this.remove(userId, service);
    const etag = randomBytes(12).toString('base64url');
    const granted = this.grant(expires);
    const pub: Publication = { userId, service, etag, expires: granted, pId: doc.pId, tupleId: doc.tupleId, cancelExpiry: () => undefined };
    if (granted !== EXPIRES_FOREVER) pub.cancelExpiry = this.clock.after(granted * 1000, () => onExpire(etag));
    this.byUser.set(key(userId, service), pub);
    if (doc.pId !== undefined) this.lastPId.set(key(userId, service), doc.pId);
    if (doc.tupleId !== undefined) this.lastTuple.set(key(userId, service), doc.tupleId);
    return pub;
  }

  /** §6 step 5: a refresh extends the publication under a new entity-tag and keeps its content. */
  refresh(pub: Publication, expires: number, onExpire: (etag: string) => void): Publication {
    return this.put(pub.userId, pub.service, expires, { pId: pub.pId, tupleId: pub.tupleId }, onExpire);
  }

  remove(userId: McUri, service: McService): void {
    const old = this.byUser.get(key(userId, service));
    old?.cancelExpiry();
    this.byUser.delete(key(userId, service));
  }

  pIdOf(userId: McUri, service: McService): string | undefined {
    return this.lastPId.get(key(userId, service));
  }

  tupleOf(userId: McUri, service: McService): string | undefined {
    return this.lastTuple.get(key(userId, service));
  }

  clear(): void {
    for (const p of this.byUser.values()) p.cancelExpiry();
    this.byUser.clear();
  }
}

// RFC 3903 §6: the event state compositor's publications, one per (served user, MC service) — the PIDF states
// the whole wanted set, so a new one replaces the old. Kept in the store (sip_publications), so a refresh with its
// SIP-ETag works after a restart and on any instance. Each has its own entity-tag, random and checked unique in the
// store (§6 step 8: two publications never share one); expiry is taken from the store in pages (expiry-pages.ts).
import { randomBytes } from 'node:crypto';
import type { McUri } from '../../domain/ids.ts';
import type { McService } from '../../domain/services.ts';
import type { Clock } from '../../ports/clock.ts';
import type { SipPublicationRecord, Store } from '../../ports/store.ts';

/** TS 24.379 clients ask for 4294967295 s: "until I take it back". No expiry then. */
export const EXPIRES_FOREVER = 4294967295;
export const DEFAULT_PUBLISH_EXPIRES = 3600;
/** Draws of a fresh entity-tag before giving up; 96 random bits collide about never, the store still checks. */
const ETAG_ATTEMPTS = 5;

export type Publication = SipPublicationRecord;

/** What a PUBLISH's PIDF document gives its publication. */
type PublishedDocument = { pId: string | undefined; tupleId: string | undefined; groups: readonly McUri[] };

export type PublicationRows = Pick<Store, 'putSipPublication' | 'getSipPublication' | 'removeSipPublication' | 'expiredSipPublications'>;

export class EtagExhausted extends Error {}

const key = (userId: McUri, service: McService): string => `${service}|${userId}`;

/** 96 random bits per tag, drawn 4 KiB at a time: one randomBytes call per tag was 2 % of the PUBLISH load (issue 6). */
const ETAG_BYTES = 12;
let pool = Buffer.alloc(0);
let used = 0;
function pooledEtag(): string {
  if (used + ETAG_BYTES > pool.length) {
    pool = randomBytes(4096);
    used = 0;
  }
  used += ETAG_BYTES;
  return pool.toString('base64url', used - ETAG_BYTES, used);
}

export class Publications {
  /** The tuple id of the last PUBLISH per (user, service) seen here, kept after it ended, for NOTIFY bodies. */
  private readonly lastTuple = new Map<string, string | null>();

  constructor(
    private readonly rows: PublicationRows,
    private readonly clock: Clock,
    private readonly newEtag: () => string = pooledEtag,
  ) {}

  /** The live publication of (user, service), from the store: whichever instance or process wrote it. */
  async get(userId: McUri, service: McService): Promise<Publication | undefined> {
    const pub = await this.rows.getSipPublication(userId, service, this.clock.now());
    if (pub) this.remember(pub);
    return pub;
  }

  /** §6 step 8: the granted time; the publication expires when it passes without a refresh. */
  grant(requested: number): number {
    return requested >= EXPIRES_FOREVER ? EXPIRES_FOREVER : requested;
  }

  /**
   * Stores the publication of `doc.groups` under a fresh entity-tag no other publication holds: over whatever the user
   * has (an initial PUBLISH), or with `replacing` only over the publication with that entity-tag (a modification,
   * RFC 3903 §6 step 4 at write time); undefined when that one was refreshed, replaced or removed meanwhile.
   */
  async put(userId: McUri, service: McService, expires: number, doc: PublishedDocument): Promise<Publication>;
  async put(userId: McUri, service: McService, expires: number, doc: PublishedDocument, replacing: string | undefined): Promise<Publication | undefined>;
  async put(userId: McUri, service: McService, expires: number, doc: PublishedDocument, replacing?: string): Promise<Publication | undefined> {
    const pub = await this.store({ userId, service, etag: '', ...this.expiry(expires), pId: doc.pId ?? null, tupleId: doc.tupleId ?? null, groups: [...doc.groups] }, replacing);
    if (!pub && replacing === undefined) throw new Error('unreachable: an unconditional put is never stale');
    return pub;
  }

  /** §6 step 5: a refresh extends the publication under a new entity-tag and keeps its content; undefined when it was replaced meanwhile. */
  async refresh(pub: Publication, expires: number): Promise<Publication | undefined> {
    return this.store({ ...pub, ...this.expiry(expires) }, pub.etag);
  }

  /** Removes the publication if it still has `etag` (an expiry or Expires: 0); false when another request won. */
  async remove(userId: McUri, service: McService, etag: string): Promise<boolean> {
    return this.rows.removeSipPublication(userId, service, etag);
  }

  /**
   * Puts `pub` back as it was (its own entity-tag) only over the publication with entity-tag `replacing`, or with
   * `replacing` null only where the user has none now; false when another request (on any instance) came first.
   */
  async restore(pub: Publication, replacing: string | null): Promise<boolean> {
    return (await this.rows.putSipPublication(pub, replacing)) === 'stored';
  }

  /** A page of expired publications, the longest expired first (for PagedExpiry). */
  expired(now: number, limit: number): Promise<Publication[]> {
    return this.rows.expiredSipPublications(now, limit);
  }

  /**
   * The entity-tag of a publication that is not kept (one made on another user's behalf): RFC 3903 §6 step 8 has a
   * 200 carry one, and with `Expires: 0` the publisher knows there is nothing to refresh.
   */
  unkeptEtag(): string {
    return this.newEtag();
  }

  tupleOf(userId: McUri, service: McService): string | undefined {
    return this.lastTuple.get(key(userId, service)) ?? undefined;
  }

  private expiry(expires: number): { expires: number; expiresAt: number | null } {
    const granted = this.grant(expires);
    return { expires: granted, expiresAt: granted === EXPIRES_FOREVER ? null : this.clock.now() + granted * 1000 };
  }

  private async store(pub: Publication, replacing?: string): Promise<Publication | undefined> {
    for (let i = 0; i < ETAG_ATTEMPTS; i++) {
      const candidate = { ...pub, etag: this.newEtag() };
      const outcome = await this.rows.putSipPublication(candidate, replacing);
      if (outcome === 'stale') return undefined;
      if (outcome === 'stored') {
        this.remember(candidate);
        return candidate;
      }
      // 'etag-taken': another publication holds it; draw again (RFC 3903 §6 step 8).
    }
    throw new EtagExhausted(`no unique entity-tag in ${ETAG_ATTEMPTS} draws`);
  }

  private remember(pub: Publication): void {
    this.lastTuple.set(key(pub.userId, pub.service), pub.tupleId ?? this.lastTuple.get(key(pub.userId, pub.service)) ?? null);
  }
}

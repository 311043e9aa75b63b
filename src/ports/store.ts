// The store port: what the procedures need from durable storage (SQLite embedded, PostgreSQL for several instances).
import type { McUri } from '../domain/ids.ts';
import type { McService } from '../domain/services.ts';
import type { UserProfile } from '../domain/profile.ts';
import type { HeldGroups, HeldState } from '../domain/decisions/group-home.ts';

export interface AffiliationRecord {
  userId: McUri;
  groupId: McUri;
  service: McService;
  state: HeldState;
  updatedAt: number;
}

/** Where an affiliation record sorts: user, service, group, in byte order (partner re-synchronisation pages by it). */
export interface AffiliationKey {
  userId: McUri;
  service: McService;
  groupId: McUri;
}

/** Records whose user is of `userDomain` and group of `groupDomain`, in key order, within (after, through]. */
export interface AcrossDomainsQuery {
  userDomain: string;
  groupDomain: string;
  /** Exclusive; none: from the first key. */
  after?: AffiliationKey;
  /** Inclusive; none: to the last key. */
  through?: AffiliationKey;
  limit: number;
}

/** A group affiliation status update (10.X.2.3) waiting in the outbox until the GMS confirmed it. */
export interface GmsStatusUpdate {
  seq: number;
  userId: McUri;
  groupId: McUri;
  service: McService;
  status: 'affiliated' | 'deaffiliated';
}

export interface ClientEvent {
  /** Increasing per store; the SSE event id, so a client resumes with Last-Event-ID. */
  id: number;
  userId: McUri;
  type: 'affiliation-change' | 'affiliation-status';
  data: unknown;
  at: number;
}

/** What one decision writes, atomically with the read it was based on. */
export interface AffiliationWrite<T> {
  put: { groupId: McUri; state: HeldState }[];
  remove: McUri[];
  /** Status updates for the GMS (10.X.3.1 step 5b, 10.X.4.2 step 4b): written to the outbox in the same transaction. */
  tellGms: { groupId: McUri; status: 'affiliated' | 'deaffiliated' }[];
  /** Events for clients, appended to their event logs in the same transaction. */
  events: NewEvent[];
  /** Audit entries of the request this write completes, stored in the same transaction (its answer waits for one commit, not two). */
  audit?: NewAuditEntry[];
  /** Change requests created with this write: a mandatory change's record (10.X.5.1.1 step 7a), applied and told at once. */
  changes?: ChangeRecord[];
  /**
   * De-affiliations from partner groups on their way to the groups' host (10.X.4.3 steps 3-7): `mark` stamps the user's
   * records of these groups with `at` as the request leaves; `clear` takes the stamp off with the write that stores its
   * outcome, where it is still `at` (a later request's stamp stays). In the store, so a partner re-synchronisation at
   * any instance sharing it leaves these records to that outcome (`forwardedGroups`).
   */
  forwarded?: { mark: McUri[]; at: number } | { clear: McUri[]; at: number };
  result: T;
}

/** An event for a user's clients, before the store gives it its id. */
export type NewEvent = { userId: McUri; type: ClientEvent['type']; data: unknown };

export const CHANGE_STATES = ['told', 'acknowledged', 'asked', 'accepted', 'rejected', 'timed-out'] as const;
export type ChangeState = (typeof CHANGE_STATES)[number];

export interface ChangeRecord {
  id: string;
  target: McUri;
  actor: McUri;
  service: McService;
  mode: 'mandatory' | 'negotiated';
  affiliate: McUri[];
  deaffiliate: McUri[];
  state: ChangeState;
  /** Negotiated mode: when the target's answer is too late (epoch ms). */
  deadline: number;
  /** The statuses per group once the change ran, as JSON-able data. */
  result: unknown;
  createdAt: number;
}

/** A status update still in the outbox, as exported: with its seq and when it was written. */
export interface OutboxRecord extends GmsStatusUpdate {
  createdAt: number;
}

/** What an audited request did (docs/audit.md): the flow, named for the operator. */
export const AUDIT_ACTIONS = [
  'affiliation',
  'de-affiliation',
  'change-mandatory',
  'change-negotiated',
  'change-answer',
  'federation-affiliation',
  'federation-de-affiliation',
  'federation-change',
  'federation-resync',
  'partner-resync',
  'resync-drop',
  'gms-group-put',
  'gms-group-delete',
  'profile-put',
  'profile-delete',
  'sip-publish',
  'sip-change-negotiated',
] as const;
export type AuditAction = (typeof AUDIT_ACTIONS)[number];

/** One audited state-changing request (or, for a change with several targets, its part for one target). */
export interface AuditEntry {
  /** Increasing per store; the paging cursor of queryAudit. */
  id: number;
  /** When the answer was ready (epoch ms). */
  at: number;
  /** Who: the credential's subject (an MC service ID, 'operator', or a partner system's domain). */
  subject: string;
  /** The credential's role: 'user', 'operator' or 'server'. */
  role: string;
  /** On whose behalf: the MC service ID whose affiliations (or profile) the request changed; null for group documents. */
  onBehalfOf: string | null;
  action: AuditAction;
  service: string | null;
  /** The groups the request named, in request order. */
  groups: string[];
  /** The HTTP status of the answer. */
  httpStatus: number;
  /** The error code of a refused request (CONTRACT.md's error body), null when it succeeded. */
  errorCode: string | null;
  /** What came of it, as JSON-able data: per-group statuses, a change outcome, or the error body. */
  result: unknown;
}

export type NewAuditEntry = Omit<AuditEntry, 'id'>;

export interface AuditFilter {
  subject?: string;
  onBehalfOf?: string;
  /** Epoch ms, inclusive. */
  since?: number;
  /** Epoch ms, exclusive. */
  until?: number;
  limit: number;
  /** Only entries with a larger id (the last id of the previous page). */
  afterId?: number;
}

/**
 * Everything a store holds, for `muster export` / `muster import` (moving a system between SQLite and PostgreSQL).
 * Ids and sequence numbers are kept: the GMS ignores a status update whose seq is not above the one it stored for
 * the same source, and SSE clients resume by event id.
 */
export interface StoreDump {
  /** Every row, reserved ones included. */
  affiliations: AffiliationRecord[];
  /** Every status update not yet confirmed by the GMS, with its seq. */
  outbox: OutboxRecord[];
  /** Every event of every user, with its id. */
  events: ClientEvent[];
  profiles: UserProfile[];
  /** Every change request, whatever its state. */
  changes: ChangeRecord[];
  /** Every audit entry, with its id. Dumps written before the audit log existed lack it: restore treats that as []. */
  audit?: AuditEntry[];
  /**
   * The SIP face's publications and subscriptions, expired ones too (the next prune removes them), so a SIP client's
   * SIP-ETag and subscription dialog survive a move. Dumps written before this lack it: restore treats that as none.
   */
  sip?: { publications: SipPublicationRecord[]; subscriptions: SipSubscriptionRecord[] };
  /**
   * The highest outbox seq and event id ever handed out (0: none). May be above every row: confirmed outbox rows
   * are deleted, yet the GMS remembers their seqs, so a restored store must never hand one out again.
   */
  sequences: { outbox: number; events: number };
}

/**
 * RFC 3903 §6: a SIP publication of the SIP face, one per (served user, MC service). Stored, so that a refresh with
 * its SIP-ETag works after a restart and on any instance. Its entity-tag is unique in the store (never shared).
 */
export interface SipPublicationRecord {
  userId: McUri;
  service: McService;
  etag: string;
  /** The granted seconds, as answered in Expires (4294967295: no expiry). */
  expires: number;
  /** Epoch ms; null when it does not expire. */
  expiresAt: number | null;
  pId: string | null;
  tupleId: string | null;
  /**
   * The published set (the PIDF's groups): what the expiry of the publication before it gives back when it left
   * them after this one was stored (another instance; src/faces/sip/README.md, "Expiry against a new PUBLISH").
   * Null when stored before sets were kept.
   */
  groups: McUri[] | null;
}

/** A SIP subscription (RFC 6665 dialog) as stored by the instance that owns it and sends its NOTIFYs. */
export interface SipSubscriptionRecord {
  id: string;
  /** The owning instance (host name and SIP listening address); only it sends NOTIFYs and deletes the row. */
  owner: string;
  callId: string;
  localTag: string;
  remoteTag: string;
  remoteFrom: string;
  remoteTarget: string;
  eventId: string | null;
  transport: 'udp' | 'tcp';
  /** The flow: where the SUBSCRIBE came from (a UDP NOTIFY goes back there). */
  remoteAddress: string;
  remotePort: number;
  watcher: McUri;
  userId: McUri;
  service: McService;
  /** Epoch ms. */
  expiresAt: number;
  /** A CSeq no request of ours in the dialog has used yet: after a restart the next one starts here (RFC 3261 §12.2.1.1). */
  localCSeq: number;
  remoteCSeq: number;
}

/** A page of live SIP publications or subscriptions for operators: at most `limit`, keyed after `after`. */
export interface SipListFilter {
  /** Only those about this user (the served user of a publication, the watched user of a subscription). */
  userId?: McUri;
  /** Only those not expired at this instant (epoch ms). */
  now: number;
  limit: number;
  /** The key (etag of a publication, id of a subscription) the previous page ended with. */
  after?: string;
}

export interface Store {
  /** The kind of store, for /healthz. */
  readonly kind: string;
  /** Why the last write failed as unavailable (full, read-only, I/O), until a later write succeeds; for /healthz. */
  writeFault?(): string | undefined;
  /**
   * Reads the user's held groups for one service and writes what `decide` returns, in one transaction that is
   * serialised per user, so N2 holds under concurrent requests. The returned promise settles after the commit is durable.
   */
  changeAffiliations<T>(userId: McUri, service: McService, decide: (held: HeldGroups) => AffiliationWrite<T>): Promise<{ result: T; events: ClientEvent[] }>;
  affiliationsOfUser(userId: McUri, service?: McService): Promise<AffiliationRecord[]>;
  affiliationsOfGroup(groupId: McUri, service?: McService): Promise<AffiliationRecord[]>;
  /** Partner re-synchronisation: one system's users in another system's groups, a page at a time (reserved rows included). */
  affiliationsAcrossDomains(q: AcrossDomainsQuery): Promise<AffiliationRecord[]>;
  /** The user's records of `service` stamped as having a de-affiliation on its way to their host (AffiliationWrite.forwarded). */
  forwardedGroups(userId: McUri, service: McService): Promise<McUri[]>;
  /**
   * Removes reservations older than `before` (epoch ms) left by a crash while a partner was asked, and takes off
   * forwarded stamps older than it (a crash before the de-affiliation's outcome was stored); returns how many of both.
   */
  sweepReservations(before: number): Promise<number>;
  /**
   * Retention: removes client events older than `before` (epoch ms), except change requests their target has not
   * answered yet (they wait for the client however long it is away), and ended change requests older than it.
   * Returns how many events went. In transactions of at most PRUNE_CHUNK events, oldest id first, so writes go on
   * meanwhile; it stops at the first event within retention, so one written after the clock was set back stays
   * until those before it are old too.
   */
  pruneEvents(before: number): Promise<number>;

  pendingGmsUpdates(limit: number): Promise<GmsStatusUpdate[]>;
  confirmGmsUpdates(seqs: number[]): Promise<void>;

  appendEvents(events: { userId: McUri; type: ClientEvent['type']; data: unknown }[]): Promise<ClientEvent[]>;
  eventsAfter(userId: McUri, afterId: number, limit: number): Promise<ClientEvent[]>;
  /**
   * The highest event id this store ever issued, pruned events' ids included (0 before the first): a Last-Event-ID
   * above it was never sent from here (a store restored from an older backup, or another system's id).
   */
  newestEventId(): Promise<number>;

  putProfile(profile: UserProfile): Promise<void>;
  deleteProfile(id: McUri): Promise<boolean>;
  /** Every profile, its ID strings shared with every other mention of them (uriIntern), as a cache keeps them. */
  allProfiles(): Promise<UserProfile[]>;
  /** One profile as stored now (none: deleted or never stored), interned as allProfiles' are. */
  profile(id: McUri): Promise<UserProfile | undefined>;

  /** Stores change requests and the events that tell their targets, in one transaction (step 7a / step 3). */
  createChanges(records: ChangeRecord[], events: NewEvent[]): Promise<ClientEvent[]>;
  getChange(id: string, target: McUri): Promise<ChangeRecord | undefined>;
  /** Moves a change from one of `from` to `to`; false when another answer or the timeout won the race. */
  transitionChange(id: string, target: McUri, from: ChangeState[], to: ChangeState, result?: unknown): Promise<boolean>;
  /** Change requests in `state`, oldest first; only those of `target` when given. */
  changesInState(state: ChangeState, target?: McUri): Promise<ChangeRecord[]>;
  /** Negotiations still asked whose deadline is at or before `now` (epoch ms), earliest deadline first, at most `limit`. */
  changesPastDeadline(now: number, limit: number): Promise<ChangeRecord[]>;
  /**
   * Negotiations answered (accepted or rejected) whose result was never stored (applying the answer failed), with the
   * deadline at or before `now`, earliest first, at most `limit`.
   */
  changesAnsweredUnfinished(now: number, limit: number): Promise<ChangeRecord[]>;

  /** Appends audit entries (ids handed out in array order); durable when the promise settles. */
  appendAudit(entries: NewAuditEntry[]): Promise<void>;
  /** Audit entries matching every given filter, oldest first (ids increasing), at most `limit`. */
  queryAudit(filter: AuditFilter): Promise<AuditEntry[]>;
  /** Retention: removes audit entries older than `before` (epoch ms), PRUNE_CHUNK per transaction; returns how many went. */
  pruneAudit(before: number): Promise<number>;

  /**
   * SIP face state (src/faces/sip/README.md). Stores the (user, service) publication in place of the one before.
   * With `replacing`, only if the stored one still has that entity-tag ('stale' otherwise: a refresh lost a race);
   * with `replacing` null, only if none is stored ('stale' otherwise: an expiry's retry lost to a new PUBLISH).
   * 'etag-taken' when another publication holds `pub.etag` (RFC 3903: two publications never share one).
   */
  putSipPublication(pub: SipPublicationRecord, replacing?: string | null): Promise<'stored' | 'etag-taken' | 'stale'>;
  /** The (user, service) publication, unless it expired by `now`. */
  getSipPublication(userId: McUri, service: McService, now: number): Promise<SipPublicationRecord | undefined>;
  /** Removes the publication if it still has `etag`; false when it was replaced or removed meanwhile. */
  removeSipPublication(userId: McUri, service: McService, etag: string): Promise<boolean>;
  /** At most `limit` publications expired by `now`, the longest expired first (expiry in pages). */
  expiredSipPublications(now: number, limit: number): Promise<SipPublicationRecord[]>;
  /** Live publications for operators, ordered by entity-tag. */
  listSipPublications(filter: SipListFilter): Promise<SipPublicationRecord[]>;
  /** Creates or updates a subscription; an update only as its owner (false when another instance owns it). */
  putSipSubscription(sub: SipSubscriptionRecord): Promise<boolean>;
  /** Removes those of `ids` that `owner` owns, never another instance's; returns how many went. */
  removeSipSubscriptions(ids: string[], owner: string): Promise<number>;
  /** Every subscription `owner` holds (read once when that instance starts). */
  sipSubscriptionsOwnedBy(owner: string): Promise<SipSubscriptionRecord[]>;
  /** Live subscriptions of every instance for operators, ordered by id. */
  listSipSubscriptions(filter: SipListFilter): Promise<SipSubscriptionRecord[]>;
  /** Removes subscriptions of any owner that expired before `before` (an instance that never came back); how many went. */
  pruneSipSubscriptions(before: number): Promise<number>;

  /** Everything stored, read in one consistent snapshot. */
  dump(): Promise<StoreDump>;
  /**
   * Writes a dump into this store in one transaction, keeping ids and seqs, and moves the sequences past them so
   * the next event and outbox row get numbers above every imported one. Refuses (MusterError 'conflict') unless
   * the store is empty.
   */
  restore(dump: StoreDump): Promise<void>;

  close(): Promise<void>;
}

/** The largest of `start` and the rows' numbers, for restore's sequences (a loop: spreading a million rows into Math.max would overflow the stack). */
export function highest<T>(start: number, rows: readonly T[], key: (row: T) => number): number {
  let high = start;
  for (const r of rows) high = Math.max(high, key(r));
  return high;
}

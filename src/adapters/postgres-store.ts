// The shared store for several instances of one MC service server: PostgreSQL via `pg`. Same semantics as
// sqlite-store.ts; what SQLite gets from one synchronous writer, this gets from a transaction-level advisory lock
// per user: every write to a user's affiliations, outbox rows or event log holds it, so N2 holds across instances
// and a user's events commit in id order (a client resuming from Last-Event-ID never skips one).
import type pg from 'pg';
import type { McUri } from '../domain/ids.ts';
import type { McService } from '../domain/services.ts';
import type { UserProfile } from '../domain/profile.ts';
import type { HeldState } from '../domain/decisions/group-home.ts';
import {
  highest,
  type AcrossDomainsQuery,
  type AffiliationRecord,
  type AffiliationWrite,
  type AuditEntry,
  type AuditFilter,
  type ChangeRecord,
  type ChangeState,
  type ClientEvent,
  type GmsStatusUpdate,
  type NewAuditEntry,
  type Store,
  type StoreDump,
} from '../ports/store.ts';
import { MusterError } from '../domain/errors.ts';
import { migratePostgres } from './postgres-migrations.ts';
import { uriIntern } from './uri-intern.ts';
import { insertColumns, inTransaction, newPool, toStoreError } from './postgres-pool.ts';
import { PostgresGmsStore } from './postgres-gms-store.ts';
import { AUDIT_COLUMNS, DUMPED_TABLES, STORE_USED_SQL, type Row, auditRow, toAffiliationRecord, toAuditEntry, toChangeRecord, toClientEvent } from './store-rows.ts';
import type { NewEvent, SipListFilter, SipPublicationRecord, SipSubscriptionRecord } from '../ports/store.ts';
import { PRUNE_CHUNK, pruneInChunks } from './retention.ts';
import { SIP_PUBLICATION_COLUMNS, SIP_PUBLICATION_TYPES, SIP_SUBSCRIPTION_COLUMNS, SIP_SUBSCRIPTION_TYPES, sipPublicationValues, sipSubscriptionValues, toSipPublication, toSipSubscription } from './sip-rows.ts';


/** Creates the pool, applies missing migrations and returns both stores on it. */
export async function openPostgres(url: string): Promise<{ pool: pg.Pool; store: PostgresStore; gmsStore: PostgresGmsStore }> {
  const pool = newPool(url);
  try {
    await migratePostgres(pool);
  } catch (e) {
    await pool.end().catch(() => undefined);
    throw toStoreError(e);
  }
  return { pool, store: new PostgresStore(pool), gmsStore: new PostgresGmsStore(pool) };
}

const Q = {
  lockUser: { name: 'muster-lock-user', text: 'SELECT pg_advisory_xact_lock(hashtextextended($1, 0))' },
  held: { name: 'muster-held', text: 'SELECT group_id, state FROM affiliations WHERE user_id = $1 AND service = $2' },
  put: {
    name: 'muster-put',
    text:
      'INSERT INTO affiliations (user_id, service, group_id, state, updated_at) SELECT $1::text, $2::text, g, s, $5::bigint FROM unnest($3::text[], $4::text[]) AS t(g, s) ' +
      'ON CONFLICT (user_id, service, group_id) DO UPDATE SET state = excluded.state, updated_at = excluded.updated_at',
  },
  remove: { name: 'muster-remove', text: 'DELETE FROM affiliations WHERE user_id = $1 AND service = $2 AND group_id = ANY($3::text[])' },
  outbox: { name: 'muster-outbox', text: 'INSERT INTO gms_outbox (user_id, service, group_id, status, created_at) VALUES ($1, $2, $3, $4, $5)' },
  event: { name: 'muster-event', text: 'INSERT INTO events (user_id, type, data, created_at) VALUES ($1, $2, $3, $4) RETURNING id' },
  ofUser: { name: 'muster-of-user', text: 'SELECT * FROM affiliations WHERE user_id = $1 ORDER BY service, group_id' },
  ofUserService: { name: 'muster-of-user-service', text: 'SELECT * FROM affiliations WHERE user_id = $1 AND service = $2 ORDER BY group_id' },
  ofGroup: { name: 'muster-of-group', text: 'SELECT * FROM affiliations WHERE group_id = $1 ORDER BY service, user_id' },
  ofGroupService: { name: 'muster-of-group-service', text: 'SELECT * FROM affiliations WHERE group_id = $1 AND service = $2 ORDER BY user_id' },
  // A domain is what follows the last '@', so '@' + domain as the ID's end names it exactly.
  acrossDomains: {
    name: 'muster-across-domains',
    text: `SELECT * FROM affiliations WHERE right(user_id, length($1)) = $1 AND right(group_id, length($2)) = $2
             AND (user_id, service, group_id) > ($3, $4, $5) AND ($6::text IS NULL OR (user_id, service, group_id) <= ($6, $7, $8))
             ORDER BY user_id, service, group_id LIMIT $9`,
  },
  sweep: { name: 'muster-sweep', text: "DELETE FROM affiliations WHERE state = 'reserved' AND updated_at < $1" },
  // A de-affiliation on its way to the group's host (AffiliationWrite.forwarded): stamped, unstamped by its own stamp only.
  markForwarded: { name: 'muster-mark-forwarded', text: 'UPDATE affiliations SET forwarded_at = $4 WHERE user_id = $1 AND service = $2 AND group_id = ANY($3::text[])' },
  clearForwarded: {
    name: 'muster-clear-forwarded',
    text: 'UPDATE affiliations SET forwarded_at = NULL WHERE user_id = $1 AND service = $2 AND group_id = ANY($3::text[]) AND forwarded_at = $4',
  },
  forwarded: { name: 'muster-forwarded', text: 'SELECT group_id FROM affiliations WHERE user_id = $1 AND service = $2 AND forwarded_at IS NOT NULL ORDER BY group_id' },
  sweepForwarded: { name: 'muster-sweep-forwarded', text: 'UPDATE affiliations SET forwarded_at = NULL WHERE forwarded_at < $1' },
  pruneAudit: { name: 'muster-prune-audit', text: 'DELETE FROM audit_log WHERE id IN (SELECT id FROM audit_log WHERE at < $1 ORDER BY at LIMIT $2)' },
  // The next $3 events by id (oldest first), the old ones among them removed, in one round trip: the window's last
  // id, its size, whether it reached events within retention (where a prune stops), and how many went.
  pruneEvents: {
    name: 'muster-prune-events',
    text: `WITH w AS (SELECT id, created_at FROM events WHERE id > $2 ORDER BY id LIMIT $3),
           gone AS (DELETE FROM events e USING w WHERE e.id = w.id AND e.created_at < $1 AND NOT (e.type = 'affiliation-change' AND EXISTS (
             SELECT 1 FROM change_requests c WHERE c.target = e.user_id AND c.id = (e.data::jsonb ->> 'id') AND c.state IN ('told', 'asked'))) RETURNING 1)
           SELECT (SELECT max(id) FROM w) AS last, (SELECT count(*) FROM w) AS n, (SELECT bool_or(created_at >= $1) FROM w) AS recent,
             (SELECT count(*) FROM gone) AS removed`,
  },
  pruneChanges: {
    name: 'muster-prune-changes',
    text: "DELETE FROM change_requests WHERE created_at < $1 AND (state IN ('acknowledged', 'rejected', 'timed-out') OR (state = 'accepted' AND result <> 'null'))",
  },
  pending: { name: 'muster-pending', text: 'SELECT * FROM gms_outbox ORDER BY seq LIMIT $1' },
  confirm: { name: 'muster-confirm', text: 'DELETE FROM gms_outbox WHERE seq = ANY($1::bigint[])' },
  eventsAfter: { name: 'muster-events-after', text: 'SELECT * FROM events WHERE user_id = $1 AND id > $2 ORDER BY id LIMIT $3' },
  putProfile: { name: 'muster-put-profile', text: 'INSERT INTO user_profiles (id, profile) VALUES ($1, $2) ON CONFLICT (id) DO UPDATE SET profile = excluded.profile' },
  deleteProfile: { name: 'muster-delete-profile', text: 'DELETE FROM user_profiles WHERE id = $1' },
  profiles: { name: 'muster-profiles', text: 'SELECT profile FROM user_profiles ORDER BY id' },
  profile: { name: 'muster-profile', text: 'SELECT profile FROM user_profiles WHERE id = $1' },
  createChange: {
    name: 'muster-create-change',
    text: 'INSERT INTO change_requests (id, target, actor, service, mode, affiliate, deaffiliate, state, deadline, result, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)',
  },
  getChange: { name: 'muster-get-change', text: 'SELECT * FROM change_requests WHERE id = $1 AND target = $2' },
  transition: { name: 'muster-transition', text: 'UPDATE change_requests SET state = $1 WHERE id = $2 AND target = $3 AND state = ANY($4::text[])' },
  transitionResult: {
    name: 'muster-transition-result',
    text: 'UPDATE change_requests SET state = $1, result = $5 WHERE id = $2 AND target = $3 AND state = ANY($4::text[])',
  },
  // Every entry of a batch in one statement: one round trip and one commit however many requests it gathers.
  audit: {
    name: 'muster-audit',
    text:
      'INSERT INTO audit_log (at, subject, role, on_behalf_of, action, service, groups, http_status, error_code, result) ' +
      'SELECT a, b, c, d, e, f, g, h, i, j FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::int[], $9::text[], $10::text[]) WITH ORDINALITY AS t(a, b, c, d, e, f, g, h, i, j, n) ORDER BY n',
  },
  changesInState: { name: 'muster-changes-in-state', text: 'SELECT * FROM change_requests WHERE state = $1 ORDER BY created_at, id, target' },
  changesOfTargetInState: { name: 'muster-changes-of-target-in-state', text: 'SELECT * FROM change_requests WHERE state = $1 AND target = $2 ORDER BY created_at, id' },
  changesPastDeadline: { name: 'muster-changes-past-deadline', text: "SELECT * FROM change_requests WHERE state = 'asked' AND deadline <= $1 ORDER BY deadline, id, target LIMIT $2" },
  changesAnsweredUnfinished: {
    name: 'muster-changes-answered-unfinished',
    text: "SELECT * FROM change_requests WHERE state IN ('accepted', 'rejected') AND result = 'null' AND deadline <= $1 ORDER BY deadline, id, target LIMIT $2",
  },
} as const;

const placeholders = (n: number, from = 1): string => Array.from({ length: n }, (_, i) => `$${i + from}`).join(', ');
/** The SIP face's statements (migration 3). */
const SIP_Q = {
  putPublication: {
    name: 'muster-sip-put-publication',
    text: `INSERT INTO sip_publications (${SIP_PUBLICATION_COLUMNS.join(', ')}) VALUES (${placeholders(SIP_PUBLICATION_COLUMNS.length)})
           ON CONFLICT (user_id, service) DO UPDATE SET etag = excluded.etag, expires = excluded.expires, expires_at = excluded.expires_at, p_id = excluded.p_id, tuple_id = excluded.tuple_id, groups = excluded.groups`,
  },
  // An expiry's retry: only while no publication is stored (a new PUBLISH elsewhere won).
  insertPublication: {
    name: 'muster-sip-insert-publication',
    text: `INSERT INTO sip_publications (${SIP_PUBLICATION_COLUMNS.join(', ')}) VALUES (${placeholders(SIP_PUBLICATION_COLUMNS.length)}) ON CONFLICT (user_id, service) DO NOTHING`,
  },
  // A refresh: only while the stored publication still has the entity-tag the request named.
  replacePublication: {
    name: 'muster-sip-replace-publication',
    text: 'UPDATE sip_publications SET etag = $3, expires = $4, expires_at = $5, p_id = $6, tuple_id = $7, groups = $8 WHERE user_id = $1 AND service = $2 AND etag = $9',
  },
  publication: { name: 'muster-sip-publication', text: 'SELECT * FROM sip_publications WHERE user_id = $1 AND service = $2 AND (expires_at IS NULL OR expires_at > $3)' },
  removePublication: { name: 'muster-sip-remove-publication', text: 'DELETE FROM sip_publications WHERE user_id = $1 AND service = $2 AND etag = $3' },
  expiredPublications: { name: 'muster-sip-expired-publications', text: 'SELECT * FROM sip_publications WHERE expires_at IS NOT NULL AND expires_at <= $1 ORDER BY expires_at LIMIT $2' },
  // An update only by the owner: another instance never takes over or rewrites a subscription it does not hold.
  putSubscription: {
    name: 'muster-sip-put-subscription',
    text: `INSERT INTO sip_subscriptions (${SIP_SUBSCRIPTION_COLUMNS.join(', ')}) VALUES (${placeholders(SIP_SUBSCRIPTION_COLUMNS.length)})
           ON CONFLICT (id) DO UPDATE SET ${SIP_SUBSCRIPTION_COLUMNS.filter((c) => c !== 'id' && c !== 'owner').map((c) => `${c} = excluded.${c}`).join(', ')}
           WHERE sip_subscriptions.owner = excluded.owner`,
  },
  removeSubscriptions: { name: 'muster-sip-remove-subscriptions', text: 'DELETE FROM sip_subscriptions WHERE id = ANY($1::text[]) AND owner = $2' },
  ownedBy: { name: 'muster-sip-owned-by', text: 'SELECT * FROM sip_subscriptions WHERE owner = $1' },
  pruneSubscriptions: { name: 'muster-sip-prune-subscriptions', text: 'DELETE FROM sip_subscriptions WHERE expires_at < $1' },
} as const;

/** The highest value a BIGSERIAL column's sequence handed out (0 before the first nextval). */
const SEQUENCE_HIGH = 'SELECT COALESCE(pg_sequence_last_value(pg_get_serial_sequence($1, $2)::regclass), 0) AS high';

export class PostgresStore implements Store {
  readonly kind = 'postgres';
  private colocatedGms = false;

  constructor(
    readonly pool: pg.Pool,
    private readonly now: () => number = Date.now,
  ) {}

  async changeAffiliations<T>(userId: McUri, service: McService, decide: (held: Map<McUri, HeldState>) => AffiliationWrite<T>): Promise<{ result: T; events: ClientEvent[] }> {
    return this.tx(async (c) => {
      await c.query({ ...Q.lockUser, values: [userId] });
      const rows = (await c.query({ ...Q.held, values: [userId, service] })).rows as Row[];
      const held = new Map(rows.map((r) => [r['group_id'] as McUri, r['state'] as HeldState]));
      // `decide` runs again only if the database aborted this transaction as a deadlock victim (see lockUsers).
      const w = decide(held);
      // Events for other users need their locks as well (sorted; a deadlock with another such write is retried).
      await this.lockUsers(c, w.events.map((e) => e.userId).filter((u) => u !== userId));
      const at = this.now();
      // One statement for every put; a group put twice keeps its last state, as sequential upserts would.
      const puts = new Map(w.put.map((p) => [p.groupId, p.state]));
      if (puts.size > 0) await c.query({ ...Q.put, values: [userId, service, [...puts.keys()], [...puts.values()], at] });
      if (w.remove.length > 0) await c.query({ ...Q.remove, values: [userId, service, w.remove] });
      const f = w.forwarded;
      if (f && 'mark' in f && f.mark.length > 0) await c.query({ ...Q.markForwarded, values: [userId, service, f.mark, f.at] });
      if (f && 'clear' in f && f.clear.length > 0) await c.query({ ...Q.clearForwarded, values: [userId, service, f.clear, f.at] });
      // Step 5b (10.X.4.2 step 4b): a co-located GMS reads these very rows (PostgresGmsStore.ownSource), so telling
      // it is this transaction's commit; a GMS elsewhere is told through the outbox.
      if (!this.colocatedGms) for (const u of w.tellGms) await c.query({ ...Q.outbox, values: [userId, service, u.groupId, u.status, at] });
      await insertChanges(c, w.changes ?? []);
      if (w.audit?.length) {
        const rows = w.audit.map(auditRow);
        await c.query({ ...Q.audit, values: AUDIT_COLUMNS.map((_, k) => rows.map((r) => r[k])) });
      }
      return { result: w.result, events: await insertEvents(c, w.events, at) };
    });
  }

  /** `gms` (on this same database) lists its members of `source`, this system's domain, from here from now on. */
  colocateGms(source: string, gms: PostgresGmsStore): void {
    if (gms.pool !== this.pool) throw new Error('a co-located GMS must be on the same PostgreSQL pool');
    this.colocatedGms = true;
    gms.readOwnServerFromAffiliations(source);
  }

  async affiliationsOfUser(userId: McUri, service?: McService): Promise<AffiliationRecord[]> {
    const q = service ? { ...Q.ofUserService, values: [userId, service] } : { ...Q.ofUser, values: [userId] };
    return (await this.query(q)).map(toAffiliationRecord);
  }

  async affiliationsOfGroup(groupId: McUri, service?: McService): Promise<AffiliationRecord[]> {
    const q = service ? { ...Q.ofGroupService, values: [groupId, service] } : { ...Q.ofGroup, values: [groupId] };
    return (await this.query(q)).map(toAffiliationRecord);
  }

  async affiliationsAcrossDomains(q: AcrossDomainsQuery): Promise<AffiliationRecord[]> {
    const after = [q.after?.userId ?? '', q.after?.service ?? '', q.after?.groupId ?? ''];
    const through = [q.through?.userId ?? null, q.through?.service ?? null, q.through?.groupId ?? null];
    return (await this.query({ ...Q.acrossDomains, values: [`@${q.userDomain}`, `@${q.groupDomain}`, ...after, ...through, q.limit] })).map(toAffiliationRecord);
  }

  async pruneEvents(before: number): Promise<number> {
    const events = await pruneInChunks(async (after) => {
      const [w] = await this.query({ ...Q.pruneEvents, values: [before, after, PRUNE_CHUNK] });
      if (!w || w['last'] === null) return { removed: 0, next: undefined };
      const done = Number(w['n']) < PRUNE_CHUNK || w['recent'] === true;
      return { removed: Number(w['removed']), next: done ? undefined : Number(w['last']) };
    });
    await this.run({ ...Q.pruneChanges, values: [before] });
    return events;
  }

  async forwardedGroups(userId: McUri, service: McService): Promise<McUri[]> {
    return (await this.query({ ...Q.forwarded, values: [userId, service] })).map((r) => r['group_id'] as McUri);
  }

  async sweepReservations(before: number): Promise<number> {
    // Row locks serialise this with a concurrent write of the same row; it only ever lowers a user's count.
    const swept = (await this.run({ ...Q.sweep, values: [before] })).rowCount ?? 0;
    return swept + ((await this.run({ ...Q.sweepForwarded, values: [before] })).rowCount ?? 0);
  }

  async pendingGmsUpdates(limit: number): Promise<GmsStatusUpdate[]> {
    return (await this.query({ ...Q.pending, values: [limit] })).map((r) => ({
      seq: Number(r['seq']),
      userId: r['user_id'] as McUri,
      groupId: r['group_id'] as McUri,
      service: r['service'] as McService,
      status: r['status'] as GmsStatusUpdate['status'],
    }));
  }

  async confirmGmsUpdates(seqs: number[]): Promise<void> {
    if (seqs.length > 0) await this.run({ ...Q.confirm, values: [seqs] });
  }

  async appendEvents(events: NewEvent[]): Promise<ClientEvent[]> {
    if (events.length === 0) return [];
    return this.tx(async (c) => {
      await this.lockUsers(c, events.map((e) => e.userId));
      return insertEvents(c, events, this.now());
    });
  }

  async eventsAfter(userId: McUri, afterId: number, limit: number): Promise<ClientEvent[]> {
    return (await this.query({ ...Q.eventsAfter, values: [userId, afterId, limit] })).map(toClientEvent);
  }

  async newestEventId(): Promise<number> {
    // The sequence, not MAX(id): ids of pruned events were issued too, and reading it scans nothing.
    const [row] = await this.query({ name: 'muster-newest-event-id', text: SEQUENCE_HIGH, values: ['events', 'id'] });
    return Number(row?.['high'] ?? 0);
  }

  async putProfile(profile: UserProfile): Promise<void> {
    await this.run({ ...Q.putProfile, values: [profile.id, JSON.stringify(profile)] });
  }

  async deleteProfile(id: McUri): Promise<boolean> {
    return ((await this.run({ ...Q.deleteProfile, values: [id] })).rowCount ?? 0) > 0;
  }

  async allProfiles(): Promise<UserProfile[]> {
    return (await this.query({ ...Q.profiles, values: [] })).map((r) => uriIntern.profile(JSON.parse(r['profile'] as string) as UserProfile));
  }

  async profile(id: McUri): Promise<UserProfile | undefined> {
    const [r] = await this.query({ ...Q.profile, values: [id] });
    return r && uriIntern.profile(JSON.parse(r['profile'] as string) as UserProfile);
  }

  async createChanges(records: ChangeRecord[], events: NewEvent[]): Promise<ClientEvent[]> {
    return this.tx(async (c) => {
      await this.lockUsers(c, events.map((e) => e.userId));
      await insertChanges(c, records);
      return insertEvents(c, events, this.now());
    });
  }

  async getChange(id: string, target: McUri): Promise<ChangeRecord | undefined> {
    const [r] = await this.query({ ...Q.getChange, values: [id, target] });
    return r && toChangeRecord(r);
  }

  async transitionChange(id: string, target: McUri, from: ChangeState[], to: ChangeState, result?: unknown): Promise<boolean> {
    const q = result === undefined ? { ...Q.transition, values: [to, id, target, from] } : { ...Q.transitionResult, values: [to, id, target, from, JSON.stringify(result)] };
    return (await this.run(q)).rowCount === 1;
  }

  async changesInState(state: ChangeState, target?: McUri): Promise<ChangeRecord[]> {
    const q = target === undefined ? { ...Q.changesInState, values: [state] } : { ...Q.changesOfTargetInState, values: [state, target] };
    return (await this.query(q)).map(toChangeRecord);
  }

  async changesPastDeadline(now: number, limit: number): Promise<ChangeRecord[]> {
    return (await this.query({ ...Q.changesPastDeadline, values: [now, limit] })).map(toChangeRecord);
  }

  async changesAnsweredUnfinished(now: number, limit: number): Promise<ChangeRecord[]> {
    return (await this.query({ ...Q.changesAnsweredUnfinished, values: [now, limit] })).map(toChangeRecord);
  }

  async appendAudit(entries: NewAuditEntry[]): Promise<void> {
    if (entries.length === 0) return;
    const rows = entries.map(auditRow);
    const cols = AUDIT_COLUMNS.map((_, k) => rows.map((r) => r[k]));
    await this.run({ ...Q.audit, values: cols });
  }

  async pruneAudit(before: number): Promise<number> {
    return pruneInChunks(async () => {
      const removed = (await this.run({ ...Q.pruneAudit, values: [before, PRUNE_CHUNK] })).rowCount ?? 0;
      return { removed, next: removed < PRUNE_CHUNK ? undefined : 0 };
    });
  }

  async queryAudit(filter: AuditFilter): Promise<AuditEntry[]> {
    const where: string[] = [];
    const values: (string | number)[] = [];
    const add = (column: string, op: string, v: string | number | undefined): void => {
      if (v === undefined) return;
      values.push(v);
      where.push(`${column} ${op} $${values.length}`);
    };
    add('subject', '=', filter.subject);
    add('on_behalf_of', '=', filter.onBehalfOf);
    add('at', '>=', filter.since);
    add('at', '<', filter.until);
    add('id', '>', filter.afterId);
    values.push(filter.limit);
    const text = `SELECT * FROM audit_log${where.length > 0 ? ` WHERE ${where.join(' AND ')}` : ''} ORDER BY id LIMIT $${values.length}`;
    return (await this.query({ text, values })).map(toAuditEntry);
  }

  async dump(): Promise<StoreDump> {
    return this.tx(async (c) => {
      // One snapshot for every table (the sequences are read outside it: they only grow).
      await c.query('SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY');
      const all = async (sql: string): Promise<Row[]> => (await c.query(sql)).rows as Row[];
      return {
        affiliations: (await all('SELECT * FROM affiliations ORDER BY user_id, service, group_id')).map(toAffiliationRecord),
        outbox: (await all('SELECT * FROM gms_outbox ORDER BY seq')).map((r) => ({
          seq: Number(r['seq']),
          userId: r['user_id'] as McUri,
          groupId: r['group_id'] as McUri,
          service: r['service'] as McService,
          status: r['status'] as GmsStatusUpdate['status'],
          createdAt: Number(r['created_at']),
        })),
        events: (await all('SELECT * FROM events ORDER BY id')).map(toClientEvent),
        profiles: (await all('SELECT profile FROM user_profiles ORDER BY id')).map((r) => JSON.parse(r['profile'] as string) as UserProfile),
        changes: (await all('SELECT * FROM change_requests ORDER BY created_at, id, target')).map(toChangeRecord),
        audit: (await all('SELECT * FROM audit_log ORDER BY id')).map(toAuditEntry),
        sip: { publications: (await all('SELECT * FROM sip_publications ORDER BY etag')).map(toSipPublication), subscriptions: (await all('SELECT * FROM sip_subscriptions ORDER BY id')).map(toSipSubscription) },
        sequences: { outbox: await sequenceHigh(c, 'gms_outbox', 'seq'), events: await sequenceHigh(c, 'events', 'id') },
      };
    });
  }

  async restore(dump: StoreDump): Promise<void> {
    await this.tx(async (c) => {
      // Writers wait until the import committed, and a second import sees this one's rows.
      await c.query(`LOCK TABLE ${DUMPED_TABLES.join(', ')} IN SHARE ROW EXCLUSIVE MODE`);
      const { rows } = await c.query<{ used: boolean }>(STORE_USED_SQL);
      if (rows[0]?.used) throw new MusterError('conflict', 'the target store is not empty: import only into a new store');
      const a = dump.affiliations;
      await insertColumns(c, 'affiliations (user_id, service, group_id, state, updated_at)', ['text', 'text', 'text', 'text', 'bigint'], a.length, (i) => {
        const r = a[i]!;
        return [r.userId, r.service, r.groupId, r.state, r.updatedAt];
      });
      const o = dump.outbox;
      await insertColumns(c, 'gms_outbox (seq, user_id, service, group_id, status, created_at)', ['bigint', 'text', 'text', 'text', 'text', 'bigint'], o.length, (i) => {
        const r = o[i]!;
        return [r.seq, r.userId, r.service, r.groupId, r.status, r.createdAt];
      });
      const e = dump.events;
      await insertColumns(c, 'events (id, user_id, type, data, created_at)', ['bigint', 'text', 'text', 'text', 'bigint'], e.length, (i) => {
        const r = e[i]!;
        return [r.id, r.userId, r.type, JSON.stringify(r.data), r.at];
      });
      const p = dump.profiles;
      await insertColumns(c, 'user_profiles (id, profile)', ['text', 'text'], p.length, (i) => [p[i]!.id, JSON.stringify(p[i])]);
      const ch = dump.changes;
      await insertColumns(
        c,
        'change_requests (id, target, actor, service, mode, affiliate, deaffiliate, state, deadline, result, created_at)',
        ['text', 'text', 'text', 'text', 'text', 'text', 'text', 'text', 'bigint', 'text', 'bigint'],
        ch.length,
        (i) => {
          const r = ch[i]!;
          return [r.id, r.target, r.actor, r.service, r.mode, JSON.stringify(r.affiliate), JSON.stringify(r.deaffiliate), r.state, r.deadline, JSON.stringify(r.result), r.createdAt];
        },
      );
      const au = dump.audit ?? [];
      await insertColumns(c, `audit_log (id, ${AUDIT_COLUMNS.join(', ')})`, ['bigint', ...AUDIT_TYPES], au.length, (i) => [au[i]!.id, ...auditRow(au[i]!)]);
      const pubs = dump.sip?.publications ?? [];
      await insertColumns(c, `sip_publications (${SIP_PUBLICATION_COLUMNS.join(', ')})`, [...SIP_PUBLICATION_TYPES], pubs.length, (i) => sipPublicationValues(pubs[i]!));
      const subs = dump.sip?.subscriptions ?? [];
      await insertColumns(c, `sip_subscriptions (${SIP_SUBSCRIPTION_COLUMNS.join(', ')})`, [...SIP_SUBSCRIPTION_TYPES], subs.length, (i) => sipSubscriptionValues(subs[i]!));
      // The next seq and id are above every imported one and every one the source ever handed out.
      await raiseSequence(c, 'audit_log', 'id', highest(0, au, (r) => r.id));
      await raiseSequence(c, 'gms_outbox', 'seq', highest(dump.sequences.outbox, o, (r) => r.seq));
      await raiseSequence(c, 'events', 'id', highest(dump.sequences.events, e, (r) => r.id));
    });
  }

  /** Ends the pool (shared with the GMS store of openPostgres). */
  async close(): Promise<void> {
    if (!this.pool.ended && !this.pool.ending) await this.pool.end();
  }

  async putSipPublication(pub: SipPublicationRecord, replacing?: string | null): Promise<'stored' | 'etag-taken' | 'stale'> {
    const values = sipPublicationValues(pub);
    try {
      const q = replacing === undefined ? { ...SIP_Q.putPublication, values } : replacing === null ? { ...SIP_Q.insertPublication, values } : { ...SIP_Q.replacePublication, values: [...values, replacing] };
      const r = await this.run(q);
      return r.rowCount === 1 ? 'stored' : 'stale';
    } catch (e) {
      // RFC 3903: the store's unique index is what keeps two publications from sharing one entity-tag.
      if ((e as { constraint?: string }).constraint === 'sip_publications_etag_key') return 'etag-taken';
      throw e;
    }
  }

  async getSipPublication(userId: McUri, service: McService, now: number): Promise<SipPublicationRecord | undefined> {
    const [r] = await this.query({ ...SIP_Q.publication, values: [userId, service, now] });
    return r && toSipPublication(r);
  }

  async removeSipPublication(userId: McUri, service: McService, etag: string): Promise<boolean> {
    return (await this.run({ ...SIP_Q.removePublication, values: [userId, service, etag] })).rowCount === 1;
  }

  async expiredSipPublications(now: number, limit: number): Promise<SipPublicationRecord[]> {
    return (await this.query({ ...SIP_Q.expiredPublications, values: [now, limit] })).map(toSipPublication);
  }

  async listSipPublications(f: SipListFilter): Promise<SipPublicationRecord[]> {
    const values: (string | number)[] = [f.now];
    const where = ['(expires_at IS NULL OR expires_at > $1)'];
    if (f.userId !== undefined) where.push(`user_id = $${values.push(f.userId)}`);
    if (f.after !== undefined) where.push(`etag > $${values.push(f.after)}`);
    const text = `SELECT * FROM sip_publications WHERE ${where.join(' AND ')} ORDER BY etag LIMIT $${values.push(f.limit)}`;
    return (await this.query({ text, values })).map(toSipPublication);
  }

  async putSipSubscription(sub: SipSubscriptionRecord): Promise<boolean> {
    return (await this.run({ ...SIP_Q.putSubscription, values: sipSubscriptionValues(sub) })).rowCount === 1;
  }

  async removeSipSubscriptions(ids: string[], owner: string): Promise<number> {
    if (ids.length === 0) return 0;
    return (await this.run({ ...SIP_Q.removeSubscriptions, values: [ids, owner] })).rowCount ?? 0;
  }

  async sipSubscriptionsOwnedBy(owner: string): Promise<SipSubscriptionRecord[]> {
    return (await this.query({ ...SIP_Q.ownedBy, values: [owner] })).map(toSipSubscription);
  }

  async pruneSipSubscriptions(before: number): Promise<number> {
    return (await this.run({ ...SIP_Q.pruneSubscriptions, values: [before] })).rowCount ?? 0;
  }

  async listSipSubscriptions(f: SipListFilter): Promise<SipSubscriptionRecord[]> {
    const values: (string | number)[] = [f.now];
    const where = ['expires_at > $1'];
    if (f.userId !== undefined) where.push(`user_id = $${values.push(f.userId)}`);
    if (f.after !== undefined) where.push(`id > $${values.push(f.after)}`);
    const text = `SELECT * FROM sip_subscriptions WHERE ${where.join(' AND ')} ORDER BY id LIMIT $${values.push(f.limit)}`;
    return (await this.query({ text, values })).map(toSipSubscription);
  }

  /** Takes the per-user advisory locks in sorted order, so two writes that lock the same users cannot deadlock. */
  private async lockUsers(c: pg.PoolClient, users: McUri[]): Promise<void> {
    for (const u of [...new Set(users)].sort()) await c.query({ ...Q.lockUser, values: [u] });
  }

  private async run(q: pg.QueryConfig): Promise<pg.QueryResult> {
    try {
      return await this.pool.query(q);
    } catch (e) {
      throw toStoreError(e);
    }
  }

  private async query(q: pg.QueryConfig): Promise<Row[]> {
    return (await this.run(q)).rows as Row[];
  }

  /** One transaction on one pooled connection; an unreachable database becomes a clear 503 instead of a crash. */
  private async tx<T>(work: (c: pg.PoolClient) => Promise<T>): Promise<T> {
    return inTransaction(this.pool, work);
  }
}

async function insertChanges(c: pg.PoolClient, records: readonly ChangeRecord[]): Promise<void> {
  for (const r of records) {
    const values = [r.id, r.target, r.actor, r.service, r.mode, JSON.stringify(r.affiliate), JSON.stringify(r.deaffiliate), r.state, r.deadline, JSON.stringify(r.result), r.createdAt];
    await c.query({ ...Q.createChange, values });
  }
}

async function insertEvents(c: pg.PoolClient, events: NewEvent[], at: number): Promise<ClientEvent[]> {
  const out: ClientEvent[] = [];
  for (const e of events) {
    const { rows } = await c.query<{ id: string }>({ ...Q.event, values: [e.userId, e.type, JSON.stringify(e.data), at] });
    out.push({ id: Number(rows[0]?.id), userId: e.userId, type: e.type, data: e.data, at });
  }
  return out;
}

async function sequenceHigh(c: pg.PoolClient, table: string, column: string): Promise<number> {
  const { rows } = await c.query<{ high: string }>(SEQUENCE_HIGH, [table, column]);
  return Number(rows[0]?.high ?? 0);
}

/** Moves a BIGSERIAL sequence so its next value is above `to` (and never back). */
async function raiseSequence(c: pg.PoolClient, table: string, column: string, to: number): Promise<void> {
  const high = Math.max(to, await sequenceHigh(c, table, column));
  if (high > 0) await c.query('SELECT setval(pg_get_serial_sequence($1, $2), $3::bigint, true)', [table, column, high]);
}




const AUDIT_TYPES = ['bigint', 'text', 'text', 'text', 'text', 'text', 'text', 'int', 'text', 'text'];



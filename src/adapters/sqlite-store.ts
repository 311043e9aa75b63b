// The embedded store: one SQLite file in WAL mode via better-sqlite3. Each transaction is synchronous, so the
// read-decide-write of one request cannot interleave with another: N2 holds without further locking.
import Database from 'better-sqlite3';
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
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
  CHANGE_STATES,
  type ChangeState,
  type ClientEvent,
  type GmsStatusUpdate,
  type NewAuditEntry,
  type Store,
  type StoreDump,
} from '../ports/store.ts';
import { MusterError } from '../domain/errors.ts';
import { SQLITE_MIGRATIONS } from './sqlite-migrations.ts';
import { groupCommitOf } from './sqlite-group-commit.ts';
import { stopCheckpointing } from './sqlite-checkpointer.ts';
import { uriIntern } from './uri-intern.ts';
import { PRUNE_CHUNK, pruneInChunks } from './retention.ts';
import type { SqliteGmsStore } from './sqlite-gms-store.ts';
import { AUDIT_COLUMNS, STORE_USED_SQL, type Row, auditRow, toAffiliationRecord, toAuditEntry, toChangeRecord, toClientEvent } from './store-rows.ts';
import type { NewEvent, SipListFilter, SipPublicationRecord, SipSubscriptionRecord } from '../ports/store.ts';
import { SIP_PUBLICATION_COLUMNS, SIP_SUBSCRIPTION_COLUMNS, sipPublicationValues, sipSubscriptionValues, toSipPublication, toSipSubscription } from './sip-rows.ts';


export function openSqlite(file: string): Database.Database {
  if (file !== ':memory:') mkdirSync(dirname(file), { recursive: true });
  const db = new Database(file);
  db.pragma('journal_mode = WAL');
  // NORMAL: SQLite does not fsync at commit; the group commit fdatasyncs the WAL off the event loop before any
  // answer leaves (sqlite-group-commit.ts), so an acknowledged affiliation survives a crash or a power loss.
  db.pragma('synchronous = NORMAL');
  db.pragma('busy_timeout = 5000');
  db.pragma('foreign_keys = ON');
  migrate(db);
  return db;
}

function migrate(db: Database.Database): void {
  db.exec('CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)');
  const done = new Set((db.prepare('SELECT version FROM schema_migrations').all() as { version: number }[]).map((r) => r.version));
  for (const [i, sql] of SQLITE_MIGRATIONS.entries()) {
    if (done.has(i + 1)) continue;
    db.transaction(() => {
      db.exec(sql);
      db.prepare('INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)').run(i + 1, Date.now());
    })();
  }
}

export class SqliteStore implements Store {
  readonly kind = 'sqlite';

  writeFault(): string | undefined {
    return groupCommitOf(this.db).lastFault?.message;
  }
  private readonly q;

  /**
   * A GMS whose tables live in this same file (one MC system in one process): it reads its member lists from this
   * store's affiliations (10.X.3.1 step 5b told in the affiliation's own transaction, never lost between the two,
   * no second write). The outbox stays for a GMS elsewhere. `seq`: above every sequence number the source used
   * before (outbox, or rows an earlier version wrote), so a dump's next seq continues above them.
   */
  private colocatedGms?: { seq: number };

  /** Multi-row statements, prepared once per row count. */
  private readonly rows;

  /**
   * Change requests in a state, the state written into the SQL (one of CHANGE_STATES, never input): with it bound,
   * SQLite prepares the statement again at every run, since the partial indexes on `state` serve some values and not
   * others (a publication's look for its user's waiting changes: 7.9 µs against 2.1, issue 6, bench 4).
   */
  private readonly changesByState;

  constructor(
    readonly db: Database.Database,
    private readonly now: () => number = Date.now,
  ) {
    this.rows = {
      put: statementsByRowCount(
        db,
        (n) =>
          `INSERT INTO affiliations (user_id, service, group_id, state, updated_at) VALUES ${Array(n).fill('(?, ?, ?, ?, ?)').join(', ')} ON CONFLICT (user_id, service, group_id) DO UPDATE SET state = excluded.state, updated_at = excluded.updated_at`,
      ),
      remove: statementsByRowCount(db, (n) => `DELETE FROM affiliations WHERE user_id = ? AND service = ? AND group_id IN (${Array(n).fill('?').join(', ')})`),
    };
    this.changesByState = new Map(
      CHANGE_STATES.map((s) => [
        s,
        {
          all: db.prepare(`SELECT * FROM change_requests WHERE state = '${s}' ORDER BY created_at`),
          ofTarget: db.prepare(`SELECT * FROM change_requests WHERE state = '${s}' AND target = ? ORDER BY created_at`),
        },
      ]),
    );
    this.q = {
      held: db.prepare('SELECT group_id, state FROM affiliations WHERE user_id = ? AND service = ?'),
      outbox: db.prepare('INSERT INTO gms_outbox (user_id, service, group_id, status, created_at) VALUES (?, ?, ?, ?, ?)'),
      event: db.prepare('INSERT INTO events (user_id, type, data, created_at) VALUES (?, ?, ?, ?)'),
      ofUser: db.prepare('SELECT * FROM affiliations WHERE user_id = ? ORDER BY service, group_id'),
      ofUserService: db.prepare('SELECT * FROM affiliations WHERE user_id = ? AND service = ? ORDER BY group_id'),
      ofGroup: db.prepare('SELECT * FROM affiliations WHERE group_id = ? ORDER BY service, user_id'),
      ofGroupService: db.prepare('SELECT * FROM affiliations WHERE group_id = ? AND service = ? ORDER BY user_id'),
      sweep: db.prepare("DELETE FROM affiliations WHERE state = 'reserved' AND updated_at < ?"),
      // A de-affiliation on its way to the group's host (AffiliationWrite.forwarded): stamped, unstamped by its own stamp only.
      markForwarded: db.prepare('UPDATE affiliations SET forwarded_at = ? WHERE user_id = ? AND service = ? AND group_id = ?'),
      clearForwarded: db.prepare('UPDATE affiliations SET forwarded_at = NULL WHERE user_id = ? AND service = ? AND group_id = ? AND forwarded_at = ?'),
      forwarded: db.prepare('SELECT group_id FROM affiliations WHERE user_id = ? AND service = ? AND forwarded_at IS NOT NULL ORDER BY group_id'),
      sweepForwarded: db.prepare('UPDATE affiliations SET forwarded_at = NULL WHERE forwarded_at < ?'),
      // A domain is what follows the last '@', so '@' + domain as the ID's end names it exactly.
      acrossDomains: db.prepare(
        `SELECT * FROM affiliations WHERE substr(user_id, -length(@ud)) = @ud AND substr(group_id, -length(@gd)) = @gd
           AND (user_id, service, group_id) > (@au, @as, @ag) AND (@tu IS NULL OR (user_id, service, group_id) <= (@tu, @ts, @tg))
           ORDER BY user_id, service, group_id LIMIT @limit`,
      ),
      // The next PRUNE_CHUNK events by id (the order they were written in, so oldest first): its last id, how many,
      // and whether it reached events within retention, where a prune stops.
      eventWindow: db.prepare(
        'SELECT max(id) AS last, count(*) AS n, max(created_at >= @before) AS recent FROM (SELECT id, created_at FROM events WHERE id > @after ORDER BY id LIMIT @limit)',
      ),
      pruneEvents: db.prepare(
        `DELETE FROM events WHERE id > @after AND id <= @last AND created_at < @before AND NOT (type = 'affiliation-change' AND EXISTS (
           SELECT 1 FROM change_requests c WHERE c.target = events.user_id AND c.id = json_extract(events.data, '$.id') AND c.state IN ('told', 'asked')))`,
      ),
      pruneChanges: db.prepare("DELETE FROM change_requests WHERE created_at < ? AND (state IN ('acknowledged', 'rejected', 'timed-out') OR (state = 'accepted' AND result <> 'null'))"),
      pending: db.prepare('SELECT * FROM gms_outbox ORDER BY seq LIMIT ?'),
      confirm: db.prepare('DELETE FROM gms_outbox WHERE seq = ?'),
      eventsAfter: db.prepare('SELECT * FROM events WHERE user_id = ? AND id > ? ORDER BY id LIMIT ?'),
      putProfile: db.prepare('INSERT INTO user_profiles (id, profile) VALUES (?, ?) ON CONFLICT (id) DO UPDATE SET profile = excluded.profile'),
      deleteProfile: db.prepare('DELETE FROM user_profiles WHERE id = ?'),
      profiles: db.prepare('SELECT profile FROM user_profiles'),
      profile: db.prepare('SELECT profile FROM user_profiles WHERE id = ?'),
      createChange: db.prepare(
        'INSERT INTO change_requests (id, target, actor, service, mode, affiliate, deaffiliate, state, deadline, result, created_at) VALUES (@id, @target, @actor, @service, @mode, @affiliate, @deaffiliate, @state, @deadline, @result, @createdAt)',
      ),
      getChange: db.prepare('SELECT * FROM change_requests WHERE id = ? AND target = ?'),
      // INDEXED BY: without statistics the planner takes the state index and reads every asked change.
      changesPastDeadline: db.prepare("SELECT * FROM change_requests INDEXED BY change_requests_asked_by_deadline WHERE state = 'asked' AND deadline <= ? ORDER BY deadline LIMIT ?"),
      changesAnsweredUnfinished: db.prepare(
        "SELECT * FROM change_requests INDEXED BY change_requests_answered_unfinished WHERE state IN ('accepted', 'rejected') AND result = 'null' AND deadline <= ? ORDER BY deadline LIMIT ?",
      ),
      pruneAudit: db.prepare('DELETE FROM audit_log WHERE id IN (SELECT id FROM audit_log WHERE at < ? ORDER BY at LIMIT ?)'),
      audit: db.prepare(`INSERT INTO audit_log (id, ${AUDIT_COLUMNS.join(', ')}) VALUES (${['id', ...AUDIT_COLUMNS].map(() => '?').join(', ')})`),
    };
  }

  async changeAffiliations<T>(userId: McUri, service: McService, decide: (held: Map<McUri, HeldState>) => AffiliationWrite<T>): Promise<{ result: T; events: ClientEvent[] }> {
    return this.write(() => {
      const held = new Map((this.q.held.all(userId, service) as Row[]).map((r) => [r['group_id'] as McUri, r['state'] as HeldState]));
      const w = decide(held);
      const at = this.now();
      // One statement for all of a request's rows, not one per group (statements are most of a write's cost).
      if (w.put.length > 0) this.rows.put(w.put.length).run(w.put.flatMap((p) => [userId, service, p.groupId, p.state, at]));
      if (w.remove.length > 0) this.rows.remove(w.remove.length).run(userId, service, ...w.remove);
      const f = w.forwarded;
      if (f && 'mark' in f) for (const g of f.mark) this.q.markForwarded.run(f.at, userId, service, g);
      if (f && 'clear' in f) for (const g of f.clear) this.q.clearForwarded.run(userId, service, g, f.at);
      // Step 5b (10.X.4.2 step 4b): a co-located GMS reads these very rows (SqliteGmsStore.ownServer), so telling it
      // is this transaction's commit; a GMS elsewhere is told through the outbox.
      if (!this.colocatedGms) for (const u of w.tellGms) this.q.outbox.run(userId, service, u.groupId, u.status, at);
      for (const e of w.audit ?? []) this.q.audit.run(null, ...auditRow(e));
      if (w.changes) this.insertChanges(w.changes);
      return { result: w.result, events: this.insertEvents(w.events, at) };
    });
  }

  /** `gms` (on this same database) reads its member lists of `source`, this system's domain, from here from now on. */
  colocateGms(source: string, gms: SqliteGmsStore): void {
    if (gms.db !== this.db) throw new Error('a co-located GMS must be on the same SQLite database');
    this.colocatedGms = { seq: Math.max(this.sequence('gms_outbox'), gms.highestSeq(source)) };
    gms.readOwnServerFromAffiliations(source);
  }

  async affiliationsOfUser(userId: McUri, service?: McService): Promise<AffiliationRecord[]> {
    return ((service ? this.q.ofUserService.all(userId, service) : this.q.ofUser.all(userId)) as Row[]).map(toAffiliationRecord);
  }

  async affiliationsOfGroup(groupId: McUri, service?: McService): Promise<AffiliationRecord[]> {
    return ((service ? this.q.ofGroupService.all(groupId, service) : this.q.ofGroup.all(groupId)) as Row[]).map(toAffiliationRecord);
  }

  async affiliationsAcrossDomains(q: AcrossDomainsQuery): Promise<AffiliationRecord[]> {
    const rows = this.q.acrossDomains.all({
      ud: `@${q.userDomain}`,
      gd: `@${q.groupDomain}`,
      au: q.after?.userId ?? '',
      as: q.after?.service ?? '',
      ag: q.after?.groupId ?? '',
      tu: q.through?.userId ?? null,
      ts: q.through?.service ?? null,
      tg: q.through?.groupId ?? null,
      limit: q.limit,
    }) as Row[];
    return rows.map(toAffiliationRecord);
  }

  async pruneEvents(before: number): Promise<number> {
    const events = await pruneInChunks((after) =>
      this.write(() => {
        const w = this.q.eventWindow.get({ before, after, limit: PRUNE_CHUNK }) as { last: number | null; n: number; recent: number | null };
        if (w.last === null) return { removed: 0, next: undefined };
        const removed = this.q.pruneEvents.run({ before, after, last: w.last }).changes;
        return { removed, next: w.n < PRUNE_CHUNK || w.recent === 1 ? undefined : w.last };
      }),
    );
    await this.write(() => this.q.pruneChanges.run(before));
    return events;
  }

  async forwardedGroups(userId: McUri, service: McService): Promise<McUri[]> {
    return (this.q.forwarded.all(userId, service) as Row[]).map((r) => r['group_id'] as McUri);
  }

  async sweepReservations(before: number): Promise<number> {
    return this.write(() => this.q.sweep.run(before).changes + this.q.sweepForwarded.run(before).changes);
  }

  async pendingGmsUpdates(limit: number): Promise<GmsStatusUpdate[]> {
    return (this.q.pending.all(limit) as Row[]).map((r) => ({
      seq: r['seq'] as number,
      userId: r['user_id'] as McUri,
      groupId: r['group_id'] as McUri,
      service: r['service'] as McService,
      status: r['status'] as GmsStatusUpdate['status'],
    }));
  }

  async confirmGmsUpdates(seqs: number[]): Promise<void> {
    await this.write(() => seqs.forEach((s) => this.q.confirm.run(s)));
  }

  async appendEvents(events: { userId: McUri; type: ClientEvent['type']; data: unknown }[]): Promise<ClientEvent[]> {
    return this.write(() => this.insertEvents(events, this.now()));
  }

  async eventsAfter(userId: McUri, afterId: number, limit: number): Promise<ClientEvent[]> {
    return (this.q.eventsAfter.all(userId, afterId, limit) as Row[]).map(toClientEvent);
  }

  async newestEventId(): Promise<number> {
    return this.sequence('events');
  }

  async putProfile(profile: UserProfile): Promise<void> {
    await this.write(() => this.q.putProfile.run(profile.id, JSON.stringify(profile)));
  }

  async deleteProfile(id: McUri): Promise<boolean> {
    return this.write(() => this.q.deleteProfile.run(id).changes > 0);
  }

  async allProfiles(): Promise<UserProfile[]> {
    // Row by row, each ID string shared as it is read: a million profiles never hold their duplicates at once.
    const out: UserProfile[] = [];
    for (const r of this.q.profiles.iterate() as IterableIterator<Row>) out.push(uriIntern.profile(JSON.parse(r['profile'] as string) as UserProfile));
    return out;
  }

  async profile(id: McUri): Promise<UserProfile | undefined> {
    const r = this.q.profile.get(id) as Row | undefined;
    return r && uriIntern.profile(JSON.parse(r['profile'] as string) as UserProfile);
  }

  async createChanges(records: ChangeRecord[], events: NewEvent[]): Promise<ClientEvent[]> {
    return this.write(() => {
      this.insertChanges(records);
      return this.insertEvents(events, this.now());
    });
  }

  private insertChanges(records: readonly ChangeRecord[]): void {
    for (const r of records) this.q.createChange.run({ ...r, affiliate: JSON.stringify(r.affiliate), deaffiliate: JSON.stringify(r.deaffiliate), result: JSON.stringify(r.result) });
  }

  async getChange(id: string, target: McUri): Promise<ChangeRecord | undefined> {
    const r = this.q.getChange.get(id, target) as Row | undefined;
    return r && toChangeRecord(r);
  }

  async transitionChange(id: string, target: McUri, from: ChangeState[], to: ChangeState, result?: unknown): Promise<boolean> {
    // Prepared once per (states, result or not), the states written into the SQL as changesByState's are.
    const key = `${from.join(',')}>${to}${result === undefined ? '' : '+result'}`;
    let statement = this.transitions.get(key);
    if (!statement) {
      if (![...from, to].every((s) => (CHANGE_STATES as readonly string[]).includes(s))) throw new Error(`not a change state: ${[...from, to].join(', ')}`);
      const states = from.map((s) => `'${s}'`).join(', ');
      statement = this.db.prepare(`UPDATE change_requests SET state = '${to}'${result === undefined ? '' : ', result = ?'} WHERE id = ? AND target = ? AND state IN (${states})`);
      this.transitions.set(key, statement);
    }
    const args = result === undefined ? [id, target] : [JSON.stringify(result), id, target];
    const prepared = statement;
    return this.write(() => prepared.run(...args).changes === 1);
  }

  /** transitionChange's statements, by their key. */
  private readonly transitions = new Map<string, Database.Statement>();

  async changesInState(state: ChangeState, target?: McUri): Promise<ChangeRecord[]> {
    const q = this.changesByState.get(state)!;
    return ((target === undefined ? q.all.all() : q.ofTarget.all(target)) as Row[]).map(toChangeRecord);
  }

  async changesPastDeadline(now: number, limit: number): Promise<ChangeRecord[]> {
    return (this.q.changesPastDeadline.all(now, limit) as Row[]).map(toChangeRecord);
  }

  async changesAnsweredUnfinished(now: number, limit: number): Promise<ChangeRecord[]> {
    return (this.q.changesAnsweredUnfinished.all(now, limit) as Row[]).map(toChangeRecord);
  }

  async appendAudit(entries: NewAuditEntry[]): Promise<void> {
    // Through the group commit: an entry shares the transaction (and the fsync) of the writes around it.
    if (entries.length > 0) await this.write(() => entries.forEach((e) => this.q.audit.run(null, ...auditRow(e))));
  }

  async pruneAudit(before: number): Promise<number> {
    return pruneInChunks(() =>
      this.write(() => {
        const removed = this.q.pruneAudit.run(before, PRUNE_CHUNK).changes;
        return { removed, next: removed < PRUNE_CHUNK ? undefined : 0 };
      }),
    );
  }

  async queryAudit(filter: AuditFilter): Promise<AuditEntry[]> {
    const where: string[] = [];
    const args: (string | number)[] = [];
    const add = (sql: string, v: string | number | undefined): void => {
      if (v === undefined) return;
      where.push(sql);
      args.push(v);
    };
    add('subject = ?', filter.subject);
    // Written so each half matches an index: entries for someone else, and the subject's own (migration 5).
    if (filter.onBehalfOf !== undefined) {
      where.push('((on_behalf_of = ? AND on_behalf_of IS NOT subject) OR (subject = ? AND on_behalf_of = ?))');
      args.push(filter.onBehalfOf, filter.onBehalfOf, filter.onBehalfOf);
    }
    add('at >= ?', filter.since);
    add('at < ?', filter.until);
    add('id > ?', filter.afterId);
    const sql = `SELECT * FROM audit_log${where.length > 0 ? ` WHERE ${where.join(' AND ')}` : ''} ORDER BY id LIMIT ?`;
    return (this.db.prepare(sql).all(...args, filter.limit) as Row[]).map(toAuditEntry);
  }

  async dump(): Promise<StoreDump> {
    // Through the group commit: after every write queued before it, in one transaction (one snapshot).
    return this.write(() => {
      const all = (sql: string): Row[] => this.db.prepare(sql).all() as Row[];
      return {
        affiliations: all('SELECT * FROM affiliations ORDER BY user_id, service, group_id').map(toAffiliationRecord),
        outbox: all('SELECT * FROM gms_outbox ORDER BY seq').map((r) => ({
          seq: r['seq'] as number,
          userId: r['user_id'] as McUri,
          groupId: r['group_id'] as McUri,
          service: r['service'] as McService,
          status: r['status'] as GmsStatusUpdate['status'],
          createdAt: r['created_at'] as number,
        })),
        events: all('SELECT * FROM events ORDER BY id').map(toClientEvent),
        profiles: all('SELECT profile FROM user_profiles ORDER BY id').map((r) => JSON.parse(r['profile'] as string) as UserProfile),
        changes: all('SELECT * FROM change_requests ORDER BY created_at, id, target').map(toChangeRecord),
        audit: all('SELECT * FROM audit_log ORDER BY id').map(toAuditEntry),
        sip: { publications: all('SELECT * FROM sip_publications ORDER BY etag').map(toSipPublication), subscriptions: all('SELECT * FROM sip_subscriptions ORDER BY id').map(toSipSubscription) },
        // Above every seq this source used, in the outbox or in GMS rows an earlier version wrote (see colocatedGms).
        sequences: { outbox: Math.max(this.sequence('gms_outbox'), this.colocatedGms?.seq ?? 0), events: this.sequence('events') },
      };
    });
  }

  async restore(dump: StoreDump): Promise<void> {
    await this.write(() => {
      const used = this.db.prepare(STORE_USED_SQL).get() as { used: number };
      if (used.used) throw new MusterError('conflict', 'the target store is not empty: import only into a new store');
      const aff = this.db.prepare('INSERT INTO affiliations (user_id, service, group_id, state, updated_at) VALUES (?, ?, ?, ?, ?)');
      for (const a of dump.affiliations) aff.run(a.userId, a.service, a.groupId, a.state, a.updatedAt);
      const out = this.db.prepare('INSERT INTO gms_outbox (seq, user_id, service, group_id, status, created_at) VALUES (?, ?, ?, ?, ?, ?)');
      for (const o of dump.outbox) out.run(o.seq, o.userId, o.service, o.groupId, o.status, o.createdAt);
      const ev = this.db.prepare('INSERT INTO events (id, user_id, type, data, created_at) VALUES (?, ?, ?, ?, ?)');
      for (const e of dump.events) ev.run(e.id, e.userId, e.type, JSON.stringify(e.data), e.at);
      for (const p of dump.profiles) this.q.putProfile.run(p.id, JSON.stringify(p));
      for (const r of dump.changes) {
        this.q.createChange.run({ ...r, affiliate: JSON.stringify(r.affiliate), deaffiliate: JSON.stringify(r.deaffiliate), result: JSON.stringify(r.result) });
      }
      const audit = dump.audit ?? [];
      for (const a of audit) this.q.audit.run(a.id, ...auditRow(a));
      for (const p of dump.sip?.publications ?? []) this.sip.putPublication.run(...sipPublicationValues(p));
      for (const sub of dump.sip?.subscriptions ?? []) this.sip.putSubscription.run(...sipSubscriptionValues(sub));
      // The next seq and id are above every imported one and every one the source ever handed out.
      this.raiseSequence('audit_log', highest(0, audit, (a) => a.id));
      this.raiseSequence('gms_outbox', highest(dump.sequences.outbox, dump.outbox, (o) => o.seq));
      this.raiseSequence('events', highest(dump.sequences.events, dump.events, (e) => e.id));
    });
  }

  /** The highest value an AUTOINCREMENT table handed out (sqlite_sequence; 0 before the first row). */
  private sequence(table: string): number {
    const r = this.db.prepare('SELECT seq FROM sqlite_sequence WHERE name = ?').get(table) as { seq: number } | undefined;
    return r?.seq ?? 0;
  }

  private raiseSequence(table: string, to: number): void {
    const high = Math.max(to, this.sequence(table));
    this.db.prepare('DELETE FROM sqlite_sequence WHERE name = ?').run(table);
    this.db.prepare('INSERT INTO sqlite_sequence (name, seq) VALUES (?, ?)').run(table, high);
  }

  async close(): Promise<void> {
    // The checkpointer first: its last-frames checkpoint may hold commits, and relies on none being made meanwhile.
    await stopCheckpointing(this.db);
    groupCommitOf(this.db).flush();
    if (this.db.open) this.db.close();
  }

  private insertEvents(events: { userId: McUri; type: ClientEvent['type']; data: unknown }[], at: number): ClientEvent[] {
    return events.map((e) => {
      // run() and the rowid, not RETURNING: no row object to build (the id is the rowid: INTEGER PRIMARY KEY).
      const id = Number(this.q.event.run(e.userId, e.type, JSON.stringify(e.data), at).lastInsertRowid);
      return { id, userId: e.userId, type: e.type, data: e.data, at };
    });
  }

  private write<T>(work: () => T): Promise<T> {
    return groupCommitOf(this.db).write(work);
  }

  private sipStatements?: ReturnType<typeof prepareSip>;
  private get sip(): ReturnType<typeof prepareSip> {
    return (this.sipStatements ??= prepareSip(this.db));
  }

  async putSipPublication(pub: SipPublicationRecord, replacing?: string | null): Promise<'stored' | 'etag-taken' | 'stale'> {
    // Through the group commit: a PUBLISH's publication shares the transaction and fsync of its affiliation change.
    return this.write(() => {
      const holder = this.sip.etagHolder.get(pub.etag) as Row | undefined;
      if (holder && (holder['user_id'] !== pub.userId || holder['service'] !== pub.service)) return 'etag-taken';
      // null: only where none is stored, so the stored tag (if any) must be absent.
      if (replacing !== undefined && ((this.sip.etagOf.get(pub.userId, pub.service) as Row | undefined)?.['etag'] ?? null) !== replacing) return 'stale';
      this.sip.putPublication.run(...sipPublicationValues(pub));
      return 'stored';
    });
  }

  async getSipPublication(userId: McUri, service: McService, now: number): Promise<SipPublicationRecord | undefined> {
    const r = this.sip.publication.get(userId, service, now) as Row | undefined;
    return r && toSipPublication(r);
  }

  async removeSipPublication(userId: McUri, service: McService, etag: string): Promise<boolean> {
    return this.write(() => this.sip.removePublication.run(userId, service, etag).changes === 1);
  }

  async expiredSipPublications(now: number, limit: number): Promise<SipPublicationRecord[]> {
    return (this.sip.expiredPublications.all(now, limit) as Row[]).map(toSipPublication);
  }

  async listSipPublications(f: SipListFilter): Promise<SipPublicationRecord[]> {
    const sql = `SELECT * FROM sip_publications WHERE (expires_at IS NULL OR expires_at > ?)${f.userId !== undefined ? ' AND user_id = ?' : ''}${f.after !== undefined ? ' AND etag > ?' : ''} ORDER BY etag LIMIT ?`;
    const args = [f.now, ...(f.userId !== undefined ? [f.userId] : []), ...(f.after !== undefined ? [f.after] : []), f.limit];
    return (this.db.prepare(sql).all(...args) as Row[]).map(toSipPublication);
  }

  async putSipSubscription(sub: SipSubscriptionRecord): Promise<boolean> {
    return this.write(() => this.sip.putSubscription.run(...sipSubscriptionValues(sub)).changes === 1);
  }

  async removeSipSubscriptions(ids: string[], owner: string): Promise<number> {
    if (ids.length === 0) return 0;
    return this.write(() => ids.reduce((n, id) => n + this.sip.removeSubscription.run(id, owner).changes, 0));
  }

  async sipSubscriptionsOwnedBy(owner: string): Promise<SipSubscriptionRecord[]> {
    return (this.sip.ownedBy.all(owner) as Row[]).map(toSipSubscription);
  }

  async pruneSipSubscriptions(before: number): Promise<number> {
    return this.write(() => this.sip.pruneSubscriptions.run(before).changes);
  }

  async listSipSubscriptions(f: SipListFilter): Promise<SipSubscriptionRecord[]> {
    const sql = `SELECT * FROM sip_subscriptions WHERE expires_at > ?${f.userId !== undefined ? ' AND user_id = ?' : ''}${f.after !== undefined ? ' AND id > ?' : ''} ORDER BY id LIMIT ?`;
    const args = [f.now, ...(f.userId !== undefined ? [f.userId] : []), ...(f.after !== undefined ? [f.after] : []), f.limit];
    return (this.db.prepare(sql).all(...args) as Row[]).map(toSipSubscription);
  }
}

/** The SIP face's statements (migration 3), prepared on first use. */
function prepareSip(db: Database.Database) {
  const subscriptionUpdates = SIP_SUBSCRIPTION_COLUMNS.filter((c) => c !== 'id' && c !== 'owner').map((c) => `${c} = excluded.${c}`).join(', ');
  return {
    etagHolder: db.prepare('SELECT user_id, service FROM sip_publications WHERE etag = ?'),
    etagOf: db.prepare('SELECT etag FROM sip_publications WHERE user_id = ? AND service = ?'),
    putPublication: db.prepare(
      `INSERT INTO sip_publications (${SIP_PUBLICATION_COLUMNS.join(', ')}) VALUES (${SIP_PUBLICATION_COLUMNS.map(() => '?').join(', ')})
       ON CONFLICT (user_id, service) DO UPDATE SET etag = excluded.etag, expires = excluded.expires, expires_at = excluded.expires_at, p_id = excluded.p_id, tuple_id = excluded.tuple_id, groups = excluded.groups`,
    ),
    publication: db.prepare('SELECT * FROM sip_publications WHERE user_id = ? AND service = ? AND (expires_at IS NULL OR expires_at > ?)'),
    removePublication: db.prepare('DELETE FROM sip_publications WHERE user_id = ? AND service = ? AND etag = ?'),
    expiredPublications: db.prepare('SELECT * FROM sip_publications WHERE expires_at IS NOT NULL AND expires_at <= ? ORDER BY expires_at LIMIT ?'),
    // An update only by the owner: another instance never takes over or rewrites a subscription it does not hold.
    putSubscription: db.prepare(
      `INSERT INTO sip_subscriptions (${SIP_SUBSCRIPTION_COLUMNS.join(', ')}) VALUES (${SIP_SUBSCRIPTION_COLUMNS.map(() => '?').join(', ')})
       ON CONFLICT (id) DO UPDATE SET ${subscriptionUpdates} WHERE sip_subscriptions.owner = excluded.owner`,
    ),
    removeSubscription: db.prepare('DELETE FROM sip_subscriptions WHERE id = ? AND owner = ?'),
    ownedBy: db.prepare('SELECT * FROM sip_subscriptions WHERE owner = ?'),
    pruneSubscriptions: db.prepare('DELETE FROM sip_subscriptions WHERE expires_at < ?'),
  };
}





/** A statement per row count, prepared on first use (a request names at most a bounded number of groups). */
export function statementsByRowCount(db: Database.Database, sql: (rows: number) => string): (rows: number) => Database.Statement {
  const prepared = new Map<number, Database.Statement>();
  return (rows) => {
    let s = prepared.get(rows);
    if (!s) {
      s = db.prepare(sql(rows));
      prepared.set(rows, s);
    }
    return s;
  };
}



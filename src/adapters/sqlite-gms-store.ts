// The GMS's tables in the embedded SQLite file.
import type Database from 'better-sqlite3';
import { domainOf, type McUri } from '../domain/ids.ts';
import type { McService } from '../domain/services.ts';
import type { GroupPolicy } from '../domain/group-policy.ts';
import type { GmsAffiliationRecord, GmsDump, GmsStore, GroupAffiliation } from '../ports/gms-store.ts';
import { MusterError } from '../domain/errors.ts';
import type { GmsStatusUpdate } from '../ports/store.ts';
import { groupCommitOf } from './sqlite-group-commit.ts';
import { statementsByRowCount } from './sqlite-store.ts';
import { uriIntern } from './uri-intern.ts';
import { type Row, affiliatedMembersOf, latestPerKey, toGmsAffiliationRecord } from './store-rows.ts';


export class SqliteGmsStore implements GmsStore {
  private readonly q;
  private readonly applyRows;
  /**
   * The MC service server in this same file (SqliteStore.colocateGms), named by its source, which is its system's
   * domain: what it tells this GMS is exactly its affiliations table's `affiliated` rows of the domain's groups (10.X.3.1
   * step 5b, 10.X.4.2 step 4b, both in the affiliation's own transaction), so the member lists read those rows through
   * the table's by-group index instead of a second copy written per request (issue 6: about a third of the store's
   * write). gms_affiliations keeps only what other sources tell.
   */
  private ownServer?: { source: string; suffix: string; members: Database.Statement; membersService: Database.Statement; all: Database.Statement };

  constructor(readonly db: Database.Database) {
    this.applyRows = statementsByRowCount(
      db,
      (n) =>
        `INSERT INTO gms_affiliations (group_id, service, user_id, status, source, seq, updated_at) VALUES ${Array(n).fill('(?, ?, ?, ?, ?, ?, ?)').join(', ')} ON CONFLICT (group_id, service, user_id) DO UPDATE SET status = excluded.status, source = excluded.source, seq = excluded.seq, updated_at = excluded.updated_at ` +
        'WHERE NOT (gms_affiliations.source = excluded.source AND gms_affiliations.seq >= excluded.seq)',
    );
    this.q = {
      get: db.prepare('SELECT document FROM gms_groups WHERE id = ?'),
      put: db.prepare('INSERT INTO gms_groups (id, document, revision) VALUES (?, ?, ?) ON CONFLICT (id) DO UPDATE SET document = excluded.document, revision = excluded.revision'),
      del: db.prepare('DELETE FROM gms_groups WHERE id = ?'),
      all: db.prepare('SELECT document FROM gms_groups'),
      // Applied unless the stored row is of the same source with a sequence number not below this one: one
      // statement per update instead of a read and a write (the same rule as the PostgreSQL store).
      apply: db.prepare(
        'INSERT INTO gms_affiliations (group_id, service, user_id, status, source, seq, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (group_id, service, user_id) DO UPDATE SET status = excluded.status, source = excluded.source, seq = excluded.seq, updated_at = excluded.updated_at ' +
          'WHERE NOT (gms_affiliations.source = excluded.source AND gms_affiliations.seq >= excluded.seq)',
      ),
      // Every status of the other sources (@own: the co-located server's source, or NULL): a de-affiliation told
      // later than the co-located server's row still wins, as it did when both were rows of one table.
      told: db.prepare('SELECT * FROM gms_affiliations WHERE group_id = @g AND (@s IS NULL OR service = @s) AND source IS NOT @own ORDER BY service, user_id'),
      allTold: db.prepare('SELECT * FROM gms_affiliations WHERE source IS NOT ? ORDER BY group_id, service, user_id'),
    };
  }

  /** Reads `source`'s rows from the affiliations table from now on (see ownServer). */
  readOwnServerFromAffiliations(source: string): void {
    const cols = "group_id, service, user_id, 'affiliated' AS status, @source AS source, 0 AS seq, updated_at";
    this.ownServer = {
      source,
      suffix: `@${source}`,
      members: this.db.prepare(`SELECT ${cols} FROM affiliations WHERE group_id = @g AND state = 'affiliated' ORDER BY service, user_id`),
      membersService: this.db.prepare(`SELECT ${cols} FROM affiliations WHERE group_id = @g AND service = @s AND state = 'affiliated' ORDER BY user_id`),
      // A domain is what follows the last '@': '@' + domain as the group ID's end names the system's groups exactly.
      all: this.db.prepare(`SELECT ${cols} FROM affiliations WHERE state = 'affiliated' AND substr(group_id, -length(@suffix)) = @suffix ORDER BY group_id, service, user_id`),
    };
  }

  /** One group's rows: the other sources' and, for a group of the co-located server's domain, its affiliations. */
  private rowsOfGroup(groupId: McUri, service?: McService): GmsAffiliationRecord[] {
    const own = this.ownServer;
    const told = (this.q.told.all({ g: groupId, s: service ?? null, own: own?.source ?? null }) as Row[]).map(toGmsAffiliationRecord);
    if (!own || domainOf(groupId) !== own.source) return told;
    const mine = ((service ? own.membersService.all({ g: groupId, s: service, source: own.source }) : own.members.all({ g: groupId, source: own.source })) as Row[]).map(toGmsAffiliationRecord);
    return latestPerKey(told, mine);
  }

  private allRows(): GmsAffiliationRecord[] {
    const own = this.ownServer;
    const told = (this.q.allTold.all(own?.source ?? null) as Row[]).map(toGmsAffiliationRecord);
    if (!own) return told;
    return latestPerKey(told, (own.all.all({ source: own.source, suffix: own.suffix }) as Row[]).map(toGmsAffiliationRecord));
  }

  async allGroups(): Promise<GroupPolicy[]> {
    const out: GroupPolicy[] = [];
    for (const r of this.q.all.iterate() as IterableIterator<Row>) out.push(uriIntern.group(JSON.parse(r['document'] as string) as GroupPolicy));
    return out;
  }

  async getGroup(id: McUri): Promise<GroupPolicy | undefined> {
    const r = this.q.get.get(id) as Row | undefined;
    return r ? (JSON.parse(r['document'] as string) as GroupPolicy) : undefined;
  }

  async putGroup(doc: Omit<GroupPolicy, 'revision'>): Promise<GroupPolicy> {
    return groupCommitOf(this.db).write(() => {
      const cur = this.q.get.get(doc.id) as Row | undefined;
      const revision = (cur ? (JSON.parse(cur['document'] as string) as GroupPolicy).revision : 0) + 1;
      const group: GroupPolicy = { ...doc, revision };
      this.q.put.run(group.id, JSON.stringify(group), revision);
      return group;
    });
  }

  async deleteGroup(id: McUri): Promise<boolean> {
    return groupCommitOf(this.db).write(() => this.q.del.run(id).changes > 0);
  }

  async applyStatusUpdates(source: string, updates: GmsStatusUpdate[], at: number): Promise<number> {
    // In the same commit as the requests of this turn: telling the GMS costs no fsync of its own.
    return groupCommitOf(this.db).write(() => this.applyWithinTransaction(source, updates, at));
  }

  /** The idempotent apply, inside the group commit's transaction. */
  private applyWithinTransaction(source: string, updates: GmsStatusUpdate[], at: number): number {
    // One statement for a request's updates (SQLite allows 32,766 parameters: 7 per row, chunks of 1,000 rows).
    let applied = 0;
    for (let i = 0; i < updates.length; i += 1000) {
      const chunk = updates.slice(i, i + 1000);
      applied += this.applyRows(chunk.length).run(chunk.flatMap((u) => [u.groupId, u.service, u.userId, u.status, source, u.seq, at])).changes;
    }
    return applied;
  }

  /** The highest sequence number this source's updates reached, so a new one is always above it. */
  highestSeq(source: string): number {
    const r = this.db.prepare('SELECT max(seq) AS seq FROM gms_affiliations WHERE source = ?').get(source) as { seq: number | null };
    return r.seq ?? 0;
  }

  async affiliatedMembers(groupId: McUri, service?: McService): Promise<GroupAffiliation[]> {
    return affiliatedMembersOf(this.rowsOfGroup(groupId, service));
  }

  async allAffiliations(): Promise<(GroupAffiliation & { groupId: McUri; source: string; seq: number })[]> {
    return this.allRows().filter((r) => r.status === 'affiliated');
  }

  async dump(): Promise<GmsDump> {
    return this.db.transaction(() => ({
      groups: (this.db.prepare('SELECT document, revision FROM gms_groups ORDER BY id').all() as Row[]).map((r) => ({
        ...(JSON.parse(r['document'] as string) as GroupPolicy),
        revision: r['revision'] as number,
      })),
      // The co-located server's rows as its affiliations hold them (seq 0: any later update of that source is newer).
      affiliations: this.allRows(),
    }))();
  }

  async restore(dump: GmsDump): Promise<void> {
    this.db.transaction(() => {
      const used = this.db.prepare('SELECT EXISTS (SELECT 1 FROM gms_groups) OR EXISTS (SELECT 1 FROM gms_affiliations) AS used').get() as { used: number };
      if (used.used) throw new MusterError('conflict', 'the target GMS store is not empty: import only into a new store');
      for (const g of dump.groups) this.q.put.run(g.id, JSON.stringify(g), g.revision);
      // The co-located server's rows come with its own store's dump, as affiliations (see ownServer).
      for (const a of dump.affiliations) if (a.source !== this.ownServer?.source) this.q.apply.run(a.groupId, a.service, a.userId, a.status, a.source, a.seq, a.updatedAt);
    })();

  }
}

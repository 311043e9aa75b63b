// The GMS's tables in the embedded SQLite file.
import type Database from 'better-sqlite3';
import type { McUri } from '../domain/ids.ts';
import type { McService } from '../domain/services.ts';
import type { GroupPolicy } from '../domain/group-policy.ts';
import type { GmsDump, GmsStore, GroupAffiliation } from '../ports/gms-store.ts';
import { MusterError } from '../domain/errors.ts';
import type { GmsStatusUpdate } from '../ports/store.ts';
import { groupCommitOf } from './sqlite-group-commit.ts';
import { statementsByRowCount } from './sqlite-store.ts';
import { uriIntern } from './uri-intern.ts';
import { type Row, toGmsAffiliationRecord, toGroupAffiliation } from './store-rows.ts';


export class SqliteGmsStore implements GmsStore {
  private readonly q;
  private readonly applyRows;
  constructor(private readonly db: Database.Database) {
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
      members: db.prepare("SELECT * FROM gms_affiliations WHERE group_id = ? AND status = 'affiliated' ORDER BY service, user_id"),
      membersService: db.prepare("SELECT * FROM gms_affiliations WHERE group_id = ? AND service = ? AND status = 'affiliated' ORDER BY user_id"),
      allAff: db.prepare("SELECT * FROM gms_affiliations WHERE status = 'affiliated' ORDER BY group_id, service, user_id"),
    };
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

  /** The idempotent apply, for a caller already inside a transaction on this database. */
  applyWithinTransaction(source: string, updates: GmsStatusUpdate[], at: number): number {
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
    const rows = (service ? this.q.membersService.all(groupId, service) : this.q.members.all(groupId)) as Row[];
    return rows.map(toGroupAffiliation);
  }

  async allAffiliations(): Promise<(GroupAffiliation & { groupId: McUri; source: string; seq: number })[]> {
    return (this.q.allAff.all() as Row[]).map(toGmsAffiliationRecord);
  }

  async dump(): Promise<GmsDump> {
    return this.db.transaction(() => ({
      groups: (this.db.prepare('SELECT document, revision FROM gms_groups ORDER BY id').all() as Row[]).map((r) => ({
        ...(JSON.parse(r['document'] as string) as GroupPolicy),
        revision: r['revision'] as number,
      })),
      affiliations: (this.db.prepare('SELECT * FROM gms_affiliations ORDER BY group_id, service, user_id').all() as Row[]).map(toGmsAffiliationRecord),
    }))();
  }

  async restore(dump: GmsDump): Promise<void> {
    this.db.transaction(() => {
      const used = this.db.prepare('SELECT EXISTS (SELECT 1 FROM gms_groups) OR EXISTS (SELECT 1 FROM gms_affiliations) AS used').get() as { used: number };
      if (used.used) throw new MusterError('conflict', 'the target GMS store is not empty: import only into a new store');
      for (const g of dump.groups) this.q.put.run(g.id, JSON.stringify(g), g.revision);
      for (const a of dump.affiliations) this.q.apply.run(a.groupId, a.service, a.userId, a.status, a.source, a.seq, a.updatedAt);
    })();

  }
}



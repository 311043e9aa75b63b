// The GMS's tables in the shared PostgreSQL database: same semantics as sqlite-gms-store.ts, made safe for several
// instances by single-statement upserts (revision and sequence checks happen inside the database, not in between).
import type pg from 'pg';
import { domainOf, type McUri } from '../domain/ids.ts';
import type { McService } from '../domain/services.ts';
import type { GroupPolicy } from '../domain/group-policy.ts';
import type { GmsAffiliationRecord, GmsDump, GmsStore, GroupAffiliation } from '../ports/gms-store.ts';
import { MusterError } from '../domain/errors.ts';
import type { GmsStatusUpdate } from '../ports/store.ts';
import { insertColumns, inTransaction, toStoreError } from './postgres-pool.ts';
import { type Row, affiliatedMembersOf, latestPerKey, toGmsAffiliationRecord } from './store-rows.ts';
import { uriIntern } from './uri-intern.ts';


const Q = {
  get: { name: 'muster-gms-get', text: 'SELECT document, revision FROM gms_groups WHERE id = $1' },
  // The document is stored as given; the revision column is the truth and is laid over it on every read.
  put: {
    name: 'muster-gms-put',
    text: 'INSERT INTO gms_groups (id, document, revision) VALUES ($1, $2, 1) ON CONFLICT (id) DO UPDATE SET document = excluded.document, revision = gms_groups.revision + 1 RETURNING revision',
  },
  del: { name: 'muster-gms-del', text: 'DELETE FROM gms_groups WHERE id = $1' },
  all: { name: 'muster-gms-all', text: 'SELECT document, revision FROM gms_groups ORDER BY id' },
  // Applied unless the stored row is of the same source with a sequence number not below this one (the WHERE of
  // DO UPDATE is evaluated against the latest committed row, so concurrent senders cannot go back in time).
  apply: {
    name: 'muster-gms-apply',
    text:
      'INSERT INTO gms_affiliations (group_id, service, user_id, status, source, seq, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7) ' +
      'ON CONFLICT (group_id, service, user_id) DO UPDATE SET status = excluded.status, source = excluded.source, seq = excluded.seq, updated_at = excluded.updated_at ' +
      'WHERE NOT (gms_affiliations.source = excluded.source AND gms_affiliations.seq >= excluded.seq)',
  },
  // Every status of the other sources ($3: the co-located server's source, or NULL), as in sqlite-gms-store.ts.
  told: {
    name: 'muster-gms-told',
    text: 'SELECT * FROM gms_affiliations WHERE group_id = $1 AND ($2::text IS NULL OR service = $2) AND source IS DISTINCT FROM $3 ORDER BY service, user_id',
  },
  allTold: { name: 'muster-gms-all-told', text: 'SELECT * FROM gms_affiliations WHERE source IS DISTINCT FROM $1 ORDER BY group_id, service, user_id' },
  // The co-located server's members, from its affiliations ($2: its source, which is its domain).
  own: {
    name: 'muster-gms-own',
    text: `SELECT group_id, service, user_id, 'affiliated' AS status, $2::text AS source, 0 AS seq, updated_at FROM affiliations
           WHERE group_id = $1 AND ($3::text IS NULL OR service = $3) AND state = 'affiliated' ORDER BY service, user_id`,
  },
  allOwn: {
    name: 'muster-gms-all-own',
    text: `SELECT group_id, service, user_id, 'affiliated' AS status, $1::text AS source, 0 AS seq, updated_at FROM affiliations
           WHERE state = 'affiliated' AND right(group_id, length($2)) = $2 ORDER BY group_id, service, user_id`,
  },
} as const;

export class PostgresGmsStore implements GmsStore {
  /** The MC service server whose affiliations (same database) this GMS lists its members from: see sqlite-gms-store.ts. */
  private ownSource: string | undefined;

  constructor(readonly pool: pg.Pool) {}

  /** Reads `source`'s members (source = the system's domain) from the affiliations table from now on. */
  readOwnServerFromAffiliations(source: string): void {
    this.ownSource = source;
  }

  async allGroups(): Promise<GroupPolicy[]> {
    return (await this.query({ ...Q.all, values: [] })).map((r) => uriIntern.group(toGroup(r)));
  }

  async getGroup(id: McUri): Promise<GroupPolicy | undefined> {
    const [r] = await this.query({ ...Q.get, values: [id] });
    return r && toGroup(r);
  }

  async putGroup(doc: Omit<GroupPolicy, 'revision'>): Promise<GroupPolicy> {
    const [r] = await this.query({ ...Q.put, values: [doc.id, JSON.stringify(doc)] });
    return { ...doc, revision: Number(r?.['revision']) };
  }

  async deleteGroup(id: McUri): Promise<boolean> {
    return ((await this.run({ ...Q.del, values: [id] })).rowCount ?? 0) > 0;
  }

  async applyStatusUpdates(source: string, updates: GmsStatusUpdate[], at: number): Promise<number> {
    if (updates.length === 0) return 0;
    return inTransaction(this.pool, async (c) => {
      let applied = 0;
      for (const u of updates) {
        const r = await c.query({ ...Q.apply, values: [u.groupId, u.service, u.userId, u.status, source, u.seq, at] });
        applied += r.rowCount ?? 0;
      }
      return applied;
    });
  }

  async affiliatedMembers(groupId: McUri, service?: McService): Promise<GroupAffiliation[]> {
    const own = this.ownSource;
    const told = (await this.query({ ...Q.told, values: [groupId, service ?? null, own ?? null] })).map(toGmsAffiliationRecord);
    const rows = own !== undefined && domainOf(groupId) === own ? latestPerKey(told, (await this.query({ ...Q.own, values: [groupId, own, service ?? null] })).map(toGmsAffiliationRecord)) : told;
    return affiliatedMembersOf(rows);
  }

  async allAffiliations(): Promise<(GroupAffiliation & { groupId: McUri; source: string; seq: number })[]> {
    return (await this.allRows((q) => this.query(q))).filter((r) => r.status === 'affiliated');
  }

  async dump(): Promise<GmsDump> {
    return inTransaction(this.pool, async (c) => {
      await c.query('SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY');
      return {
        groups: ((await c.query('SELECT document, revision FROM gms_groups ORDER BY id')).rows as Row[]).map(toGroup),
        // The co-located server's rows as its affiliations hold them (seq 0: any later update of that source is newer).
        affiliations: await this.allRows(async (q) => (await c.query(q)).rows as Row[]),
      };
    });
  }

  /** Every row: the other sources' as told, and the co-located server's from its affiliations. */
  private async allRows(query: (q: pg.QueryConfig) => Promise<Row[]>): Promise<GmsAffiliationRecord[]> {
    const own = this.ownSource;
    const told = (await query({ ...Q.allTold, values: [own ?? null] })).map(toGmsAffiliationRecord);
    if (own === undefined) return told;
    return latestPerKey(told, (await query({ ...Q.allOwn, values: [own, `@${own}`] })).map(toGmsAffiliationRecord));
  }

  async restore(dump: GmsDump): Promise<void> {
    await inTransaction(this.pool, async (c) => {
      await c.query('LOCK TABLE gms_groups, gms_affiliations IN SHARE ROW EXCLUSIVE MODE');
      const { rows } = await c.query<{ used: boolean }>('SELECT EXISTS (SELECT 1 FROM gms_groups) OR EXISTS (SELECT 1 FROM gms_affiliations) AS used');
      if (rows[0]?.used) throw new MusterError('conflict', 'the target GMS store is not empty: import only into a new store');
      const g = dump.groups;
      // The document is stored without its revision, as putGroup stores it; the column is the truth.
      await insertColumns(c, 'gms_groups (id, document, revision)', ['text', 'text', 'integer'], g.length, (i) => {
        const { revision, ...doc } = g[i]!;
        return [doc.id, JSON.stringify(doc), revision];
      });
      // The co-located server's rows come with its own store's dump, as affiliations.
      const a = dump.affiliations.filter((r) => r.source !== this.ownSource);
      await insertColumns(c, 'gms_affiliations (group_id, service, user_id, status, source, seq, updated_at)', ['text', 'text', 'text', 'text', 'text', 'bigint', 'bigint'], a.length, (i) => {
        const r = a[i]!;
        return [r.groupId, r.service, r.userId, r.status, r.source, r.seq, r.updatedAt];
      });
    });
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
}

function toGroup(r: Row): GroupPolicy {
  return { ...(JSON.parse(r['document'] as string) as Omit<GroupPolicy, 'revision'>), revision: Number(r['revision']) };
}



// The group management server (TS 23.280 clause 10.1): group documents and policy, subscriptions of MC service
// servers to policy changes, and the affiliation status updates that give each group its affiliated members.
import { EventEmitter } from 'node:events';
import type Database from 'better-sqlite3';
import type { McUri } from '../domain/ids.ts';
import type { McService } from '../domain/services.ts';
import type { GroupPolicy } from '../domain/group-policy.ts';
import type { GmsStatusUpdate } from '../ports/store.ts';

export interface GroupAffiliation {
  userId: McUri;
  service: McService;
  status: 'affiliated' | 'deaffiliated';
  updatedAt: number;
}

type Row = Record<string, unknown>;

export class GroupManagementServer {
  private readonly changes = new EventEmitter();
  private readonly groups = new Map<McUri, GroupPolicy>();
  private readonly q;

  constructor(
    private readonly db: Database.Database,
    private readonly now: () => number = Date.now,
  ) {
    this.changes.setMaxListeners(0);
    this.q = {
      put: db.prepare('INSERT INTO gms_groups (id, document, revision) VALUES (?, ?, ?) ON CONFLICT (id) DO UPDATE SET document = excluded.document, revision = excluded.revision'),
      del: db.prepare('DELETE FROM gms_groups WHERE id = ?'),
      all: db.prepare('SELECT document FROM gms_groups'),
      current: db.prepare('SELECT source, seq FROM gms_affiliations WHERE group_id = ? AND service = ? AND user_id = ?'),
      apply: db.prepare(
        'INSERT INTO gms_affiliations (group_id, service, user_id, status, source, seq, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (group_id, service, user_id) DO UPDATE SET status = excluded.status, source = excluded.source, seq = excluded.seq, updated_at = excluded.updated_at',
      ),
      members: db.prepare("SELECT * FROM gms_affiliations WHERE group_id = ? AND status = 'affiliated' ORDER BY service, user_id"),
      membersService: db.prepare("SELECT * FROM gms_affiliations WHERE group_id = ? AND service = ? AND status = 'affiliated' ORDER BY user_id"),
    };
    // Group documents are few and read on every request: they live in memory, the table is their durable copy.
    for (const r of this.q.all.all() as Row[]) {
      const g = JSON.parse(r['document'] as string) as GroupPolicy;
      this.groups.set(g.id, g);
    }
  }

  get size(): number {
    return this.groups.size;
  }

  getGroup(id: McUri): GroupPolicy | undefined {
    return this.groups.get(id);
  }

  allGroups(): GroupPolicy[] {
    return [...this.groups.values()];
  }

  /** Creates or replaces a group document; subscribers learn it at once (policy subscription). */
  putGroup(doc: Omit<GroupPolicy, 'revision'>): GroupPolicy {
    const revision = (this.groups.get(doc.id)?.revision ?? 0) + 1;
    const group: GroupPolicy = { ...doc, revision };
    this.db.transaction(() => this.q.put.run(group.id, JSON.stringify(group), revision))();
    this.groups.set(group.id, group);
    this.changes.emit('policy', group.id);
    return group;
  }

  putGroups(docs: Omit<GroupPolicy, 'revision'>[]): void {
    this.db.transaction(() => docs.forEach((d) => this.putGroup(d)))();
  }

  deleteGroup(id: McUri): boolean {
    const existed = this.groups.delete(id);
    if (existed) {
      this.q.del.run(id);
      this.changes.emit('policy', id);
    }
    return existed;
  }

  onPolicyChange(listener: (groupId: McUri) => void): () => void {
    this.changes.on('policy', listener);
    return () => this.changes.off('policy', listener);
  }

  /**
   * Group affiliation status updates (10.X.2.3) from an MC service server (`source`). Applied idempotently: per
   * user, group and service the highest sequence number of a source wins, so a repeat or a late retry does no harm.
   */
  applyStatusUpdates(source: string, updates: GmsStatusUpdate[]): number {
    let applied = 0;
    this.db.transaction(() => {
      for (const u of updates) {
        const cur = this.q.current.get(u.groupId, u.service, u.userId) as Row | undefined;
        if (cur && cur['source'] === source && (cur['seq'] as number) >= u.seq) continue;
        this.q.apply.run(u.groupId, u.service, u.userId, u.status, source, u.seq, this.now());
        applied += 1;
      }
    })();
    return applied;
  }

  /** The group's affiliated members, as told by the MC service servers. */
  affiliatedMembers(groupId: McUri, service?: McService): GroupAffiliation[] {
    const rows = (service ? this.q.membersService.all(groupId, service) : this.q.members.all(groupId)) as Row[];
    return rows.map((r) => ({ userId: r['user_id'] as McUri, service: r['service'] as McService, status: r['status'] as 'affiliated', updatedAt: r['updated_at'] as number }));
  }
}

// The group management server (TS 23.280 clause 10.1): group documents and policy, subscriptions of MC service
// servers to policy changes, and the affiliation status updates that give each group its affiliated members.
import { EventEmitter } from 'node:events';
import type { McUri } from '../domain/ids.ts';
import type { McService } from '../domain/services.ts';
import type { GroupPolicy } from '../domain/group-policy.ts';
import { inForceEverywhere, type Announced } from '../ports/announcement.ts';
import type { GmsStatusUpdate } from '../ports/store.ts';
import type { GmsStore, GroupAffiliation } from '../ports/gms-store.ts';

export type { GroupAffiliation };

export class GroupManagementServer {
  private readonly changes = new EventEmitter();
  /** Group documents are few and read on every request: they live in memory, the store is their durable copy. */
  private readonly groups = new Map<McUri, GroupPolicy>();
  /** Other instances of this GMS learn of a change through this (NATS when there are several): those that did not confirm it in time. */
  announce: (groupId: McUri) => Promise<Announced> | Announced = () => inForceEverywhere;

  private constructor(
    private readonly store: GmsStore,
    private readonly now: () => number,
  ) {
    this.changes.setMaxListeners(0);
  }

  static async open(store: GmsStore, now: () => number = Date.now): Promise<GroupManagementServer> {
    const gms = new GroupManagementServer(store, now);
    for (const g of await store.allGroups()) gms.groups.set(g.id, g); // interned by the store as it read them
    return gms;
  }

  get size(): number {
    return this.groups.size;
  }

  getGroup(id: McUri): GroupPolicy | undefined {
    return this.groups.get(id);
  }

  /** Reads every group from the store again: changed ones replace what is known, deleted ones go. */
  async reloadAll(): Promise<void> {
    const stored = await this.store.allGroups();
    const ids = new Set(stored.map((g) => g.id));
    for (const id of [...this.groups.keys()]) if (!ids.has(id)) this.changed(id, undefined);
    for (const g of stored) this.changed(g.id, g);
  }

  /** A group not in memory is looked up in the store: another instance may have created it a moment ago. */
  async lookup(id: McUri): Promise<GroupPolicy | undefined> {
    const known = this.groups.get(id);
    if (known) return known;
    const stored = await this.store.getGroup(id);
    if (stored && !this.groups.has(id)) this.groups.set(id, stored);
    return this.groups.get(id);
  }

  allGroups(): GroupPolicy[] {
    return [...this.groups.values()];
  }

  /** Creates or replaces a group document; subscribers learn it at once (policy subscription). */
  async putGroup(doc: Omit<GroupPolicy, 'revision'>): Promise<GroupPolicy> {
    return (await this.putGroupAnnounced(doc)).group;
  }

  /** putGroup, and the live instances that had not confirmed the change when it was answered (none: in force everywhere). */
  async putGroupAnnounced(doc: Omit<GroupPolicy, 'revision'>): Promise<{ group: GroupPolicy } & Announced> {
    const group = await this.store.putGroup(doc);
    this.changed(group.id, group);
    return { group, ...(await this.announce(group.id)) };
  }

  async deleteGroup(id: McUri): Promise<boolean> {
    return (await this.deleteGroupAnnounced(id)).existed;
  }

  /** deleteGroup, and the live instances that had not confirmed the deletion when it was answered. */
  async deleteGroupAnnounced(id: McUri): Promise<{ existed: boolean } & Announced> {
    const existed = await this.store.deleteGroup(id);
    if (!existed) return { existed, ...inForceEverywhere };
    this.changed(id, undefined);
    return { existed, ...(await this.announce(id)) };
  }

  /** Another instance changed a group: read it again from the shared store and tell the subscribers. */
  async reload(id: McUri): Promise<void> {
    this.changed(id, await this.store.getGroup(id));
  }

  private changed(id: McUri, group: GroupPolicy | undefined): void {
    const known = this.groups.get(id);
    if (group && known && known.revision > group.revision) return; // never go back in time
    if (group) this.groups.set(id, group);
    else this.groups.delete(id);
    this.changes.emit('policy', id);
  }

  onPolicyChange(listener: (groupId: McUri) => void): () => void {
    this.changes.on('policy', listener);
    return () => this.changes.off('policy', listener);
  }

  /**
   * Group affiliation status updates (10.X.2.3) from an MC service server (`source`). Applied idempotently: per
   * user, group and service the highest sequence number of a source wins, so a repeat or a late retry does no harm.
   */
  applyStatusUpdates(source: string, updates: GmsStatusUpdate[]): Promise<number> {
    return this.store.applyStatusUpdates(source, updates, this.now());
  }

  /** The group's affiliated members, as told by the MC service servers. */
  affiliatedMembers(groupId: McUri, service?: McService): Promise<GroupAffiliation[]> {
    return this.store.affiliatedMembers(groupId, service);
  }

  allAffiliations(): ReturnType<GmsStore['allAffiliations']> {
    return this.store.allAffiliations();
  }
}

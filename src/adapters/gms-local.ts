// The GroupManagement port for a GMS in the same process: a policy cache subscribed to the GMS's changes.
import type { McUri } from '../domain/ids.ts';
import type { GroupPolicy } from '../domain/group-policy.ts';
import type { GroupManagement } from '../ports/group-management.ts';
import type { GmsStatusUpdate } from '../ports/store.ts';
import type { GroupManagementServer } from '../gms/group-management-server.ts';

export class LocalGroupManagement implements GroupManagement {
  private readonly cache = new Map<McUri, GroupPolicy>();
  private readonly listeners = new Set<(groupId: McUri) => void>();
  private readonly unsubscribe: () => void;

  constructor(
    private readonly gms: GroupManagementServer,
    /** The MC service server's name at the GMS, the source of its status updates. */
    private readonly source: string,
  ) {
    // The subscription (10.X.3.2 step 4a): a changed group replaces the cached policy before the next request.
    this.unsubscribe = gms.onPolicyChange((groupId) => {
      const fresh = gms.getGroup(groupId);
      if (fresh) this.cache.set(groupId, fresh);
      else this.cache.delete(groupId);
      this.listeners.forEach((l) => l(groupId));
    });
  }

  policyOf(groupId: McUri): GroupPolicy | undefined {
    return this.cache.get(groupId);
  }

  /** In the same process the GMS always answers. */
  unavailable(): boolean {
    return false;
  }

  async ensurePolicies(groupIds: readonly McUri[]): Promise<void> {
    for (const id of groupIds) {
      if (this.cache.has(id)) continue;
      const policy = await this.gms.lookup(id);
      if (policy) this.cache.set(id, policy);
    }
  }

  async sendStatusUpdates(updates: GmsStatusUpdate[]): Promise<void> {
    await this.gms.applyStatusUpdates(this.source, updates);
  }

  onPolicyChange(listener: (groupId: McUri) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  async health(): Promise<'up' | 'down'> {
    return 'up';
  }

  close(): void {
    this.unsubscribe();
  }
}

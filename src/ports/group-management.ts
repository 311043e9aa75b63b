// The MC service server's view of its group management server: cached policy (10.X.3.1 steps 2a/2b) and status updates.
import type { McUri } from '../domain/ids.ts';
import type { GroupPolicy } from '../domain/group-policy.ts';
import type { GmsStatusUpdate } from './store.ts';

export interface GroupManagement {
  /** The cached policy of an own group; undefined when the GMS has no such group. Call `ensurePolicies` first. */
  policyOf(groupId: McUri): GroupPolicy | undefined;
  /**
   * True when the GMS could not be asked for this group's policy (down, or slower than its timeout) on the last
   * `ensurePolicies` and none is cached: the group is then refused on its own (GMS_UNAVAILABLE), not called unknown.
   */
  unavailable(groupId: McUri): boolean;
  /** Steps 2a/2b: fetches and caches the policies not yet cached (a subscription keeps them fresh afterwards). */
  ensurePolicies(groupIds: readonly McUri[]): Promise<void>;
  /** Step 5b / 4b / 6: delivers status updates; resolves once the GMS stored them. Idempotent by `seq`. */
  sendStatusUpdates(updates: GmsStatusUpdate[]): Promise<void>;
  /** Called with the group's ID whenever the GMS changed a group's policy. */
  onPolicyChange(listener: (groupId: McUri) => void): () => void;
  /** A bounded probe of the GMS (at most a few seconds). */
  health(): Promise<'up' | 'down'>;
}

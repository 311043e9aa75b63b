// Watching a group's affiliated members (issue 4: SUBSCRIBE to a group's affiliation status): which groups a user's
// affiliation status change touches, so that the watchers of exactly those groups are told, without a scan.
import type { McUri } from '../ids.ts';
import type { GroupStatus } from '../flows.ts';

/**
 * Every group the change names, once: joined, left, or dropped after a partner's refusal. Each may have gained or lost
 * this member; a watcher re-reads the group's members anyway, so naming a group that did not change costs one read.
 */
export function groupsTouchedBy(status: readonly GroupStatus[]): McUri[] {
  return [...new Set(status.map((s) => s.groupId))];
}

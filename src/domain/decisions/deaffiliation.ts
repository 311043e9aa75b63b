// The de-affiliation checks of TS 23.280 10.X.4.2 step 2 and 10.X.4.3 steps 2 and 4.
import type { McUri } from '../ids.ts';
import type { GroupHome, HeldGroups } from './group-home.ts';
import { GMS_UNAVAILABLE, type RefusalReason } from '../reasons.ts';

export type DeaffiliationVerdict =
  /** Not affiliated: answered `deaffiliated` and nothing changes (SPEC.md idempotency). */
  | { groupId: McUri; verdict: 'already-deaffiliated' }
  | { groupId: McUri; verdict: 'deaffiliate' }
  | { groupId: McUri; verdict: 'ask-partner'; domain: string }
  | { groupId: McUri; verdict: 'reject'; reason: RefusalReason };

export interface DeaffiliationFacts {
  userId: McUri;
  requested: readonly McUri[];
  held: HeldGroups;
  homeOf: (groupId: McUri) => GroupHome;
  /** As group host for a partner's user there is no local record to require: the primary checked it (step 2). */
  asGroupHost: boolean;
  /**
   * As group host: the primary withdraws an affiliation it never confirmed to its user (its request went
   * unanswered). That is no user leaving the group, so a policy that forbids leaving does not apply.
   */
  undo?: boolean;
}

/**
 * Leaving is always allowed, also from a disabled or deleted group or after the subscription changed, except
 * where the group policy forbids its members to leave (deaffiliationForbidden). A group whose policy the GMS could
 * not be asked for is refused (GMS_UNAVAILABLE): it might forbid leaving.
 */
export function decideDeaffiliation(f: DeaffiliationFacts): DeaffiliationVerdict[] {
  return f.requested.map((groupId): DeaffiliationVerdict => {
    const home = f.homeOf(groupId);
    const held = f.held.get(groupId);
    if (home.home === 'unroutable') return held ? { groupId, verdict: 'deaffiliate' } : { groupId, verdict: 'reject', reason: 'unknown-group' };
    if (home.home === 'own-gms-unavailable') {
      // Whether the group exists and lets its members leave is the GMS's to say; an undo and a group host's
      // "not affiliated" need neither.
      if (held && f.undo) return { groupId, verdict: 'deaffiliate' };
      if (!held && f.asGroupHost) return { groupId, verdict: 'already-deaffiliated' };
      return { groupId, verdict: 'reject', reason: GMS_UNAVAILABLE };
    }
    if (home.home === 'partner') {
      if (f.asGroupHost) return { groupId, verdict: 'reject', reason: 'unknown-group' };
      return held ? { groupId, verdict: 'ask-partner', domain: home.domain } : { groupId, verdict: 'already-deaffiliated' };
    }
    if (!held) {
      if (!home.policy && !f.asGroupHost) return { groupId, verdict: 'reject', reason: 'unknown-group' };
      return { groupId, verdict: 'already-deaffiliated' };
    }
    if (!f.undo && home.policy?.deaffiliationForbidden && home.policy.members.includes(f.userId)) {
      return { groupId, verdict: 'reject', reason: 'deaffiliation-forbidden' };
    }
    return { groupId, verdict: 'deaffiliate' };
  });
}

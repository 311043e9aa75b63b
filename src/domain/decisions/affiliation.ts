// The affiliation checks of TS 23.280 10.X.3.1 step 3 (own groups), 10.X.3.2 steps 2 and 5 (partner groups).
import type { McUri } from '../ids.ts';
import type { McService } from '../services.ts';
import { n2For, type UserProfile } from '../profile.ts';
import { GMS_UNAVAILABLE, type RefusalReason } from '../reasons.ts';
import type { GroupHome, HeldGroups } from './group-home.ts';

export type AffiliationVerdict =
  | { groupId: McUri; verdict: 'already-affiliated' }
  | { groupId: McUri; verdict: 'affiliate' }
  /** A partner group that passed the primary's checks: ask its host; `reserve` takes a new N2 slot meanwhile. */
  | { groupId: McUri; verdict: 'ask-partner'; domain: string; reserve: boolean }
  | { groupId: McUri; verdict: 'reject'; reason: RefusalReason };

export interface AffiliationFacts {
  service: McService;
  userId: McUri;
  /**
   * The user's profile when this server is the user's primary. Undefined when this server decides as group
   * host for a partner system's user: the user subscription and N2 are then the primary's checks (10.X.3.2 step 2).
   */
  profile: UserProfile | undefined;
  requested: readonly McUri[];
  held: HeldGroups;
  homeOf: (groupId: McUri) => GroupHome;
}

/**
 * Decides each requested group in request order. N2 counts the groups already held (affiliated or reserved)
 * once, then admits new groups in request order until the limit; the rest get n2-limit (SPEC.md N2).
 */
export function decideAffiliation(f: AffiliationFacts): AffiliationVerdict[] {
  const primary = f.profile !== undefined;
  const limit = f.profile ? n2For(f.profile, f.service) : Infinity;
  let count = f.held.size;
  return f.requested.map((groupId): AffiliationVerdict => {
    const reject = (reason: RefusalReason): AffiliationVerdict => ({ groupId, verdict: 'reject', reason });
    const home = f.homeOf(groupId);
    // User subscription: the profile must allow this service and this group.
    const unsubscribed = f.profile !== undefined && (!f.profile.services.includes(f.service) || !f.profile.groups.includes(groupId));
    if (home.home === 'unroutable') return reject('unknown-group');
    // Without the policy nothing else can be decided; the subscription, known here, still refuses first.
    if (home.home === 'own-gms-unavailable') return reject(unsubscribed ? 'not-authorised' : GMS_UNAVAILABLE);
    if (!primary && home.home !== 'own') return reject('unknown-group');
    const policy = home.home === 'own' ? home.policy : undefined;
    if (home.home === 'own' && (!policy || !policy.services.includes(f.service))) return reject('unknown-group');
    if (unsubscribed) return reject('not-authorised');
    const held = f.held.get(groupId);
    if (held === 'affiliated') return { groupId, verdict: 'already-affiliated' };
    if (policy) {
      if (!policy.enabled) return reject('group-disabled');
      if (!policy.members.includes(f.userId)) return reject('not-member');
    }
    if (held === 'reserved') {
      // Another request of this user is asking the partner for this group: ask too, without a second slot.
      return home.home === 'partner' ? { groupId, verdict: 'ask-partner', domain: home.domain, reserve: false } : reject('n2-limit');
    }
    if (count >= limit) return reject('n2-limit');
    count += 1;
    return home.home === 'partner' ? { groupId, verdict: 'ask-partner', domain: home.domain, reserve: true } : { groupId, verdict: 'affiliate' };
  });
}

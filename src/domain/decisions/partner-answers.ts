// TS 23.280 10.X.3.2 step 8 at the primary: what the partner systems' answers do to the user's stored groups, with
// N2 holding (SPEC.md: "reserve, then commit or release"). A request releases only the reservations it made: another
// request of the same user may be asking for the same group without a slot of its own (decideAffiliation), and
// releasing the slot under it would let a third request take it. A confirmation whose reservation is gone meanwhile
// (released by the request that made it, or swept) takes a slot again only if one is free.
import type { McUri } from '../ids.ts';
import type { GroupStatus } from '../flows.ts';
import type { HeldGroups } from './group-home.ts';

export interface PartnerAnswerFacts {
  /** One status per group the partners were asked about, in request order. */
  answers: readonly GroupStatus[];
  held: HeldGroups;
  /** N2 for the request's service. */
  limit: number;
  /** The groups this request reserved a slot for in step 2. */
  reservedHere: ReadonlySet<McUri>;
}

export interface PartnerAnswerOutcome {
  /** Stored as affiliated (already affiliated ones included: storing them again changes nothing). */
  affiliate: McUri[];
  /** Reservations this request made that its partner did not confirm. */
  release: McUri[];
  /**
   * Confirmed by the host, but the user's slots are all taken here: answered n2-limit and not stored, so the host's
   * record is one the primary does not have, which a partner re-synchronisation removes.
   */
  noRoom: McUri[];
}

export function decidePartnerAnswers(f: PartnerAnswerFacts): PartnerAnswerOutcome {
  const refused = f.answers.filter((a) => a.status !== 'affiliated').map((a) => a.groupId);
  const release = refused.filter((g) => f.held.get(g) === 'reserved' && f.reservedHere.has(g));
  // The slots released here are free for this request's own confirmations below.
  let count = f.held.size - release.length;
  const out: PartnerAnswerOutcome = { affiliate: [], release, noRoom: [] };
  for (const a of f.answers) {
    if (a.status !== 'affiliated') continue;
    if (f.held.has(a.groupId)) out.affiliate.push(a.groupId);
    else if (count < f.limit) {
      count += 1;
      out.affiliate.push(a.groupId);
    } else out.noRoom.push(a.groupId);
  }
  return out;
}

/**
 * A request whose answer never came is undone at the partner only for the groups that still need it, by what the
 * primary's store holds now (another instance sharing it may have completed a later request for them): an
 * affiliation while the group is not held affiliated (its own reservation may not be released yet), a
 * de-affiliation while it still is.
 */
export function groupsToUndo(unanswered: 'affiliate' | 'deaffiliate', groupIds: readonly McUri[], held: HeldGroups): McUri[] {
  return groupIds.filter((g) => (held.get(g) === 'affiliated') === (unanswered === 'deaffiliate'));
}

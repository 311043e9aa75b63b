// Who may change whose affiliations (TS 23.280 10.X.5.1.1 step 2, 10.X.5.1.2 step 2; SPEC.md "Who may act").
import { domainOf, type McUri } from '../ids.ts';
import type { UserProfile } from '../profile.ts';
import type { GroupPolicy } from '../group-policy.ts';

export type ChangeRight =
  | { allowed: false }
  /** Allowed for the target; groups outside the right's group list are refused one by one. */
  | { allowed: true; groupAllowed: (groupId: McUri) => boolean };

/** `actorId` from the credential: one's own affiliations need no right, also with no profile (leaving is always allowed). */
export function decideChangeRight(actorId: McUri, actor: UserProfile | undefined, target: McUri, ownDomain: string): ChangeRight {
  if (actorId === target) return { allowed: true, groupAllowed: () => true };
  if (!actor) return { allowed: false };
  // A primary server changes only its own users; another system's users are changed by their own server.
  if (domainOf(target) !== ownDomain) return { allowed: false };
  const right = actor.remoteChange;
  if (right === false) return { allowed: false };
  if (right === true) return { allowed: true, groupAllowed: () => true };
  if (right.users && !right.users.includes(target)) return { allowed: false };
  const groups = right.groups;
  return { allowed: true, groupAllowed: (g) => !groups || groups.includes(g) };
}

/** Reading another user's affiliations needs the same right as changing them. */
export function mayView(actor: UserProfile | undefined, actorId: McUri, target: McUri, ownDomain: string): boolean {
  return decideChangeRight(actorId, actor, target, ownDomain).allowed;
}

/** Who is affiliated to a group may be read by its members, and by users whose remote-change right covers it. */
export function mayViewMembers(caller: UserProfile | undefined, callerId: McUri, policy: GroupPolicy | undefined, groupId: McUri): boolean {
  if (policy?.members.includes(callerId)) return true;
  const right = caller?.remoteChange;
  return right === true || (typeof right === 'object' && (!right.groups || right.groups.includes(groupId)));
}

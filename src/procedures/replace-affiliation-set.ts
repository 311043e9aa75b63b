// The stage-3 form of affiliation (TS 24.379 9.2.2.2.3, STAGE3.md): the set a client publishes replaces the
// user's previous set. The difference runs as de-affiliation (10.X.4) then affiliation (10.X.3), so the slots the
// omissions free count for the additions.
import type { McUri } from '../domain/ids.ts';
import type { McService } from '../domain/services.ts';
import type { GroupStatus } from '../domain/flows.ts';
import { publicationDelta } from '../domain/decisions/publication-set.ts';
import type { McServiceServer } from './context.ts';
import { applyAffiliationChange } from './apply-affiliation-change.ts';
import { affiliate, type AffiliationProgress, type StoredAlongside } from './affiliate.ts';

/** What a published set asks of the user's groups as stored when it was read: the additions, the omissions to leave. */
export interface SetChange {
  affiliate: McUri[];
  deaffiliate: McUri[];
}

/** What a face learns while a set is applied: the partners' reservations, and each change once read (to undo it). */
export interface SetProgress extends AffiliationProgress {
  asked?(change: SetChange): void;
}

/**
 * The user's own set (a PUBLISH, or its expiry with none): one's own affiliations need no change right, so every
 * group proceeds; another user's set is a mandatory remote change (remoteChangeMandatory). `alongside`: the audit
 * entries of the set's outcome, stored with its last write (see applyAffiliationChange).
 */
export async function replaceAffiliationSet(server: McServiceServer, userId: McUri, service: McService, wanted: readonly McUri[], progress?: SetProgress, alongside?: (status: GroupStatus[]) => StoredAlongside): Promise<GroupStatus[]> {
  const delta = await changeOfPublishedSet(server, userId, service, wanted);
  progress?.asked?.(delta);
  return applyAffiliationChange(server, { target: userId, service, ...delta }, progress, alongside);
}

/**
 * The groups of a published set that the user does not hold now, affiliated again; none is left. For a set whose
 * groups something else removed while it was published: an expiry on another instance (src/faces/sip/README.md).
 * `alongside`: what is stored with that affiliation's outcome, in its completing transaction (not called without one).
 */
export async function regainPublishedSet(server: McServiceServer, userId: McUri, service: McService, wanted: readonly McUri[], progress?: SetProgress, alongside?: (status: GroupStatus[]) => StoredAlongside): Promise<GroupStatus[]> {
  const missing = (await changeOfPublishedSet(server, userId, service, wanted)).affiliate;
  if (missing.length === 0) return [];
  progress?.asked?.({ affiliate: missing, deaffiliate: [] });
  return (await affiliate(server, { mcServiceId: userId, service, groupIds: missing }, progress, alongside && ((r) => alongside(r.status)))).status;
}

/**
 * The set `wanted` replaces the user's set within the groups `among` only: of those, the ones it names are affiliated
 * where not held, the others left where affiliated; no other group is looked at. Puts back what a failed PUBLISH
 * changed (`undoSetChange`), or gives those groups the set of a publication stored meanwhile.
 */
export async function replaceAffiliationSetAmong(server: McServiceServer, userId: McUri, service: McService, wanted: readonly McUri[], among: ReadonlySet<McUri>): Promise<GroupStatus[]> {
  const delta = await changeOfPublishedSet(server, userId, service, wanted);
  return applyAffiliationChange(server, { target: userId, service, affiliate: delta.affiliate.filter((g) => among.has(g)), deaffiliate: delta.deaffiliate.filter((g) => among.has(g)) });
}

/** The groups `change` asked to leave affiliated again, those it asked to join left: what was held when it was read. */
export function undoSetChange(server: McServiceServer, userId: McUri, service: McService, change: SetChange): Promise<GroupStatus[]> {
  return replaceAffiliationSetAmong(server, userId, service, change.deaffiliate, groupsOf(change));
}

/** Every group a change named. */
export function groupsOf(change: SetChange): Set<McUri> {
  return new Set([...change.affiliate, ...change.deaffiliate]);
}

/** What a published set asks of the user's stored groups: the additions to affiliate, the omissions to leave. */
export async function changeOfPublishedSet(server: McServiceServer, userId: McUri, service: McService, wanted: readonly McUri[]): Promise<SetChange> {
  const records = await server.store.affiliationsOfUser(userId, service);
  return publicationDelta(wanted, new Map(records.map((r) => [r.groupId, r.state])));
}

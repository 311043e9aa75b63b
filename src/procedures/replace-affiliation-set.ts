// The stage-3 form of affiliation (TS 24.379 9.2.2.2.3, STAGE3.md): the set a client publishes replaces the
// user's previous set. The difference runs as de-affiliation (10.X.4) then affiliation (10.X.3), so the slots the
// omissions free count for the additions. The own groups' difference is taken inside the store's per-user write
// transaction, from the groups held then, so two replacements at once (two instances sharing a store) are ordered:
// the one whose write commits last leaves exactly its set, nothing of the other's. Partner groups cannot be in that
// transaction (their hosts are asked over HTTP): their omissions are left first, as read before it.
// An affiliation change's lists of own groups (10.X.5.1.1 steps 3-6) take the same one write (applyChangeLists).
import type { McUri } from '../domain/ids.ts';
import type { McService } from '../domain/services.ts';
import type { GroupStatus } from '../domain/flows.ts';
import { publicationDelta } from '../domain/decisions/publication-set.ts';
import { decideAffiliation, type AffiliationVerdict } from '../domain/decisions/affiliation.ts';
import { decideDeaffiliation, type DeaffiliationVerdict } from '../domain/decisions/deaffiliation.ts';
import type { HeldGroups } from '../domain/decisions/group-home.ts';
import { n2For, unknownUserProfile } from '../domain/profile.ts';
import type { AffiliationWrite } from '../ports/store.ts';
import { homeOf, ownGroups, type McServiceServer } from './context.ts';
import { askPartnersAndStore, statusEvents, statusOf as affiliationStatus, withAlongside, type AffiliationProgress, type StoredAlongside } from './affiliate.ts';
import { deaffiliate, statusOf as deaffiliationStatus } from './deaffiliate.ts';

/** What a published set asks of the user's groups as they were held: the additions, the omissions to leave. */
export interface SetChange {
  affiliate: McUri[];
  deaffiliate: McUri[];
}

/**
 * What a face learns while a set is applied: the partners' reservations, and each change as it is made (to undo it):
 * the partner groups to leave before they are asked, the rest once its transaction committed.
 */
export interface SetProgress extends AffiliationProgress {
  asked?(change: SetChange): void;
}

/**
 * The user's own set (a PUBLISH, or its expiry with none): one's own affiliations need no change right, so every
 * group proceeds; another user's set is a mandatory remote change (remoteChangeMandatory). `alongside`: the audit
 * entries of the set's outcome, stored with its last write (its own groups' transaction, or the one storing the
 * partners' answers); not called when the set asks nothing of the groups read.
 */
export function replaceAffiliationSet(server: McServiceServer, userId: McUri, service: McService, wanted: readonly McUri[], progress?: SetProgress, alongside?: (status: GroupStatus[]) => StoredAlongside): Promise<GroupStatus[]> {
  return replaceWithin(server, userId, service, wanted, undefined, progress, alongside);
}

/** A publication as read from the store: its entity-tag (none: no publication) and its set (null: a row that kept none). */
export interface PublishedSet {
  tag: string | undefined;
  groups: readonly McUri[] | null;
}

/** How many times the live publication is followed when another was stored while its set was applied. */
export const FOLLOW_ROUNDS = 4;

/**
 * The user's groups made exactly the set of the publication live now (`live` reads it): a full replacement, decided in
 * the per-user write transaction like any set. The publication is read again after that write; if another was stored
 * meanwhile, its set is applied next (at most FOLLOW_ROUNDS times: one stored after the last read is followed by its
 * own PUBLISH). The PUBLISH re-check, an expiry and a failed PUBLISH's undo that find a newer publication all follow
 * it here. `settled`: groups left as they are while the publication with that tag is live (a PUBLISH's own refusals:
 * decided once). `alongside`: stored with each write's outcome. `written`: the publication the caller has just stored
 * (or removed) or read, taken as the live one to start with. Returns the last status of each group changed.
 */
export async function followLivePublication(server: McServiceServer, userId: McUri, service: McService, live: () => Promise<PublishedSet>, settled?: { tag: string | undefined; groups: ReadonlySet<McUri> }, progress?: SetProgress, alongside?: (status: GroupStatus[]) => StoredAlongside, written?: PublishedSet): Promise<GroupStatus[]> {
  const outcome = new Map<McUri, GroupStatus>();
  // The publication just written is followed first without reading it back (one read less per PUBLISH); the read
  // after its set's write still finds any stored since.
  let pub = written ?? (await live());
  for (let round = 0; round < FOLLOW_ROUNDS && pub.groups !== null; round++) {
    const skip = settled && pub.tag === settled.tag ? settled.groups : undefined;
    const status = await replaceWithin(server, userId, service, pub.groups, skip && ((g) => !skip.has(g)), progress, alongside);
    status.forEach((s) => outcome.set(s.groupId, s));
    // Another publication stored since the read above may have had its set written before this write: follow it.
    const again = await live();
    if (again.tag === pub.tag) break;
    pub = again;
  }
  return [...outcome.values()];
}

/**
 * The set `wanted` replaces the user's set within the groups `among` only: of those, the ones it names are affiliated
 * where not held, the others left where affiliated; no other group is looked at. Puts back what a failed PUBLISH
 * changed (`undoSetChange`), or leaves those groups when its publication is gone with none newer.
 */
export function replaceAffiliationSetAmong(server: McServiceServer, userId: McUri, service: McService, wanted: readonly McUri[], among: ReadonlySet<McUri>): Promise<GroupStatus[]> {
  return replaceWithin(server, userId, service, wanted, (g) => among.has(g));
}

/**
 * A set another user publishes for `userId` (TS 24.379 §9.2.1.4 mandatory mode, run by remoteChangeMandatory): it
 * replaces the user's set within the groups `among` (the publisher's right), decided in the per-user write transaction
 * like the user's own. `alongside` also gets what the set asked of the groups as decided there (the change's lists).
 */
export function replaceAffiliationSetAsChange(server: McServiceServer, userId: McUri, service: McService, wanted: readonly McUri[], among: (groupId: McUri) => boolean, progress?: SetProgress, alongside?: (status: GroupStatus[], asked: SetChange) => StoredAlongside): Promise<GroupStatus[]> {
  return replaceWithin(server, userId, service, wanted, among, progress, alongside);
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

/** The groups a replacement looks at (undefined: every group). */
type Among = ((groupId: McUri) => boolean) | undefined;

/** `change` within the groups `among` only; all of it without. */
function within(change: SetChange, among: Among): SetChange {
  return among ? { affiliate: change.affiliate.filter(among), deaffiliate: change.deaffiliate.filter(among) } : change;
}

/** What the set's own transaction decided: the verdicts, or the own groups whose policy must be fetched first. */
type SetVerdicts = { leaving: DeaffiliationVerdict[]; joining: AffiliationVerdict[]; asked: SetChange } | { policiesOf: McUri[] };

/** `wanted` replaces the user's set, within `among` when given (replaceAffiliationSet, replaceAffiliationSetAmong). */
async function replaceWithin(server: McServiceServer, userId: McUri, service: McService, wanted: readonly McUri[], among: Among, progress?: SetProgress, alongside?: (status: GroupStatus[], asked: SetChange) => StoredAlongside): Promise<GroupStatus[]> {
  // Read before any write: which partner groups to leave through their hosts, and which policies to fetch. A set
  // that asks nothing of the groups read writes nothing (one that commits after this read decides after it).
  const read = within(await changeOfPublishedSet(server, userId, service, wanted), among);
  // The difference as held in the transaction: a set another instance stored since the read above is replaced too.
  return leaveThenJoin(server, userId, service, read, (held) => within(publicationDelta(wanted, held), among), progress, alongside);
}

/**
 * An affiliation change's lists of own groups (10.X.5.1.1 steps 3-6): both decided in one per-user write transaction
 * as a set's difference is, so the change is applied whole or not at all, and `alongside` (its record and event, step
 * 7a) rides on that write. The lists share no group (the faces refuse one in both); applyAffiliationChange sends a
 * change naming a partner's group through the seed's two procedures instead.
 */
export function applyChangeLists(server: McServiceServer, userId: McUri, service: McService, change: SetChange, alongside?: (status: GroupStatus[]) => StoredAlongside): Promise<GroupStatus[]> {
  return leaveThenJoin(server, userId, service, change, () => change, undefined, alongside);
}

/**
 * `read` (what is asked of the groups as read before) left then joined; `asks` says it again of the groups as held in
 * the write transaction, where the own groups' omissions and additions are decided together. Partner omissions are
 * left first through their hosts, partner additions reserved there and asked after it.
 */
async function leaveThenJoin(server: McServiceServer, userId: McUri, service: McService, read: SetChange, asks: (held: HeldGroups) => SetChange, progress?: SetProgress, alongside?: (status: GroupStatus[], asked: SetChange) => StoredAlongside): Promise<GroupStatus[]> {
  const profile = server.profiles.get(userId) ?? unknownUserProfile(userId);
  if (read.affiliate.length + read.deaffiliate.length === 0) return [];
  const atPartners = read.deaffiliate.filter((g) => homeOf(server, g).home === 'partner');

  // 10.X.4.3 (steps 1-3, 7-8): partner groups are left first, through their hosts, so the slots they free count below.
  let leftAtPartners: GroupStatus[] = [];
  if (atPartners.length > 0) {
    progress?.asked?.({ affiliate: [], deaffiliate: atPartners });
    leftAtPartners = (await deaffiliate(server, { mcServiceId: userId, service, groupIds: atPartners })).status;
  }

  // Pre-condition 1 of 10.X.4.2, steps 2a/2b of 10.X.3.1: the policies, fetched before the transaction (no I/O in it).
  const fetched = new Set(ownGroups(server, [...read.affiliate, ...read.deaffiliate]));
  await server.gms.ensurePolicies([...fetched]);
  const statusOfSet = (v: { leaving: DeaffiliationVerdict[]; joining: AffiliationVerdict[] }, answers: Map<McUri, GroupStatus>): GroupStatus[] => [
    ...v.joining.map((x) => affiliationStatus(x, answers)),
    ...leftAtPartners,
    ...v.leaving.map((x) => deaffiliationStatus(x, new Map())),
  ];
  // What the set asked, as decided: the partner omissions left above with the transaction's own lists.
  const askedOf = (v: { asked: SetChange }): SetChange => ({ affiliate: v.asked.affiliate, deaffiliate: [...atPartners, ...v.asked.deaffiliate] });
  for (;;) {
    const { result: decided, events } = await server.store.changeAffiliations(userId, service, (held): AffiliationWrite<SetVerdicts> => {
      // What is asked of the groups as held now (a set's difference is taken from them here).
      const now = asks(held);
      // A partner group not left above is another request's, found after the read: left to that request.
      const leavingHere = now.deaffiliate.filter((g) => homeOf(server, g).home !== 'partner');
      const unfetched = ownGroups(server, [...leavingHere, ...now.affiliate]).filter((g) => !fetched.has(g));
      if (unfetched.length > 0) return { put: [], remove: [], tellGms: [], events: [], result: { policiesOf: unfetched } };
      // 10.X.4.2 step 2: may the user leave? Step 3: remove.
      const leaving = decideDeaffiliation({ userId, requested: leavingHere, held, homeOf: (g) => homeOf(server, g), asGroupHost: false });
      const removed = leaving.filter((x) => x.verdict === 'deaffiliate').map((x) => x.groupId);
      const rest = new Map(held);
      for (const g of removed) rest.delete(g);
      // 10.X.3.1 step 3 (10.X.3.2 step 2) against what is held once the omissions left; step 4: store, partner groups reserved.
      const joining = decideAffiliation({ service, userId, profile, requested: now.affiliate, held: rest, homeOf: (g) => homeOf(server, g) });
      const affiliated = joining.filter((x) => x.verdict === 'affiliate').map((x) => x.groupId);
      const reserved = joining.filter((x) => x.verdict === 'ask-partner' && x.reserve).map((x) => x.groupId);
      const v = { leaving, joining, asked: { affiliate: now.affiliate, deaffiliate: leavingHere } };
      const w = {
        put: [...affiliated.map((groupId) => ({ groupId, state: 'affiliated' as const })), ...reserved.map((groupId) => ({ groupId, state: 'reserved' as const }))],
        remove: removed,
        // 10.X.4.2 step 4b, 10.X.3.1 step 5b: own groups only (a record of a group of no reachable system has no GMS).
        tellGms: [
          ...removed.filter((g) => homeOf(server, g).home === 'own').map((groupId) => ({ groupId, status: 'deaffiliated' as const })),
          ...affiliated.map((groupId) => ({ groupId, status: 'affiliated' as const })),
        ],
        events: statusEvents(userId, service, [...removed.map((groupId) => ({ groupId, status: 'deaffiliated' as const })), ...affiliated.map((groupId) => ({ groupId, status: 'affiliated' as const }))]),
        result: v,
      };
      // No partner to ask: this transaction completes the set.
      return withAlongside(w, alongside && !joining.some((x) => x.verdict === 'ask-partner') ? alongside(statusOfSet(v, new Map()), askedOf(v)) : undefined);
    });
    if ('policiesOf' in decided) {
      // Groups another request affiliated after the read: their policies first (one may forbid leaving), then again.
      decided.policiesOf.forEach((g) => fetched.add(g));
      await server.gms.ensurePolicies(decided.policiesOf);
      continue;
    }
    server.notifier.publish(events);
    progress?.asked?.(decided.asked);
    // 10.X.4.2 step 4b, 10.X.3.1 step 5b: the GMS learns it from the commit, or from the outbox rows written with it.
    if (decided.leaving.some((x) => x.verdict === 'deaffiliate') || decided.joining.some((x) => x.verdict === 'affiliate')) server.tellGmsSoon();
    const reserved = decided.joining.filter((x) => x.verdict === 'ask-partner' && x.reserve).map((x) => x.groupId);
    if (reserved.length > 0) progress?.reserved(reserved);
    // 10.X.3.2 steps 3-8: ask each partner system that hosts added groups, all in parallel.
    const answers = await askPartnersAndStore(server, userId, service, n2For(profile, service), decided.joining, alongside && ((a) => alongside(statusOfSet(decided, a), askedOf(decided))));
    // Step 5a (10.X.3.2 step 9): one status per group, the additions first.
    return statusOfSet(decided, answers);
  }
}

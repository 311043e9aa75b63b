// TS 23.280 10.X.3.1 (affiliation to groups of the own system) and the primary server's part of 10.X.3.2
// (groups of partner systems), one code path for every MC service.
import type { McUri } from '../domain/ids.ts';
import type { McService } from '../domain/services.ts';
import type { AffiliationRequest, AffiliationResponse, GroupStatus } from '../domain/flows.ts';
import { decideAffiliation, type AffiliationVerdict } from '../domain/decisions/affiliation.ts';
import { decidePartnerAnswers } from '../domain/decisions/partner-answers.ts';
import { n2For, unknownUserProfile } from '../domain/profile.ts';
import { homeOf, ownGroups, type McServiceServer } from './context.ts';
import { askPartners } from './ask-partners.ts';
import type { AffiliationWrite, ChangeRecord, NewAuditEntry, NewEvent } from '../ports/store.ts';

/** What a face may show while partner systems decide (the SIP face NOTIFYs these groups as `affiliating`). */
export interface AffiliationProgress {
  reserved(groupIds: McUri[]): void;
}

/**
 * What is stored with the request's final outcome, in the transaction that completes it: its audit entries (issue 6:
 * the answer then waits for one commit and fsync, not a second one for the entry) and, for a mandatory remote change,
 * the change record and the target's event (10.X.5.1.1 step 7a: applied and told at once, or neither).
 */
export interface StoredAlongside {
  audit?: NewAuditEntry[];
  changes?: ChangeRecord[];
  events?: NewEvent[];
}

/** Built from the request's final response; called inside the store's transaction, so it must not do I/O. */
export type WriteAlongside = (response: AffiliationResponse) => StoredAlongside;

/** `w` with what is stored alongside it. */
export function withAlongside<T>(w: AffiliationWrite<T>, extra: StoredAlongside | undefined): AffiliationWrite<T> {
  if (!extra) return w;
  return { ...w, events: [...w.events, ...(extra.events ?? [])], audit: [...(w.audit ?? []), ...(extra.audit ?? [])], changes: [...(w.changes ?? []), ...(extra.changes ?? [])] };
}

export async function affiliate(server: McServiceServer, req: AffiliationRequest, progress?: AffiliationProgress, alongside?: WriteAlongside): Promise<AffiliationResponse> {
  // Step 1: the MC service client's affiliation request (parsed and authorised by the face).
  const { mcServiceId: userId, service, groupIds } = req;
  const profile = server.profiles.get(userId) ?? unknownUserProfile(userId);

  // Steps 2a/2b: group policy from the cache, or from the GMS (which then keeps the cache fresh).
  await server.gms.ensurePolicies(ownGroups(server, groupIds));

  // Step 3 (and 10.X.3.2 step 2): policy, subscription and N2 checks; step 4: store, in one per-user transaction.
  // Partner groups that pass take a `reserved` slot so N2 holds while their host decides.
  const { result: verdicts, events } = await server.store.changeAffiliations(userId, service, (held) => {
    const v = decideAffiliation({ service, userId, profile, requested: groupIds, held, homeOf: (g) => homeOf(server, g) });
    const affiliated = v.filter((x) => x.verdict === 'affiliate').map((x) => x.groupId);
    const reserved = v.filter((x) => x.verdict === 'ask-partner' && x.reserve).map((x) => x.groupId);
    const w = {
      put: [...affiliated.map((groupId) => ({ groupId, state: 'affiliated' as const })), ...reserved.map((groupId) => ({ groupId, state: 'reserved' as const }))],
      remove: [],
      tellGms: affiliated.map((groupId) => ({ groupId, status: 'affiliated' as const })),
      events: statusEvents(userId, service, affiliated.map((groupId) => ({ groupId, status: 'affiliated' }))),
      result: v,
    };
    // No partner to ask: this transaction completes the request.
    return withAlongside(w, alongside && !v.some((x) => x.verdict === 'ask-partner') ? alongside(responseOf(req, v, new Map())) : undefined);
  });
  server.notifier.publish(events);
  // 10.X.3.2 step 2 done: the reservations are stored, so a face can show them before the partners answer.
  const reserved = verdicts.filter((v) => v.verdict === 'ask-partner' && v.reserve).map((v) => v.groupId);
  if (reserved.length > 0) progress?.reserved(reserved);
  // Step 5b: told by the commit (a GMS in the same store reads the rows), or by the outbox row written with them,
  // whose sender wakes now (in parallel with 5a).
  if (verdicts.some((v) => v.verdict === 'affiliate')) server.tellGmsSoon();

  // 10.X.3.2 steps 3-8: ask each partner system that hosts requested groups, all in parallel.
  const partnerStatus = await askPartnersAndStore(server, userId, service, n2For(profile, service), verdicts, alongside && ((answers) => alongside(responseOf(req, verdicts, answers))));

  // Step 5a (10.X.3.2 step 9): the affiliation response, one status per requested group in request order.
  return responseOf(req, verdicts, partnerStatus);
}

function responseOf(req: AffiliationRequest, verdicts: AffiliationVerdict[], partnerStatus: Map<McUri, GroupStatus>): AffiliationResponse {
  return { mcServiceId: req.mcServiceId, service: req.service, groupIds: req.groupIds, status: verdicts.map((v) => statusOf(v, partnerStatus)) };
}

/** 10.X.3.2 steps 3 and 8: forward to the group hosts, then keep only what they confirmed, within N2. */
export async function askPartnersAndStore(server: McServiceServer, userId: McUri, service: McService, limit: number, verdicts: AffiliationVerdict[], alongside?: (answers: Map<McUri, GroupStatus>) => StoredAlongside): Promise<Map<McUri, GroupStatus>> {
  const asked = verdicts.flatMap((v) => (v.verdict === 'ask-partner' ? [{ groupId: v.groupId, domain: v.domain }] : []));
  if (asked.length === 0) return new Map();
  // Step 3: every partner at once.
  const answers = await askPartners(server, 'affiliate', userId, service, asked);
  const reservedHere = new Set(verdicts.flatMap((v) => (v.verdict === 'ask-partner' && v.reserve ? [v.groupId] : [])));
  // Step 8: store what the partners confirmed; release the reservations of what they did not.
  const { result: outcome, events } = await server.store.changeAffiliations(userId, service, (held) => {
    const o = decidePartnerAnswers({ answers: [...answers.values()], held, limit, reservedHere });
    for (const groupId of o.noRoom) answers.set(groupId, { groupId, status: 'rejected', reason: 'n2-limit' });
    const w = {
      put: o.affiliate.map((groupId) => ({ groupId, state: 'affiliated' as const })),
      remove: o.release,
      tellGms: [], // the partner tells its own GMS (10.X.3.2 step 7b)
      events: statusEvents(userId, service, o.affiliate.filter((g) => held.get(g) !== 'affiliated').map((groupId) => ({ groupId, status: 'affiliated' }))),
      result: o,
    };
    return withAlongside(w, alongside?.(answers));
  });
  server.notifier.publish(events);
  // The hosts keep what they confirmed and this server refused for want of a slot: a re-synchronisation removes it.
  for (const domain of new Set(asked.filter((a) => outcome.noRoom.includes(a.groupId)).map((a) => a.domain))) server.resyncPartnerSoon(domain, 'confirmed beyond N2');
  return answers;
}

export function statusOf(v: AffiliationVerdict, partnerStatus: Map<McUri, GroupStatus>): GroupStatus {
  switch (v.verdict) {
    case 'affiliate':
    case 'already-affiliated':
      return { groupId: v.groupId, status: 'affiliated' };
    case 'reject':
      return { groupId: v.groupId, status: 'rejected', reason: v.reason };
    case 'ask-partner':
      return partnerStatus.get(v.groupId) ?? { groupId: v.groupId, status: 'rejected', reason: 'partner-unreachable' };
  }
}

/** The `affiliation-status` event a user's clients get when its affiliations changed (none when nothing did). */
export function statusEvents(userId: McUri, service: McService, status: GroupStatus[]) {
  return status.length === 0 ? [] : [{ userId, type: 'affiliation-status' as const, data: { service, status } }];
}

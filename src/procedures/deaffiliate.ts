// TS 23.280 10.X.4.2 (de-affiliation from groups of the own system) and the primary server's part of 10.X.4.3.
import type { McUri } from '../domain/ids.ts';
import type { AffiliationResponse, DeaffiliationRequest, GroupStatus } from '../domain/flows.ts';
import { decideDeaffiliation, type DeaffiliationVerdict } from '../domain/decisions/deaffiliation.ts';
import { homeOf, ownGroups, type McServiceServer } from './context.ts';
import { askPartners } from './ask-partners.ts';
import { statusEvents, withAlongside, type StoredAlongside, type WriteAlongside } from './affiliate.ts';

/** `alongside`: what is stored with the request's outcome, in the transaction that completes it (see WriteAlongside). */
export async function deaffiliate(server: McServiceServer, req: DeaffiliationRequest, alongside?: WriteAlongside): Promise<AffiliationResponse> {
  // Step 1: the MC service client's de-affiliation request.
  const { mcServiceId: userId, service, groupIds } = req;
  // Pre-condition 1: the stored group policy (fetched now if the cache lost it).
  await server.gms.ensurePolicies(ownGroups(server, groupIds));

  // Step 2: is the user affiliated, and may it leave? Step 3: remove, in one per-user transaction.
  // 10.X.4.3 steps 3-7: partner groups are removed by their host first, then the primary drops its record. Until then
  // the records are stamped as forwarded, in the store, so a re-synchronisation at this or another instance sharing it
  // does not ask the host for them again meanwhile.
  const forwardedAt = server.clock.now();
  const { result: verdicts, events } = await server.store.changeAffiliations(userId, service, (held) => {
    const v = decideDeaffiliation({ userId, requested: groupIds, held, homeOf: (g) => homeOf(server, g), asGroupHost: false });
    const removed = v.filter((x) => x.verdict === 'deaffiliate').map((x) => x.groupId);
    const w = {
      put: [],
      remove: removed,
      // Own groups only: a record for a group of no reachable system has no GMS to tell.
      tellGms: removed.filter((g) => homeOf(server, g).home === 'own').map((groupId) => ({ groupId, status: 'deaffiliated' as const })),
      events: statusEvents(userId, service, removed.map((groupId) => ({ groupId, status: 'deaffiliated' }))),
      forwarded: { mark: v.flatMap((x) => (x.verdict === 'ask-partner' ? [x.groupId] : [])), at: forwardedAt },
      result: v,
    };
    // No partner to ask: this transaction completes the request.
    return withAlongside(w, alongside && !v.some((x) => x.verdict === 'ask-partner') ? alongside(responseOf(req, v, new Map())) : undefined);
  });
  server.notifier.publish(events);
  // Step 4b: the GMS learns it from the removal's commit, or from the outbox row written with it (see affiliate.ts).
  if (verdicts.some((v) => v.verdict === 'deaffiliate')) server.tellGmsSoon();

  const partnerStatus = await askPartnersAndStore(server, userId, service, verdicts, forwardedAt, alongside && ((answers) => alongside(responseOf(req, verdicts, answers))));

  // Step 4a (10.X.4.3 step 8): the de-affiliation response.
  return responseOf(req, verdicts, partnerStatus);
}

function responseOf(req: DeaffiliationRequest, verdicts: DeaffiliationVerdict[], partnerStatus: Map<McUri, GroupStatus>): AffiliationResponse {
  return { mcServiceId: req.mcServiceId, service: req.service, groupIds: req.groupIds, status: verdicts.map((v) => statusOf(v, partnerStatus)) };
}

async function askPartnersAndStore(server: McServiceServer, userId: McUri, service: AffiliationResponse['service'], verdicts: DeaffiliationVerdict[], forwardedAt: number, alongside?: (answers: Map<McUri, GroupStatus>) => StoredAlongside): Promise<Map<McUri, GroupStatus>> {
  const asked = verdicts.flatMap((v) => (v.verdict === 'ask-partner' ? [{ groupId: v.groupId, domain: v.domain }] : []));
  if (asked.length === 0) return new Map();
  // Step 3: every partner at once.
  const answers = await askPartners(server, 'deaffiliate', userId, service, asked);
  // Step 7: drop the record of what the partner removed, or of a group its host no longer has; the stamp of the
  // others (refused, or not answered: the adapter undoes those at the host) comes off with it.
  const gone = [...answers.values()].filter((s) => s.status === 'deaffiliated' || (s.status === 'rejected' && s.reason === 'unknown-group')).map((s) => s.groupId);
  gone.forEach((g) => answers.set(g, { groupId: g, status: 'deaffiliated' }));
  const { events } = await server.store.changeAffiliations(userId, service, (held) => {
    const removed = gone.filter((g) => held.has(g));
    const w = { put: [], remove: removed, tellGms: [], events: statusEvents(userId, service, removed.map((groupId) => ({ groupId, status: 'deaffiliated' }))), result: undefined };
    return withAlongside({ ...w, forwarded: { clear: asked.map((a) => a.groupId), at: forwardedAt } }, alongside?.(answers));
  });
  server.notifier.publish(events);
  return answers;
}

export function statusOf(v: DeaffiliationVerdict, partnerStatus: Map<McUri, GroupStatus>): GroupStatus {
  switch (v.verdict) {
    case 'deaffiliate':
    case 'already-deaffiliated':
      return { groupId: v.groupId, status: 'deaffiliated' };
    case 'reject':
      return { groupId: v.groupId, status: 'rejected', reason: v.reason };
    case 'ask-partner':
      return partnerStatus.get(v.groupId) ?? { groupId: v.groupId, status: 'rejected', reason: 'partner-unreachable' };
  }
}

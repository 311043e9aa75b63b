// TS 23.280 10.X.3.2 steps 4-7 and 10.X.4.3 steps 4-6: the partner MC service server, host of the groups,
// decides a primary server's request for one of its users by its own group policy.
import type { AffiliationRequest, AffiliationResponse, ChangeRequest, ChangeTargetResult, GroupStatus } from '../domain/flows.ts';
import { decideAffiliation } from '../domain/decisions/affiliation.ts';
import { decideDeaffiliation } from '../domain/decisions/deaffiliation.ts';
import { homeOf, type McServiceServer } from './context.ts';
import { statusEvents } from './affiliate.ts';
import { badInput } from '../domain/errors.ts';

export async function affiliateAsGroupHost(server: McServiceServer, req: AffiliationRequest): Promise<AffiliationResponse> {
  const { mcServiceId: userId, service, groupIds } = req;
  // Steps 4a/4b: the group policy from the cache, or subscribed from the GMS.
  await server.gms.ensurePolicies(groupIds);
  // Step 5: policy checks only (the primary checked subscription and N2); step 6: store.
  const { result: verdicts, events } = await server.store.changeAffiliations(userId, service, (held) => {
    const v = decideAffiliation({ service, userId, profile: undefined, requested: groupIds, held, homeOf: (g) => homeOf(server, g) });
    const affiliated = v.filter((x) => x.verdict === 'affiliate').map((x) => x.groupId);
    return {
      put: affiliated.map((groupId) => ({ groupId, state: 'affiliated' as const })),
      remove: [],
      tellGms: affiliated.map((groupId) => ({ groupId, status: 'affiliated' as const })),
      // The user's clients are the primary's; the event is for this system's watchers of the groups (SIP face).
      events: statusEvents(userId, service, affiliated.map((groupId) => ({ groupId, status: 'affiliated' }))),
      result: v,
    };
  });
  server.notifier.publish(events);
  // Step 7b: the GMS is told by the commit or through the outbox (see affiliate.ts); step 7a is the answer below.
  if (verdicts.some((v) => v.verdict === 'affiliate')) server.tellGmsSoon();
  const status = verdicts.map((v): GroupStatus =>
    v.verdict === 'reject' ? { groupId: v.groupId, status: 'rejected', reason: v.reason } : v.verdict === 'ask-partner' ? { groupId: v.groupId, status: 'rejected', reason: 'unknown-group' } : { groupId: v.groupId, status: 'affiliated' },
  );
  return { mcServiceId: userId, service, groupIds, status };
}

/** `undo`: the primary withdraws an affiliation whose answer it never got (see decideDeaffiliation). */
export async function deaffiliateAsGroupHost(server: McServiceServer, req: AffiliationRequest, opts: { undo?: boolean } = {}): Promise<AffiliationResponse> {
  const { mcServiceId: userId, service, groupIds } = req;
  await server.gms.ensurePolicies(groupIds);
  // Step 4: affiliated, and allowed to leave? Step 5: remove.
  const { result: verdicts, events } = await server.store.changeAffiliations(userId, service, (held) => {
    const v = decideDeaffiliation({ userId, requested: groupIds, held, homeOf: (g) => homeOf(server, g), asGroupHost: true, undo: opts.undo === true });
    const removed = v.filter((x) => x.verdict === 'deaffiliate').map((x) => x.groupId);
    return {
      put: [],
      remove: removed,
      tellGms: removed.map((groupId) => ({ groupId, status: 'deaffiliated' as const })),
      events: statusEvents(userId, service, removed.map((groupId) => ({ groupId, status: 'deaffiliated' }))),
      result: v,
    };
  });
  server.notifier.publish(events);
  // Step 6b by the commit or via the outbox; step 6a is the answer.
  if (verdicts.some((v) => v.verdict === 'deaffiliate')) server.tellGmsSoon();
  const status = verdicts.map((v): GroupStatus => (v.verdict === 'reject' ? { groupId: v.groupId, status: 'rejected', reason: v.reason } : v.verdict === 'ask-partner' ? { groupId: v.groupId, status: 'rejected', reason: 'unknown-group' } : { groupId: v.groupId, status: 'deaffiliated' }));
  return { mcServiceId: userId, service, groupIds, status };
}

/**
 * 10.X.5.2.1 steps 4-8: an affiliation change request from the primary server for groups hosted here. The primary
 * already checked user 1's right and user 2's subscription and N2 (step 2); this system checks its group policy,
 * stores, updates its GMS and answers per target and group.
 */
export async function changeAsGroupHost(server: McServiceServer, req: ChangeRequest): Promise<ChangeTargetResult[]> {
  // 10.X.5.2.1 is mandatory mode only: a negotiated change reaches the host as affiliation and de-affiliation
  // requests once its target accepted (10.X.5.1.2 note 2), never as a change request applied at once.
  if (req.mode !== 'mandatory') throw badInput('mode', 'a group host applies mandatory changes only; a negotiated one comes as affiliation requests after its target accepts');
  return Promise.all(
    req.targets.map(async (target): Promise<ChangeTargetResult> => {
      // Steps 4a/4b, 5 and 6 for the groups to leave, then for the groups to join (the slots it frees count first).
      const left = req.deaffiliate.length ? (await deaffiliateAsGroupHost(server, { mcServiceId: target, service: req.service, groupIds: req.deaffiliate })).status : [];
      const joined = req.affiliate.length ? (await affiliateAsGroupHost(server, { mcServiceId: target, service: req.service, groupIds: req.affiliate })).status : [];
      // Step 8: the change response to the primary (step 7, the GMS update, went with the commit or leaves through the outbox).
      return { target, outcome: 'applied', status: [...joined, ...left] };
    }),
  );
}

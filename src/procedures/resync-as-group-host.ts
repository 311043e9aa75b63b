// Partner re-synchronisation, the group host's part (STAGE3.md "Server to server"; README "Partner
// re-synchronisation"): a primary server lists its users' affiliations to groups hosted here, one key range per
// page; this system compares with what it holds for users of that primary's domain only, de-affiliates what the
// primary does not hold, and reports what it holds but this system does not.
import { byUserAndService, compareAsGroupHost, compareResyncKeys, type ResyncKey } from '../domain/decisions/partner-resync.ts';
import type { ResyncPageAnswer } from '../ports/partner.ts';
import type { McServiceServer } from './context.ts';
import { deaffiliateAsGroupHost } from './affiliate-as-group-host.ts';

/** Records read per page at most: a primary that lost everything must not make one page read a whole store. */
export const HOST_READ_LIMIT = 1000;

export interface ResyncPageRequest {
  /** The primary's domain, from its server credential (never from the body). */
  origin: string;
  after?: ResyncKey;
  through?: ResyncKey;
  /** The primary's records in (after, through]; the face checked they are of `origin`'s users and groups hosted here. */
  affiliations: ResyncKey[];
  /** Records changed within this long are spared (a request may still be on its way to the primary). */
  graceMs: number;
}

export async function resyncAsGroupHost(server: McServiceServer, req: ResyncPageRequest): Promise<ResyncPageAnswer> {
  // Step 1: this system's records of the primary's users in its own groups, within the page's range (bounded).
  const held = await server.store.affiliationsAcrossDomains({
    userDomain: req.origin,
    groupDomain: server.domain,
    ...(req.after ? { after: req.after } : {}),
    ...(req.through ? { through: req.through } : {}),
    limit: HOST_READ_LIMIT,
  });
  // A full read may stop short of the page's end: compare only up to the last record read, and say so.
  const full = held.length === HOST_READ_LIMIT;
  const through = full ? { userId: held.at(-1)!.userId, service: held.at(-1)!.service, groupId: held.at(-1)!.groupId } : req.through;
  const primaryHolds = through ? req.affiliations.filter((k) => compareResyncKeys(k, through) <= 0) : req.affiliations;

  // Step 2: compare (the decision): remove, spare, or report missing.
  const verdict = compareAsGroupHost({ primaryHolds, hostHolds: held, now: server.clock.now(), graceMs: req.graceMs });

  // Step 3: de-affiliate at the group host what the primary does not hold, per user and service: store, GMS status
  // update (10.X.4.3 steps 5-6) as for an undo, since the primary never confirmed these to its user.
  const removed: ResyncKey[] = [];
  for (const { userId, service, groupIds } of byUserAndService(verdict.remove)) {
    const answer = await deaffiliateAsGroupHost(server, { mcServiceId: userId, service, groupIds }, { undo: true });
    for (const s of answer.status) if (s.status === 'deaffiliated') removed.push({ userId, service, groupId: s.groupId });
  }
  if (removed.length > 0) server.log.info({ partner: req.origin, removed }, 're-synchronisation removed affiliations the primary does not hold');

  // Step 4: the answer: how far this page was compared, what went, what was spared, what the primary should ask again.
  return { ...(through ? { through } : {}), removed, spared: verdict.spared, missing: verdict.missing, graceMs: req.graceMs };
}

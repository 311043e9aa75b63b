// The stored effect of an affiliation change request on one target user: de-affiliation (10.X.4) then
// affiliation (10.X.3), own groups in one write transaction (10.X.5.1.1 steps 3-6), partner groups through their
// hosts (10.X.5.2.1 steps 3-9).
import type { McUri } from '../domain/ids.ts';
import type { McService } from '../domain/services.ts';
import type { GroupStatus } from '../domain/flows.ts';
import { homeOf, type McServiceServer } from './context.ts';
import { affiliate, type AffiliationProgress, type StoredAlongside } from './affiliate.ts';
import { deaffiliate } from './deaffiliate.ts';
import { applyChangeLists } from './replace-affiliation-set.ts';

export interface AffiliationChange {
  target: McUri;
  service: McService;
  affiliate: McUri[];
  deaffiliate: McUri[];
}

/**
 * Statuses in the change's order: the groups to affiliate, then the groups to leave. `alongside` gets those statuses
 * inside the transaction that completes the change: the one write of a change of own groups, else that of the last
 * procedure that runs (none runs for an empty change: it is not called then).
 */
export async function applyAffiliationChange(server: McServiceServer, change: AffiliationChange, progress?: AffiliationProgress, alongside?: (status: GroupStatus[]) => StoredAlongside): Promise<GroupStatus[]> {
  // 10.X.5.1.1 steps 3-6, own groups only: both lists in one write, so a store failure leaves the change whole or none.
  const groups = [...change.affiliate, ...change.deaffiliate];
  if (!groups.some((g) => homeOf(server, g).home === 'partner') && new Set(groups).size === groups.length) {
    return applyChangeLists(server, change.target, change.service, change, alongside);
  }
  // Partner groups: the seed's two procedures, each in transactions of its own (their hosts are asked between them).
  const last = change.affiliate.length ? 'affiliate' : 'deaffiliate';
  // Leaving first frees N2 slots for the groups this same change asks to join.
  const left = change.deaffiliate.length ? (await deaffiliate(server, { mcServiceId: change.target, service: change.service, groupIds: change.deaffiliate }, last === 'deaffiliate' && alongside ? (r) => alongside(r.status) : undefined)).status : [];
  const joined = change.affiliate.length ? (await affiliate(server, { mcServiceId: change.target, service: change.service, groupIds: change.affiliate }, progress, alongside && ((r) => alongside([...r.status, ...left])))).status : [];
  return [...joined, ...left];
}

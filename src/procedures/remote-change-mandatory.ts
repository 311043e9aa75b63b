// TS 23.280 10.X.5.1.1 (and 10.X.5.2.1 for partner groups): an authorised user changes other users'
// affiliations without their approval.
import type { McUri } from '../domain/ids.ts';
import type { ChangeRequest, ChangeTargetResult, GroupStatus } from '../domain/flows.ts';
import { decideChangeRight } from '../domain/decisions/remote-change-right.ts';
import type { McServiceServer } from './context.ts';
import { applyAffiliationChange } from './apply-affiliation-change.ts';
import type { AffiliationProgress, StoredAlongside } from './affiliate.ts';
import { replaceAffiliationSetAsChange } from './replace-affiliation-set.ts';
import type { ChangeRecord, NewAuditEntry, NewEvent } from '../ports/store.ts';

/** What a face adds to the change of one target; the HTTP face adds nothing, the SIP face's on-behalf PUBLISH both. */
export interface MandatoryChangeHooks {
  /** Partner systems are deciding some of the target's groups (10.X.5.2.1): its watchers may be told they are affiliating. */
  progress?: (target: McUri) => AffiliationProgress;
  /** The face's audit entries of the target's outcome, stored in the transaction that applies the change and tells it. */
  audit?: (target: McUri, status: GroupStatus[]) => NewAuditEntry[];
  /**
   * The set a PUBLISH on the target's behalf states: it replaces the target's set, its lists decided in the per-user
   * write transaction (replaceAffiliationSetAsChange), so the target's own PUBLISH on another instance meanwhile is
   * replaced too. The request's lists, read before, then only name the groups the right refuses.
   */
  publishedSet?: readonly McUri[];
}

export async function remoteChangeMandatory(server: McServiceServer, req: ChangeRequest, id: string, hooks: MandatoryChangeHooks = {}): Promise<ChangeTargetResult[]> {
  // Step 1: client 1's affiliation change request, mandatory mode.
  const actor = server.profiles.get(req.mcServiceId);
  return Promise.all(
    req.targets.map(async (target): Promise<ChangeTargetResult> => {
      // Step 2: may user 1 change user 2's affiliations, for these groups?
      const right = decideChangeRight(req.mcServiceId, actor, target, server.domain);
      if (!right.allowed) return refusedTarget(target, req);
      const refusedByRight = [...req.affiliate, ...req.deaffiliate].filter((g) => !right.groupAllowed(g));
      // Step 7a: tell client 2, durably, so a client that is offline now gets it when it connects: the change record
      // and its event go in the transaction that completes the change (applied and told at once, or neither).
      // The change's lists: the request's, or for a published set what its transaction decided, with the refusals.
      let asked: ChangeRequest = hooks.publishedSet ? { ...req, affiliate: req.affiliate.filter((g) => !right.groupAllowed(g)), deaffiliate: req.deaffiliate.filter((g) => !right.groupAllowed(g)) } : req;
      const told = (status: GroupStatus[]): { changes: ChangeRecord[]; events: NewEvent[] } => ({
        changes: [{ id, target, actor: req.mcServiceId, service: req.service, mode: 'mandatory', affiliate: asked.affiliate, deaffiliate: asked.deaffiliate, state: 'told', deadline: 0, result: status, createdAt: server.clock.now() }],
        events: [{ userId: target, type: 'affiliation-change', data: { id, mode: 'mandatory', actor: req.mcServiceId, target, service: req.service, affiliate: asked.affiliate, deaffiliate: asked.deaffiliate, status } }],
      });
      let toldWithChange = false;
      const alongside = (decided: GroupStatus[]): StoredAlongside => {
        toldWithChange = true;
        const status = inRequestOrder(asked, decided, refusedByRight);
        return { ...told(status), audit: hooks.audit?.(target, status) };
      };
      // Steps 2 (subscription, N2), 3a/3b (policy), 4 (policy checks), 5 (store), 6 (GMS, by the commit or the outbox);
      // partner groups via their host (10.X.5.2.1 steps 3-9).
      const applied = hooks.publishedSet
        ? await replaceAffiliationSetAsChange(server, target, req.service, hooks.publishedSet, (g) => right.groupAllowed(g), hooks.progress?.(target), (decided, set) => {
            asked = { ...req, affiliate: [...set.affiliate, ...asked.affiliate.filter((g) => !right.groupAllowed(g))], deaffiliate: [...set.deaffiliate, ...asked.deaffiliate.filter((g) => !right.groupAllowed(g))] };
            return alongside(decided);
          })
        : await applyAffiliationChange(
            server,
            { target, service: req.service, affiliate: req.affiliate.filter((g) => right.groupAllowed(g)), deaffiliate: req.deaffiliate.filter((g) => right.groupAllowed(g)) },
            hooks.progress?.(target),
            alongside,
          );
      const status = inRequestOrder(asked, applied, refusedByRight);
      if (!toldWithChange) {
        // Nothing to apply (every group outside the right): the record and event are stored on their own (a face's
        // audit entry too, by the face: createChanges takes none).
        const { changes, events } = told(status);
        server.notifier.publish(await server.store.createChanges(changes, events));
      }
      // Step 8: answer client 1 now; step 7b (client 2's acknowledgement) may come later.
      return { target, outcome: 'applied', status };
    }),
  );
}

export function refusedTarget(target: McUri, req: ChangeRequest): ChangeTargetResult {
  return { target, outcome: 'not-authorised', status: [...req.affiliate, ...req.deaffiliate].map((groupId) => ({ groupId, status: 'rejected', reason: 'not-authorised' })) };
}

/** One status per group of the request, in its order (affiliate, then deaffiliate), whatever answered it. */
export function inRequestOrder(req: ChangeRequest, decided: GroupStatus[], refused: McUri[], refusedReason: 'not-authorised' = 'not-authorised'): GroupStatus[] {
  const byGroup = new Map(decided.map((s) => [s.groupId, s]));
  return [...req.affiliate, ...req.deaffiliate].map(
    (groupId): GroupStatus => (refused.includes(groupId) ? { groupId, status: 'rejected', reason: refusedReason } : (byGroup.get(groupId) ?? { groupId, status: 'rejected', reason: 'not-authorised' })),
  );
}

// TS 23.280 10.X.5.1.2: an authorised user proposes an affiliation change that the target user accepts or
// rejects within the configured time. The change request is a stored state machine (asked -> accepted |
// rejected | timed-out); the answer and the timeout race through one conditional update.
import type { McUri } from '../domain/ids.ts';
import type { ChangeRequest, ChangeTargetResult, GroupStatus } from '../domain/flows.ts';
import type { RefusalReason } from '../domain/reasons.ts';
import { decideChangeRight } from '../domain/decisions/remote-change-right.ts';
import { decideAffiliation } from '../domain/decisions/affiliation.ts';
import { decideDeaffiliation } from '../domain/decisions/deaffiliation.ts';
import { unknownUserProfile } from '../domain/profile.ts';
import { MusterError } from '../domain/errors.ts';
import type { ChangeRecord } from '../ports/store.ts';
import { homeOf, ownGroups, type McServiceServer } from './context.ts';
import { applyAffiliationChange } from './apply-affiliation-change.ts';
import { inRequestOrder, refusedTarget } from './remote-change-mandatory.ts';

/**
 * `asked`: called once every target's request is stored (step 3) or was refused outright, before the wait for the
 * answers: what a face that answers at once (SIP MESSAGE, 202) must wait for, so it acknowledges only what is stored.
 */
export async function remoteChangeNegotiated(server: McServiceServer, req: ChangeRequest, id: string, asked?: () => void): Promise<ChangeTargetResult[]> {
  // Step 1: client 1's affiliation change request.
  const actor = server.profiles.get(req.mcServiceId);
  await server.gms.ensurePolicies(ownGroups(server, [...req.affiliate, ...req.deaffiliate]));
  let toAsk = req.targets.length;
  const oneAsked = (): void => {
    if (--toAsk === 0) asked?.();
  };
  return Promise.all(
    req.targets.map(async (target): Promise<ChangeTargetResult> => {
      // Step 2: user 1's right, then user 2's subscription, group policy and N2 as things stand now.
      const right = decideChangeRight(req.mcServiceId, actor, target, server.domain);
      if (!right.allowed) {
        oneAsked();
        return refusedTarget(target, req);
      }
      const refused = await precheck(server, req, target);
      for (const g of [...req.affiliate, ...req.deaffiliate]) if (!right.groupAllowed(g)) refused.set(g, 'not-authorised');
      const proposal = { affiliate: req.affiliate.filter((g) => !refused.has(g)), deaffiliate: req.deaffiliate.filter((g) => !refused.has(g)) };
      const refusedStatus = [...refused].map(([groupId, reason]): GroupStatus => ({ groupId, status: 'rejected', reason }));
      if (proposal.affiliate.length + proposal.deaffiliate.length === 0) {
        oneAsked();
        return { target, outcome: 'applied', status: inRequestOrder(req, refusedStatus, []) };
      }

      // Step 3: send the request to client 2 (stored with its deadline, so a restart can still finish it).
      const settled = server.changeOutcomes.wait(id, target);
      const deadline = server.clock.now() + server.negotiationTimeoutMs;
      let events;
      try {
        events = await server.store.createChanges(
          [{ id, target, actor: req.mcServiceId, service: req.service, mode: 'negotiated', ...proposal, state: 'asked', deadline, result: null, createdAt: server.clock.now() }],
          [{ userId: target, type: 'affiliation-change', data: { id, mode: 'negotiated', actor: req.mcServiceId, target, service: req.service, ...proposal, deadline: new Date(deadline).toISOString() } }],
        );
      } catch (e) {
        // Not stored: no answer or timeout will ever settle it, so nothing may go on waiting for it.
        server.changeOutcomes.forget(id, target);
        throw e;
      }
      server.notifier.publish(events);
      oneAsked();
      // Note 1: no answer within the configured time aborts the change.
      server.clock.after(server.negotiationTimeoutMs, timeOutLater(server, id, target));

      // Steps 4-5: client 2 asks its user and answers (answerChange below); step 6: answer client 1.
      const record = await settled;
      const outcome = record.state === 'accepted' ? 'applied' : record.state === 'rejected' ? 'rejected-by-user' : 'timeout';
      return { target, outcome, status: inRequestOrder(req, [...refusedStatus, ...resultStatus(record)], []) };
    }),
  );
}

/** Step 5: client 2's affiliation change response. Acceptance runs the affiliation procedures on user 2's behalf. */
export async function answerChange(server: McServiceServer, caller: McUri, id: string, accept: boolean): Promise<{ id: string; state: ChangeRecord['state']; status: GroupStatus[] }> {
  const change = await server.store.getChange(id, caller);
  if (!change) throw new MusterError('not-found', `no affiliation change request ${id} for ${caller}`);
  if (change.mode === 'mandatory') {
    // 10.X.5.1.1 step 7b: the acknowledgement of a change that already stands.
    await server.store.transitionChange(id, caller, ['told'], 'acknowledged');
    return { id, state: 'acknowledged', status: resultStatus(change) };
  }
  // Note 1: past its deadline the change is aborted, also when the timer (maybe another instance's) has not fired yet.
  const late = server.clock.now() > change.deadline;
  if (late && change.state === 'asked') await timeOut(server, change);
  const won = !late && (await server.store.transitionChange(id, caller, ['asked'], accept ? 'accepted' : 'rejected'));
  if (!won) {
    const now = await server.store.getChange(id, caller);
    throw new MusterError('conflict', `affiliation change request ${id} is already ${now?.state ?? 'gone'}`);
  }
  return { id, state: accept ? 'accepted' : 'rejected', status: await finishAnswered(server, { ...change, state: accept ? 'accepted' : 'rejected' }) };
}

/** Answered changes being finished in this process, so the expiry round does not start one a second time. */
const finishing = new Set<string>();

/** Applies an accepted change (or records a rejection), stores the result, and wakes client 1's request. */
async function finishAnswered(server: McServiceServer, change: ChangeRecord): Promise<GroupStatus[]> {
  const key = `${change.id} ${change.target}`;
  finishing.add(key);
  try {
    return await applyAndSettle(server, change);
  } finally {
    finishing.delete(key);
  }
}

async function applyAndSettle(server: McServiceServer, change: ChangeRecord): Promise<GroupStatus[]> {
  const status =
    change.state === 'accepted'
      ? await applyAffiliationChange(server, change) // Note 2: partner groups through their host systems.
      : refusedAll(change, 'rejected-by-user');
  await server.store.transitionChange(change.id, change.target, [change.state], change.state, status);
  server.changeOutcomes.settle({ ...change, result: status });
  return status;
}

/** The timeout as a timer's callback: a store that fails then is logged, and the expiry round tries again each second. */
function timeOutLater(server: McServiceServer, id: string, target: McUri): () => void {
  return () => void timeOutChange(server, id, target).catch((err: unknown) => server.log.warn({ err, id, target }, 'negotiated affiliation change could not be timed out; the expiry round tries again'));
}

async function timeOutChange(server: McServiceServer, id: string, target: McUri): Promise<void> {
  const change = await server.store.getChange(id, target);
  if (!change) return;
  if (await timeOut(server, change)) return;
  // The answer won the race, possibly at another instance: settle from the store in case its news was lost.
  for (let i = 0; i < 50; i++) {
    const now = await server.store.getChange(id, target);
    if (!now || now.state === 'asked') return;
    if (now.result !== null) return server.changeOutcomes.settle(now);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Note 1: an asked change past its deadline ends as timed out; false when an answer (or another instance) ended it first. */
async function timeOut(server: McServiceServer, change: ChangeRecord): Promise<boolean> {
  const status = refusedAll(change, 'timeout');
  if (!(await server.store.transitionChange(change.id, change.target, ['asked'], 'timed-out', status))) return false;
  server.log.info({ id: change.id, target: change.target }, 'negotiated affiliation change timed out');
  server.changeOutcomes.settle({ ...change, state: 'timed-out', result: status });
  return true;
}

/** After a restart: time out what expired meanwhile, re-arm the rest, finish accepted changes a crash interrupted. */
export async function resumeChanges(server: McServiceServer): Promise<void> {
  for (const change of await server.store.changesInState('asked')) {
    const left = change.deadline - server.clock.now();
    if (left <= 0) await timeOutChange(server, change.id, change.target);
    else server.clock.after(left, timeOutLater(server, change.id, change.target));
  }
  for (const change of await server.store.changesInState('accepted')) if (change.result === null) await finishAnswered(server, change);
}

/** Past-deadline negotiations one expiry round times out; the rest wait for the next round, a second later. */
const EXPIRED_PER_ROUND = 500;

/**
 * Times out negotiations whose deadline passed, whichever instance asked (that one may be gone). Once each. Only
 * those past their deadline are read (by index), not every one still waiting.
 */
export async function expireChanges(server: McServiceServer): Promise<void> {
  const now = server.clock.now();
  for (const change of await server.store.changesPastDeadline(now, EXPIRED_PER_ROUND)) await timeOutChange(server, change.id, change.target);
  // Step 6 for an answer whose application failed (the store went away between the answer and its result): finished
  // again once the deadline is past (by then the first try has ended), by whichever instance; client 1 hears it then.
  for (const change of await server.store.changesAnsweredUnfinished(now, EXPIRED_PER_ROUND)) {
    // Still being finished here (its partners slow to answer): not a second time.
    if (finishing.has(`${change.id} ${change.target}`)) continue;
    await finishAnswered(server, change).catch((err: unknown) => server.log.warn({ err, id: change.id, target: change.target }, 'answered affiliation change not finished; tried again in a second'));
  }
}

function refusedAll(change: ChangeRecord, reason: RefusalReason): GroupStatus[] {
  return [...change.affiliate, ...change.deaffiliate].map((groupId) => ({ groupId, status: 'rejected', reason }));
}

function resultStatus(change: ChangeRecord): GroupStatus[] {
  return Array.isArray(change.result) ? (change.result as GroupStatus[]) : [];
}

/** Step 2's checks of user 2 without storing anything: the groups that would be refused, with why. */
async function precheck(server: McServiceServer, req: ChangeRequest, target: McUri): Promise<Map<McUri, RefusalReason>> {
  const records = await server.store.affiliationsOfUser(target, req.service);
  const held = new Map(records.map((r) => [r.groupId, r.state]));
  const homeOfGroup = (g: McUri) => homeOf(server, g);
  const refused = new Map<McUri, RefusalReason>();
  const leaving = decideDeaffiliation({ userId: target, requested: req.deaffiliate, held, homeOf: homeOfGroup, asGroupHost: false });
  for (const v of leaving) if (v.verdict === 'reject') refused.set(v.groupId, v.reason);
  // The slots this change frees count for the groups it asks to join.
  const heldAfter = new Map(held);
  for (const v of leaving) if (v.verdict !== 'reject') heldAfter.delete(v.groupId);
  const profile = server.profiles.get(target) ?? unknownUserProfile(target);
  for (const v of decideAffiliation({ service: req.service, userId: target, profile, requested: req.affiliate, held: heldAfter, homeOf: homeOfGroup })) {
    if (v.verdict === 'reject') refused.set(v.groupId, v.reason);
  }
  return refused;
}

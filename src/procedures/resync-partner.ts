// Partner re-synchronisation, the primary server's part (STAGE3.md "Server to server": after either side restarts,
// the two re-synchronise what was forwarded; TETRA calls this database recovery between switches). The primary
// sends the group host every record it holds of its users in that host's groups, a key range per page; the host
// removes what the primary does not hold and reports what it lost, which the primary then asks for again.
import type { McUri } from '../domain/ids.ts';
import type { McService } from '../domain/services.ts';
import type { RefusalReason } from '../domain/reasons.ts';
import { byUserAndService, decideReask, decideReaskOutcome, type ResyncKey } from '../domain/decisions/partner-resync.ts';
import type { McServiceServer } from './context.ts';
import { askPartners } from './ask-partners.ts';
import { statusEvents } from './affiliate.ts';

/** Records per page at most. */
export const RESYNC_PAGE = 200;
/** A page's records in JSON at most: under the 64 KiB body limit however long the IDs (up to 256 characters each). */
export const RESYNC_PAGE_BYTES = 48 * 1024;
/** Times in a row one page may be refused for now (429, or 503 marked `processed: false`) before the run gives up (and is tried later). */
export const RESYNC_RATE_LIMITED_ATTEMPTS = 20;
/** The longest wait for a page the host refused for now, whatever its Retry-After: the run is bounded, and keeps moving. */
export const RESYNC_RETRY_AFTER_MAX_MS = 5000;

export interface ResyncReport {
  partner: string;
  /** What started it: start-up, back after being unreachable, an undo that failed, the operator. */
  reason: string;
  /** Every page compared; false when the partner stopped answering or the run ran out of time. */
  complete: boolean;
  error?: string;
  /**
   * `loop-detected`: the route to the partner loops through intermediate nodes (508), a configuration error of the
   * partners' `via` routes that no later run fixes by itself; `error` has the node's refusal, naming the chain.
   */
  fault?: 'loop-detected';
  pages: number;
  /** De-affiliated at the partner: it held them, this system did not. */
  removed: ResyncKey[];
  /** Held only at the partner but changed too recently to remove; a later re-sync removes them. */
  spared: ResyncKey[];
  /** Held here but lost by the partner, asked again: agreed (affiliated again), dropped (refused now), or retry-later. */
  reasked: (ResyncKey & { outcome: 'agreed' | 'dropped' | 'retry-later'; reason?: RefusalReason })[];
  /** Lost by the partner but not asked again: a request for it was on its way, or the user left meanwhile. */
  skipped: (ResyncKey & { why: 'in-flight' | 'gone' })[];
  /** How long the partner spares recent records. */
  graceMs: number;
}

/** `startUp`: this system has just started, so the host is asked to re-synchronise the other way too (first page). */
export async function resyncPartner(server: McServiceServer, domain: string, opts: { reason: string; deadline: number; startUp?: boolean }): Promise<ResyncReport> {
  const report: ResyncReport = { partner: domain, reason: opts.reason, complete: false, pages: 0, removed: [], spared: [], reasked: [], skipped: [], graceMs: 0 };
  let after: ResyncKey | undefined;
  /** Pages refused for now in a row (rate-limited, or unavailable before anything was done). */
  let refusedForNow = 0;
  for (;;) {
    if (server.clock.now() > opts.deadline) return { ...report, error: 'the re-synchronisation ran out of time' };
    // Step 1: a page of this system's records of its users in the partner's groups, in key order; reserved ones
    // too, so the partner keeps what a request still on its way asked for.
    const read = await server.store.affiliationsAcrossDomains({ userDomain: server.domain, groupDomain: domain, ...(after ? { after } : {}), limit: RESYNC_PAGE });
    const rows = withinBytes(read);
    const through = read.length === RESYNC_PAGE || rows.length < read.length ? keyOf(rows.at(-1)!) : undefined;

    // Step 2: the page to the group host, with this system's server credential; it compares, removes what this
    // system does not hold (store, GMS status update) and answers what it lost.
    const startUp = opts.startUp === true && report.pages === 0;
    const sent = await server.partners.resync({ domain, ...(after ? { after } : {}), ...(through ? { through } : {}), affiliations: rows.map(keyOf), ...(startUp ? { startUp } : {}) });
    if (sent.kind === 'failed') return { ...report, error: sent.why };
    if (sent.kind === 'loop-detected') return { ...report, error: `508 loop-detected: ${sent.why}`, fault: 'loop-detected' };
    if (sent.kind === 'rate-limited' || sent.kind === 'unavailable') {
      // The host is busy (a storm of its partner's users), or a node on the way is at its bound: wait as it says, then
      // read this page again (step 1), so it holds what was affiliated meanwhile; the host would remove what a stale
      // page left out. Nothing of the page was done (a 429, or a 503 marked processed: false), so the run goes on.
      if (++refusedForNow >= RESYNC_RATE_LIMITED_ATTEMPTS) return { ...report, error: sent.kind === 'rate-limited' ? 'rate-limited by the partner' : `refused for now ${refusedForNow} times in a row: ${sent.why}` };
      // Waited out even if the partner announces a restart meanwhile: it asked for it, it is capped, and the restart's run follows this one.
      await new Promise<void>((resume) => server.clock.after(Math.min(sent.retryAfterMs, RESYNC_RETRY_AFTER_MAX_MS), resume));
      continue;
    }
    refusedForNow = 0;
    report.pages++;
    report.removed.push(...sent.answer.removed);
    report.spared.push(...sent.answer.spared);
    report.graceMs = sent.answer.graceMs;

    // Step 3: ask again for what the host lost.
    if (!(await reask(server, domain, sent.answer.missing, report, opts.deadline))) return { ...report, error: 'the re-synchronisation ran out of time' };

    // The next page starts where the host stopped comparing (it may stop short of this page's end).
    if (!sent.answer.through) return { ...report, complete: true };
    after = sent.answer.through;
  }
}

/** Step 3 in detail: an ordinary affiliation request to the host for each record it lost (10.X.3.2 steps 3 and 8); false when out of time. */
async function reask(server: McServiceServer, domain: string, missing: readonly ResyncKey[], report: ResyncReport, deadline: number): Promise<boolean> {
  for (const { userId, service, groupIds } of byUserAndService(missing)) {
    if (server.clock.now() > deadline) return false;
    // Step 3a: ask only what this system still holds as affiliated with nothing on its way (the decision): no request
    // or undo of this instance's, and no de-affiliation of any instance's (stamped in the store, deaffiliate.ts). The
    // stamps first: one taken off in between went with the record's removal, which the second read sees, or left the
    // record held (the host refused to remove it, or did not answer and is being told to keep it), asked again rightly.
    const leaving = await server.store.forwardedGroups(userId, service);
    const held = new Map((await server.store.affiliationsOfUser(userId, service)).map((r) => [r.groupId, r.state]));
    const ask: McUri[] = [];
    for (const groupId of groupIds) {
      const v = decideReask({ heldNow: held.get(groupId), inFlight: server.partners.inFlight({ userId, service, groupId }) || leaving.includes(groupId) });
      if (v.verdict === 'reask') ask.push(groupId);
      else report.skipped.push({ userId, service, groupId, why: v.why });
    }
    if (ask.length === 0) continue;
    // Step 3b (10.X.3.2 step 3): the affiliation request to the partner, as for the user's own request.
    const answers = await askPartners(server, 'affiliate', userId, service, ask.map((groupId) => ({ groupId, domain })));
    // Step 3c (10.X.3.2 step 8): keep what the host confirmed; drop what it refuses now and tell the user.
    const dropped: { groupId: McUri; reason: RefusalReason }[] = [];
    for (const groupId of ask) {
      const o = decideReaskOutcome(answers.get(groupId) ?? { groupId, status: 'rejected', reason: 'partner-unreachable' });
      if (o.outcome === 'drop') dropped.push({ groupId, reason: o.reason });
      report.reasked.push({ userId, service, groupId, outcome: o.outcome === 'drop' ? 'dropped' : o.outcome, ...(o.outcome === 'drop' ? { reason: o.reason } : {}) });
    }
    if (dropped.length > 0) await drop(server, report, userId, service, dropped);
  }
  return true;
}

/** The first records whose keys fit RESYNC_PAGE_BYTES as JSON (at least one, so every page moves on). */
function withinBytes(rows: readonly ResyncKey[]): ResyncKey[] {
  let bytes = 0;
  let n = 0;
  for (const r of rows) {
    bytes += Buffer.byteLength(JSON.stringify({ mcServiceId: r.userId, service: r.service, groupId: r.groupId })) + 1;
    if (bytes > RESYNC_PAGE_BYTES && n > 0) break;
    n++;
  }
  return rows.slice(0, n);
}

/**
 * The primary's record of an affiliation its host refuses now goes, and the user's clients learn why. No request
 * asked for it, so this system is the audit entry's subject (docs/audit.md `resync-drop`), stored with the change.
 */
async function drop(server: McServiceServer, run: ResyncReport, userId: McUri, service: McService, dropped: { groupId: McUri; reason: RefusalReason }[]): Promise<void> {
  const { events } = await server.store.changeAffiliations(userId, service, (held) => {
    const gone = dropped.filter((d) => held.get(d.groupId) === 'affiliated');
    return {
      put: [],
      remove: gone.map((d) => d.groupId),
      tellGms: [], // the host tells its own GMS
      events: statusEvents(userId, service, gone.map((d) => ({ groupId: d.groupId, status: 'rejected', reason: d.reason }))),
      audit:
        gone.length === 0
          ? []
          : [{ at: server.clock.now(), subject: server.domain, role: 'server', onBehalfOf: userId, action: 'resync-drop', service, groups: gone.map((d) => d.groupId), httpStatus: 200, errorCode: null, result: { partner: run.partner, why: run.reason, dropped: gone } }],
      result: undefined,
    };
  });
  server.notifier.publish(events);
  server.log.info({ user: userId, service, dropped }, 're-synchronisation: the partner refuses affiliations it had lost; dropped here');
}

const keyOf = (r: ResyncKey): ResyncKey => ({ userId: r.userId, service: r.service, groupId: r.groupId });

// The SIP face's part of the audit log (issue 7, docs/audit.md): every state-changing SIP request whose sender is
// known gets one entry, like an HTTP request: who (the sender), on whose behalf (the served or target user), what
// (PUBLISH set or affiliation command, service, groups) and what came of it (per-group statuses, or the refusal).
// The SIP status takes the place of the HTTP status. The answer leaves only after its entry is stored.
import { MusterError } from '../../domain/errors.ts';
import type { McUri } from '../../domain/ids.ts';
import type { McService } from '../../domain/services.ts';
import type { GroupStatus } from '../../domain/flows.ts';
import type { AuditAction, ChangeRecord, NewAuditEntry } from '../../ports/store.ts';
import type { SipFaceContext } from './face-context.ts';
import type { UasAnswer } from './publish-user-agent-server.ts';
import { refusalOf } from './sip-refusal.ts';

export interface AuditedSipRequest {
  sender: McUri;
  onBehalfOf: McUri;
  action: Extract<AuditAction, `sip-${string}`>;
  service: McService;
  groups: readonly string[];
}

/** What a UAS answers, with what came of it for the audit log; `result` undefined: nothing changed, no entry. */
export type AuditedAnswer = UasAnswer & { result?: unknown };

/**
 * The success entry of the request, for a procedure to store inside the transaction that completes the request
 * (issue 6: one commit and fsync before the answer instead of two). No I/O: it runs inside that transaction.
 */
export type AuditEntryOf = (status: number, result: unknown) => NewAuditEntry[];

/** Adds to the refusal entry's result what the request did after it failed (a PUBLISH: what it undid). */
export type RefusalNote = (extra: Record<string, unknown>) => void;

/** Runs `run` and stores its audit entry (success or refusal) before the answer goes back to the core. */
export async function audited(ctx: Pick<SipFaceContext, 'audit' | 'agent' | 'server'>, what: AuditedSipRequest, run: (entryOf: AuditEntryOf, noteRefusal: RefusalNote) => Promise<AuditedAnswer>): Promise<UasAnswer> {
  const base = { subject: what.sender, role: 'user', onBehalfOf: what.onBehalfOf, action: what.action, service: what.service, groups: [...what.groups] };
  let storedAlongside = false;
  const entryOf: AuditEntryOf = (status, result) => {
    storedAlongside = true;
    return [{ ...base, at: ctx.server.clock.now(), httpStatus: status, errorCode: null, result }];
  };
  let note: Record<string, unknown> = {};
  let answer: AuditedAnswer;
  try {
    answer = await run(entryOf, (extra) => void (note = { ...note, ...extra }));
  } catch (e) {
    // Also when the change was stored with its entry and a later step failed: the refusal the client got is on record too.
    const refusal = refusalOf(e, ctx.agent);
    const errorCode = e instanceof MusterError ? e.code : `sip-${refusal.status}`;
    await ctx.audit.record([{ ...base, at: ctx.server.clock.now(), httpStatus: refusal.status, errorCode, result: { error: { code: errorCode, message: e instanceof Error ? e.message : String(e) }, ...note } }]);
    throw e;
  }
  const { result, ...uas } = answer;
  // An entry stored with the request's last write is durable already (that write resolved after its fsync).
  if (result !== undefined && !storedAlongside) await ctx.audit.record([{ ...base, at: ctx.server.clock.now(), httpStatus: uas.status, errorCode: null, result }]);
  return uas;
}

/**
 * The entry POST /mc/v1/affiliation-changes/:id/answer stores for the target's answer to a change, for an answer the
 * SIP face read instead: `via` the PUBLISH that fulfilled it, or the MESSAGE's final response (2xx, 603 Decline).
 */
export function changeAnswerEntry(at: number, target: McUri, answer: { id: string; accept: boolean; state: ChangeRecord['state']; status: GroupStatus[] }, via: 'sip-publish' | 'sip-message'): NewAuditEntry {
  const result = { changeId: answer.id, accept: answer.accept, state: answer.state, status: answer.status, via };
  return { at, subject: target, role: 'user', onBehalfOf: target, action: 'change-answer', service: null, groups: answer.status.map((s) => s.groupId), httpStatus: 200, errorCode: null, result };
}

// Human output of the client commands: pure functions from an answer to lines, so the shapes are tested as tables.
import { REASON_TEXT, REFUSAL_REASONS, type RefusalReason } from '../domain/reasons.ts';
import type { AffiliationResponse, ChangeResponse } from '../domain/flows.ts';
import type { Wire, AffiliationChangeEventData, AffiliationStatusEventData, GroupMembers, PartnerResyncReport, UserAffiliations } from '../client/muster-client.ts';

type GroupStatusLike = Wire<AffiliationResponse['status']>[number];

const isReason = (r: string): r is RefusalReason => (REFUSAL_REASONS as readonly string[]).includes(r);

/** `rejected (n2-limit: the user is at the limit (N2) of simultaneous affiliations)`, or the status itself. */
export function statusText(s: GroupStatusLike): string {
  if (s.status !== 'rejected') return s.status;
  const reason: string = s.reason;
  return isReason(reason) ? `rejected (${reason}: ${REASON_TEXT[reason]})` : `rejected (${reason})`;
}

/** One line per group: `<group ID>  <status>`, the IDs padded to one column. */
export function groupStatusLines(status: readonly GroupStatusLike[], indent = ''): string[] {
  const width = Math.max(0, ...status.map((s) => s.groupId.length));
  return status.map((s) => `${indent}${s.groupId.padEnd(width)}  ${statusText(s)}`);
}

export function affiliationResponseLines(response: Wire<AffiliationResponse>): string[] {
  return groupStatusLines(response.status);
}

/** Per target: `<target>  <outcome>`, then its groups indented. */
export function changeResponseLines(response: Wire<ChangeResponse>): string[] {
  const width = Math.max(0, ...response.results.map((r) => r.target.length));
  return response.results.flatMap((r) => [`${r.target.padEnd(width)}  ${r.outcome}`, ...groupStatusLines(r.status, '  ')]);
}

export const anyRejected = (status: readonly GroupStatusLike[]): boolean => status.some((s) => s.status === 'rejected');

export const changeFullyApplied = (response: Wire<ChangeResponse>): boolean =>
  response.results.every((r) => r.outcome === 'applied' && !anyRejected(r.status));

/** `affiliation-change 7f3c negotiated from sip:dispatch@police.example (mcptt): affiliate A, B; deaffiliate C` */
export function changeEventLine(data: AffiliationChangeEventData): string {
  const parts = [
    ...(data.affiliate.length > 0 ? [`affiliate ${data.affiliate.join(', ')}`] : []),
    ...(data.deaffiliate.length > 0 ? [`deaffiliate ${data.deaffiliate.join(', ')}`] : []),
  ];
  const by = data.mode === 'negotiated' && data.deadline ? ` (answer by ${data.deadline})` : '';
  return `affiliation-change ${data.id} ${data.mode} from ${data.actor} (${data.service}): ${parts.join('; ') || 'no groups'}${by}`;
}

export function statusEventLines(data: AffiliationStatusEventData): string[] {
  return [`affiliation-status (${data.service})`, ...groupStatusLines(data.status, '  ')];
}

/** `muster status USER`: `<group>  <state>`, and the group's condition when it is no longer usable. */
export function userAffiliationLines(answer: UserAffiliations): string[] {
  const list = Array.isArray(answer.affiliations) ? answer.affiliations : [];
  const width = Math.max(0, ...list.map((a) => a.groupId.length));
  return list.map((a) => {
    const note = a.group === 'disabled' || a.group === 'deleted' || a.group === 'unroutable' ? `  (group ${a.group})` : '';
    return `${a.groupId.padEnd(width)}  ${a.state}${note}`;
  });
}

/** `muster status GROUP`: one affiliated member per line. */
export function groupMemberLines(answer: GroupMembers): string[] {
  return (Array.isArray(answer.members) ? answer.members : []).map((m) => m.mcServiceId);
}

/** `<id>  stored, in force at every instance`, or `<id>  stored, not yet in force at instances: A, B` (an operator's change). */
export function inForceLine(id: string, verb: 'stored' | 'deleted', notConfirmed: readonly string[]): string {
  return notConfirmed.length === 0 ? `${id}  ${verb}, in force at every instance` : `${id}  ${verb}, not yet in force at instances: ${notConfirmed.join(', ')}`;
}

/**
 * `<partner>  complete|incomplete (why)`, what a fault means for the operator, then one line per record removed at the
 * partner or asked again.
 */
export function resyncLines(r: PartnerResyncReport): string[] {
  const rec = (x: { mcServiceId: string; service: string; groupId: string }): string => `${x.mcServiceId}  ${x.groupId}  (${x.service})`;
  return [
    `${r.partner}  ${r.complete ? 'complete' : `incomplete (${r.error ?? 'unknown'})`}: ${r.removed.length} removed, ${r.reasked.length} asked again, ${r.spared.length} spared as recent`,
    ...(r.fault === 'loop-detected' ? [`  a configuration error: the \`via\` routes towards ${r.partner} lead in a loop through the intermediate nodes named; fix the partners' \`via\` entries (retrying will not; the system tries again on its back-off)`] : []),
    ...r.removed.map((x) => `  removed   ${rec(x)}`),
    ...r.reasked.map((x) => `  re-asked  ${rec(x)}  ${x.outcome}${x.reason ? ` (${x.reason})` : ''}`),
    ...r.spared.map((x) => `  spared    ${rec(x)}`),
    ...r.skipped.map((x) => `  skipped   ${rec(x)}  ${x.why}`),
  ];
}

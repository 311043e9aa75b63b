// RFC 3261 §20.43 (Warning) carrying refused groups: `399 <host> "<reason-code> <group> <text>"`, one per refused
// group, with the reason codes of src/domain/reasons.ts (the shared catalogue), so a client reads which group
// was refused and why from the 200 to its PUBLISH.
import type { GroupStatus } from '../../domain/flows.ts';
import { REASON_TEXT } from '../../domain/reasons.ts';

export function refusalWarnings(agent: string, status: readonly GroupStatus[]): [string, string][] {
  return status
    .filter((s): s is Extract<GroupStatus, { status: 'rejected' }> => s.status === 'rejected')
    .map((s) => ['Warning', `399 ${agent} "${s.reason} ${s.groupId} ${REASON_TEXT[s.reason].replace(/["\\]/g, "'")}"`]);
}

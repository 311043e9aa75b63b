// TS 24.379 §4.4 (Warning header field): a refused group is told with warn-code 399, our host name as warn-agent,
// and a warn-text that starts with an MCPTT 3-digit code (Table 4.4.2-2; the warn-text form is Table 4.4.2-1's
// ABNF). Muster's reason code (src/domain/reasons.ts) and the group follow in parentheses, so one header reads
//   Warning: 399 police.example "116 user is not part of the MCPTT group (not-member: sip:north@police.example)"
// MCVideo (TS 24.281 §4.4.2) and MCData (TS 24.282 §4.9) use the same numbers; only "MCPTT" in 116's text changes.
import type { GroupStatus } from '../../domain/flows.ts';
import type { RefusalReason } from '../../domain/reasons.ts';
import type { McService } from '../../domain/services.ts';
import type { HeaderList } from './outgoing-message.ts';

export interface McWarning {
  code: number;
  text: string;
}

const SERVICE_NAME: Record<McService, string> = { mcptt: 'MCPTT', mcvideo: 'MCVideo', mcdata: 'MCData' };

/**
 * Each Muster reason and the code that fits it best. Codes 102, 113, 115, 116 and 120 are the table's own words for
 * the same refusal. Code 100 is "function not allowed due to <detailed reason>", whose detailed reason is one of the
 * table's enumerated phrases ("user authorisation", "group definition") or free text; the table has no code for an
 * unreachable partner system or for an unanswered or declined remote change, so those use 100 with free text
 * rather than a code that means something else (110 is a declined *call*, 179 a partner that forbids the service).
 */
export const MC_WARNING: Record<RefusalReason, (service: McService) => McWarning> = {
  'unknown-group': () => ({ code: 113, text: 'group document does not exist' }),
  'group-disabled': () => ({ code: 115, text: 'group is disabled' }),
  'not-authorised': () => ({ code: 100, text: 'function not allowed due to user authorisation' }),
  'not-member': (s) => ({ code: 116, text: `user is not part of the ${SERVICE_NAME[s]} group` }),
  'n2-limit': () => ({ code: 102, text: 'too many simultaneous affiliations' }),
  'not-affiliated': () => ({ code: 120, text: 'user is not affiliated to this group' }),
  'deaffiliation-forbidden': () => ({ code: 100, text: 'function not allowed due to group definition' }),
  'partner-unreachable': () => ({ code: 100, text: "function not allowed due to group's home system not reachable" }),
  timeout: () => ({ code: 100, text: 'function not allowed due to no answer from the target user' }),
  'rejected-by-user': () => ({ code: 100, text: 'function not allowed due to the target user declining' }),
};

/** The warn-text of one refused group: `<code> <text> (<reason>: <group>)`, free of quotes and backslashes. */
export function warningText(service: McService, groupId: string, reason: RefusalReason): string {
  const w = MC_WARNING[reason](service);
  return `${w.code} ${w.text} (${reason}: ${groupId})`.replace(/["\\]/g, "'");
}

/** One `Warning: 399 <agent> "<warn-text>"` per refused group, in request order. */
export function refusalWarnings(agent: string, service: McService, status: readonly GroupStatus[]): HeaderList {
  return status
    .filter((s): s is Extract<GroupStatus, { status: 'rejected' }> => s.status === 'rejected')
    .map((s) => ['Warning', `399 ${agent} "${warningText(service, s.groupId, s.reason)}"`]);
}

/**
 * The Warning of a request refused as a whole for want of a right (403: acting for another user, watching one,
 * asking a change): code 100 with the table's own detailed reason (Table 4.4.2-2).
 */
export function forbiddenWarning(agent: string): [string, string] {
  const w = MC_WARNING['not-authorised']('mcptt'); // the same words for every service
  return ['Warning', `399 ${agent} "${w.code} ${w.text}"`];
}

/** What a client reads back out of one Warning value (the inverse of refusalWarnings). */
export function readRefusalWarning(value: string): { agent: string; code: number; text: string; reason: string; groupId: string } | undefined {
  const m = /^399 (\S+) "(\d{3}) (.*) \(([a-z0-9-]+): (\S+)\)"$/.exec(value.trim());
  if (!m) return undefined;
  return { agent: m[1]!, code: Number(m[2]), text: m[3]!, reason: m[4]!, groupId: m[5]! };
}

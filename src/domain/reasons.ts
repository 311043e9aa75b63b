// Refusal reasons per group (SPEC.md "Status per group"): one stable code each, shared by every face.

export const REFUSAL_REASONS = [
  'unknown-group',
  'group-disabled',
  'not-authorised',
  'not-member',
  'n2-limit',
  'not-affiliated',
  'deaffiliation-forbidden',
  'partner-unreachable',
  'timeout',
  'rejected-by-user',
] as const;
export type RefusalReason = (typeof REFUSAL_REASONS)[number];

/** One human sentence per reason, for CLI output, SIP Warning text and logs. */
export const REASON_TEXT: Record<RefusalReason, string> = {
  'unknown-group': 'the group does not exist for this MC service',
  'group-disabled': 'the group is disabled',
  'not-authorised': 'the user subscription does not allow this service or group',
  'not-member': 'the group policy does not admit this user',
  'n2-limit': 'the user is at the limit (N2) of simultaneous affiliations',
  'not-affiliated': 'the user is not affiliated to this group',
  'deaffiliation-forbidden': 'the group policy does not let this user leave the group',
  'partner-unreachable': "the group's home system (partner system or group management server) did not answer",
  timeout: 'the target user did not answer in time',
  'rejected-by-user': 'the target user rejected the change',
};

/**
 * An own group whose policy the GMS could not be asked for (down or slow) and none is cached. It is told as
 * partner-unreachable, the group's home not answering, until the SIP Warning table (src/faces/sip/warning.ts) has a
 * row for a code of its own: one line here then gives it `gms-unavailable`.
 */
export const GMS_UNAVAILABLE: RefusalReason = 'partner-unreachable';

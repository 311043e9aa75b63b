// The information flows of TS 23.280 clause 10.X.2 as schemas: one definition gives runtime checks, types and OpenAPI.
import { Type, type Static } from 'typebox';
import { MC_SERVICES } from './services.ts';
import { REFUSAL_REASONS, type RefusalReason } from './reasons.ts';
import type { McUri } from './ids.ts';
import type { McService } from './services.ts';

/** Bounds that keep one request cheap: a client affiliates to tens of groups, not thousands. */
export const LIMITS = { groupsPerRequest: 100, targetsPerChange: 100, uriLength: 256 } as const;

// The schema only shapes the string; parseMcUri (ids.ts) is the one place that decides what a valid ID is.
const Uri = Type.String({ minLength: 1, maxLength: LIMITS.uriLength, pattern: '^(?:[Ss][Ii][Pp][Ss]?|[Tt][Ee][Ll]):\\S+$', description: 'MC service ID or MC service group ID, e.g. sip:alice@police.example' });
const Service = Type.Enum(MC_SERVICES, { description: 'MC service' });
const GroupIdList = Type.Array(Uri, { minItems: 1, maxItems: LIMITS.groupsPerRequest });

/** 10.X.2.1 MC service group affiliation request, and 10.X.2.4 de-affiliation request (same elements). */
export const AffiliationRequestSchema = Type.Object(
  { mcServiceId: Uri, service: Service, groupIds: GroupIdList },
  { additionalProperties: false },
);
export type AffiliationRequestBody = Static<typeof AffiliationRequestSchema>;

/** Affiliation change request (10.X.5.1.1 step 1, 10.X.5.1.2 step 1): targets, groups to join and to leave, mode. */
export const ChangeRequestSchema = Type.Object(
  {
    mcServiceId: Uri,
    service: Service,
    mode: Type.Union([Type.Literal('mandatory'), Type.Literal('negotiated')]),
    targets: Type.Array(Uri, { minItems: 1, maxItems: LIMITS.targetsPerChange }),
    affiliate: Type.Optional(Type.Array(Uri, { maxItems: LIMITS.groupsPerRequest })),
    deaffiliate: Type.Optional(Type.Array(Uri, { maxItems: LIMITS.groupsPerRequest })),
  },
  { additionalProperties: false },
);
export type ChangeRequestBody = Static<typeof ChangeRequestSchema>;

/** Client 2's affiliation change response (10.X.5.1.1 step 7b, 10.X.5.1.2 step 5). */
export const ChangeAnswerSchema = Type.Object({ accept: Type.Boolean() }, { additionalProperties: false });

export const GroupStatusSchema = Type.Object({
  groupId: Type.String(),
  status: Type.Union([Type.Literal('affiliated'), Type.Literal('deaffiliated'), Type.Literal('rejected')]),
  reason: Type.Optional(Type.Enum(REFUSAL_REASONS)),
});

export const AffiliationResponseSchema = Type.Object({
  mcServiceId: Type.String(),
  service: Service,
  groupIds: Type.Array(Type.String()),
  status: Type.Array(GroupStatusSchema),
});

export const CHANGE_OUTCOMES = ['applied', 'rejected-by-user', 'timeout', 'not-authorised'] as const;
export type ChangeOutcome = (typeof CHANGE_OUTCOMES)[number];

export const ChangeResponseSchema = Type.Object({
  id: Type.String(),
  mcServiceId: Type.String(),
  service: Service,
  mode: Type.String(),
  results: Type.Array(
    Type.Object({
      target: Type.String(),
      outcome: Type.Enum(CHANGE_OUTCOMES),
      status: Type.Array(GroupStatusSchema),
    }),
  ),
});

// The validated flows the procedures receive: IDs already normalised, never raw strings.

export type GroupStatus =
  | { groupId: McUri; status: 'affiliated' | 'deaffiliated' }
  | { groupId: McUri; status: 'rejected'; reason: RefusalReason };

/** A refusal because the group's home system did not answer: asking again later may succeed, unlike any other. */
export function notAnsweredYet(s: GroupStatus): boolean {
  return s.status === 'rejected' && s.reason === 'partner-unreachable';
}

export interface AffiliationRequest {
  mcServiceId: McUri;
  service: McService;
  groupIds: McUri[];
}
export type DeaffiliationRequest = AffiliationRequest;

export interface AffiliationResponse {
  mcServiceId: McUri;
  service: McService;
  groupIds: McUri[];
  status: GroupStatus[];
}

export type ChangeMode = 'mandatory' | 'negotiated';

export interface ChangeRequest {
  mcServiceId: McUri;
  service: McService;
  mode: ChangeMode;
  targets: McUri[];
  affiliate: McUri[];
  deaffiliate: McUri[];
}

export interface ChangeTargetResult {
  target: McUri;
  outcome: ChangeOutcome;
  status: GroupStatus[];
}

export interface ChangeResponse {
  id: string;
  mcServiceId: McUri;
  service: McService;
  mode: ChangeMode;
  results: ChangeTargetResult[];
}

// GET /admin/v1/audit: the operator's query of the audit log (docs/audit.md). Entries come oldest first; page with
// `after` = the previous page's `next`.
import type { FastifyInstance } from 'fastify';
import { Type, type Static } from 'typebox';
import { badInput } from '../../domain/errors.ts';
import { AUDIT_ACTIONS, type AuditEntry } from '../../ports/store.ts';
import { authenticate, type HttpFaceDeps } from './app.ts';

export const AUDIT_QUERY_MAX = 1000;
const AUDIT_QUERY_DEFAULT = 100;

const INSTANT = 'ISO 8601 timestamp with a time zone (2025-01-31T12:00:00Z) or epoch milliseconds';
const Instant = (description: string) => Type.String({ minLength: 1, maxLength: 40, description: `${description}: ${INSTANT}` });
const AuditQuerySchema = Type.Object(
  {
    subject: Type.Optional(Type.String({ minLength: 1, maxLength: 256, description: "who: the credential's subject (an MC service ID, 'operator', or a partner system's domain)" })),
    onBehalfOf: Type.Optional(Type.String({ minLength: 1, maxLength: 256, description: 'on whose behalf: the MC service ID whose affiliations or profile changed' })),
    since: Type.Optional(Instant('entries at or after this instant')),
    until: Type.Optional(Instant('entries before this instant')),
    limit: Type.Optional(Type.String({ pattern: '^[0-9]{1,9}$', description: `at most this many entries, 1-${AUDIT_QUERY_MAX} (default ${AUDIT_QUERY_DEFAULT})` })),
    after: Type.Optional(Type.String({ pattern: '^[0-9]{1,15}$', description: 'only entries with a larger id: the `next` of the previous page' })),
  },
  { additionalProperties: false },
);
type AuditQuery = Static<typeof AuditQuerySchema>;

const Nullable = <T extends ReturnType<typeof Type.String>>(t: T) => Type.Union([t, Type.Null()]);
const AuditEntrySchema = Type.Object({
  id: Type.Integer(),
  at: Type.String({ description: 'ISO 8601, when the answer was ready' }),
  subject: Type.String(),
  role: Type.String({ description: 'user, operator or server' }),
  onBehalfOf: Nullable(Type.String()),
  action: Type.Enum(AUDIT_ACTIONS),
  service: Nullable(Type.String()),
  groups: Type.Array(Type.String()),
  httpStatus: Type.Integer(),
  errorCode: Nullable(Type.String()),
  result: Type.Unknown({ description: 'per-group statuses (and change outcome), the stored document, or the error body' }),
});
const AuditPageSchema = Type.Object({
  entries: Type.Array(AuditEntrySchema),
  next: Type.Union([Type.Integer(), Type.Null()], { description: 'pass as `after` for the next page; null when this page was the last' }),
});
const ErrorSchema = Type.Object({ error: Type.Object({ code: Type.String(), message: Type.String(), field: Type.Optional(Type.String()) }) });

/** Epoch ms from either spelling, or a 400 that says which field and why. */
export function parseInstant(raw: string, field: string): number {
  if (/^[0-9]{1,15}$/.test(raw)) return Number(raw);
  const iso = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:\d{2})$/i;
  const ms = iso.test(raw) ? Date.parse(raw) : NaN;
  if (Number.isNaN(ms)) throw badInput(field, 'must be an ISO 8601 timestamp with a time zone (e.g. 2025-01-31T12:00:00Z) or epoch milliseconds');
  return ms;
}

export async function auditRoutes(app: FastifyInstance, deps: HttpFaceDeps): Promise<void> {
  app.get<{ Querystring: AuditQuery }>(
    '/audit',
    {
      schema: {
        summary: 'The audit log: who changed what on whose behalf, and the result; oldest first, filtered, paged (operator only)',
        querystring: AuditQuerySchema,
        response: { 200: AuditPageSchema, 400: ErrorSchema, 401: ErrorSchema, 403: ErrorSchema },
      },
    },
    async (req) => {
      await authenticate(req, deps, ['operator']);
      const q = req.query;
      const limit = q.limit === undefined ? AUDIT_QUERY_DEFAULT : Number(q.limit);
      if (limit < 1 || limit > AUDIT_QUERY_MAX) throw badInput('limit', `must be between 1 and ${AUDIT_QUERY_MAX}`);
      const since = q.since === undefined ? undefined : parseInstant(q.since, 'since');
      const until = q.until === undefined ? undefined : parseInstant(q.until, 'until');
      if (since !== undefined && until !== undefined && since > until) throw badInput('until', 'is before since');
      const entries = await deps.server.store.queryAudit({
        limit,
        ...(q.subject !== undefined ? { subject: q.subject } : {}),
        ...(q.onBehalfOf !== undefined ? { onBehalfOf: q.onBehalfOf } : {}),
        ...(since !== undefined ? { since } : {}),
        ...(until !== undefined ? { until } : {}),
        ...(q.after !== undefined ? { afterId: Number(q.after) } : {}),
      });
      return { entries: entries.map(render), next: entries.length === limit ? entries[entries.length - 1]!.id : null };
    },
  );
}

function render(e: AuditEntry): Omit<AuditEntry, 'at'> & { at: string } {
  return { ...e, at: new Date(e.at).toISOString() };
}

// The audit log's recording side (docs/audit.md): after every state-changing HTTP request, one entry per user whose
// affiliations (or profile) it concerned: who (credential subject and role), on whose behalf, what (flow, service,
// groups) and what came of it (per-group statuses or the error code). The one place that builds entries: routes
// do not. The answer waits until its entry is stored (with SQLite it rides on the group commit's shared fsync), so
// an acknowledged change is never missing from the log; a failed audit write is logged, never the user's failure.
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { AuditAction, NewAuditEntry } from '../../ports/store.ts';
import { AuditRecorder } from '../../adapters/audit-recorder.ts';
import type { WriteAlongside } from '../../procedures/affiliate.ts';
import { parseMcUri } from '../../domain/ids.ts';
import type { Credential } from './credentials.ts';
import type { HttpFaceDeps } from './app.ts';

/** The audited routes (method and full route path) and how each names its flow. */
const AUDITED: ReadonlyMap<string, AuditAction | 'change'> = new Map<string, AuditAction | 'change'>([
  ['POST /mc/v1/affiliations', 'affiliation'],
  ['POST /mc/v1/deaffiliations', 'de-affiliation'],
  ['POST /mc/v1/affiliation-changes', 'change'],
  ['POST /mc/v1/affiliation-changes/:id/answer', 'change-answer'],
  ['POST /federation/v1/affiliations', 'federation-affiliation'],
  ['POST /federation/v1/deaffiliations', 'federation-de-affiliation'],
  ['POST /federation/v1/affiliation-changes', 'federation-change'],
  ['POST /federation/v1/affiliation-resyncs', 'federation-resync'],
  ['POST /admin/v1/partner-resyncs', 'partner-resync'],
  ['PUT /gms/v1/groups/:id', 'gms-group-put'],
  ['DELETE /gms/v1/groups/:id', 'gms-group-delete'],
  ['PUT /admin/v1/users/:id', 'profile-put'],
  ['DELETE /admin/v1/users/:id', 'profile-delete'],
]);

/** Adds the hook that records audited requests; register before the routes. */
export function registerAudit(app: FastifyInstance, deps: HttpFaceDeps): void {
  const recorder = new AuditRecorder(deps.server.store, deps.log);
  app.addHook('onSend', async (req, reply, payload) => {
    if (req.auditStored) return payload; // stored in the change's own transaction (auditAlongside)
    try {
      const entries = auditEntries(req, reply, payload, deps.server.clock.now());
      await recorder.record(entries);
    } catch (err) {
      deps.log.error({ err, url: req.url }, 'audit entry not built');
    }
    return payload;
  });
}

/** The entries of one answered request; none for unaudited routes and for callers without a verified credential. */
export function auditEntries(req: FastifyRequest, reply: FastifyReply, payload: unknown, at: number): NewAuditEntry[] {
  const kind = AUDITED.get(`${req.method} ${req.routeOptions.url ?? ''}`);
  const cred: Credential | undefined = req.credential;
  // No credential: refused before anyone was identified (401, or a body the schema refused): nothing to attribute.
  if (!kind || !cred) return [];
  const body = obj(req.body);
  const params = obj(req.params);
  const answer = parseAnswer(payload);
  const failed = reply.statusCode >= 400;
  const errorCode = failed ? (str(obj(obj(answer)['error'])['code']) ?? 'internal') : null;
  const base = { at, subject: cred.subject, role: cred.role, httpStatus: reply.statusCode, errorCode };
  const service = str(body['service']) ?? null;
  const ok = (result: unknown): unknown => (failed ? answer : result);

  switch (kind) {
    case 'affiliation':
    case 'de-affiliation':
    case 'federation-affiliation':
    case 'federation-de-affiliation':
      return [{ ...base, action: kind, onBehalfOf: id(body['mcServiceId']), service, groups: strs(body['groupIds']), result: ok({ status: obj(answer)['status'] ?? null }) }];
    case 'change':
    case 'federation-change': {
      const action: AuditAction = kind === 'federation-change' ? kind : body['mode'] === 'negotiated' ? 'change-negotiated' : 'change-mandatory';
      const affiliate = strs(body['affiliate']);
      const deaffiliate = strs(body['deaffiliate']);
      const results = Array.isArray(obj(answer)['results']) ? (obj(answer)['results'] as unknown[]).map(obj) : [];
      const targets = strs(body['targets']).map((t) => id(t) ?? t);
      // One entry per target, so each user's entries are found by onBehalfOf; the change id ties them together.
      return (targets.length > 0 ? targets : [null]).map((target) => {
        const mine = results.find((r) => r['target'] === target);
        return {
          ...base,
          action,
          onBehalfOf: target,
          service,
          groups: [...affiliate, ...deaffiliate],
          result: ok({ changeId: obj(answer)['id'] ?? null, mode: body['mode'] ?? null, affiliate, deaffiliate, outcome: mine?.['outcome'] ?? null, status: mine?.['status'] ?? null }),
        };
      });
    }
    case 'federation-resync': {
      if (failed) return [{ ...base, action: kind, onBehalfOf: null, service: null, groups: [], result: answer }];
      // One entry per user whose records this page removed here; a page that changed nothing leaves none.
      const removed = (Array.isArray(obj(answer)['removed']) ? (obj(answer)['removed'] as unknown[]) : []).map(obj);
      const byUser = new Map<string, { service: string | null; groups: string[] }>();
      for (const r of removed) {
        const key = `${str(r['mcServiceId']) ?? ''} ${str(r['service']) ?? ''}`;
        const entry = byUser.get(key) ?? { service: str(r['service']) ?? null, groups: [] };
        entry.groups.push(str(r['groupId']) ?? '');
        byUser.set(key, entry);
      }
      return [...byUser].map(([key, e]) => ({ ...base, action: kind, onBehalfOf: key.split(' ')[0] ?? null, service: e.service, groups: e.groups, result: { removed: e.groups } }));
    }
    case 'partner-resync': {
      // The operator's run: one entry, what it did per partner (records dropped here are named, the rest counted).
      const resyncs = (Array.isArray(obj(answer)['resyncs']) ? (obj(answer)['resyncs'] as unknown[]) : []).map(obj);
      const summary = resyncs.map((r) => ({
        partner: r['partner'] ?? null,
        complete: r['complete'] ?? null,
        removed: Array.isArray(r['removed']) ? r['removed'].length : 0,
        reasked: Array.isArray(r['reasked']) ? r['reasked'].length : 0,
        dropped: (Array.isArray(r['reasked']) ? (r['reasked'] as unknown[]) : []).map(obj).filter((x) => x['outcome'] === 'dropped'),
      }));
      return [{ ...base, action: kind, onBehalfOf: null, service: null, groups: [], result: ok({ partner: body['partner'] ?? null, resyncs: summary }) }];
    }
    case 'change-answer': {
      const status = Array.isArray(obj(answer)['status']) ? (obj(answer)['status'] as unknown[]) : [];
      const groups = status.map((s) => str(obj(s)['groupId'])).filter((g): g is string => g !== undefined);
      return [{ ...base, action: kind, onBehalfOf: cred.subject, service: null, groups, result: ok({ changeId: params['id'] ?? null, accept: body['accept'] ?? null, state: obj(answer)['state'] ?? null, status }) }];
    }
    case 'gms-group-put':
    case 'gms-group-delete':
      // A deletion's answer is empty (204), or says which instances it is not yet in force at (202, in-force.ts).
      return [{ ...base, action: kind, onBehalfOf: null, service: null, groups: strs([params['id']]), result: ok(answer ?? null) }];
    case 'profile-put':
    case 'profile-delete':
      return [{ ...base, action: kind, onBehalfOf: id(params['id']), service: null, groups: [], result: ok(answer ?? null) }];
    default:
      return [];
  }
}

/**
 * The entry of an affiliation or de-affiliation request, built from its final response inside the transaction that
 * completes it (issue 6): the answer then waits for one commit and fsync instead of a second one for the entry. The
 * same entry auditEntries would build from the answer; the route marks the request `auditStored` once it succeeded.
 */
export function auditAlongside(req: FastifyRequest, action: 'affiliation' | 'de-affiliation', at: () => number): WriteAlongside {
  const cred = req.credential!;
  const body = obj(req.body);
  return (response) => ({
    audit: [{ at: at(), subject: cred.subject, role: cred.role, httpStatus: 200, errorCode: null, action, onBehalfOf: response.mcServiceId, service: response.service, groups: strs(body['groupIds']), result: { status: response.status } }],
  });
}

/** The answer as sent: JSON text for every audited route (undefined for an empty 204). */
function parseAnswer(payload: unknown): unknown {
  if (typeof payload !== 'string' || payload.length === 0) return undefined;
  try {
    return JSON.parse(payload) as unknown;
  } catch {
    return payload;
  }
}

/** An ID as the store keeps it (normalised), so onBehalfOf filters match however the client spelled it. */
function id(v: unknown): string | null {
  if (typeof v !== 'string') return null;
  try {
    return parseMcUri(v);
  } catch {
    return v;
  }
}

function obj(v: unknown): Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : {};
}

function str(v: unknown): string | undefined {
  return typeof v === 'string' ? v : undefined;
}

function strs(v: unknown): string[] {
  return Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : [];
}

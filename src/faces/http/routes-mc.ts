// /mc/v1: the MC service client's flows (CONTRACT.md "Client -> MC service server").
import { randomUUID } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import { Type } from 'typebox';
import {
  AffiliationRequestSchema,
  AffiliationResponseSchema,
  ChangeAnswerSchema,
  ChangeRequestSchema,
  ChangeResponseSchema,
  type AffiliationRequestBody,
  type ChangeRequestBody,
} from '../../domain/flows.ts';
import { parseAffiliationRequest, parseChangeRequest, parseId } from '../../domain/parse-flows.ts';
import { MusterError } from '../../domain/errors.ts';
import { domainOf, type McUri } from '../../domain/ids.ts';
import { MC_SERVICES, type McService } from '../../domain/services.ts';
import { mayView, mayViewMembers } from '../../domain/decisions/remote-change-right.ts';
import { affiliate } from '../../procedures/affiliate.ts';
import { deaffiliate } from '../../procedures/deaffiliate.ts';
import { remoteChangeMandatory } from '../../procedures/remote-change-mandatory.ts';
import { answerChange, remoteChangeNegotiated } from '../../procedures/remote-change-negotiated.ts';
import { homeOf } from '../../procedures/context.ts';
import { authenticate, type HttpFaceDeps } from './app.ts';
import { streamEvents } from './event-stream.ts';
import { auditAlongside } from './audit.ts';
import { toErrorReply } from './error-reply.ts';

/** Event streams one user may hold open at one instance (its clients, and a few reconnecting). */
export const MAX_EVENT_STREAMS_PER_USER = 16;

const ServiceQuery = Type.Object({ service: Type.Optional(Type.Enum(MC_SERVICES)) }, { additionalProperties: false });
const IdParam = Type.Object({ id: Type.String({ minLength: 1, maxLength: 256 }) });
const ErrorSchema = Type.Object({ error: Type.Object({ code: Type.String(), message: Type.String(), field: Type.Optional(Type.String()) }) });
/** 415: a body whose Content-Type is not application/json, or that has none (unsupported-media-type naming content-type). */
const errors = { 400: ErrorSchema, 401: ErrorSchema, 403: ErrorSchema, 415: ErrorSchema };

/** The body speaks for the credential's user only (CONTRACT.md): a different mcServiceId is refused. */
function requireSelf(credentialUser: string, bodyUser: McUri): void {
  if (credentialUser !== bodyUser) throw new MusterError('forbidden', `${bodyUser} is not the credential's user ${credentialUser}`, 'mcServiceId');
}

export async function mcRoutes(app: FastifyInstance, deps: HttpFaceDeps): Promise<void> {
  const server = deps.server;

  app.post<{ Body: AffiliationRequestBody }>(
    '/affiliations',
    { schema: { summary: 'MC service group affiliation request (TS 23.280 10.X.3)', body: AffiliationRequestSchema, response: { 200: AffiliationResponseSchema, ...errors } } },
    async (req) => {
      const cred = await authenticate(req, deps, ['user']);
      const flow = parseAffiliationRequest(req.body);
      requireSelf(cred.subject, flow.mcServiceId);
      const response = await affiliate(server, flow, undefined, auditAlongside(req, 'affiliation', () => server.clock.now()));
      req.auditStored = true;
      return response;
    },
  );

  app.post<{ Body: AffiliationRequestBody }>(
    '/deaffiliations',
    { schema: { summary: 'MC service group de-affiliation request (TS 23.280 10.X.4)', body: AffiliationRequestSchema, response: { 200: AffiliationResponseSchema, ...errors } } },
    async (req) => {
      const cred = await authenticate(req, deps, ['user']);
      const flow = parseAffiliationRequest(req.body);
      requireSelf(cred.subject, flow.mcServiceId);
      const response = await deaffiliate(server, flow, auditAlongside(req, 'de-affiliation', () => server.clock.now()));
      req.auditStored = true;
      return response;
    },
  );

  app.post<{ Body: ChangeRequestBody }>(
    '/affiliation-changes',
    { schema: { summary: 'Affiliation change request by an authorised user (TS 23.280 10.X.5)', body: ChangeRequestSchema, response: { 200: ChangeResponseSchema, ...errors } } },
    async (req) => {
      const cred = await authenticate(req, deps, ['user']);
      const flow = parseChangeRequest(req.body);
      requireSelf(cred.subject, flow.mcServiceId);
      const id = randomUUID();
      const results = flow.mode === 'mandatory' ? await remoteChangeMandatory(server, flow, id) : await remoteChangeNegotiated(server, flow, id);
      return { id, mcServiceId: flow.mcServiceId, service: flow.service, mode: flow.mode, results };
    },
  );

  app.post<{ Params: { id: string }; Body: { accept: boolean } }>(
    '/affiliation-changes/:id/answer',
    { schema: { summary: "Client 2's affiliation change response: acknowledgement (mandatory) or decision (negotiated)", params: IdParam, body: ChangeAnswerSchema } },
    async (req) => {
      const cred = await authenticate(req, deps, ['user']);
      return answerChange(server, cred.subject as McUri, req.params.id, req.body.accept);
    },
  );

  app.get<{ Params: { id: string }; Querystring: { service?: McService } }>(
    '/users/:id/affiliations',
    { schema: { summary: "A user's affiliations (own, or of a user the caller may change)", params: IdParam, querystring: ServiceQuery } },
    async (req) => {
      const cred = await authenticate(req, deps, ['user', 'operator']);
      const userId = parseId(req.params.id, 'id');
      if (cred.role === 'user' && !mayView(server.profiles.get(cred.subject as McUri), cred.subject as McUri, userId, server.domain)) {
        throw new MusterError('forbidden', `${cred.subject} may not read the affiliations of ${userId}`);
      }
      const records = await server.store.affiliationsOfUser(userId, req.query.service);
      if (records.length === 0 && !server.profiles.get(userId)) throw new MusterError('not-found', `no user ${userId} in this system`);
      await server.gms.ensurePolicies(records.map((r) => r.groupId).filter((g) => domainOf(g) === server.domain));
      return {
        mcServiceId: userId,
        affiliations: records.map((r) => {
          const home = homeOf(server, r.groupId);
          // A group disabled or deleted after the user affiliated stays listed, marked, until removed (SPEC.md).
          const group = home.home === 'own' ? (home.policy ? (home.policy.enabled ? 'enabled' : 'disabled') : 'deleted') : home.home === 'own-gms-unavailable' ? 'unknown' : home.home === 'partner' ? 'partner' : 'unroutable';
          return { groupId: r.groupId, service: r.service, state: r.state, group, since: new Date(r.updatedAt).toISOString() };
        }),
      };
    },
  );

  app.get<{ Params: { id: string }; Querystring: { service?: McService } }>(
    '/groups/:id/members',
    { schema: { summary: 'Affiliated members of a group', params: IdParam, querystring: ServiceQuery } },
    async (req) => {
      const cred = await authenticate(req, deps, ['user', 'operator']);
      const groupId = parseId(req.params.id, 'id');
      await server.gms.ensurePolicies(domainOf(groupId) === server.domain ? [groupId] : []);
      const policy = server.gms.policyOf(groupId);
      if (cred.role === 'user' && !mayViewMembers(server.profiles.get(cred.subject as McUri), cred.subject as McUri, policy, groupId)) {
        throw new MusterError('forbidden', `${cred.subject} may not read the members of ${groupId}`);
      }
      const records = await server.store.affiliationsOfGroup(groupId, req.query.service);
      if (!policy && records.length === 0) throw new MusterError('not-found', `no group ${groupId} known here`);
      return {
        groupId,
        members: records.filter((r) => r.state === 'affiliated').map((r) => ({ mcServiceId: r.userId, service: r.service, since: new Date(r.updatedAt).toISOString() })),
      };
    },
  );

  // Open streams per user: each holds a connection, a subscription and an unread buffer, so one credential's are bounded.
  const streamsOf = new Map<string, number>();
  app.get('/events', { schema: { summary: 'Server-Sent Events for the caller: affiliation-change and affiliation-status; resumes after Last-Event-ID; at most 16 open per user at an instance (429)' } }, async (req, reply) => {
    const cred = await authenticate(req, deps, ['user']);
    const open = streamsOf.get(cred.subject) ?? 0;
    if (open >= MAX_EVENT_STREAMS_PER_USER) {
      const { status, body } = toErrorReply(new MusterError('rate-limited', `${cred.subject} has ${MAX_EVENT_STREAMS_PER_USER} event streams open here; close one first`));
      return reply.code(status).header('retry-after', '5').send(body);
    }
    streamsOf.set(cred.subject, open + 1);
    reply.raw.once('close', () => {
      const left = (streamsOf.get(cred.subject) ?? 1) - 1;
      if (left > 0) streamsOf.set(cred.subject, left);
      else streamsOf.delete(cred.subject);
    });
    await streamEvents(req, reply, cred.subject as McUri, server.store, server.notifier);
  });
}

// /admin/v1: the operator's user profiles (services, N2, subscription, remote-change right), effective at once.
import type { FastifyInstance } from 'fastify';
import { Type, type Static } from 'typebox';
import { MC_SERVICES } from '../../domain/services.ts';
import { parseId, parseIdList } from '../../domain/parse-flows.ts';
import { badInput, MusterError } from '../../domain/errors.ts';
import { domainOf } from '../../domain/ids.ts';
import type { RemoteChangeRight, UserProfile } from '../../domain/profile.ts';
import { authenticate, type HttpFaceDeps } from './app.ts';
import { auditRoutes } from './routes-audit.ts';
import { sipAdminRoutes } from './routes-sip-admin.ts';
import { metricsRegistry } from '../../adapters/metrics.ts';
import { answerDeleted, answerStored } from './in-force.ts';

const IdParam = Type.Object({ id: Type.String({ minLength: 1, maxLength: 256 }) });
const N2 = Type.Integer({ minimum: 0, maximum: 10000 });
export const UserProfileSchema = Type.Object(
  {
    id: Type.Optional(Type.String()),
    services: Type.Array(Type.Enum(MC_SERVICES), { maxItems: 3 }),
    n2: Type.Union([N2, Type.Object({ mcptt: Type.Optional(N2), mcvideo: Type.Optional(N2), mcdata: Type.Optional(N2) }, { additionalProperties: false })]),
    groups: Type.Array(Type.String(), { maxItems: 10000 }),
    remoteChange: Type.Optional(Type.Union([Type.Boolean(), Type.Object({ users: Type.Optional(Type.Array(Type.String(), { maxItems: 10000 })), groups: Type.Optional(Type.Array(Type.String(), { maxItems: 10000 })) }, { additionalProperties: false })])),
  },
  { additionalProperties: false },
);

const ResyncRequestSchema = Type.Object({ partner: Type.Optional(Type.String({ minLength: 1, maxLength: 253, description: "a partner system's domain; none: every partner" })) }, { additionalProperties: false });

export async function adminRoutes(app: FastifyInstance, deps: HttpFaceDeps): Promise<void> {
  app.put<{ Params: { id: string }; Body: Static<typeof UserProfileSchema> }>(
    '/users/:id',
    { schema: { summary: 'Create or replace a user profile; effective on the next request (202 with notConfirmed: stored, not yet in force at those instances)', params: IdParam, body: UserProfileSchema } },
    async (req, reply) => {
      await authenticate(req, deps, ['operator']);
      const id = parseId(req.params.id, 'id');
      if (domainOf(id) !== deps.config.domain) throw badInput('id', `user ${id} is not of this system's domain ${deps.config.domain}`);
      if (req.body.id !== undefined && parseId(req.body.id, 'id') !== id) throw badInput('id', 'differs from the ID in the path');
      const rc = req.body.remoteChange;
      const remoteChange: RemoteChangeRight =
        typeof rc === 'object'
          ? { ...(rc.users ? { users: parseIdList(rc.users, 'remoteChange.users') } : {}), ...(rc.groups ? { groups: parseIdList(rc.groups, 'remoteChange.groups') } : {}) }
          : (rc ?? false);
      const profile: UserProfile = { id, services: [...new Set(req.body.services)], n2: req.body.n2, groups: parseIdList(req.body.groups, 'groups'), remoteChange };
      return answerStored(reply, profile, await deps.profiles.put(profile));
    },
  );

  app.get<{ Params: { id: string } }>('/users/:id', { schema: { summary: 'A user profile', params: IdParam } }, async (req) => {
    await authenticate(req, deps, ['operator']);
    const profile = deps.profiles.get(parseId(req.params.id, 'id'));
    if (!profile) throw new MusterError('not-found', `no user ${req.params.id}`);
    return profile;
  });

  app.delete<{ Params: { id: string } }>('/users/:id', { schema: { summary: 'Delete a user profile (202 with notConfirmed: deleted, not yet in force at those instances)', params: IdParam } }, async (req, reply) => {
    await authenticate(req, deps, ['operator']);
    const id = parseId(req.params.id, 'id');
    const { existed, ...announced } = await deps.profiles.deleteAnnounced(id);
    if (!existed) throw new MusterError('not-found', `no user ${req.params.id}`);
    return answerDeleted(reply, id, announced);
  });

  app.post<{ Body: Static<typeof ResyncRequestSchema> }>(
    '/partner-resyncs',
    { schema: { summary: 'Re-synchronise with every partner system, or the one named: what was removed at the partner and asked again', body: ResyncRequestSchema } },
    async (req) => {
      await authenticate(req, deps, ['operator']);
      const reports = await deps.resyncPartners(req.body.partner?.toLowerCase());
      // Records as the federation flows name them (mcServiceId), one report per partner.
      const wire = <K extends { userId: string }>({ userId, ...rest }: K) => ({ mcServiceId: userId, ...rest });
      return { resyncs: reports.map((r) => ({ ...r, removed: r.removed.map(wire), spared: r.spared.map(wire), reasked: r.reasked.map(wire), skipped: r.skipped.map(wire) })) };
    },
  );

  app.get('/metrics', { schema: { summary: 'Prometheus metrics of this process: request durations, SQLite WAL syncs, commit batches and WAL restarts, event-loop delay, GC, memory' } }, async (req, reply) => {
    await authenticate(req, deps, ['operator']);
    return reply.type(metricsRegistry.contentType).send(await metricsRegistry.metrics());
  });

  await auditRoutes(app, deps);
  await sipAdminRoutes(app, deps);
}

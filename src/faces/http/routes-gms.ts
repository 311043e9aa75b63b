// /gms/v1: the group management server's face: group documents, policy subscription, status updates.
import type { FastifyInstance } from 'fastify';
import { Type, type Static } from 'typebox';
import { MC_SERVICES, type McService } from '../../domain/services.ts';
import { LIMITS } from '../../domain/flows.ts';
import { parseDisplayName, parseId, parseIdList } from '../../domain/parse-flows.ts';
import { badInput, MusterError } from '../../domain/errors.ts';
import { domainOf, type McUri } from '../../domain/ids.ts';
import type { GmsStatusUpdate } from '../../ports/store.ts';
import { authenticate, type HttpFaceDeps } from './app.ts';
import { HEARTBEAT_MS } from './event-stream.ts';
import { mayViewMembers } from '../../domain/decisions/remote-change-right.ts';
import { answerDeleted, answerStored } from './in-force.ts';

const IdParam = Type.Object({ id: Type.String({ minLength: 1, maxLength: 256 }) });
export const GroupDocumentSchema = Type.Object(
  {
    id: Type.Optional(Type.String()),
    displayName: Type.Optional(Type.String({ maxLength: 200 })),
    services: Type.Array(Type.Enum(MC_SERVICES), { minItems: 1, maxItems: 3 }),
    enabled: Type.Optional(Type.Boolean()),
    members: Type.Array(Type.String({ minLength: 1, maxLength: LIMITS.uriLength }), { maxItems: 10000 }),
    deaffiliationForbidden: Type.Optional(Type.Boolean()),
  },
  { additionalProperties: false },
);
const StatusUpdateSchema = Type.Object(
  {
    updates: Type.Array(
      Type.Object(
        {
          // 1e300 is an integer to JSON Schema, but no store's sequence column (PostgreSQL answered 500).
          seq: Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER }),
          userId: Type.String(),
          groupId: Type.String(),
          service: Type.Enum(MC_SERVICES),
          status: Type.Enum(['affiliated', 'deaffiliated'] as const),
        },
        { additionalProperties: false },
      ),
      { maxItems: 1000 },
    ),
  },
  { additionalProperties: false },
);

export async function gmsRoutes(app: FastifyInstance, deps: HttpFaceDeps): Promise<void> {
  const gms = deps.gms;
  const ownGroup = (raw: string): McUri => {
    const id = parseId(raw, 'id');
    if (domainOf(id) !== deps.config.domain) throw badInput('id', `group ${id} is not of this system's domain ${deps.config.domain}`);
    return id;
  };

  app.put<{ Params: { id: string }; Body: Static<typeof GroupDocumentSchema> }>(
    '/groups/:id',
    { schema: { summary: 'Create or replace a group document; subscribed MC service servers see it on their next request (202 with notConfirmed: stored, not yet in force at those instances)', params: IdParam, body: GroupDocumentSchema } },
    async (req, reply) => {
      await authenticate(req, deps, ['operator']);
      const id = ownGroup(req.params.id);
      if (req.body.id !== undefined && parseId(req.body.id, 'id') !== id) throw badInput('id', 'differs from the ID in the path');
      const { group, ...announced } = await gms.putGroupAnnounced({
        id,
        ...(req.body.displayName !== undefined ? { displayName: parseDisplayName(req.body.displayName, 'displayName') } : {}),
        services: [...new Set(req.body.services)],
        enabled: req.body.enabled ?? true,
        members: parseIdList(req.body.members, 'members'),
        deaffiliationForbidden: req.body.deaffiliationForbidden ?? false,
      });
      return answerStored(reply, group, announced);
    },
  );

  app.get<{ Params: { id: string } }>('/groups/:id', { schema: { summary: 'A group document (group policy); a user reads only a group whose members it may read', params: IdParam } }, async (req) => {
    const cred = await authenticate(req, deps, ['operator', 'server', 'user']);
    const id = parseId(req.params.id, 'id');
    const group = gms.getGroup(id);
    // The document lists the group's members: a user sees it as GET /mc/v1/groups/{id}/members allows (a member, or a
    // remote-change right covering the group), else 403 whether or not the group exists.
    if (cred.role === 'user' && !mayViewMembers(deps.profiles.get(cred.subject as McUri), cred.subject as McUri, group, id)) {
      throw new MusterError('forbidden', `${cred.subject} may not read the group document of ${id}`);
    }
    if (!group) throw new MusterError('not-found', `no group ${req.params.id}`);
    return group;
  });

  app.delete<{ Params: { id: string } }>('/groups/:id', { schema: { summary: 'Delete a group document (202 with notConfirmed: deleted, not yet in force at those instances)', params: IdParam } }, async (req, reply) => {
    await authenticate(req, deps, ['operator']);
    const id = parseId(req.params.id, 'id');
    const { existed, ...announced } = await gms.deleteGroupAnnounced(id);
    if (!existed) throw new MusterError('not-found', `no group ${req.params.id}`);
    return answerDeleted(reply, id, announced);
  });

  app.get<{ Params: { id: string }; Querystring: { service?: McService } }>(
    '/groups/:id/affiliations',
    { schema: { summary: "The group's affiliated members as told by MC service servers (10.X.2.3)", params: IdParam, querystring: Type.Object({ service: Type.Optional(Type.Enum(MC_SERVICES)) }, { additionalProperties: false }) } },
    async (req) => {
      await authenticate(req, deps, ['operator', 'server']);
      const groupId = parseId(req.params.id, 'id');
      return { groupId, members: (await gms.affiliatedMembers(groupId, req.query.service)).map((m) => ({ mcServiceId: m.userId, service: m.service, since: new Date(m.updatedAt).toISOString() })) };
    },
  );

  app.post<{ Body: Static<typeof StatusUpdateSchema> }>(
    '/affiliation-status',
    { schema: { summary: 'Group affiliation status update from an MC service server (10.X.2.3); idempotent by seq', body: StatusUpdateSchema } },
    async (req) => {
      const cred = await authenticate(req, deps, ['server', 'operator']);
      const updates: GmsStatusUpdate[] = req.body.updates.map((u, i) => ({ ...u, userId: parseId(u.userId, `updates[${i}].userId`), groupId: ownGroup(u.groupId) }));
      return { applied: await gms.applyStatusUpdates(cred.subject, updates) };
    },
  );

  app.get('/policy/events', { schema: { summary: 'Subscription of MC service servers to group policy changes (SSE)' } }, async (req, reply) => {
    await authenticate(req, deps, ['operator', 'server']);
    const raw = reply.raw;
    reply.hijack();
    raw.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-store' });
    raw.write(': subscribed\n\n');
    const off = gms.onPolicyChange((groupId) => {
      const group = gms.getGroup(groupId);
      raw.write(`event: ${group ? 'group-changed' : 'group-deleted'}\ndata: ${JSON.stringify(group ?? { id: groupId })}\n\n`);
      if (raw.writableLength > 1 << 20) raw.destroy();
    });
    // A subscriber behind a silently broken connection notices the missing heartbeats and subscribes again.
    const heartbeat = setInterval(() => raw.write(': keep-alive\n\n'), HEARTBEAT_MS);
    heartbeat.unref();
    raw.on('close', () => {
      off();
      clearInterval(heartbeat);
    });
  });
}

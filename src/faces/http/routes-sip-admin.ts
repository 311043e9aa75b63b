// GET /admin/v1/sip/subscriptions and /admin/v1/sip/publications: the operator's view of the SIP face's live state
// (STAGE3.md: operators ask for a way to list live subscriptions). Read from the store, so every instance of a scaled
// system answers with all of them, each subscription naming the instance that owns it. Paged with `after` = `next`.
import type { FastifyInstance } from 'fastify';
import { Type, type Static } from 'typebox';
import { badInput } from '../../domain/errors.ts';
import { parseId } from '../../domain/parse-flows.ts';
import type { SipListFilter, SipPublicationRecord, SipSubscriptionRecord } from '../../ports/store.ts';
import { authenticate, type HttpFaceDeps } from './app.ts';

export const SIP_LIST_MAX = 1000;
const SIP_LIST_DEFAULT = 100;

const SipListQuery = Type.Object(
  {
    user: Type.Optional(Type.String({ minLength: 1, maxLength: 256, description: 'only those about this MC service ID (the watched user of a subscription, the served user of a publication)' })),
    limit: Type.Optional(Type.String({ pattern: '^[0-9]{1,9}$', description: `at most this many, 1-${SIP_LIST_MAX} (default ${SIP_LIST_DEFAULT})` })),
    after: Type.Optional(Type.String({ minLength: 1, maxLength: 256, description: 'the `next` of the previous page' })),
  },
  { additionalProperties: false },
);
type SipListQueryValues = Static<typeof SipListQuery>;

const Next = Type.Union([Type.String(), Type.Null()], { description: 'pass as `after` for the next page; null when this page was the last' });
const SubscriptionSchema = Type.Object({
  id: Type.String(),
  instance: Type.String({ description: 'the instance that owns it and sends its NOTIFYs (host name/SIP address)' }),
  watcher: Type.String({ description: 'who subscribed' }),
  userId: Type.String({ description: 'whose affiliation status is watched' }),
  service: Type.String(),
  transport: Type.String({ description: 'udp or tcp' }),
  remote: Type.String({ description: "the subscriber's flow: source address and port of its SUBSCRIBE" }),
  callId: Type.String(),
  expiresAt: Type.String({ description: 'ISO 8601' }),
});
const PublicationSchema = Type.Object({
  userId: Type.String({ description: 'the served user' }),
  service: Type.String(),
  etag: Type.String({ description: 'the SIP-ETag a refresh names in SIP-If-Match' }),
  expires: Type.Integer({ description: 'granted seconds (4294967295: no expiry)' }),
  expiresAt: Type.Union([Type.String(), Type.Null()], { description: 'ISO 8601; null when it does not expire' }),
  pId: Type.Union([Type.String(), Type.Null()], { description: 'the p-id of the PUBLISH' }),
  tupleId: Type.Union([Type.String(), Type.Null()], { description: 'the PIDF tuple id (MC service client ID)' }),
});
const ErrorSchema = Type.Object({ error: Type.Object({ code: Type.String(), message: Type.String(), field: Type.Optional(Type.String()) }) });
const errors = { 400: ErrorSchema, 401: ErrorSchema, 403: ErrorSchema };

function filterOf(q: SipListQueryValues, now: number): SipListFilter {
  const limit = q.limit === undefined ? SIP_LIST_DEFAULT : Number(q.limit);
  if (limit < 1 || limit > SIP_LIST_MAX) throw badInput('limit', `must be between 1 and ${SIP_LIST_MAX}`);
  return { now, limit, ...(q.user !== undefined ? { userId: parseId(q.user, 'user') } : {}), ...(q.after !== undefined ? { after: q.after } : {}) };
}

export async function sipAdminRoutes(app: FastifyInstance, deps: HttpFaceDeps): Promise<void> {
  app.get<{ Querystring: SipListQueryValues }>(
    '/sip/subscriptions',
    {
      schema: {
        summary: "Live SIP subscriptions to users' affiliation status, of every instance, ordered by id, paged (operator only)",
        querystring: SipListQuery,
        response: { 200: Type.Object({ subscriptions: Type.Array(SubscriptionSchema), next: Next }), ...errors },
      },
    },
    async (req) => {
      await authenticate(req, deps, ['operator']);
      const filter = filterOf(req.query, deps.server.clock.now());
      const rows = await deps.server.store.listSipSubscriptions(filter);
      return { subscriptions: rows.map(renderSubscription), next: rows.length === filter.limit ? rows[rows.length - 1]!.id : null };
    },
  );

  app.get<{ Querystring: SipListQueryValues }>(
    '/sip/publications',
    {
      schema: {
        summary: 'Live SIP publications (RFC 3903), one per served user and MC service, ordered by entity-tag, paged (operator only)',
        querystring: SipListQuery,
        response: { 200: Type.Object({ publications: Type.Array(PublicationSchema), next: Next }), ...errors },
      },
    },
    async (req) => {
      await authenticate(req, deps, ['operator']);
      const filter = filterOf(req.query, deps.server.clock.now());
      const rows = await deps.server.store.listSipPublications(filter);
      return { publications: rows.map(renderPublication), next: rows.length === filter.limit ? rows[rows.length - 1]!.etag : null };
    },
  );
}

function renderSubscription(s: SipSubscriptionRecord): Static<typeof SubscriptionSchema> {
  const host = s.remoteAddress.includes(':') ? `[${s.remoteAddress}]` : s.remoteAddress;
  return { id: s.id, instance: s.owner, watcher: s.watcher, userId: s.userId, service: s.service, transport: s.transport, remote: `${host}:${s.remotePort}`, callId: s.callId, expiresAt: new Date(s.expiresAt).toISOString() };
}

function renderPublication(p: SipPublicationRecord): Static<typeof PublicationSchema> {
  return { userId: p.userId, service: p.service, etag: p.etag, expires: p.expires, expiresAt: p.expiresAt === null ? null : new Date(p.expiresAt).toISOString(), pId: p.pId, tupleId: p.tupleId };
}

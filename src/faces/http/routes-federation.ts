// /federation/v1: server-to-server flows (10.X.2.1a, 10.X.2.4a). As group host this system decides for its own
// groups; as an intermediate signalling node it relays a request for another partner's groups unchanged, for a
// partner identified at this hop and within its bounds (intermediate-node.ts).
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { Type, type Static, type TSchema } from 'typebox';
import { randomUUID } from 'node:crypto';
import { AffiliationRequestSchema, ChangeRequestSchema, type AffiliationRequest, type ChangeRequestBody } from '../../domain/flows.ts';
import { parseAffiliationRequest, parseChangeRequest } from '../../domain/parse-flows.ts';
import { domainOf, type McUri } from '../../domain/ids.ts';
import { MC_SERVICES } from '../../domain/services.ts';
import { parseId } from '../../domain/parse-flows.ts';
import { badInput } from '../../domain/errors.ts';
import { compareResyncKeys, type ResyncKey } from '../../domain/decisions/partner-resync.ts';
import { resyncAsGroupHost } from '../../procedures/resync-as-group-host.ts';
import { RESYNC_PAGE } from '../../procedures/resync-partner.ts';
import { hostOfPartnerRequest, requireUsersOfPartner } from '../../domain/decisions/partner-trust.ts';
import { affiliateAsGroupHost, changeAsGroupHost, deaffiliateAsGroupHost } from '../../procedures/affiliate-as-group-host.ts';
import type { HttpFaceDeps } from './app.ts';
import { IntermediateSignallingNode } from './intermediate-node.ts';

/**
 * The client flow's body, plus `undo` on a de-affiliation: the primary withdraws an affiliation it asked for but
 * never got an answer to (timeout, garbled answer), so the partner keeps nothing the primary did not store.
 */
const FederationRequestSchema = Type.Object({ ...AffiliationRequestSchema.properties, undo: Type.Optional(Type.Boolean()) }, { additionalProperties: false });
type FederationRequestBody = Static<typeof FederationRequestSchema>;

/**
 * The fields an intermediate signalling node reads (intermediate-node.ts), for the OpenAPI document: described, never
 * refused by the schema (the node answers a missing or malformed one itself, naming the field).
 */
const RelayFieldsSchema = Type.Object({
  'proxy-authorization': Type.Optional(
    Type.String({
      description:
        'Bearer <server credential>: the hop credential, for groups of another system (this system relays as an intermediate signalling node): a credential of a configured partner signed for this system with the secret of that pair, checked before anything else. Without a valid one: 407 unauthenticated naming Proxy-Authorization, with Proxy-Authenticate: Bearer. Not passed on.',
    }),
  ),
  via: Type.Optional(
    Type.String({
      description:
        'The intermediaries the request passed (RFC 9110 7.6.3). A node relays with `<protocol> <its domain>` appended; this system already in it, or maxIntermediateNodes entries: 508 loop-detected; malformed: 400 naming Via.',
    }),
  ),
});

/** An error answer (CONTRACT.md "Errors"; error-reply.ts), with the `processed` marker of a refusal before processing. */
const ErrorFieldsSchema = Type.Object({
  code: Type.String(),
  message: Type.String(),
  field: Type.Optional(Type.String({ description: 'the field (or header) at fault' })),
  processed: Type.Optional(
    Type.Literal(false, {
      description:
        'false: refused before any of the request was done or passed on (a rate limit, load shedding, maxRelaysInFlight, a relay loop), so nothing was applied; absent: it may have been, e.g. a next hop that failed mid-request. A node passes a further hop\'s marker back unchanged.',
    }),
  ),
});
const RETRY_AFTER = { 'retry-after': Type.Integer({ minimum: 0, description: 'seconds to wait before sending again (a node passes the group host\'s back)' }) };
const ANSWER_VIA = Type.String({ description: 'on an answer relayed by intermediate nodes: the ones it passed, this one last (RFC 9110 7.6.3)' });
/** An error answer with its description and response fields: a relayed one says Via. */
function errorAnswer(description: string, fields: Record<string, TSchema> = {}): TSchema {
  return { ...Type.Object({ error: ErrorFieldsSchema }), description, headers: { ...fields, via: ANSWER_VIA } };
}
/**
 * The answers of every federation route, as a group host and as an intermediate signalling node. The 200 has a
 * description only: a body schema would make fastify serialize the host's answer by it (and drop what it does not list).
 */
const FederationAnswers = {
  200: { description: "the group host's answer (as the client flow's: an affiliation, de-affiliation or change response, or the re-synchronisation page's comparison), passed back unchanged by any node on the way", headers: { via: ANSWER_VIA } },
  400: errorAnswer('bad-request: bad input, naming the field (`Via` when it is malformed)'),
  401: errorAnswer('unauthenticated: no or a bad end-to-end credential (Authorization, checked by the group host; a node refuses a relayed request without one)'),
  403: errorAnswer('forbidden: a user of another system than the credential\'s, or groups of a system with no route from here (said only to a sender identified by its hop credential)'),
  407: errorAnswer('unauthenticated (Proxy Authentication Required, RFC 9110 15.5.8): a request for groups of another system without a valid hop credential (Proxy-Authorization), checked before anything else; nothing forwarded', {
    'proxy-authenticate': Type.String({ description: "this node's challenge: Bearer (a partner's server credential signed for this system)" }),
  }),
  415: errorAnswer('unsupported-media-type: a body whose Content-Type is not application/json, or that has none, naming content-type; not read, nothing forwarded'),
  429: errorAnswer("rate-limited: over the sending partner's rateLimit (relayed requests count too); processed: false", RETRY_AFTER),
  503: errorAnswer('unavailable: over maxInFlight, or maxRelaysInFlight relays already under way to the next hop (processed: false, Retry-After); or a next hop that failed mid-request (no processed: it may have been applied)', RETRY_AFTER),
  508: errorAnswer('loop-detected (RFC 5842): a relay loop (this node already in Via) or a chain past maxIntermediateNodes; nothing forwarded, processed: false; the message names the chain'),
};
/** What every federation route says of relaying. */
const RELAYED =
  "For groups of another system this system is an intermediate signalling node: with the sending partner's hop credential (Proxy-Authorization) it passes the request on unchanged towards the group host, adds itself to Via, and passes the answer back (status, body, Content-Type, Retry-After, WWW-Authenticate) with itself added to its Via.";

/** One affiliation record in a re-synchronisation page (README "Partner re-synchronisation"). */
const ResyncKeySchema = Type.Object(
  { mcServiceId: Type.String({ minLength: 1, maxLength: 256 }), service: Type.Enum(MC_SERVICES), groupId: Type.String({ minLength: 1, maxLength: 256 }) },
  { additionalProperties: false },
);
const ResyncPageSchema = Type.Object(
  {
    host: Type.String({ minLength: 1, maxLength: 253, description: 'the domain of the system hosting the groups (the addressee, or the next hop relays it)' }),
    after: Type.Optional(ResyncKeySchema),
    through: Type.Optional(ResyncKeySchema),
    affiliations: Type.Array(ResyncKeySchema, { maxItems: RESYNC_PAGE }),
    startUp: Type.Optional(Type.Boolean({ description: 'the primary has just started: the host re-synchronises the other way too' })),
  },
  { additionalProperties: false },
);
type ResyncPageBody = Static<typeof ResyncPageSchema>;
type ResyncKeyBody = Static<typeof ResyncKeySchema>;
const toWire = (k: ResyncKey): ResyncKeyBody => ({ mcServiceId: k.userId, service: k.service, groupId: k.groupId });

export async function federationRoutes(app: FastifyInstance, deps: HttpFaceDeps): Promise<void> {
  const own = deps.config.domain;
  /** The relay towards each next hop; its connections close with the face. */
  const node = new IntermediateSignallingNode(deps.config, deps.partnerGate);
  app.addHook('onClose', () => node.close());

  /**
   * Groups of another system: as an intermediate signalling node, relay the request unchanged (the credential is for
   * the group host, which checks it end to end; the hop credential is ours) and answer 'relayed'. Groups hosted here: 'here'.
   */
  async function routeByGroups(req: FastifyRequest, reply: FastifyReply, lists: { field: string; groupIds: McUri[] }[], path: string): Promise<'here' | 'relayed'> {
    const host = hostOfPartnerRequest(lists);
    if (host === own) return 'here';
    await node.relay(req, reply, host, `/federation/v1/${path}`, lists.find((l) => l.groupIds.length > 0)?.field);
    return 'relayed';
  }

  /** Checks who asks and for what: a configured partner, for its own users, and for groups of one system. */
  async function admit(req: FastifyRequest<{ Body: FederationRequestBody }>, reply: FastifyReply, path: string): Promise<AffiliationRequest | undefined> {
    const flow = parseAffiliationRequest(req.body);
    if ((await routeByGroups(req, reply, [{ field: 'groupIds', groupIds: flow.groupIds }], path)) === 'relayed') return undefined;
    requireUsersOfPartner(await admitPartner(req), [{ id: flow.mcServiceId, field: 'mcServiceId' }]);
    return flow;
  }

  /** The partner system that signed the request; kept as the request's credential, so the audit log names it. */
  async function admitPartner(req: FastifyRequest): Promise<string> {
    const origin = await deps.partnerGate.verify(req.headers.authorization);
    req.credential = { subject: origin, role: 'server', expiresAt: Number.POSITIVE_INFINITY };
    return origin;
  }

  app.post<{ Body: FederationRequestBody }>(
    '/affiliations',
    { schema: { summary: 'Affiliation request from a primary MC service server (10.X.2.1a)', description: RELAYED, headers: RelayFieldsSchema, body: FederationRequestSchema, response: FederationAnswers } },
    async (req, reply) => {
      const flow = await admit(req, reply, 'affiliations');
      return flow ? affiliateAsGroupHost(deps.server, flow) : reply;
    },
  );

  app.post<{ Body: FederationRequestBody }>(
    '/deaffiliations',
    { schema: { summary: 'De-affiliation request from a primary MC service server (10.X.2.4a)', description: RELAYED, headers: RelayFieldsSchema, body: FederationRequestSchema, response: FederationAnswers } },
    async (req, reply) => {
      const flow = await admit(req, reply, 'deaffiliations');
      return flow ? deaffiliateAsGroupHost(deps.server, flow, { undo: req.body.undo === true }) : reply;
    },
  );

  /** A record of the page as a key: canonical IDs, a user of the calling partner (403), a group hosted here (400). */
  function resyncKey(raw: ResyncKeyBody, field: string, origin: string): ResyncKey {
    const userId = parseId(raw.mcServiceId, `${field}.mcServiceId`);
    requireUsersOfPartner(origin, [{ id: userId, field: `${field}.mcServiceId` }]);
    const groupId = parseId(raw.groupId, `${field}.groupId`);
    if (domainOf(groupId) !== own) throw badInput(`${field}.groupId`, `${groupId} is not a group of ${own}`);
    return { userId, service: raw.service, groupId };
  }

  app.post<{ Body: ResyncPageBody }>(
    '/affiliation-resyncs',
    { schema: { summary: "Partner re-synchronisation: one page of the primary's records of its users in groups hosted here", description: `${RELAYED} Here by \`host\`.`, headers: RelayFieldsSchema, body: ResyncPageSchema, response: FederationAnswers } },
    async (req, reply) => {
      const host = req.body.host.toLowerCase();
      if (host !== own) {
        // As an intermediate signalling node: pass the page on unchanged; the host checks the credential.
        await node.relay(req, reply, host, '/federation/v1/affiliation-resyncs', 'host');
        return reply;
      }
      // Partner trust: the caller's own users only (a page naming another system's user is refused as a whole).
      const origin = await admitPartner(req);
      const after = req.body.after ? resyncKey(req.body.after, 'after', origin) : undefined;
      const through = req.body.through ? resyncKey(req.body.through, 'through', origin) : undefined;
      if (after && through && compareResyncKeys(after, through) >= 0) throw badInput('through', 'must sort after `after`');
      const affiliations = req.body.affiliations.map((k, i) => {
        const key = resyncKey(k, `affiliations[${i}]`, origin);
        if ((after && compareResyncKeys(key, after) <= 0) || (through && compareResyncKeys(key, through) > 0)) throw badInput(`affiliations[${i}]`, 'outside the page (after, through]');
        return key;
      });
      // The grace: how long this system lets the primary take over a request (its timeout for that partner).
      const graceMs = deps.config.partners.find((p) => p.domain === origin)?.timeoutMs ?? 5000;
      const answer = await resyncAsGroupHost(deps.server, { origin, ...(after ? { after } : {}), ...(through ? { through } : {}), affiliations, graceMs });
      // After either side restarts the two re-synchronise (STAGE3.md): a partner that has just started gets ours too.
      if (req.body.startUp === true) deps.partnerStarted(origin);
      return {
        ...(answer.through ? { through: toWire(answer.through) } : {}),
        removed: answer.removed.map(toWire),
        spared: answer.spared.map(toWire),
        missing: answer.missing.map(toWire),
        graceMs: answer.graceMs,
      };
    },
  );

  app.post<{ Body: ChangeRequestBody }>(
    '/affiliation-changes',
    { schema: { summary: 'Affiliation change request from a primary MC service server for groups hosted here (10.X.5.2.1 step 3)', description: RELAYED, headers: RelayFieldsSchema, body: ChangeRequestSchema, response: FederationAnswers } },
    async (req, reply) => {
      const flow = parseChangeRequest(req.body);
      if ((await routeByGroups(req, reply, [{ field: 'affiliate', groupIds: flow.affiliate }, { field: 'deaffiliate', groupIds: flow.deaffiliate }], 'affiliation-changes')) === 'relayed') return reply;
      const users = [{ id: flow.mcServiceId, field: 'mcServiceId' }, ...flow.targets.map((id, i) => ({ id, field: `targets[${i}]` }))];
      requireUsersOfPartner(await admitPartner(req), users);
      return { id: randomUUID(), mcServiceId: flow.mcServiceId, service: flow.service, mode: flow.mode, results: await changeAsGroupHost(deps.server, flow) };
    },
  );
}

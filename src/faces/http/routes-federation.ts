// /federation/v1: server-to-server flows (10.X.2.1a, 10.X.2.4a). As group host this system decides for its own
// groups; as an intermediate signalling node it relays a request for another partner's groups unchanged.
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { Type, type Static } from 'typebox';
import { randomUUID } from 'node:crypto';
import { AffiliationRequestSchema, ChangeRequestSchema, type AffiliationRequest, type ChangeRequestBody } from '../../domain/flows.ts';
import { parseAffiliationRequest, parseChangeRequest } from '../../domain/parse-flows.ts';
import { MusterError } from '../../domain/errors.ts';
import type { McUri } from '../../domain/ids.ts';
import { hostOfPartnerRequest, requireUsersOfPartner } from '../../domain/decisions/partner-trust.ts';
import { affiliateAsGroupHost, changeAsGroupHost, deaffiliateAsGroupHost } from '../../procedures/affiliate-as-group-host.ts';
import type { HttpFaceDeps } from './app.ts';

/**
 * The client flow's body, plus `undo` on a de-affiliation: the primary withdraws an affiliation it asked for but
 * never got an answer to (timeout, garbled answer), so the partner keeps nothing the primary did not store.
 */
const FederationRequestSchema = Type.Object({ ...AffiliationRequestSchema.properties, undo: Type.Optional(Type.Boolean()) }, { additionalProperties: false });
type FederationRequestBody = Static<typeof FederationRequestSchema>;

export async function federationRoutes(app: FastifyInstance, deps: HttpFaceDeps): Promise<void> {
  const own = deps.config.domain;

  /**
   * Groups of another system: as an intermediate signalling node, relay the request unchanged (the credential is for
   * the group host, which checks it end to end) and answer 'relayed'. Groups hosted here: 'here'.
   */
  async function routeByGroups(req: FastifyRequest, reply: FastifyReply, groupIds: McUri[], field: string, path: string): Promise<'here' | 'relayed'> {
    const host = hostOfPartnerRequest(groupIds, field);
    if (host === own) return 'here';
    const next = deps.config.partners.find((p) => p.domain === host);
    if (!next) throw new MusterError('forbidden', `groups of ${host} are not hosted here and there is no route to them`, field);
    await relay(req, reply, `${next.nextHop}/federation/v1/${path}`, next.timeoutMs);
    return 'relayed';
  }

  /** Checks who asks and for what: a configured partner, for its own users, and for groups of one system. */
  async function admit(req: FastifyRequest<{ Body: FederationRequestBody }>, reply: FastifyReply, path: string): Promise<AffiliationRequest | undefined> {
    const flow = parseAffiliationRequest(req.body);
    if ((await routeByGroups(req, reply, flow.groupIds, 'groupIds', path)) === 'relayed') return undefined;
    requireUsersOfPartner(await admitPartner(req), [{ id: flow.mcServiceId, field: 'mcServiceId' }]);
    return flow;
  }

  /** The partner system that signed the request; kept as the request's credential, so the audit log names it. */
  async function admitPartner(req: FastifyRequest): Promise<string> {
    const origin = await deps.partnerGate.verify(req.headers.authorization);
    req.credential = { subject: origin, role: 'server', expiresAt: Number.POSITIVE_INFINITY };
    return origin;
  }

  /** Passes the request on unchanged (originator and credential intact) and the next hop's answer back. */
  async function relay(req: FastifyRequest, reply: FastifyReply, url: string, timeoutMs: number): Promise<void> {
    let res: Response;
    try {
      res = await fetch(url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: req.headers.authorization ?? '' },
        body: JSON.stringify(req.body),
        signal: AbortSignal.timeout(timeoutMs),
      });
    } catch (e) {
      throw new MusterError('unavailable', `next hop ${url} unreachable: ${(e as Error).message}`);
    }
    let text: string;
    try {
      text = await res.text();
    } catch (e) {
      throw new MusterError('unavailable', `next hop ${url} broke off its answer: ${(e as Error).message}`);
    }
    await reply.code(res.status).type('application/json').send(text);
  }

  app.post<{ Body: FederationRequestBody }>(
    '/affiliations',
    { schema: { summary: 'Affiliation request from a primary MC service server (10.X.2.1a)', body: FederationRequestSchema } },
    async (req, reply) => {
      const flow = await admit(req, reply, 'affiliations');
      return flow ? affiliateAsGroupHost(deps.server, flow) : reply;
    },
  );

  app.post<{ Body: FederationRequestBody }>(
    '/deaffiliations',
    { schema: { summary: 'De-affiliation request from a primary MC service server (10.X.2.4a)', body: FederationRequestSchema } },
    async (req, reply) => {
      const flow = await admit(req, reply, 'deaffiliations');
      return flow ? deaffiliateAsGroupHost(deps.server, flow, { undo: req.body.undo === true }) : reply;
    },
  );

  app.post<{ Body: ChangeRequestBody }>(
    '/affiliation-changes',
    { schema: { summary: 'Affiliation change request from a primary MC service server for groups hosted here (10.X.5.2.1 step 3)', body: ChangeRequestSchema } },
    async (req, reply) => {
      const flow = parseChangeRequest(req.body);
      if ((await routeByGroups(req, reply, [...flow.affiliate, ...flow.deaffiliate], 'affiliate', 'affiliation-changes')) === 'relayed') return reply;
      const users = [{ id: flow.mcServiceId, field: 'mcServiceId' }, ...flow.targets.map((id, i) => ({ id, field: `targets[${i}]` }))];
      requireUsersOfPartner(await admitPartner(req), users);
      return { id: randomUUID(), mcServiceId: flow.mcServiceId, service: flow.service, mode: flow.mode, results: await changeAsGroupHost(deps.server, flow) };
    },
  );
}

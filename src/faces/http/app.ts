// The HTTP face of one MC system: parses requests into flows, calls procedures, renders answers. No rule lives here.
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance, type FastifyRequest } from 'fastify';
import swagger from '@fastify/swagger';
import { TypeBoxValidatorCompiler } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { isUtf8 } from 'node:buffer';
import { badInput, MusterError } from '../../domain/errors.ts';
import type { Credential, CredentialVerifier } from './credentials.ts';
import { notJson, replyClientError, replyFrameworkError, toErrorReply } from './error-reply.ts';
import { registerAudit } from './audit.ts';
import { mcRoutes } from './routes-mc.ts';
import { gmsRoutes } from './routes-gms.ts';
import { adminRoutes } from './routes-admin.ts';
import { federationRoutes } from './routes-federation.ts';
import { consoleRoutes } from './routes-console.ts';
import { shedLoad } from './load-shedding.ts';
import { callerSubject, limitRatePerCredential, type TokenBuckets } from './rate-limit.ts';
import type { McServiceServer } from '../../procedures/context.ts';
import type { GroupManagementServer } from '../../gms/group-management-server.ts';
import type { UserProfileCache } from '../../adapters/user-profile-cache.ts';
import type { SystemConfig } from '../../config/config.ts';
import type { PartnerGate } from '../../adapters/partner-gate.ts';
import type { ResyncReport } from '../../procedures/resync-partner.ts';
import { observeRequest } from '../../adapters/metrics.ts';

export interface HttpFaceDeps {
  config: SystemConfig;
  server: McServiceServer;
  gms: GroupManagementServer;
  profiles: UserProfileCache;
  verifier: CredentialVerifier;
  partnerGate: PartnerGate;
  /** Each caller's token bucket (the system's rateLimit), shared with the SIP face. */
  rate: TokenBuckets;
  /** `partners: false`: this system's own dependencies only (what partners probe, so their probes do not cascade). */
  health(opts?: { partners: boolean }): Promise<{ status: 'ok' | 'degraded'; [k: string]: unknown }>;
  /** Partner re-synchronisation on the operator's demand: with every partner, or the one named (an unknown one: 404). */
  resyncPartners(partner?: string): Promise<ResyncReport[]>;
  /** A partner's re-synchronisation says it has just started: this system re-synchronises with it too. */
  partnerStarted(domain: string): void;
  log: FastifyBaseLogger;
}

declare module 'fastify' {
  interface FastifyRequest {
    credential?: Credential;
    /** Set once the request's audit entry was stored with its change (audit.ts skips it then). */
    auditStored: boolean;
  }
}

export const BODY_LIMIT = 64 * 1024;

export async function buildHttpFace(deps: HttpFaceDeps): Promise<FastifyInstance> {
  const app = Fastify({
    loggerInstance: deps.log,
    bodyLimit: BODY_LIMIT,
    // One log line per request would cost more than the request; failures are logged by the error handler.
    logController: new LogController({ disableRequestLogging: true }),
    return503OnClosing: true,
    // Event streams never end by themselves: closing the server closes them.
    forceCloseConnections: true,
    // IDs travel URL-encoded in paths; long ones are refused by the schema, not by the router.
    routerOptions: { maxParamLength: 1024 },
    // Refusals before a route is found, and by Node's parser, in the error body of CONTRACT.md too.
    frameworkErrors: replyFrameworkError,
    clientErrorHandler: replyClientError,
  });
  app.setValidatorCompiler(TypeBoxValidatorCompiler);
  // Bytes that are not UTF-8 were decoded to U+FFFD, so IDs other than the ones sent reached the procedures: refused.
  const parseJson = app.getDefaultJsonParser('error', 'error');
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'buffer' }, (req, body: Buffer, done) => {
    if (!isUtf8(body)) return done(badInput('body', 'not valid UTF-8'), undefined);
    void parseJson(req, body.toString('utf8'), done);
  });
  // Every body Muster reads is JSON: fastify's default text/plain parser let a text body reach the schema ("body: must
  // be object"). Any other body, or one without a Content-Type, is refused unread with 415; no body passes as none.
  app.removeContentTypeParser('text/plain');
  app.addContentTypeParser('*', (req, _payload, done) => {
    const empty = req.headers['transfer-encoding'] === undefined && (req.headers['content-length'] ?? '0') === '0';
    done(empty ? null : notJson(req.headers['content-type']), undefined);
  });
  app.decorateRequest('credential', undefined);
  app.decorateRequest('auditStored', false);
  app.setErrorHandler((err, _req, reply) => {
    const { status, body } = toErrorReply(err);
    if (status >= 500) deps.log.error({ err }, 'request failed');
    return reply.code(status).send(body);
  });
  app.setNotFoundHandler((req, reply) => reply.code(404).send({ error: { code: 'not-found', message: `no route ${req.method} ${req.url.split('?')[0]}` } }));
  // Request durations for /admin/v1/metrics, by route pattern (never the raw URL: IDs would make a label per user).
  app.addHook('onResponse', (req, reply, done) => {
    observeRequest(deps.config.name, req.method, req.routeOptions.url ?? 'none', reply.statusCode, reply.elapsedTime / 1000);
    done();
  });
  // Issue 7, before any body is read: shed load first (cheapest), then the caller's rate once it is authenticated.
  shedLoad(app, deps.config.maxInFlight);
  limitRatePerCredential(app, deps.rate, callerSubject(deps.verifier, deps.partnerGate));

  await app.register(swagger, {
    openapi: {
      info: { title: 'Muster: MC service group affiliation (3GPP TS 23.280 10.X)', version: '1.0.0' },
      components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } },
      security: [{ bearer: [] }],
    },
  });
  app.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger());
  app.get<{ Querystring: { partners?: 'omit' } }>(
    '/healthz',
    { schema: { summary: 'Liveness and the state of each dependency (partners=omit: without probing the partner systems)', security: [], querystring: Type.Object({ partners: Type.Optional(Type.Literal('omit')) }) } },
    async (req, reply) => {
      const h = await deps.health({ partners: req.query.partners !== 'omit' });
      return reply.code(h.status === 'ok' ? 200 : 503).send(h);
    },
  );

  // Issue 7: one audit entry per state-changing request, stored before its answer leaves (audit.ts).
  registerAudit(app, deps);
  // A GMS-only system serves no MC service server routes; a system whose GMS is elsewhere serves no GMS routes.
  const mcServer = deps.config.role !== 'gms';
  if (mcServer) await app.register(async (scope) => mcRoutes(scope, deps), { prefix: '/mc/v1' });
  if (!deps.config.gms) await app.register(async (scope) => gmsRoutes(scope, deps), { prefix: '/gms/v1' });
  await app.register(async (scope) => adminRoutes(scope, deps), { prefix: '/admin/v1' });
  if (mcServer) await app.register(async (scope) => federationRoutes(scope, deps), { prefix: '/federation/v1' });
  await app.register(async (scope) => consoleRoutes(scope, deps));
  return app;
}

/** The caller's credential, verified on every request: the caller's identity never comes from the body. */
export async function authenticate(req: FastifyRequest, deps: HttpFaceDeps, roles: Credential['role'][]): Promise<Credential> {
  const cred = await deps.verifier.verify(req.headers.authorization);
  if (!roles.includes(cred.role)) throw new MusterError('forbidden', `a ${cred.role} credential may not use ${req.routeOptions.url ?? req.url}`);
  req.credential = cred;
  return cred;
}

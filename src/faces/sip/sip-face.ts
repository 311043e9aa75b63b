// The SIP face (STAGE3.md): UDP and TCP listeners on the configured host and port, the user agent core, and the
// state it owns. Started by McSystem.listen() when the configuration has a `sip` key. On start it takes back the
// subscriptions it owned before a restart (UDP ones; TCP connections died with the process) and runs the expiry pages.
import { hostname } from 'node:os';
import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import type { SystemConfig } from '../../config/config.ts';
import type { McServiceServer } from '../../procedures/context.ts';
import type { CredentialVerifier } from '../http/credentials.ts';
import { parseMcUri } from '../../domain/ids.ts';
import { UserAgentCore } from './user-agent-core.ts';
import { Publications } from './publication-state.ts';
import { Subscriptions, subscriptionOf, type Subscription } from './subscription-state.ts';
import { PagedExpiry } from './expiry-pages.ts';
import { expirePublication } from './publish-user-agent-server.ts';
import { isOwnGroup } from './subscribe-user-agent-server.ts';
import type { Publication } from './publication-state.ts';
import { UdpTransport } from './udp-transport.ts';
import { TcpTransport } from './tcp-transport.ts';
import type { Flow, Transport } from './transport.ts';
import type { LocalAddress } from './notify-user-agent-client.ts';
import { DigestAuthenticator } from './digest.ts';
import { AuditRecorder } from '../../adapters/audit-recorder.ts';
import type { TokenBuckets } from '../http/rate-limit.ts';

export type SipConfig = NonNullable<SystemConfig['sip']>;

/** Expiry pages: at most this many subscriptions (final NOTIFY each) or publications (a de-affiliation each) per tick. */
export const SUBSCRIPTION_EXPIRY_PAGE = 500;
export const PUBLICATION_EXPIRY_PAGE = 200;
const EXPIRY_TICK_MS = 1000;
/** Rows this long past their expiry belong to an instance that did not come back (none ends them): pruned hourly. */
const ORPHAN_GRACE_MS = 3600_000;

/**
 * The name this instance owns subscriptions under: host name and SIP listening address, the same after a restart
 * and different for each instance of a scaled system. An ephemeral port (0) is a new instance at every start.
 */
export function sipInstanceName(config: SipConfig): string {
  return `${hostname()}/${config.host}:${config.port}${config.port === 0 ? `/${randomUUID()}` : ''}`;
}

export class SipFace {
  private constructor(
    private readonly core: UserAgentCore,
    private readonly transports: Transport[],
    readonly subscriptions: Subscriptions,
    private readonly expiries: { start(): void; stop(): void }[],
  ) {}

  static async start(opts: { config: SipConfig; server: McServiceServer; verifier: CredentialVerifier; secret: string; rate: TokenBuckets; log: Logger }): Promise<SipFace> {
    const { config, server, log } = opts;
    const transports: Transport[] = [];
    const locals = new Map<string, LocalAddress>();
    const localOf = (flow: Flow): LocalAddress => locals.get(flow.transport) ?? { transport: flow.transport === 'tcp' ? 'TCP' : 'UDP', address: config.advertisedHost ?? config.host, port: config.port };
    const subscriptions = new Subscriptions(server.store, sipInstanceName(config));
    const publications = new Publications(server.store, server.clock);
    const core = new UserAgentCore(
      {
        server,
        verifier: opts.verifier,
        digest: new DigestAuthenticator({ secret: opts.secret, realm: server.domain, now: () => server.clock.now(), algorithms: config.digestAlgorithms }),
        psi: parseMcUri(config.psi),
        trustedPeers: config.trustedPeers,
        maxSubscriptionsPerWatcher: config.maxSubscriptionsPerWatcher,
        localOf,
        agent: server.domain,
        publications,
        subscriptions,
        audit: new AuditRecorder(server.store, log),
        senderRate: opts.rate,
      },
      localOf,
      log.child({ face: 'sip' }),
    );
    try {
      for (const t of config.transports) {
        const transport = t === 'udp' ? await UdpTransport.listen(config.host, config.port, core) : await TcpTransport.listen(config.host, config.port, core);
        transports.push(transport);
        // A wildcard listening address is no address to give a client: the configured one to advertise is.
        locals.set(t, { transport: t === 'tcp' ? 'TCP' : 'UDP', address: config.advertisedHost ?? transport.local.address, port: transport.local.port });
      }
    } catch (e) {
      await Promise.allSettled(transports.map((t) => t.close()));
      throw e;
    }
    const udp = transports.find((t): t is UdpTransport => t instanceof UdpTransport);
    await restoreSubscriptions(core, subscriptions, udp, server, log);
    const onError = (what: string) => (err: unknown) => log.error({ err }, `SIP ${what} expiry page failed; the next tick retries`);
    const expiries = [
      new PagedExpiry<Subscription>(server.clock, {
        everyMs: EXPIRY_TICK_MS,
        pageSize: SUBSCRIPTION_EXPIRY_PAGE,
        take: (now, limit) => subscriptions.takeExpired(now, limit),
        end: (page) => core.endSubscriptions(page),
        onError: onError('subscription'),
      }),
      new PagedExpiry<Publication>(server.clock, {
        everyMs: EXPIRY_TICK_MS,
        pageSize: PUBLICATION_EXPIRY_PAGE,
        take: (now, limit) => publications.expired(now, limit),
        end: async (page) => void (await Promise.all(page.map((p) => expirePublication(core.context, p)))),
        onError: onError('publication'),
      }),
    ];
    expiries.forEach((e) => e.start());
    const orphans = hourly(server.clock, () => void server.store.pruneSipSubscriptions(server.clock.now() - ORPHAN_GRACE_MS).catch((err: unknown) => log.warn({ err }, 'SIP subscription pruning failed; retried in an hour')));
    log.info({ host: config.host, port: config.port, transports: config.transports, psi: config.psi, instance: subscriptions.owner, subscriptions: subscriptions.size }, 'SIP face listening');
    return new SipFace(core, transports, subscriptions, [...expiries, orphans]);
  }

  async stop(): Promise<void> {
    this.expiries.forEach((e) => e.stop());
    this.core.stop();
    await Promise.allSettled(this.transports.map((t) => t.close()));
  }
}

/**
 * After a restart: the subscriptions this instance owned come back. A UDP one goes on over its stored flow (the
 * subscriber's address and port), NOTIFYs included. A TCP one cannot: its connection died with the process and
 * Muster opens no connections to clients, so it is ended here without a NOTIFY (RFC 5626 §4.4: the client sees its
 * flow fail and subscribes again).
 */
async function restoreSubscriptions(core: UserAgentCore, subscriptions: Subscriptions, udp: UdpTransport | undefined, server: McServiceServer, log: Logger): Promise<void> {
  const rows = await server.store.sipSubscriptionsOwnedBy(subscriptions.owner);
  const dead: Subscription[] = [];
  for (const r of rows) {
    if (r.transport === 'udp' && udp) {
      // The row does not say what is watched: a group's URI has a policy, a user's a profile (isOwnGroup).
      const sub = subscriptionOf(r, udp.flowTo(r.remoteAddress, r.remotePort), (await isOwnGroup({ server }, r.userId)) ? 'group' : 'user');
      subscriptions.hold(sub);
      core.watch(sub.userId, sub.watches);
    } else dead.push(subscriptionOf(r, { transport: r.transport, remoteAddress: r.remoteAddress, remotePort: r.remotePort, send: () => undefined, open: () => false }));
  }
  if (dead.length > 0) await subscriptions.forget(dead);
  if (rows.length > 0) log.info({ resumed: rows.length - dead.length, ended: dead.length }, 'SIP subscriptions of this instance taken back after a restart (TCP ones ended: their connections are gone)');
}

/** Runs `job` now and every hour until stopped. */
function hourly(clock: McServiceServer['clock'], job: () => void): { start(): void; stop(): void } {
  let cancel = (): void => undefined;
  const run = (): void => {
    job();
    cancel = clock.after(3600_000, run);
  };
  run();
  return { start: () => undefined, stop: () => cancel() };
}

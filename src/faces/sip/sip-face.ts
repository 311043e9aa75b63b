// The SIP face (STAGE3.md): UDP and TCP listeners on the configured host and port, the user agent core, and the
// state it owns. Started by McSystem.listen() when the configuration has a `sip` key.
import type { Logger } from 'pino';
import type { SystemConfig } from '../../config/config.ts';
import type { McServiceServer } from '../../procedures/context.ts';
import type { CredentialVerifier } from '../http/credentials.ts';
import { parseMcUri } from '../../domain/ids.ts';
import { UserAgentCore } from './user-agent-core.ts';
import { Publications } from './publication-state.ts';
import { Subscriptions } from './subscription-state.ts';
import { UdpTransport } from './udp-transport.ts';
import { TcpTransport } from './tcp-transport.ts';
import type { Flow, Transport } from './transport.ts';
import type { LocalAddress } from './notify-user-agent-client.ts';
import { DigestAuthenticator } from './digest.ts';

export type SipConfig = NonNullable<SystemConfig['sip']>;

export class SipFace {
  private constructor(
    private readonly core: UserAgentCore,
    private readonly transports: Transport[],
    readonly subscriptions: Subscriptions,
  ) {}

  static async start(opts: { config: SipConfig; server: McServiceServer; verifier: CredentialVerifier; secret: string; log: Logger }): Promise<SipFace> {
    const { config, server, log } = opts;
    const transports: Transport[] = [];
    const locals = new Map<string, LocalAddress>();
    const localOf = (flow: Flow): LocalAddress => locals.get(flow.transport) ?? { transport: flow.transport === 'tcp' ? 'TCP' : 'UDP', address: config.host, port: config.port };
    const subscriptions = new Subscriptions();
    const core = new UserAgentCore(
      {
        server,
        verifier: opts.verifier,
        digest: new DigestAuthenticator({ secret: opts.secret, realm: server.domain, now: () => server.clock.now(), algorithms: config.digestAlgorithms }),
        psi: parseMcUri(config.psi),
        trustedPeers: config.trustedPeers,
        agent: server.domain,
        publications: new Publications(server.clock),
        subscriptions,
      },
      localOf,
      log.child({ face: 'sip' }),
    );
    try {
      for (const t of config.transports) {
        const transport = t === 'udp' ? await UdpTransport.listen(config.host, config.port, core) : await TcpTransport.listen(config.host, config.port, core);
        transports.push(transport);
        locals.set(t, { transport: t === 'tcp' ? 'TCP' : 'UDP', address: transport.local.address, port: transport.local.port });
      }
    } catch (e) {
      await Promise.allSettled(transports.map((t) => t.close()));
      throw e;
    }
    log.info({ host: config.host, port: config.port, transports: config.transports, psi: config.psi }, 'SIP face listening');
    return new SipFace(core, transports, subscriptions);
  }

  async stop(): Promise<void> {
    this.core.stop();
    await Promise.allSettled(this.transports.map((t) => t.close()));
  }
}

// The event fabric between instances of one MC system (NATS): each instance announces what it changed, the
// others refresh their caches and wake their waiting clients. Durable facts stay in the shared store; NATS only
// carries the news, so a missed message costs freshness (caches also refresh from the store), never data.
import { connect, JSONCodec, type NatsConnection, type Subscription } from 'nats';
import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import { MusterError } from '../domain/errors.ts';

export type FabricTopic = 'events' | 'policy' | 'profiles' | 'changes';

interface Envelope {
  from: string;
  data: unknown;
}

const codec = JSONCodec<Envelope>();

export class NatsFabric {
  readonly instanceId = randomUUID();
  private readonly subs: Subscription[] = [];

  private constructor(
    private readonly nc: NatsConnection,
    private readonly prefix: string,
    private readonly log: Logger,
  ) {}

  static async connect(url: string, domain: string, log: Logger): Promise<NatsFabric> {
    let nc: NatsConnection;
    try {
      nc = await connect({ servers: url, timeout: 3000, maxReconnectAttempts: -1, reconnectTimeWait: 500, name: `muster-${domain}` });
    } catch (e) {
      throw new MusterError('unavailable', `NATS at ${url} unreachable: ${(e as Error).message}`);
    }
    return new NatsFabric(nc, `muster.${domain.replace(/[.*> ]/g, '_')}`, log);
  }

  publish(topic: FabricTopic, data: unknown): void {
    try {
      this.nc.publish(`${this.prefix}.${topic}`, codec.encode({ from: this.instanceId, data }));
    } catch (e) {
      // The fact is stored; the other instances catch up from the store. Say so, but do not fail the request.
      this.log.warn({ topic, err: (e as Error).message }, 'fabric publish failed');
    }
  }

  /** Calls `handler` for every message of `topic` published by another instance. */
  on(topic: FabricTopic, handler: (data: unknown) => void | Promise<void>): void {
    const sub = this.nc.subscribe(`${this.prefix}.${topic}`, {
      callback: (err, msg) => {
        if (err) return this.log.warn({ topic, err: err.message }, 'fabric subscription error');
        let env: Envelope;
        try {
          env = codec.decode(msg.data);
        } catch {
          return this.log.warn({ topic }, 'fabric message not JSON');
        }
        if (env.from === this.instanceId) return;
        Promise.resolve(handler(env.data)).catch((e: unknown) => this.log.warn({ topic, err: (e as Error).message }, 'fabric handler failed'));
      },
    });
    this.subs.push(sub);
  }

  /** Resolves once every subscription is registered at the server, so no message published after it is missed. */
  async ready(): Promise<void> {
    await this.nc.flush();
  }

  async health(): Promise<'up' | 'down'> {
    return this.nc.isClosed() ? 'down' : 'up';
  }

  async close(): Promise<void> {
    if (!this.nc.isClosed()) await this.nc.drain();
  }
}

// The event fabric between instances of one MC system (NATS): each instance announces what it changed, the
// others refresh their caches and wake their waiting clients. Durable facts stay in the shared store; NATS only
// carries the news, so a missed message costs freshness, never data. Messages are lost while an instance's
// connection is down, and a handler may fail on one: then (onCatchUp) the instance reads its caches from the store
// again, and confirms a message only once it is in force here.
import { connect, createInbox, Events, JSONCodec, type NatsConnection, type Subscription } from 'nats';
import { createHash, randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import { MusterError } from '../domain/errors.ts';

export type FabricTopic = 'events' | 'policy' | 'profiles' | 'changes';

interface Envelope {
  from: string;
  data: unknown;
}

const codec = JSONCodec<Envelope>();

/** How often an instance says it is alive, and after how long without a word a peer counts as gone. */
const HEARTBEAT_MS = 1000;
const PEER_GONE_MS = 3500;

export class NatsFabric {
  readonly instanceId = randomUUID();
  private readonly subs: Subscription[] = [];
  /** The other live instances of this system, by the last time each said so. */
  private readonly peers = new Map<string, number>();
  private heartbeat?: NodeJS.Timeout;
  private readonly catchUpListeners: (() => Promise<void>)[] = [];

  private constructor(
    private readonly nc: NatsConnection,
    private readonly prefix: string,
    private readonly log: Logger,
  ) {}

  /**
   * `store` names the system's shared store: the instances of one system are exactly those that share it, so it is
   * part of every subject. Two systems with the same domain on one NATS server (staging and production, or test
   * runs side by side) never hear each other.
   */
  static async connect(url: string, domain: string, store: string, log: Logger): Promise<NatsFabric> {
    let nc: NatsConnection;
    try {
      nc = await connect({ servers: url, timeout: 3000, maxReconnectAttempts: -1, reconnectTimeWait: 500, name: `muster-${domain}` });
    } catch (e) {
      throw new MusterError('unavailable', `NATS at ${url} unreachable: ${(e as Error).message}`);
    }
    const storeId = createHash('sha256').update(store).digest('hex').slice(0, 16);
    const fabric = new NatsFabric(nc, `muster.${domain.replace(/[.*> ]/g, '_')}.${storeId}`, log);
    fabric.watchPeers();
    fabric.watchConnection();
    return fabric;
  }

  /**
   * `listener` reads from the store what this instance may have missed: called each time the connection to NATS is
   * back after a loss (what was published meanwhile is lost to it), and when a handler failed on a message.
   */
  onCatchUp(listener: () => Promise<void>): void {
    this.catchUpListeners.push(listener);
  }

  /** True once every listener read the store again; false if one failed or none is there to do it. */
  private async catchUp(why: string): Promise<boolean> {
    if (this.catchUpListeners.length === 0) return false;
    try {
      await Promise.all(this.catchUpListeners.map((l) => l()));
      this.log.info({ why }, 'caches read again from the store');
      return true;
    } catch (e) {
      this.log.warn({ why, err: (e as Error).message }, 'caches could not be read again from the store');
      return false;
    }
  }

  private watchConnection(): void {
    void (async () => {
      for await (const s of this.nc.status()) {
        if (s.type === Events.Disconnect) this.log.warn({ server: s.data }, 'fabric connection lost; reconnecting');
        if (s.type === Events.Reconnect) {
          this.log.info({ server: s.data }, 'fabric connection back');
          void this.catchUp('the fabric connection was back');
        }
      }
    })().catch((e: unknown) => this.log.warn({ err: (e as Error).message }, 'fabric status watch ended'));
  }

  /**
   * Presence: an instance learns of its peers from the start, but announces itself only once its own
   * subscriptions are in place (ready()), so a peer never waits for the confirmation of one that cannot hear it.
   */
  private watchPeers(): void {
    this.subs.push(
      this.nc.subscribe(`${this.prefix}.instances`, {
        callback: (_err, msg) => {
          let env: Envelope;
          try {
            env = codec.decode(msg.data);
          } catch {
            return;
          }
          if (env.from === this.instanceId) return;
          const known = this.peers.has(env.from);
          this.peers.set(env.from, Date.now());
          // A newcomer says hello: answer at once, if this instance is itself ready to be counted on.
          if ((env.data as { hello?: boolean }).hello && !known && this.heartbeat) this.say(false);
        },
      }),
    );
  }

  private say(hello: boolean): void {
    this.nc.publish(`${this.prefix}.instances`, codec.encode({ from: this.instanceId, data: { hello } }));
  }

  /**
   * Publishes and waits until every live peer has handled the message (bounded by `timeoutMs`), so a change
   * announced this way is in force at every instance before the caller answers its client.
   */
  async publishConfirmed(topic: FabricTopic, data: unknown, timeoutMs = 1000): Promise<void> {
    const expected = new Set(this.peers.keys());
    if (expected.size === 0) return this.publish(topic, data);
    const inbox = createInbox();
    const acks = this.nc.subscribe(inbox, { timeout: timeoutMs });
    this.nc.publish(`${this.prefix}.${topic}`, codec.encode({ from: this.instanceId, data }), { reply: inbox });
    try {
      for await (const msg of acks) {
        expected.delete(msg.string());
        if (expected.size === 0) break;
      }
    } catch {
      this.log.warn({ topic, missing: [...expected] }, 'not every instance confirmed a change in time');
    } finally {
      acks.unsubscribe();
    }
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
        // Confirmed only once in force here: a failed handler's news is taken from the store instead, or not confirmed.
        void Promise.resolve()
          .then(() => handler(env.data))
          .then(
            () => true,
            (e: unknown) => {
              this.log.warn({ topic, err: (e as Error).message }, 'fabric handler failed; reading the caches from the store again');
              return this.catchUp(`a ${topic} handler failed`);
            },
          )
          .then((inForce) => {
            if (inForce && msg.reply) msg.respond(new TextEncoder().encode(this.instanceId));
          });
      },
    });
    this.subs.push(sub);
  }

  /** Resolves once every subscription is registered at the server, so no message published after it is missed. */
  async ready(): Promise<void> {
    await this.nc.flush();
    if (this.heartbeat) return;
    this.say(true);
    this.heartbeat = setInterval(() => {
      this.say(false);
      const now = Date.now();
      for (const [id, seen] of this.peers) if (now - seen > PEER_GONE_MS) this.peers.delete(id);
    }, HEARTBEAT_MS);
    this.heartbeat.unref();
    await this.nc.flush();
  }

  /** How many other live instances this one knows of: those whose confirmation publishConfirmed waits for. */
  livePeers(): number {
    return this.peers.size;
  }

  async health(): Promise<'up' | 'down'> {
    return this.nc.isClosed() ? 'down' : 'up';
  }

  async close(): Promise<void> {
    if (this.heartbeat) clearInterval(this.heartbeat);
    if (!this.nc.isClosed()) await this.nc.drain();
  }
}

// The event fabric between instances of one MC system (NATS): each instance announces what it changed, the
// others refresh their caches and wake their waiting clients. Durable facts stay in the shared store; NATS only
// carries the news, so a missed message costs freshness, never data. Messages are lost while an instance's
// connection is down, and a handler may fail on one: then (onCatchUp) the instance reads its caches from the store
// again, and confirms a message only once it is in force here. A change a live peer does not confirm within the
// bound is named to the announcer's caller, and the peer is asked to read the store again until it confirms or leaves.
import { connect, createInbox, Events, JSONCodec, type NatsConnection, type Subscription } from 'nats';
import { createHash, randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import type { Logger } from 'pino';
import { MusterError } from '../domain/errors.ts';
import { fabricCachesBehind, fabricInstancesBehind, fabricUnconfirmedChanges } from './metrics.ts';

export type FabricTopic = 'events' | 'policy' | 'profiles' | 'changes';

interface Envelope {
  from: string;
  data: unknown;
}

const codec = JSONCodec<Envelope>();

/** How often an instance says it is alive, and after how long without a word a peer counts as gone. */
const HEARTBEAT_MS = 1000;
const PEER_GONE_MS = 3500;
/** How long a change's announcer waits for every live peer to confirm it before answering its caller. */
export const CONFIRM_WITHIN_MS = 1000;
/** Back-off of the asks to read the store again (a peer behind, or this instance itself): doubling, capped. */
const CATCH_UP_FIRST_MS = 1000;
const CATCH_UP_CAP_MS = 15_000;
/** How long an ask waits for the peer's answer: a reload of every profile and group may take a while. */
const CATCH_UP_ANSWER_MS = 10_000;

const backOff = (attempt: number): number => Math.min(CATCH_UP_CAP_MS, CATCH_UP_FIRST_MS * 2 ** attempt);

/** A live peer that has not confirmed a change this instance announced (publishConfirmed). */
interface PeerBehind {
  /** Changes not confirmed since it was last in force; an ask covers only those announced before it left. */
  changes: number;
  attempt: number;
  timer?: NodeJS.Timeout;
}

export class NatsFabric {
  readonly instanceId = randomUUID();
  /** How peers and operators name this instance: host and HTTP address once it listens (nameInstance). */
  private name = `${hostname()}/pid ${process.pid}/${this.instanceId.slice(0, 8)}`;
  private readonly subs: Subscription[] = [];
  /** The other live instances of this system: the last time each said so, and its name. */
  private readonly peers = new Map<string, { seen: number; name: string }>();
  /** Live peers known not to have confirmed a change this instance announced. */
  private readonly peersBehind = new Map<string, PeerBehind>();
  /** This instance's own caches are known to miss a change: a read of the store failed, and none worked since. */
  private cachesBehind = false;
  private catchUpAttempt = 0;
  private catchUpRetry?: NodeJS.Timeout;
  private catchingUp?: Promise<boolean>;
  private catchUpAgain?: Promise<boolean>;
  private heartbeat?: NodeJS.Timeout;
  private closed = false;
  private readonly catchUpListeners: (() => Promise<void>)[] = [];

  private constructor(
    private readonly nc: NatsConnection,
    private readonly prefix: string,
    private readonly log: Logger,
    /** The `system` label of this instance's metrics. */
    private readonly system: string,
  ) {}

  /**
   * `store` names the system's shared store: the instances of one system are exactly those that share it, so it is
   * part of every subject. Two systems with the same domain on one NATS server (staging and production, or test
   * runs side by side) never hear each other.
   */
  static async connect(url: string, domain: string, store: string, log: Logger, opts: { system?: string } = {}): Promise<NatsFabric> {
    let nc: NatsConnection;
    try {
      nc = await connect({ servers: url, timeout: 3000, maxReconnectAttempts: -1, reconnectTimeWait: 500, name: `muster-${domain}` });
    } catch (e) {
      throw new MusterError('unavailable', `NATS at ${url} unreachable: ${(e as Error).message}`);
    }
    const storeId = createHash('sha256').update(store).digest('hex').slice(0, 16);
    const fabric = new NatsFabric(nc, `muster.${domain.replace(/[.*> ]/g, '_')}.${storeId}`, log, opts.system ?? domain);
    fabric.watchPeers();
    fabric.answerCatchUpAsks();
    fabric.watchConnection();
    fabricInstancesBehind.labels(fabric.system).set(0);
    fabricCachesBehind.labels(fabric.system).set(0);
    return fabric;
  }

  /** The name peers list this instance under (host and HTTP address), told with every heartbeat. */
  nameInstance(name: string): void {
    this.name = name;
  }

  /**
   * `listener` reads from the store what this instance may have missed: called each time the connection to NATS is
   * back after a loss (what was published meanwhile is lost to it), and when a handler failed on a message.
   */
  onCatchUp(listener: () => Promise<void>): void {
    this.catchUpListeners.push(listener);
  }

  /**
   * True once every listener read the store again; false if one failed or none is there to do it. One read at a time:
   * who asks while one runs gets the next one, since the running one may have read the store before the news.
   */
  private catchUp(why: string): Promise<boolean> {
    if (!this.catchingUp) return (this.catchingUp = this.readStore(why).finally(() => (this.catchingUp = undefined)));
    return (this.catchUpAgain ??= this.catchingUp.then(() => {
      this.catchUpAgain = undefined;
      return this.catchUp(why);
    }));
  }

  private async readStore(why: string): Promise<boolean> {
    if (this.catchUpListeners.length === 0) return false;
    try {
      await Promise.all(this.catchUpListeners.map((l) => l()));
      this.log.info({ why }, 'caches read again from the store');
      this.cachesInForce();
      return true;
    } catch (e) {
      this.log.warn({ why, err: (e as Error).message }, 'caches could not be read again from the store');
      this.cachesMissing(why);
      return false;
    }
  }

  /** Caches known to miss a change: said in health and metrics, and the store read again with back-off until it works. */
  private cachesMissing(why: string): void {
    this.cachesBehind = true;
    fabricCachesBehind.labels(this.system).set(1);
    if (this.closed || this.catchUpRetry) return;
    this.catchUpRetry = setTimeout(() => {
      this.catchUpRetry = undefined;
      void this.catchUp(`retry after: ${why}`);
    }, backOff(this.catchUpAttempt++));
    this.catchUpRetry.unref();
  }

  private cachesInForce(): void {
    this.cachesBehind = false;
    this.catchUpAttempt = 0;
    clearTimeout(this.catchUpRetry);
    this.catchUpRetry = undefined;
    fabricCachesBehind.labels(this.system).set(0);
  }

  /** An announcer whose change this instance did not confirm asks it to read the store: answered once that is done. */
  private answerCatchUpAsks(): void {
    this.subs.push(
      this.nc.subscribe(`${this.prefix}.catch-up.${this.instanceId}`, {
        callback: (_err, msg) => {
          void this.catchUp('an instance asked: a change it announced was not confirmed here').then((inForce) => {
            if (msg.reply) msg.respond(new TextEncoder().encode(inForce ? 'in-force' : 'behind'));
          });
        },
      }),
    );
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
          const said = env.data as { hello?: boolean; name?: unknown };
          this.peers.set(env.from, { seen: Date.now(), name: typeof said.name === 'string' ? said.name : env.from });
          // A newcomer says hello: answer at once, if this instance is itself ready to be counted on.
          if (said.hello && !known && this.heartbeat) this.say(false);
        },
      }),
    );
  }

  private say(hello: boolean): void {
    this.nc.publish(`${this.prefix}.instances`, codec.encode({ from: this.instanceId, data: { hello, name: this.name } }));
  }

  /**
   * Publishes and waits until every live peer has handled the message (bounded by `timeoutMs`), so a change
   * announced this way is in force at every instance before the caller answers its client. Returns the names of the
   * live peers that did not confirm in time (none: in force everywhere); each is asked to read the store again.
   */
  async publishConfirmed(topic: FabricTopic, data: unknown, timeoutMs = CONFIRM_WITHIN_MS): Promise<string[]> {
    const expected = new Set(this.peers.keys());
    if (expected.size === 0) {
      this.publish(topic, data);
      return [];
    }
    const inbox = createInbox();
    const acks = this.nc.subscribe(inbox, { timeout: timeoutMs });
    this.nc.publish(`${this.prefix}.${topic}`, codec.encode({ from: this.instanceId, data }), { reply: inbox });
    try {
      for await (const msg of acks) {
        expected.delete(msg.string());
        if (expected.size === 0) break;
      }
    } catch {
      // A peer that left meanwhile is not waited for: it reads the store when it is back.
      for (const id of expected) if (!this.peers.has(id)) expected.delete(id);
      this.log.warn({ topic, missing: [...expected].map((id) => this.peerName(id)) }, 'not every instance confirmed a change in time');
    } finally {
      acks.unsubscribe();
    }
    for (const id of expected) this.peerBehind(id);
    if (expected.size > 0) fabricUnconfirmedChanges.labels(this.system).inc();
    return [...expected].map((id) => this.peerName(id)).sort();
  }

  /** Names of the live peers known not to have confirmed a change this instance announced. */
  instancesBehind(): string[] {
    return [...this.peersBehind.keys()].map((id) => this.peerName(id)).sort();
  }

  /** Names of the other live instances of this system. */
  liveInstances(): string[] {
    return [...this.peers.keys()].map((id) => this.peerName(id)).sort();
  }

  private peerName(id: string): string {
    return this.peers.get(id)?.name ?? id;
  }

  private peerBehind(id: string): void {
    const known = this.peersBehind.get(id);
    if (known) {
      known.changes++;
      return;
    }
    this.peersBehind.set(id, { changes: 1, attempt: 0 });
    fabricInstancesBehind.labels(this.system).set(this.peersBehind.size);
    this.askLater(id);
  }

  private askLater(id: string): void {
    const behind = this.peersBehind.get(id);
    if (!behind || this.closed) return;
    behind.timer = setTimeout(() => void this.askToCatchUp(id), backOff(behind.attempt++));
    behind.timer.unref();
  }

  /** Asks a peer behind to read the store again; it is no longer behind once it answers that it did. */
  private async askToCatchUp(id: string): Promise<void> {
    const behind = this.peersBehind.get(id);
    if (!behind) return;
    const covered = behind.changes;
    let inForce = false;
    try {
      const answer = await this.nc.request(`${this.prefix}.catch-up.${id}`, codec.encode({ from: this.instanceId, data: null }), { timeout: CATCH_UP_ANSWER_MS });
      inForce = answer.string() === 'in-force';
    } catch {
      // no answer in time (stopped, overloaded, or no longer there): asked again after the back-off
    }
    if (this.peersBehind.get(id) !== behind) return; // it left meanwhile, or the fabric closed
    if (inForce) behind.changes -= covered;
    if (behind.changes === 0) {
      this.forgetBehind(id);
      this.log.info({ instance: this.peerName(id) }, 'an instance behind read the store again: the changes announced are in force there');
      return;
    }
    if (inForce) behind.attempt = 0; // a change came after the ask left: ask again soon
    this.log.warn({ instance: this.peerName(id), changes: behind.changes, attempt: behind.attempt }, 'an instance still has not confirmed changes announced; asking again');
    this.askLater(id);
  }

  private forgetBehind(id: string): void {
    clearTimeout(this.peersBehind.get(id)?.timer);
    this.peersBehind.delete(id);
    fabricInstancesBehind.labels(this.system).set(this.peersBehind.size);
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
      for (const [id, peer] of this.peers) {
        if (now - peer.seen <= PEER_GONE_MS) continue;
        // Gone: no longer waited for. Back, it handles what was queued for it, or reads the store (start-up, reconnection).
        if (this.peersBehind.has(id)) this.log.warn({ instance: peer.name }, 'an instance behind left the live instances');
        this.forgetBehind(id);
        this.peers.delete(id);
      }
    }, HEARTBEAT_MS);
    this.heartbeat.unref();
    await this.nc.flush();
  }

  /** How many other live instances this one knows of: those whose confirmation publishConfirmed waits for. */
  livePeers(): number {
    return this.peers.size;
  }

  /** 'behind' while this instance knows its caches miss a change (its read of the store failed). */
  async health(): Promise<'up' | 'down' | 'behind'> {
    if (this.nc.isClosed()) return 'down';
    return this.cachesBehind ? 'behind' : 'up';
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.heartbeat) clearInterval(this.heartbeat);
    clearTimeout(this.catchUpRetry);
    for (const id of [...this.peersBehind.keys()]) this.forgetBehind(id);
    if (!this.nc.isClosed()) await this.nc.drain();
  }
}

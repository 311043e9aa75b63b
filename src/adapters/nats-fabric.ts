// The event fabric between instances of one MC system (NATS): each instance announces what it changed, the
// others refresh their caches and wake their waiting clients. Durable facts stay in the shared store; NATS only
// carries the news, so a missed message costs freshness, never data. Messages are lost while an instance's
// connection is down, and a handler may fail on one: then (onCatchUp) the instance reads its caches from the store
// again, and confirms a message only once it is in force here. A change a live peer does not confirm within the
// bound is named to the announcer's caller, and the peer is asked to read the store again until it confirms or leaves.
// So is each live peer when the fabric cannot carry a change at all (cut off from NATS, or the connection closed).
// Every timer runs on the injected clock (STYLE.md habit 10); only the NATS client's own reconnection does not.
import { connect, createInbox, Events, JSONCodec, type Msg, type NatsConnection, type Subscription } from 'nats';
import { createHash, randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import type { Logger } from 'pino';
import { MusterError } from '../domain/errors.ts';
import type { Announced } from '../ports/announcement.ts';
import { systemClock, type Clock } from '../ports/clock.ts';
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
  /** Cancels the next ask. */
  timer?: () => void;
  /** An ask is on its way: a reconnection does not send a second one that would count its changes twice. */
  asking?: boolean;
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
  /** Cancels the next read of the store. */
  private catchUpRetry?: () => void;
  private catchingUp?: Promise<boolean>;
  private catchUpAgain?: Promise<boolean>;
  /** Cancels the next heartbeat; set once this instance is ready to be counted on. */
  private heartbeat?: () => void;
  private closed = false;
  private closing?: Promise<void>;
  /** False from a loss of the NATS connection until it is back: news sent meanwhile would reach no one now. */
  private connected = true;
  private readonly catchUpListeners: (() => Promise<void>)[] = [];

  private constructor(
    private readonly nc: NatsConnection,
    private readonly prefix: string,
    private readonly log: Logger,
    /** The `system` label of this instance's metrics. */
    private readonly system: string,
    private readonly clock: Clock,
  ) {}

  /**
   * `store` names the system's shared store: the instances of one system are exactly those that share it, so it is
   * part of every subject. Two systems with the same domain on one NATS server (staging and production, or test
   * runs side by side) never hear each other.
   */
  static async connect(url: string, domain: string, store: string, log: Logger, opts: { system?: string; clock?: Clock } = {}): Promise<NatsFabric> {
    let nc: NatsConnection;
    try {
      nc = await connect({ servers: url, timeout: 3000, maxReconnectAttempts: -1, reconnectTimeWait: 500, name: `muster-${domain}` });
    } catch (e) {
      throw new MusterError('unavailable', `NATS at ${url} unreachable: ${(e as Error).message}`);
    }
    const storeId = createHash('sha256').update(store).digest('hex').slice(0, 16);
    const fabric = new NatsFabric(nc, `muster.${domain.replace(/[.*> ]/g, '_')}.${storeId}`, log, opts.system ?? domain, opts.clock ?? systemClock);
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
    this.catchUpRetry = this.clock.after(backOff(this.catchUpAttempt++), () => {
      this.catchUpRetry = undefined;
      void this.catchUp(`retry after: ${why}`);
    });
  }

  private cachesInForce(): void {
    this.cachesBehind = false;
    this.catchUpAttempt = 0;
    this.catchUpRetry?.();
    this.catchUpRetry = undefined;
    fabricCachesBehind.labels(this.system).set(0);
  }

  /** An announcer whose change this instance did not confirm asks it to read the store: answered once that is done. */
  private answerCatchUpAsks(): void {
    this.subs.push(
      this.nc.subscribe(`${this.prefix}.catch-up.${this.instanceId}`, {
        callback: (_err, msg) => {
          void this.catchUp('an instance asked: a change it announced was not confirmed here').then((inForce) => this.respond(msg, inForce ? 'in-force' : 'behind'));
        },
      }),
    );
  }

  private watchConnection(): void {
    void (async () => {
      for await (const s of this.nc.status()) {
        if (s.type === Events.Disconnect) {
          this.connected = false;
          this.log.warn({ server: s.data }, 'fabric connection lost; reconnecting');
        }
        if (s.type === Events.Reconnect) {
          this.connected = true;
          this.log.info({ server: s.data }, 'fabric connection back');
          // What the peers said meanwhile never reached this instance: their silence was its own, so they get the full time again.
          const now = this.clock.now();
          for (const peer of this.peers.values()) peer.seen = now;
          // Those not told of a change while this instance was cut off are asked now, not after the back-off reached.
          for (const id of this.peersBehind.keys()) this.askNow(id);
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
          this.peers.set(env.from, { seen: this.clock.now(), name: typeof said.name === 'string' ? said.name : env.from });
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
   * Publishes and waits until every live peer has handled the message (bounded by `timeoutMs` of the clock), so a
   * change announced this way is in force at every instance before the caller answers its client. Answers the names
   * of the live peers that did not confirm in time (none: in force everywhere); each is asked to read the store again.
   * When the fabric cannot carry the change at all, every live peer is named at once, with why (`untold`).
   */
  async publishConfirmed(topic: FabricTopic, data: unknown, timeoutMs = CONFIRM_WITHIN_MS): Promise<Announced> {
    const expected = new Set(this.peers.keys());
    const untold = this.untold();
    if (untold) return this.notTold(topic, expected, untold);
    if (expected.size === 0) {
      this.publish(topic, data);
      return { notConfirmed: [] };
    }
    const inbox = createInbox();
    let acks: Subscription;
    try {
      acks = this.nc.subscribe(inbox);
      this.nc.publish(`${this.prefix}.${topic}`, codec.encode({ from: this.instanceId, data }), { reply: inbox });
    } catch (e) {
      // Closed or draining between the look and the call: the change is stored, so it is named, never failed.
      return this.notTold(topic, expected, this.untold() ?? `the NATS client refused it: ${(e as Error).message}`);
    }
    const bound = this.clock.after(timeoutMs, () => acks.unsubscribe());
    try {
      for await (const msg of acks) {
        expected.delete(msg.string());
        if (expected.size === 0) break;
      }
    } catch (e) {
      this.log.warn({ topic, err: (e as Error).message }, 'the confirmations of a change could not be read');
    } finally {
      bound();
      acks.unsubscribe();
    }
    // A peer that left meanwhile is not waited for: it reads the store when it is back.
    for (const id of expected) if (!this.peers.has(id)) expected.delete(id);
    if (expected.size === 0) return { notConfirmed: [] };
    const lost = this.untold();
    if (lost) return this.notTold(topic, expected, lost);
    this.log.warn({ topic, missing: [...expected].map((id) => this.peerName(id)) }, 'not every instance confirmed a change in time');
    return { notConfirmed: this.markBehind(expected) };
  }

  /** Why the fabric cannot carry news now, and what follows for the peers not told; undefined while it can. */
  private untold(): string | undefined {
    if (this.closed || this.nc.isClosed() || this.nc.isDraining()) return "this instance's NATS connection is closed, so it cannot ask them to read the store again";
    if (!this.connected) return 'this instance is cut off from NATS; each is asked to read the store again once NATS is back';
    return undefined;
  }

  /** A change the fabric could not carry: every live peer is behind. Not published later: a stale copy could follow a newer change. */
  private notTold(topic: FabricTopic, peers: Set<string>, why: string): Announced {
    this.log.warn({ topic, why, missing: [...peers].map((id) => this.peerName(id)) }, 'the fabric could not be told of a change');
    return { notConfirmed: this.markBehind(peers), untold: why };
  }

  private markBehind(peers: Set<string>): string[] {
    for (const id of peers) this.peerBehind(id);
    if (peers.size > 0) fabricUnconfirmedChanges.labels(this.system).inc();
    return [...peers].map((id) => this.peerName(id)).sort();
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
    if (!behind || this.closed || this.nc.isClosed()) return;
    behind.timer = this.clock.after(backOff(behind.attempt++), () => void this.askToCatchUp(id));
  }

  /** Asks at once, the back-off started again (NATS is back); not while an ask is on its way. */
  private askNow(id: string): void {
    const behind = this.peersBehind.get(id);
    if (!behind || behind.asking) return;
    behind.timer?.();
    behind.attempt = 0;
    void this.askToCatchUp(id);
  }

  /** Asks a peer behind to read the store again; it is no longer behind once it answers that it did. */
  private async askToCatchUp(id: string): Promise<void> {
    const behind = this.peersBehind.get(id);
    if (!behind || behind.asking) return;
    const covered = behind.changes;
    // Cut off, an ask would reach no one: the next one is due after the back-off, or at once when NATS is back.
    const inForce = this.connected && (await this.ask(behind, `${this.prefix}.catch-up.${id}`)) === 'in-force';
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

  /** One request, its answer bounded by CATCH_UP_ANSWER_MS of the clock; undefined when none came (stopped, overloaded, gone). */
  private async ask(behind: PeerBehind, subject: string): Promise<string | undefined> {
    behind.asking = true;
    let answers: Subscription | undefined;
    let bound = (): void => undefined;
    try {
      const inbox = createInbox();
      const sub = (answers = this.nc.subscribe(inbox, { max: 1 }));
      bound = this.clock.after(CATCH_UP_ANSWER_MS, () => sub.unsubscribe());
      this.nc.publish(subject, codec.encode({ from: this.instanceId, data: null }), { reply: inbox });
      for await (const answer of sub) return answer.string(); // "no responders" is an empty answer: not in force
      return undefined;
    } catch {
      return undefined; // the connection closed or failed meanwhile: asked again after the back-off
    } finally {
      bound();
      answers?.unsubscribe();
      behind.asking = false;
    }
  }

  private forgetBehind(id: string): void {
    this.peersBehind.get(id)?.timer?.();
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
            if (inForce) this.respond(msg, this.instanceId);
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
    this.beat();
    await this.nc.flush();
  }

  /** Says this instance is alive and forgets peers silent for PEER_GONE_MS, every HEARTBEAT_MS of the clock. */
  private beat(): void {
    this.heartbeat = this.clock.after(HEARTBEAT_MS, () => {
      if (this.untold()) return this.beat(); // cut off: silence heard now is this instance's own, not the peers'
      this.say(false);
      const now = this.clock.now();
      for (const [id, peer] of this.peers) {
        if (now - peer.seen <= PEER_GONE_MS) continue;
        // Gone: no longer waited for. Back, it handles what was queued for it, or reads the store (start-up, reconnection).
        if (this.peersBehind.has(id)) this.log.warn({ instance: peer.name }, 'an instance behind left the live instances');
        this.forgetBehind(id);
        this.peers.delete(id);
      }
      this.beat();
    });
  }

  /** Answers a request, unless the connection closed meanwhile (the asker then counts it as not confirmed). */
  private respond(msg: Msg, text: string): void {
    if (!msg.reply || this.nc.isClosed()) return;
    try {
      msg.respond(new TextEncoder().encode(text));
    } catch (e) {
      this.log.warn({ err: (e as Error).message }, 'fabric answer not sent');
    }
  }

  /** How many other live instances this one knows of: those whose confirmation publishConfirmed waits for. */
  livePeers(): number {
    return this.peers.size;
  }

  /**
   * 'behind' while this instance knows its caches miss a change (its read of the store failed); 'reconnecting' while
   * it is cut off from NATS: the other instances' changes do not reach its caches until it is back.
   */
  async health(): Promise<'up' | 'down' | 'behind' | 'reconnecting'> {
    if (this.nc.isClosed()) return 'down';
    if (!this.connected) return 'reconnecting';
    return this.cachesBehind ? 'behind' : 'up';
  }

  /** Once, however often called; closed also when NATS is unreachable (a drain then would leave it reconnecting). */
  close(): Promise<void> {
    return (this.closing ??= this.shutDown());
  }

  private async shutDown(): Promise<void> {
    this.closed = true;
    this.heartbeat?.();
    this.catchUpRetry?.();
    for (const id of [...this.peersBehind.keys()]) this.forgetBehind(id);
    if (this.connected && !this.nc.isClosed()) await this.nc.drain().catch((e: unknown) => this.log.warn({ err: (e as Error).message }, 'fabric drain failed'));
    if (!this.nc.isClosed()) await this.nc.close();
  }
}

// One MC system assembled from its configuration: store, GMS, MC service server procedures and their faces.
import pino, { type Logger } from 'pino';
import { hostname } from 'node:os';
import type { FastifyInstance } from 'fastify';
import type { SystemConfig } from './config/config.ts';
import { openSqlite, SqliteStore } from './adapters/sqlite-store.ts';
import { checkpointInWorker } from './adapters/sqlite-checkpointer.ts';
import { NatsFabric } from './adapters/nats-fabric.ts';
import { FabricChangeOutcomes, FabricNotifier } from './adapters/fabric-links.ts';
import type { Store } from './ports/store.ts';
import type { GmsStore } from './ports/gms-store.ts';
import type { McUri } from './domain/ids.ts';
import type { GroupPolicy } from './domain/group-policy.ts';
import { GroupManagementServer } from './gms/group-management-server.ts';
import { SqliteGmsStore } from './adapters/sqlite-gms-store.ts';
import { armStoreFaults, STORE_FAULTS_ENV } from './adapters/sqlite-fault-hook.ts';
import { LocalGroupManagement } from './adapters/gms-local.ts';
import { HttpGroupManagement } from './adapters/gms-http.ts';
import { GmsOutboxSender } from './adapters/gms-outbox-sender.ts';
import { LocalNotifier } from './adapters/local-notifier.ts';
import { UserProfileCache } from './adapters/user-profile-cache.ts';
import { HttpPartnerServers } from './adapters/partner-http.ts';
import { PartnerGate } from './adapters/partner-gate.ts';
import { LocalChangeOutcomes } from './procedures/change-outcomes.ts';
import { expireChanges, resumeChanges } from './procedures/remote-change-negotiated.ts';
import type { McServiceServer } from './procedures/context.ts';
import { PartnerRecovery } from './procedures/partner-recovery.ts';
import { MusterError } from './domain/errors.ts';
import { systemClock, type Clock } from './ports/clock.ts';
import { buildHttpFace } from './faces/http/app.ts';
import { TokenBuckets } from './faces/http/rate-limit.ts';
import { CredentialVerifier } from './faces/http/credentials.ts';
import { SipFace } from './faces/sip/sip-face.ts';

/**
 * Reservations older than this are left from a crash while a partner was asked (DESIGN.md): a minute, or twice the
 * longest partner timeout, so a reservation whose request still waits for its partner is never swept from under it.
 */
function reservationSweepMs(config: SystemConfig): number {
  return Math.max(60_000, ...config.partners.map((p) => 2 * p.timeoutMs));
}

export class McSystem {
  private http?: FastifyInstance;
  private sip?: SipFace;
  private readonly timers: NodeJS.Timeout[] = [];
  /** Partner re-synchronisation: at start-up, when a partner is back, after a failed undo, on the operator's demand. */
  private readonly recovery: PartnerRecovery;

  private constructor(
    readonly config: SystemConfig,
    readonly server: McServiceServer,
    readonly gms: GroupManagementServer,
    readonly profiles: UserProfileCache,
    private readonly outbox: GmsOutboxSender,
    private readonly closeStore: () => Promise<void>,
    readonly log: Logger,
    private readonly fabric?: NatsFabric,
  ) {
    this.recovery = new PartnerRecovery(server);
  }

  static async open(config: SystemConfig, opts: { clock?: Clock; log?: Logger } = {}): Promise<McSystem> {
    // Logs go to stderr: stdout carries what `muster serve` tells its caller (one "<name>: <url>" line per system).
    const log = opts.log ?? pino({ level: config.logLevel, base: { system: config.name } }, pino.destination(2));
    const clock = opts.clock ?? systemClock;
    const stores = await openStores(config, clock);
    const { store } = stores;
    // A serving system checkpoints its SQLite WAL in a worker thread, never in the middle of a commit (issue 6).
    if (store instanceof SqliteStore) checkpointInWorker(store.db, (message) => log.warn({ message }, 'WAL checkpoint failed; the next one retries'));
    // Several instances of one system share the store and learn each other's changes over the fabric.
    const fabric = config.nats ? await NatsFabric.connect(config.nats, config.domain, config.store, log, { system: config.name, clock }) : undefined;
    const gms = await GroupManagementServer.open(stores.gmsStore, () => clock.now());
    // The GMS of this process, or (issue 7) one elsewhere, reached over HTTP with its policies cached here.
    const gmsPort = config.gms ? new HttpGroupManagement(config.gms, log) : new LocalGroupManagement(gms, config.domain);
    if (gmsPort instanceof HttpGroupManagement) gmsPort.start();
    const profiles = new UserProfileCache(store);
    await profiles.load();
    const local = { notifier: new LocalNotifier(), changeOutcomes: new LocalChangeOutcomes() };
    if (fabric) {
      // Confirmed by every live instance before the GMS answers: the next request anywhere sees the change; those that
      // did not confirm within the bound are named in the answer and asked again (nats-fabric.ts).
      gms.announce = (id) => fabric.publishConfirmed('policy', id);
      fabric.on('policy', (id) => gms.reload(id as McUri));
      profiles.announce = (id, profile) => fabric.publishConfirmed('profiles', { id, profile: profile ?? null });
      // The profile travels for instances of an older release; this one reads it from the store (UserProfileCache.reread).
      fabric.on('profiles', (d) => profiles.reread((d as { id: McUri }).id));
      // Changes announced while this instance was cut off from NATS, or whose handler failed here: read from the store.
      fabric.onCatchUp(async () => {
        await Promise.all([profiles.load(), gms.reloadAll()]);
      });
    }
    const notifier = fabric ? new FabricNotifier(local.notifier, fabric) : local.notifier;
    const changeOutcomes = fabric ? new FabricChangeOutcomes(local.changeOutcomes, fabric) : local.changeOutcomes;
    if (fabric) {
      // Subscribe, then read: what another instance changed before the subscription was in place is in the store.
      await fabric.ready();
      await profiles.load();
      await gms.reloadAll();
    }
    // Seed an empty system from its configuration; a store that has data keeps it (the operator's changes win).
    if (profiles.size === 0 && gms.size === 0) {
      for (const g of config.groups) await gms.putGroup(withoutRevision(g));
      // Many at once (SQLite's group commit makes each chunk one transaction), but bounded so a shared store's
      // connection pool is not asked for thousands of connections at the same moment.
      for (let i = 0; i < config.users.length; i += 500) await Promise.all(config.users.slice(i, i + 500).map((u) => profiles.put(u)));
      log.info({ users: config.users.length, groups: config.groups.length }, 'empty store seeded from the configuration');
    }
    const outbox = new GmsOutboxSender(store, gmsPort, log);
    // A GMS elsewhere that answers again gets the waiting updates at once, not after the sender's back-off.
    if (gmsPort instanceof HttpGroupManagement) gmsPort.onReconnect(() => outbox.kick());
    const partners = new HttpPartnerServers(config.domain, config.partners, log, async (userId, service) => new Map((await store.affiliationsOfUser(userId, service)).map((r) => [r.groupId, r.state])));
    const server: McServiceServer = {
      domain: config.domain,
      store,
      gms: gmsPort,
      partners,
      profiles,
      notifier,
      clock,
      changeOutcomes,
      negotiationTimeoutMs: config.negotiationTimeoutMs,
      // A GMS in this process is told inside the affiliation's own transaction (openStores), so nothing new reaches
      // the outbox: no empty read of it after every affiliation (0.6 % of bench 1's main thread).
      tellGmsSoon: config.gms ? () => outbox.kick() : () => undefined,
      resyncPartnerSoon: (domain, reason) => system.recovery.whenReachable(domain, reason),
      log,
    };
    const system = new McSystem(config, server, gms, profiles, outbox, async () => {
      gmsPort.close();
      await partners.close();
      await fabric?.close();
      await stores.close();
    }, log, fabric);
    // Recovery: reservations a crash left, status updates not yet delivered, negotiations still open.
    // One process owns an SQLite store, so every reservation found at start was left by a crash (and must not make
    // the partner re-synchronisation keep what its request applied); instances sharing PostgreSQL may still wait on theirs.
    await store.sweepReservations(store instanceof SqliteStore ? clock.now() + 1 : clock.now() - reservationSweepMs(config));
    outbox.kick();
    await resumeChanges(server);
    return system;
  }

  async listen(): Promise<string> {
    const c = this.config;
    // One budget per caller for both faces: a user sending over SIP and HTTP at once gets the rate once, not twice.
    const rate = new TokenBuckets(c.rateLimit, () => this.server.clock.now());
    this.http = await buildHttpFace({
      config: c,
      server: this.server,
      gms: this.gms,
      profiles: this.profiles,
      verifier: new CredentialVerifier(c.secret, c.domain),
      partnerGate: new PartnerGate(c.domain, c.partners),
      rate,
      health: (opts) => this.health(opts),
      resyncPartners: (partner) => this.resyncPartners(partner),
      partnerStarted: (domain) => this.recovery.partnerStarted(domain),
      log: this.log,
    });
    // A swept reservation was a request whose answer nobody stored: what the partner applied for it goes at a re-sync.
    const sweepOnce = async (): Promise<void> => {
      if ((await this.server.store.sweepReservations(this.server.clock.now() - reservationSweepMs(c))) > 0) this.recovery.everyPartner('reservations swept');
    };
    const sweep = setInterval(() => void sweepOnce().catch(() => undefined), 60_000);
    // Negotiations asked by an instance that is gone still end on time (the conditional update makes it once).
    const expiry = setInterval(() => void expireChanges(this.server).catch(() => undefined), 1000);
    // Retention, hourly and once at start: events older than eventRetentionHours (unanswered change requests stay),
    // audit entries older than auditRetentionDays.
    // One after the other, so no commit carries a chunk of both; a prune still running (a backlog of more than an
    // hour) is not started twice.
    let pruning = false;
    const prune = async (): Promise<void> => {
      if (pruning) return;
      pruning = true;
      const now = this.server.clock.now();
      await this.server.store.pruneEvents(now - this.config.eventRetentionMs).catch((err: unknown) => this.log.warn({ err }, 'event retention failed; retried in an hour'));
      await this.server.store.pruneAudit(now - this.config.auditRetentionMs).catch((err: unknown) => this.log.warn({ err }, 'audit retention failed; retried in an hour'));
      pruning = false;
    };
    void prune();
    const retention = setInterval(() => void prune(), 3600_000);
    sweep.unref();
    expiry.unref();
    retention.unref();
    this.timers.push(sweep, expiry, retention);
    const address = await this.http.listen({ host: c.http.host, port: c.http.port });
    // Other instances name this one by host and HTTP address, where an operator finds it (e.g. host-2/10.0.0.2:8080).
    this.fabric?.nameInstance(`${hostname()}/${address.replace(/^https?:\/\//, '')}`);
    // SIP face (STAGE3.md): opt-in, only when the configuration has a `sip` key.
    if (c.sip) this.sip = await SipFace.start({ config: c.sip, server: this.server, verifier: new CredentialVerifier(c.secret, c.domain), secret: c.secret, rate, log: this.log });
    // Once this system answers, so partners re-synchronising with it at the same time find it up.
    this.recovery.start();
    this.log.info({ address }, 'MC system listening');
    return address;
  }

  async health(opts: { partners: boolean } = { partners: true }): Promise<{ status: 'ok' | 'degraded'; system: string; store: string; gms: string; fabric: string; instances?: string[]; instancesBehind?: string[]; partners: Record<string, string> }> {
    let store = 'up';
    try {
      await this.server.store.pendingGmsUpdates(1);
      // A store that reads but refuses writes (full, read-only) is down for what matters; it is up again after a write.
      if (this.server.store.writeFault?.()) store = 'down';
    } catch {
      store = 'down';
    }
    const gms = await this.server.gms.health();
    const partners = opts.partners ? await this.server.partners.health() : {};
    const fabric = this.fabric ? await this.fabric.health() : 'none';
    // 'behind': this instance knows it serves profiles or policies older than the store's, so it is not up.
    // 'reconnecting' is reported, not counted: NATS down cuts off every instance at once, and taking them all out of
    // a load balancer would stop the service over what only delays other instances' changes.
    const status = store === 'up' && gms === 'up' && (fabric === 'up' || fabric === 'none' || fabric === 'reconnecting') ? 'ok' : 'degraded';
    // The other live instances, and those of them that have not confirmed a change this one announced.
    const instances = this.fabric ? { instances: this.fabric.liveInstances(), instancesBehind: this.fabric.instancesBehind() } : {};
    return { status, system: this.config.name, store: `${this.server.store.kind}:${store}`, gms, fabric, ...instances, partners };
  }

  async resyncPartners(partner?: string) {
    const domains = this.server.partners.domains();
    if (partner !== undefined && !domains.includes(partner)) throw new MusterError('not-found', `no partner system ${partner} (partners: ${domains.join(', ') || 'none'})`, 'partner');
    return Promise.all((partner === undefined ? domains : [partner]).map((d) => this.recovery.resync(d)));
  }

  async stop(): Promise<void> {
    this.recovery.stop();
    this.timers.forEach((t) => clearInterval(t));
    this.outbox.stop();
    await this.sip?.stop();
    await this.http?.close();
    await this.closeStore();
  }
}

export async function startSystems(configs: SystemConfig[]): Promise<{ systems: { name: string; url: string; system: McSystem }[]; stop(): Promise<void> }> {
  const systems: { name: string; url: string; system: McSystem }[] = [];
  try {
    for (const config of configs) {
      const system = await McSystem.open(config);
      systems.push({ name: config.name, url: await system.listen(), system });
    }
  } catch (e) {
    await Promise.allSettled(systems.map((s) => s.system.stop()));
    throw e;
  }
  return { systems, stop: async () => void (await Promise.allSettled(systems.map((s) => s.system.stop()))) };
}

/** The store a configuration names: embedded SQLite (one file per system) or a shared PostgreSQL. */
export async function openStores(config: SystemConfig, clock: Clock = systemClock): Promise<{ store: Store; gmsStore: GmsStore; close(): Promise<void> }> {
  if (config.store.startsWith('sqlite:')) {
    const db = openSqlite(config.store.slice('sqlite:'.length));
    const store = new SqliteStore(db, () => clock.now());
    const gmsStore = new SqliteGmsStore(db);
    // The fast path: a GMS in this process is told inside the affiliation's transaction; one elsewhere, via the outbox.
    if (!config.gms) store.colocateGms(config.domain, gmsStore);
    // Test-only: the store-fault tests make this store full or read-only while it runs (sqlite-fault-hook.ts).
    const faultFile = process.env[STORE_FAULTS_ENV];
    const disarm = faultFile ? armStoreFaults(db, faultFile) : () => undefined;
    return {
      store,
      gmsStore,
      close: () => {
        disarm();
        return store.close();
      },
    };
  }
  const { openPostgres } = await import('./adapters/postgres-store.ts');
  const pg = await openPostgres(config.store);
  if (!config.gms) pg.store.colocateGms(config.domain, pg.gmsStore);
  return { store: pg.store, gmsStore: pg.gmsStore, close: () => pg.store.close() };
}

function withoutRevision(g: GroupPolicy): Omit<GroupPolicy, 'revision'> {
  const { revision, ...doc } = g;
  void revision; // the GMS numbers revisions itself
  return doc;
}

// The GroupManagement port for a GMS elsewhere (issue 7): another Muster system's /gms/v1 over HTTP, with the server
// credential that system issued. Policies are fetched on first use (10.X.3.1 steps 2a/2b), kept in memory and kept
// fresh by the GMS's policy subscription (SSE); status updates are posted in the outbox's order, and the GMS applies
// them idempotently by seq. Every request is bounded by `timeoutMs`; a GMS that does not answer leaves the cached
// policies serving, and a group with none is reported `unavailable` (refused on its own, GMS_UNAVAILABLE).
import { createParser, type EventSourceMessage } from 'eventsource-parser';
import type { Logger } from 'pino';
import { InvalidId, parseMcUri, type McUri } from '../domain/ids.ts';
import { isMcService } from '../domain/services.ts';
import type { GroupPolicy } from '../domain/group-policy.ts';
import type { GroupManagement } from '../ports/group-management.ts';
import type { GmsStatusUpdate } from '../ports/store.ts';
import type { GmsConfig } from '../config/config.ts';
import { uriIntern } from './uri-intern.ts';
import { PeerHttp, jsonOf } from './peer-http.ts';
import type { Dispatcher } from 'undici';

/** After a request the GMS did not answer, it counts as down this long: uncached groups are refused at once. */
const DOWN_HOLD_MS = 1000;
const RECONNECT_MIN_MS = 100;
const RECONNECT_MAX_MS = 2000;
/** The GMS route takes at most this many updates per request (routes-gms.ts). */
const UPDATES_PER_POST = 1000;
/** The health probe answers within this even when the configured timeout is longer. */
const PROBE_MS = 2000;
/** Three of the GMS's 15 s heartbeats missed: the connection is taken as dead (a host gone without closing it). */
const SUBSCRIPTION_IDLE_MS = 45_000;

export class HttpGroupManagement implements GroupManagement {
  private readonly cache = new Map<McUri, GroupPolicy>();
  /** Groups the GMS could not be asked about on their last fetch (and not cached since). */
  private readonly unanswered = new Set<McUri>();
  /** One fetch per group at a time: concurrent requests for an uncached group share it. */
  private readonly fetching = new Map<McUri, Promise<void>>();
  private readonly listeners = new Set<(groupId: McUri) => void>();
  private readonly reconnectListeners = new Set<() => void>();
  private downUntil = 0;
  private stopped = false;
  private stream: AbortController | undefined;
  private probing: Promise<'up' | 'down'> | undefined;
  /** The GMS refused the credential (401/403) on its last answer: it is there, but of no use until that changes. */
  private refused = false;

  private readonly now: () => number;
  private readonly subscriptionIdleMs: number;
  private readonly peer: PeerHttp;

  constructor(
    private readonly config: GmsConfig,
    private readonly log: Logger,
    opts: { now?: () => number; subscriptionIdleMs?: number } = {},
  ) {
    this.now = opts.now ?? Date.now;
    this.subscriptionIdleMs = opts.subscriptionIdleMs ?? SUBSCRIPTION_IDLE_MS;
    this.peer = new PeerHttp(config.url, config.timeoutMs);
  }

  /** Opens the policy subscription; it reconnects by itself until close(). */
  start(): void {
    void this.subscribe();
  }

  policyOf(groupId: McUri): GroupPolicy | undefined {
    return this.cache.get(groupId);
  }

  unavailable(groupId: McUri): boolean {
    return !this.cache.has(groupId) && this.unanswered.has(groupId);
  }

  async ensurePolicies(groupIds: readonly McUri[]): Promise<void> {
    await Promise.all(groupIds.filter((id) => !this.cache.has(id)).map((id) => this.fetchOnce(id)));
  }

  /** Steps 5b / 4b: one POST per chunk, in order; resolves only when the GMS answered 200 for every chunk. */
  async sendStatusUpdates(updates: GmsStatusUpdate[]): Promise<void> {
    for (let i = 0; i < updates.length; i += UPDATES_PER_POST) {
      const chunk = updates.slice(i, i + UPDATES_PER_POST).map(({ seq, userId, groupId, service, status }) => ({ seq, userId, groupId, service, status }));
      const res = await this.request('POST', '/gms/v1/affiliation-status', { updates: chunk });
      const read = await jsonOf(res, this.config.timeoutMs);
      const body = 'body' in read ? (read.body as { applied?: unknown } | null) : undefined;
      if (res.statusCode !== 200 || typeof body?.applied !== 'number') throw new Error(`GMS answered ${res.statusCode} to status updates: ${JSON.stringify(body).slice(0, 200)}`);
    }
  }

  onPolicyChange(listener: (groupId: McUri) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Called each time the subscription is (re)established: the GMS answers again, so waiting updates can go now. */
  onReconnect(listener: () => void): () => void {
    this.reconnectListeners.add(listener);
    return () => this.reconnectListeners.delete(listener);
  }

  /** The GMS answers its /healthz within the bound (any answer of its own, 503 included) and accepts the credential. */
  async health(): Promise<'up' | 'down'> {
    if (this.refused) return 'down';
    this.probing ??= this.probe().finally(() => (this.probing = undefined));
    return this.probing;
  }

  close(): void {
    this.stopped = true;
    this.stream?.abort();
    // Not waiting for a status update under way: the outbox keeps it until the GMS confirms one.
    void this.peer.destroy();
  }

  private async probe(): Promise<'up' | 'down'> {
    try {
      const res = await this.peer.request('GET', '/healthz', { timeoutMs: Math.min(this.config.timeoutMs, PROBE_MS) });
      await res.body.dump();
      return res.statusCode < 500 || res.statusCode === 503 ? 'up' : 'down';
    } catch {
      return 'down';
    }
  }

  private fetchOnce(groupId: McUri): Promise<void> {
    let pending = this.fetching.get(groupId);
    if (!pending) {
      pending = this.fetchPolicy(groupId).finally(() => this.fetching.delete(groupId));
      this.fetching.set(groupId, pending);
    }
    return pending;
  }

  /** Steps 2a/2b for one group: cached on 200, known absent on 404, `unavailable` on anything else. */
  private async fetchPolicy(groupId: McUri): Promise<void> {
    // The GMS just failed to answer: refuse at once rather than make every request wait for its own timeout.
    if (this.now() < this.downUntil) {
      this.unanswered.add(groupId);
      return;
    }
    try {
      const found = await this.getGroup(groupId);
      this.unanswered.delete(groupId);
      if (found) this.keep(found);
    } catch (e) {
      this.unanswered.add(groupId);
      this.downUntil = this.now() + DOWN_HOLD_MS;
      this.log.warn({ groupId, err: (e as Error).message }, 'GMS did not answer a policy request; the group is refused until it does');
    }
  }

  /** The group document, undefined when the GMS has no such group; throws when the GMS gave no usable answer. */
  private async getGroup(groupId: McUri): Promise<GroupPolicy | undefined> {
    const res = await this.request('GET', `/gms/v1/groups/${encodeURIComponent(groupId)}`);
    if (res.statusCode === 404) {
      await res.body.dump();
      return undefined;
    }
    const read = await jsonOf(res, this.config.timeoutMs);
    const body = 'body' in read ? read.body : undefined;
    if (res.statusCode !== 200) throw new Error(`GMS answered ${res.statusCode}: ${JSON.stringify(body).slice(0, 200)}`);
    const policy = readPolicy(body);
    if (!policy || policy.id !== groupId) throw new Error(`GMS answered a malformed group document for ${groupId}`);
    return policy;
  }

  /** A newer document replaces the cached one; an older one (a late fetch after an event) never does. */
  private keep(policy: GroupPolicy): boolean {
    const known = this.cache.get(policy.id);
    if (known && known.revision >= policy.revision) return false;
    this.cache.set(policy.id, uriIntern.group(policy));
    this.unanswered.delete(policy.id);
    return true;
  }

  private changed(groupId: McUri): void {
    this.listeners.forEach((l) => l(groupId));
  }

  /** The subscription (10.X.3.2 step 4a): connect, then re-read what was cached, then follow the events. */
  private async subscribe(): Promise<void> {
    let delay = RECONNECT_MIN_MS;
    /** One warning per outage, not one per attempt. */
    let warned = false;
    while (!this.stopped) {
      const ac = new AbortController();
      this.stream = ac;
      // The bound covers the wait for the answer's headers; the stream itself lives as long as the GMS keeps it.
      const connectTimer = setTimeout(() => ac.abort(), this.config.timeoutMs);
      try {
        const res = await this.peer.request('GET', '/gms/v1/policy/events', { headers: { authorization: `Bearer ${this.config.credential}`, accept: 'text/event-stream' }, stream: { signal: ac.signal } });
        clearTimeout(connectTimer);
        this.noteCredential(res.statusCode);
        if (res.statusCode !== 200) {
          await res.body.dump();
          throw new Error(`GMS answered ${res.statusCode} to the policy subscription`);
        }
        delay = RECONNECT_MIN_MS;
        warned = false;
        this.log.info({ gms: this.config.url }, 'subscribed to GMS policy changes');
        this.reconnectListeners.forEach((l) => l());
        // Changes made while unsubscribed were not heard: read every cached group again (subscribe first, then read).
        void this.refreshCached();
        await this.follow(res.body, ac);
      } catch (e) {
        if (this.stopped) return;
        const detail = { gms: this.config.url, err: (e as Error).message, retryInMs: delay };
        if (warned) this.log.debug(detail, 'GMS policy subscription still down');
        else this.log.warn(detail, 'GMS policy subscription lost; cached policies keep serving');
        warned = true;
      } finally {
        clearTimeout(connectTimer);
      }
      if (this.stopped) return;
      await new Promise((r) => setTimeout(r, delay).unref());
      delay = Math.min(delay * 2, RECONNECT_MAX_MS);
    }
  }

  private async follow(body: Dispatcher.ResponseData['body'], ac: AbortController): Promise<void> {
    const parser = createParser({ onEvent: (m) => this.onEvent(m) });
    const decoder = new TextDecoder();
    let idle = setTimeout(() => ac.abort(), this.subscriptionIdleMs);
    try {
      for await (const chunk of body) {
        clearTimeout(idle);
        idle = setTimeout(() => ac.abort(), this.subscriptionIdleMs);
        parser.feed(decoder.decode(chunk as Buffer, { stream: true }));
      }
      throw new Error('the GMS ended the policy subscription');
    } finally {
      clearTimeout(idle);
    }
  }

  private onEvent(m: EventSourceMessage): void {
    let data: unknown;
    try {
      data = JSON.parse(m.data);
    } catch {
      return this.log.warn({ event: m.event }, 'GMS policy event is not JSON; ignored');
    }
    if (m.event === 'group-changed') {
      const policy = readPolicy(data);
      if (!policy) return this.log.warn({ event: m.event }, 'GMS policy event with a malformed group document; ignored');
      if (this.keep(policy)) this.changed(policy.id);
    } else if (m.event === 'group-deleted') {
      const id = readId((data as { id?: unknown } | null)?.id);
      if (id && this.cache.delete(id)) this.changed(id);
    }
  }

  private async refreshCached(): Promise<void> {
    for (const id of [...this.cache.keys()]) {
      try {
        const fresh = await this.getGroup(id);
        if (!fresh) {
          if (this.cache.delete(id)) this.changed(id);
        } else if (this.keep(fresh)) this.changed(id);
      } catch {
        return; // down again: the next subscription reads them again
      }
    }
  }

  private async request(method: 'GET' | 'POST', path: string, body?: unknown): Promise<Dispatcher.ResponseData> {
    const res = await this.peer.request(method, path, {
      headers: { authorization: `Bearer ${this.config.credential}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    });
    this.noteCredential(res.statusCode);
    return res;
  }

  private noteCredential(status: number): void {
    const refused = status === 401 || status === 403;
    if (refused && !this.refused) this.log.error({ gms: this.config.url, status }, 'the GMS refuses this server credential (gms.credential): issue a new one with muster token --server');
    this.refused = refused;
  }
}

function readId(raw: unknown): McUri | undefined {
  try {
    return parseMcUri(raw);
  } catch (e) {
    if (e instanceof InvalidId) return undefined;
    throw e;
  }
}

/** A group document as the GMS sends it, checked field by field; undefined when anything is off. */
function readPolicy(raw: unknown): GroupPolicy | undefined {
  const d = raw as Partial<Record<keyof GroupPolicy, unknown>> | null;
  if (!d || typeof d !== 'object') return undefined;
  const id = readId(d.id);
  const members = Array.isArray(d.members) ? d.members.map(readId) : undefined;
  const services = Array.isArray(d.services) && d.services.every(isMcService) ? d.services : undefined;
  if (!id || !members || members.some((m) => m === undefined) || !services || services.length === 0) return undefined;
  if (typeof d.enabled !== 'boolean' || typeof d.deaffiliationForbidden !== 'boolean' || typeof d.revision !== 'number') return undefined;
  return {
    id,
    ...(typeof d.displayName === 'string' ? { displayName: d.displayName } : {}),
    services,
    enabled: d.enabled,
    members: members as McUri[],
    deaffiliationForbidden: d.deaffiliationForbidden,
    revision: d.revision,
  };
}

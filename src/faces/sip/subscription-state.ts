// RFC 6665 §4.2 (notifier behaviour) and §4.1.2 (subscription state): the live subscriptions to users'
// affiliation status, each a dialog (§4.3) in a table of allowed transitions with one guarded transition function.
// One owner per subscription (STAGE3.md "What operators … expect"): the instance that accepted it holds it in
// memory with its flow, stores it (sip_subscriptions) under its own name, sends its NOTIFYs, and is the only one
// that ever deletes its row. After a restart the owner reads its rows again; expiry is taken in pages.
import type { McUri } from '../../domain/ids.ts';
import type { McService } from '../../domain/services.ts';
import type { SipSubscriptionRecord, Store } from '../../ports/store.ts';
import type { Flow } from './transport.ts';

export type SubscriptionStateName = 'active' | 'terminated';
export type SubscriptionEvent = 'refresh' | 'expire' | 'unsubscribe' | 'notify-failed' | 'shutdown';
export type TerminationReason = 'timeout' | 'deactivated' | 'noresource';

export const SUBSCRIPTION_TRANSITIONS: readonly { from: SubscriptionStateName; event: SubscriptionEvent; to: SubscriptionStateName }[] = [
  { from: 'active', event: 'refresh', to: 'active' },
  { from: 'active', event: 'expire', to: 'terminated' },
  { from: 'active', event: 'unsubscribe', to: 'terminated' },
  { from: 'active', event: 'notify-failed', to: 'terminated' },
  { from: 'active', event: 'shutdown', to: 'terminated' },
];

/** CSeqs reserved per store write: a dialog's local CSeq is written once per this many requests of ours. */
export const CSEQ_BLOCK = 1000;
const CSEQ_SLACK = 100;

export interface Subscription {
  id: string;
  state: SubscriptionStateName;
  callId: string;
  /** Our tag (the To tag of the 200, the From tag of our NOTIFYs) and the subscriber's. */
  localTag: string;
  remoteTag: string;
  /** The subscriber's From header field as received (the To of our NOTIFYs). */
  remoteFrom: string;
  /** The subscriber's Contact URI (the Request-URI of our NOTIFYs). */
  remoteTarget: string;
  /** The Event header's id parameter, echoed in NOTIFY (RFC 6665 §8.2.1). */
  eventId: string | undefined;
  flow: Flow;
  watcher: McUri;
  /** Whose affiliation status is watched: a user's, or (watches = group) a group's URI. */
  userId: McUri;
  /** A user's own status (one tuple, its groups) or a group's members (one tuple per member). */
  watches: 'user' | 'group';
  service: McService;
  expiresAt: number;
  /** The last CSeq of a request of ours in the dialog. */
  localCSeq: number;
  /** The stored CSeq mark: every local CSeq used is below it, so after a restart the dialog goes on from it. */
  cseqMark: number;
  remoteCSeq: number;
}

export class IllegalSubscriptionTransition extends Error {}

export type SubscriptionRows = Pick<Store, 'putSipSubscription' | 'removeSipSubscriptions'>;

const dialogKey = (callId: string, remoteTag: string, localTag: string): string => `${callId}|${remoteTag}|${localTag}`;

/** Min-heap of (expiresAt, subscription); a refresh pushes a new entry and the stale one is skipped when popped. */
class ExpiryQueue {
  private readonly heap: { at: number; sub: Subscription }[] = [];

  get size(): number {
    return this.heap.length;
  }

  push(sub: Subscription): void {
    const h = this.heap;
    h.push({ at: sub.expiresAt, sub });
    for (let i = h.length - 1; i > 0; ) {
      const parent = (i - 1) >> 1;
      if (h[parent]!.at <= h[i]!.at) break;
      [h[parent], h[i]] = [h[i]!, h[parent]!];
      i = parent;
    }
  }

  peek(): { at: number; sub: Subscription } | undefined {
    return this.heap[0];
  }

  pop(): void {
    const h = this.heap;
    const last = h.pop();
    if (!last || h.length === 0) return;
    h[0] = last;
    for (let i = 0; ; ) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < h.length && h[l]!.at < h[m]!.at) m = l;
      if (r < h.length && h[r]!.at < h[m]!.at) m = r;
      if (m === i) break;
      [h[m], h[i]] = [h[i]!, h[m]!];
      i = m;
    }
  }
}

export class Subscriptions {
  private readonly byDialog = new Map<string, Subscription>();
  private readonly byUser = new Map<McUri, Set<Subscription>>();
  /** Live subscriptions per watcher: what `sip.maxSubscriptionsPerWatcher` bounds. */
  private readonly byWatcher = new Map<McUri, number>();
  private readonly expiry = new ExpiryQueue();

  constructor(
    private readonly rows: SubscriptionRows,
    /** This instance's name in the store (sip-face.ts: host name and SIP listening address). */
    readonly owner: string,
  ) {}

  /** Accepts a new subscription: in memory, and stored before the 200 when `durable` (a fetch, Expires: 0, is not). */
  async open(sub: Subscription, opts: { durable: boolean }): Promise<void> {
    sub.cseqMark = sub.localCSeq + 1 + CSEQ_BLOCK;
    if (opts.durable) await this.rows.putSipSubscription(this.record(sub));
    this.hold(sub);
  }

  /** Holds a subscription read back from the store after a restart (its row is there already). */
  hold(sub: Subscription): void {
    this.byDialog.set(dialogKey(sub.callId, sub.remoteTag, sub.localTag), sub);
    const set = this.byUser.get(sub.userId) ?? new Set();
    set.add(sub);
    this.byUser.set(sub.userId, set);
    this.byWatcher.set(sub.watcher, (this.byWatcher.get(sub.watcher) ?? 0) + 1);
    this.expiry.push(sub);
  }

  /** How many live subscriptions this watcher holds here. */
  ofWatcher(watcher: McUri): number {
    return this.byWatcher.get(watcher) ?? 0;
  }

  find(callId: string, remoteTag: string, localTag: string): Subscription | undefined {
    return this.byDialog.get(dialogKey(callId, remoteTag, localTag));
  }

  /** RFC 6665 §4.2.1.2: a refresh inside the dialog; the new expiry is stored before the 200. */
  async refresh(sub: Subscription, expiresAt: number, remoteCSeq: number, target?: { remoteTarget: string; flow: Flow }): Promise<void> {
    this.transition(sub, 'refresh');
    if (target) {
      sub.remoteTarget = target.remoteTarget;
      sub.flow = target.flow;
    }
    sub.expiresAt = expiresAt;
    sub.remoteCSeq = remoteCSeq;
    sub.cseqMark = Math.max(sub.cseqMark, sub.localCSeq + 1 + CSEQ_BLOCK);
    this.expiry.push(sub);
    await this.rows.putSipSubscription(this.record(sub));
  }

  /** Before a request of ours in the dialog: a CSeq at the stored mark moves the mark first (RFC 3261 §12.2.1.1 across restarts). */
  async reserveCSeq(sub: Subscription): Promise<void> {
    // CSEQ_SLACK: requests built while the write is under way still stay below the stored mark.
    if (sub.state !== 'active' || sub.localCSeq + CSEQ_SLACK < sub.cseqMark) return;
    sub.cseqMark = sub.localCSeq + 1 + CSEQ_BLOCK;
    await this.rows.putSipSubscription(this.record(sub));
  }

  /** The one guarded state change; a terminated subscription leaves the tables (its row: see forget). */
  transition(sub: Subscription, event: SubscriptionEvent): void {
    const row = SUBSCRIPTION_TRANSITIONS.find((r) => r.from === sub.state && r.event === event);
    if (!row) throw new IllegalSubscriptionTransition(`subscription ${sub.id}: ${event} in state ${sub.state}`);
    sub.state = row.to;
    if (row.to === 'terminated') {
      this.byDialog.delete(dialogKey(sub.callId, sub.remoteTag, sub.localTag));
      const set = this.byUser.get(sub.userId);
      set?.delete(sub);
      if (set?.size === 0) this.byUser.delete(sub.userId);
      const held = (this.byWatcher.get(sub.watcher) ?? 1) - 1;
      if (held > 0) this.byWatcher.set(sub.watcher, held);
      else this.byWatcher.delete(sub.watcher);
    }
  }

  /** Deletes the rows of ended subscriptions, this owner's only (never another instance's, whatever failed). */
  async forget(subs: readonly Subscription[]): Promise<void> {
    await this.rows.removeSipSubscriptions(
      subs.map((s) => s.id),
      this.owner,
    );
  }

  /**
   * Ends at most `limit` subscriptions whose expiry passed by `now`, soonest first, and returns them (state
   * terminated, out of the tables; their final NOTIFYs and rows are the caller's). The rest wait for the next page.
   */
  takeExpired(now: number, limit: number): Subscription[] {
    const out: Subscription[] = [];
    // Stale entries (refreshed or ended subscriptions) count too: one page pops at most 20 × limit (a few ms).
    for (let popped = 0; out.length < limit && popped < 20 * limit; popped++) {
      const head = this.expiry.peek();
      if (!head || head.at > now) break;
      this.expiry.pop();
      // A refreshed subscription has a newer entry; an ended one is gone already.
      if (head.sub.state !== 'active' || head.sub.expiresAt !== head.at) continue;
      this.transition(head.sub, 'expire');
      out.push(head.sub);
    }
    return out;
  }

  forUser(userId: McUri): Subscription[] {
    return [...(this.byUser.get(userId) ?? [])];
  }

  hasUser(userId: McUri): boolean {
    return this.byUser.has(userId);
  }

  all(): Subscription[] {
    return [...this.byDialog.values()];
  }

  get size(): number {
    return this.byDialog.size;
  }

  /** The row of a subscription (what a restart needs to send its NOTIFYs again). */
  record(sub: Subscription): SipSubscriptionRecord {
    return {
      id: sub.id,
      owner: this.owner,
      callId: sub.callId,
      localTag: sub.localTag,
      remoteTag: sub.remoteTag,
      remoteFrom: sub.remoteFrom,
      remoteTarget: sub.remoteTarget,
      eventId: sub.eventId ?? null,
      transport: sub.flow.transport,
      remoteAddress: sub.flow.remoteAddress,
      remotePort: sub.flow.remotePort,
      watcher: sub.watcher,
      userId: sub.userId,
      service: sub.service,
      expiresAt: sub.expiresAt,
      localCSeq: sub.cseqMark,
      remoteCSeq: sub.remoteCSeq,
    };
  }
}

/** A stored subscription as held in memory again, on the flow it names (after a restart). */
export function subscriptionOf(r: SipSubscriptionRecord, flow: Flow, watches: Subscription['watches'] = 'user'): Subscription {
  return {
    id: r.id,
    state: 'active',
    callId: r.callId,
    localTag: r.localTag,
    remoteTag: r.remoteTag,
    remoteFrom: r.remoteFrom,
    remoteTarget: r.remoteTarget,
    eventId: r.eventId ?? undefined,
    flow,
    watcher: r.watcher,
    userId: r.userId,
    watches,
    service: r.service,
    expiresAt: r.expiresAt,
    // The stored mark was never used: the next request of ours takes it.
    localCSeq: r.localCSeq - 1,
    cseqMark: r.localCSeq,
    remoteCSeq: r.remoteCSeq,
  };
}

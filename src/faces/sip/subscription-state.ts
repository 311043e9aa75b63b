// RFC 6665 §4.2 (notifier behaviour) and §4.1.2 (subscription state): the live subscriptions to users'
// affiliation status, each a dialog (§4.3) in a table of allowed transitions with one guarded transition function.
// One owner per subscription: the process that accepted it (STAGE3.md "What operators … expect").
import type { McUri } from '../../domain/ids.ts';
import type { McService } from '../../domain/services.ts';
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
  userId: McUri;
  service: McService;
  expiresAt: number;
  localCSeq: number;
  remoteCSeq: number;
  cancelExpiry: () => void;
}

export class IllegalSubscriptionTransition extends Error {}

const dialogKey = (callId: string, remoteTag: string, localTag: string): string => `${callId}|${remoteTag}|${localTag}`;

export class Subscriptions {
  private readonly byDialog = new Map<string, Subscription>();
  private readonly byUser = new Map<McUri, Set<Subscription>>();

  add(sub: Subscription): void {
    this.byDialog.set(dialogKey(sub.callId, sub.remoteTag, sub.localTag), sub);
    const set = this.byUser.get(sub.userId) ?? new Set();
    set.add(sub);
    this.byUser.set(sub.userId, set);
  }

  find(callId: string, remoteTag: string, localTag: string): Subscription | undefined {
    return this.byDialog.get(dialogKey(callId, remoteTag, localTag));
  }

  /** The one guarded state change; a terminated subscription leaves the tables. */
  transition(sub: Subscription, event: SubscriptionEvent): void {
    const row = SUBSCRIPTION_TRANSITIONS.find((r) => r.from === sub.state && r.event === event);
    if (!row) throw new IllegalSubscriptionTransition(`subscription ${sub.id}: ${event} in state ${sub.state}`);
    sub.state = row.to;
    if (row.to === 'terminated') {
      sub.cancelExpiry();
      this.byDialog.delete(dialogKey(sub.callId, sub.remoteTag, sub.localTag));
      const set = this.byUser.get(sub.userId);
      set?.delete(sub);
      if (set?.size === 0) this.byUser.delete(sub.userId);
    }
  }

  forUser(userId: McUri): Subscription[] {
    return [...(this.byUser.get(userId) ?? [])];
  }

  hasUser(userId: McUri): boolean {
    return this.byUser.has(userId);
  }

  /** Every live subscription, for operators (STAGE3.md: "a way to list live subscriptions"). */
  list(): { id: string; watcher: McUri; userId: McUri; service: McService; expiresAt: string; transport: string }[] {
    return [...this.byDialog.values()].map((s) => ({ id: s.id, watcher: s.watcher, userId: s.userId, service: s.service, expiresAt: new Date(s.expiresAt).toISOString(), transport: s.flow.transport }));
  }

  all(): Subscription[] {
    return [...this.byDialog.values()];
  }
}

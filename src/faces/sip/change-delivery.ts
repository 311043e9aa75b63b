// Gets change requests to their target's SIP client (10.X.5.1.2 step 3, 10.X.5.1.1 step 7a): a MESSAGE with the
// affiliation command on each of the target's own live subscriptions, whichever face asked for the change; the
// ones that waited while the client was away go out when it subscribes. The client's final response is the
// answer the SIP face can read from it: 2xx acknowledges a mandatory change (step 7b), 603 Decline refuses a
// negotiated one (step 5); a negotiated change is accepted by the PUBLISH of its new set (publish UAS).
import type { Logger } from 'pino';
import type { McUri } from '../../domain/ids.ts';
import { MusterError } from '../../domain/errors.ts';
import type { ClientEvent } from '../../ports/store.ts';
import type { McServiceServer } from '../../procedures/context.ts';
import { answerChange } from '../../procedures/remote-change-negotiated.ts';
import { serialize } from './outgoing-message.ts';
import type { TransactionLayer } from './transaction-layer.ts';
import type { Flow } from './transport.ts';
import type { LocalAddress } from './notify-user-agent-client.ts';
import type { Subscription, Subscriptions } from './subscription-state.ts';
import { buildChangeMessage, type ChangeNotice } from './message-user-agent-client.ts';
import { changeAnswerEntry } from './sip-audit.ts';
import type { AuditRecorder } from '../../adapters/audit-recorder.ts';

/** RFC 3261 §21.6.2: the user was reached and explicitly does not want it. */
export const DECLINE = 603;
const REPLAY_PAGE = 500;

export class ChangeDelivery {
  /** Per subscription, the change ids sent (or being sent) to it; forgotten with the subscription. */
  private readonly sent = new WeakMap<Subscription, Set<string>>();

  constructor(
    private readonly server: McServiceServer,
    private readonly psi: McUri,
    private readonly subscriptions: Subscriptions,
    private readonly transactions: TransactionLayer,
    private readonly localOf: (flow: Flow) => LocalAddress,
    private readonly log: Logger,
    /** The target's answer read from a final response is on record as an HTTP answer is (a change-answer entry). */
    private readonly audit: AuditRecorder,
  ) {}

  /** An `affiliation-change` event of this user's event log, as the notifier hands it on. */
  onEvent(userId: McUri, event: ClientEvent): void {
    const notice = noticeOf(event.data);
    if (notice && notice.target === userId) this.deliver(notice);
  }

  /** Sends the change to every live subscription the target holds to its own status for the change's service. */
  deliver(change: ChangeNotice): void {
    for (const sub of this.subscriptions.forUser(change.target)) {
      if (sub.state !== 'active' || sub.watcher !== change.target || sub.service !== change.service) continue;
      const sent = this.sent.get(sub) ?? new Set<string>();
      this.sent.set(sub, sent);
      if (sent.has(change.id)) continue;
      sent.add(change.id);
      try {
        // The dialog's stored CSeq mark moves ahead of this MESSAGE's CSeq when it comes near (a restart goes on above it).
        void this.subscriptions.reserveCSeq(sub).catch((e: unknown) => this.log.warn({ err: e, subscription: sub.id }, 'CSeq mark not stored'));
        const { request, branch } = buildChangeMessage(sub, this.psi, this.localOf(sub.flow), change);
        this.transactions.sendRequest(branch, 'MESSAGE', serialize(request), sub.flow, (status) => void this.answered(change, sub, status));
      } catch (e) {
        sent.delete(change.id);
        this.log.error({ err: e, change: change.id }, 'affiliation change MESSAGE could not be sent');
      }
    }
  }

  /** The change requests still waiting for this subscriber (mandatory not acknowledged, negotiated still asked). */
  async deliverWaiting(sub: Subscription): Promise<void> {
    if (sub.watcher !== sub.userId || sub.state !== 'active') return;
    try {
      let after = 0;
      for (let pages = 0; pages < 1000; pages++) {
        const page = await this.server.store.eventsAfter(sub.userId, after, REPLAY_PAGE);
        for (const e of page) {
          after = e.id;
          const notice = noticeOf(e.data);
          if (e.type !== 'affiliation-change' || !notice || notice.service !== sub.service) continue;
          const record = await this.server.store.getChange(notice.id, sub.userId);
          if (record?.state === 'told' || record?.state === 'asked') this.deliver(notice);
        }
        if (page.length < REPLAY_PAGE) return;
      }
    } catch (e) {
      this.log.error({ err: e, userId: sub.userId }, 'waiting affiliation changes could not be read');
    }
  }

  /** The target's answer (10.X.5.1.1 step 7b, 10.X.5.2.1 step 5), and its change-answer entry once it is stored. */
  private async answer(change: ChangeNotice, accept: boolean): Promise<void> {
    const answered = await answerChange(this.server, change.target, change.id, accept);
    await this.audit.record([changeAnswerEntry(this.server.clock.now(), change.target, { ...answered, accept }, 'sip-message')]);
  }

  private async answered(change: ChangeNotice, sub: Subscription, status: number): Promise<void> {
    try {
      if (status >= 200 && status < 300) {
        if (change.mode === 'mandatory') await this.answer(change, true);
        return;
      }
      if (status === DECLINE && change.mode === 'negotiated') {
        await this.answer(change, false);
        return;
      }
      // Not delivered (408, 481, 503 ...): the next subscription or refresh of this client tries again.
      this.sent.get(sub)?.delete(change.id);
      this.log.info({ change: change.id, status, subscription: sub.id }, 'affiliation change MESSAGE not delivered');
    } catch (e) {
      // An answer that lost the race to the timeout (or to another client of the user) changes nothing.
      if (!(e instanceof MusterError && e.code === 'conflict')) this.log.error({ err: e, change: change.id }, 'answer to affiliation change MESSAGE failed');
    }
  }
}

/** The event data of an `affiliation-change` event (remote-change procedures), checked field by field. */
function noticeOf(data: unknown): ChangeNotice | undefined {
  const d = data as Partial<Record<keyof ChangeNotice, unknown>> | null;
  if (!d || typeof d.id !== 'string' || (d.mode !== 'mandatory' && d.mode !== 'negotiated')) return undefined;
  if (typeof d.actor !== 'string' || typeof d.target !== 'string' || typeof d.service !== 'string') return undefined;
  if (!Array.isArray(d.affiliate) || !Array.isArray(d.deaffiliate)) return undefined;
  return { id: d.id, mode: d.mode, actor: d.actor as McUri, target: d.target as McUri, service: d.service as ChangeNotice['service'], affiliate: d.affiliate as McUri[], deaffiliate: d.deaffiliate as McUri[] };
}

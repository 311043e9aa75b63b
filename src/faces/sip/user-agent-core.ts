// RFC 3261 §8.2 (UAS behaviour) and §17 (transactions) joined: messages from the transports are parsed, matched to
// transactions (retransmissions absorbed), handed to the user agent server of their method, and answered.
// NOTIFYs to watchers are coalesced per user: a change made over HTTP and one made over SIP both end in one NOTIFY.
import type { Logger } from 'pino';
import type { McUri } from '../../domain/ids.ts';
import type { McService } from '../../domain/services.ts';
import type { ClientEvent } from '../../ports/store.ts';
import type { IncomingRequest } from './message.ts';
import { parseMessage, SipParseError } from './parser.ts';
import { newTag, responseTo, serialize, type HeaderList } from './outgoing-message.ts';
import { TransactionLayer } from './transaction-layer.ts';
import { sourceOf, type Flow, type TransportDelegate } from './transport.ts';
import { parseVia, responseDestination, stampVia } from './via.ts';
import { parseCSeq } from './parser.ts';
import { refusalOf, reasonPhrase } from './sip-refusal.ts';
import { publishUas, type UasAnswer } from './publish-user-agent-server.ts';
import { subscribeUas, type SubscribeAnswer } from './subscribe-user-agent-server.ts';
import { buildNotify, type LocalAddress } from './notify-user-agent-client.ts';
import type { AffiliationStatusDocument, GroupAffiliationDocument } from './pidf-render.ts';
import type { Subscription, SubscriptionEvent } from './subscription-state.ts';
import type { SipFaceContext } from './face-context.ts';
import { messageUas } from './message-user-agent-server.ts';
import { ChangeDelivery } from './change-delivery.ts';
import { AFFILIATION_COMMAND_TYPE } from './affiliation-command.ts';
import { observeSipRequest } from '../../adapters/metrics.ts';

const ALLOW = 'PUBLISH, SUBSCRIBE, MESSAGE, OPTIONS, CANCEL';

export class UserAgentCore implements TransportDelegate {
  readonly transactions: TransactionLayer;
  private readonly changes: ChangeDelivery;
  private readonly locks = new Map<McUri, Promise<unknown>>();
  private readonly pending = new Map<string, { userId: McUri; service: McService }>();
  private readonly watching = new Map<McUri, () => void>();
  private flushScheduled = false;
  private stopped = false;
  private builtContext: SipFaceContext | undefined;

  constructor(
    private readonly ctx: Omit<SipFaceContext, 'exclusive' | 'notifyWatchers'>,
    private readonly localOf: (flow: Flow) => LocalAddress,
    private readonly log: Logger,
  ) {
    this.transactions = new TransactionLayer(ctx.server.clock);
    this.changes = new ChangeDelivery(ctx.server, ctx.psi, ctx.subscriptions, this.transactions, localOf, log, ctx.audit);
  }

  /** The face context the user agent servers see, with this core's per-user lock and NOTIFY seam (built once, not per request). */
  get context(): SipFaceContext {
    return (this.builtContext ??= { ...this.ctx, exclusive: (u, fn) => this.exclusive(u, fn), notifyWatchers: (u, s, p) => this.notifyWatchers(u, s, p) });
  }

  onFramingError(why: string, flow: Flow): void {
    this.log.info({ why, peer: `${flow.remoteAddress}:${flow.remotePort}` }, 'SIP stream cannot be framed; closing it');
  }

  onMessage(bytes: Buffer, flow: Flow): void {
    if (this.stopped) return;
    let msg;
    try {
      msg = parseMessage(bytes, { stream: flow.transport === 'tcp' });
    } catch (e) {
      if (e instanceof SipParseError) this.answerMalformed(bytes, e, flow);
      else this.log.error({ err: e }, 'SIP parser failed');
      return;
    }
    if (msg.kind === 'response') {
      this.transactions.receiveResponse(msg);
      return;
    }
    if (msg.method === 'ACK') return; // §17.2.2: no transaction for ACK outside INVITE
    const match = this.transactions.receiveRequest(msg, flow);
    if (match.kind === 'absorbed' || match.kind === 'unroutable') return;
    if (match.kind === 'overloaded') {
      match.tx.respond(503, serialize(responseTo(msg, 503, { toTag: tagFor(msg), headers: [['Retry-After', '5']], topVia: match.topVia })));
      return;
    }
    const { tx, topVia } = match;
    const arrived = performance.now();
    void this.handle(msg, flow).then(({ answer, reason }) => {
      const toTag = (answer as SubscribeAnswer).toTag ?? tagFor(msg);
      observeSipRequest(msg.method, answer.status, (performance.now() - arrived) / 1000);
      try {
        tx.respond(answer.status, serialize(responseTo(msg, answer.status, { toTag, headers: answer.headers, topVia, ...(reason ? { reason } : {}) })));
      } catch (e) {
        this.log.error({ err: e }, 'SIP response could not be sent');
        return;
      }
      answer.after?.();
    });
  }

  private async handle(req: IncomingRequest, flow: Flow): Promise<{ answer: UasAnswer; reason?: string }> {
    // §8.2.2.3: no SIP extension is supported here, so a request that requires one is refused, naming them all.
    const required = req.headers.all('require');
    if (required.length > 0) return { answer: { status: 420, headers: [['Unsupported', required.join(', ')]] } };
    try {
      switch (req.method) {
        case 'PUBLISH':
          return { answer: await publishUas(this.context, req, flow) };
        case 'SUBSCRIBE':
          // A new or refreshed subscription is also where change requests that waited for this client go out.
          return {
            answer: await subscribeUas(this.context, req, flow, (sub, end) => void (end ? this.endSubscriptions([sub], 'unsubscribe') : this.notifySubscription(sub).then(() => this.changes.deliverWaiting(sub)))),
          };
        case 'MESSAGE':
          return { answer: await messageUas(this.context, req, flow) };
        case 'CANCEL':
          // §9.2: a non-INVITE request goes on whatever a CANCEL says; 200 if it is known here, else 481.
          return { answer: { status: this.transactions.cancels(req) ? 200 : 481, headers: [] } };
        case 'OPTIONS':
          return { answer: { status: 200, headers: [['Allow', ALLOW], ['Allow-Events', 'presence'], ['Accept', `application/pidf+xml, multipart/mixed, ${Object.values(AFFILIATION_COMMAND_TYPE).join(', ')}`]] } };
        default:
          return { answer: { status: 405, headers: [['Allow', ALLOW]] } };
      }
    } catch (e) {
      const r = refusalOf(e, this.ctx.agent);
      if (r.internal) this.log.error({ err: e, method: req.method, callId: req.callId }, 'SIP request failed');
      else this.log.debug({ err: e, method: req.method }, 'SIP request refused');
      return { answer: { status: r.status, headers: r.headers }, reason: r.internal ? undefined : reasonPhrase(e, statusText(r.status)) };
    }
  }

  /** §8.2 / §16.3: a request we could not parse but can still route an answer to gets a stateless 400. */
  private answerMalformed(bytes: Buffer, e: SipParseError, flow: Flow): void {
    const h = e.headers;
    const startLine = bytes.toString('latin1', 0, Math.min(bytes.length, 200)).split(/\r?\n/)[0] ?? '';
    if (!h || startLine.startsWith('SIP/2.0')) return; // a broken response is dropped
    const via = h.get('via') ? parseVia(h.get('via')!) : undefined;
    const cseq = parseCSeq(h.get('cseq') ?? '');
    if (!via || !cseq || !h.get('from') || !h.get('to') || !h.get('call-id')) return;
    const to = h.get('to')!;
    const headers: HeaderList = [
      ...h.all('via').map((v, i): [string, string] => ['Via', i === 0 ? stampVia(v, sourceOf(flow)) : v]),
      ['From', h.get('from')!],
      // §8.2.6.2: a response to a request without a To tag gets one (this answer is never repeated).
      ['To', /;\s*tag=/i.test(to) ? to : `${to};tag=${newTag()}`],
      ['Call-ID', h.get('call-id')!],
      ['CSeq', `${cseq.seq} ${cseq.method}`],
    ];
    const reason = `Bad Request (${e.message.replace(/[\r\n]/g, ' ').slice(0, 100)})`;
    const bytesOut = serialize({ kind: 'response', status: 400, reason, headers });
    flow.send(bytesOut, flow.transport === 'udp' ? responseDestination(via, sourceOf(flow)) : undefined);
  }

  async exclusive<T>(userId: McUri, fn: () => Promise<T>): Promise<T> {
    const before = this.locks.get(userId) ?? Promise.resolve();
    const run = before.then(fn, fn);
    const tail = run.then(
      () => undefined,
      () => undefined,
    );
    this.locks.set(userId, tail);
    void tail.then(() => {
      if (this.locks.get(userId) === tail) this.locks.delete(userId);
      if ([...this.pending.values()].some((p) => p.userId === userId)) this.scheduleFlush();
    });
    return run;
  }

  /** Keeps one notifier subscription per watched user or group, so changes from any face reach its SIP watchers. */
  watch(userId: McUri, watches: Subscription['watches'] = 'user'): void {
    if (this.watching.has(userId)) return;
    if (watches === 'group') {
      // Any member's status change that names the group: its watchers get the members again (coalesced like a user's).
      const off = this.ctx.server.notifier.subscribeGroup(userId, (event: ClientEvent) => {
        const service = (event.data as { service?: McService }).service;
        if (service) this.markPending(userId, service);
      });
      this.watching.set(userId, off);
      return;
    }
    this.watching.set(
      userId,
      this.ctx.server.notifier.subscribe(userId, (event: ClientEvent) => {
        if (event.type === 'affiliation-change') return this.changes.onEvent(userId, event);
        if (event.type !== 'affiliation-status') return;
        const service = (event.data as { service?: McService }).service;
        if (service) this.markPending(userId, service);
      }),
    );
  }

  private unwatchIfIdle(userId: McUri): void {
    if (this.ctx.subscriptions.hasUser(userId)) return;
    this.watching.get(userId)?.();
    this.watching.delete(userId);
  }

  private markPending(userId: McUri, service: McService): void {
    this.pending.set(`${service}|${userId}`, { userId, service });
    this.scheduleFlush();
  }

  private scheduleFlush(): void {
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    setImmediate(() => {
      this.flushScheduled = false;
      for (const [key, p] of this.pending) {
        if (this.locks.has(p.userId)) continue; // a PUBLISH of this user is running; its NOTIFY will carry this too
        this.pending.delete(key);
        this.notifyWatchers(p.userId, p.service);
      }
    });
  }

  notifyWatchers(userId: McUri, service: McService, pId?: string): void {
    this.pending.delete(`${service}|${userId}`);
    for (const sub of this.ctx.subscriptions.forUser(userId)) if (sub.service === service) void this.notifySubscription(sub, undefined, pId);
  }

  /**
   * Ends subscriptions: each gets its final NOTIFY (terminated;reason=timeout) and its row goes. With `event`, the
   * active ones among `subs` end now (unsubscribe); without, they were ended already (taken by the expiry pages).
   */
  async endSubscriptions(subs: Subscription[], event?: SubscriptionEvent): Promise<void> {
    const ending = event ? subs.filter((s) => s.state === 'active') : subs;
    if (event) for (const s of ending) this.ctx.subscriptions.transition(s, event);
    for (const userId of new Set(ending.map((s) => s.userId))) this.unwatchIfIdle(userId);
    const forgotten = this.ctx.subscriptions.forget(ending).catch((e: unknown) => this.log.error({ err: e, count: ending.length }, 'ended SIP subscriptions could not be deleted from the store'));
    await Promise.all([...ending.map((s) => this.notifySubscription(s, 'timeout')), forgotten]);
  }

  /** Sends one NOTIFY with the user's status as the store has it now (looked up again after the await). */
  async notifySubscription(sub: Subscription, end?: 'timeout', pId?: string): Promise<void> {
    if (!end) {
      if (sub.state !== 'active') return;
      this.watch(sub.userId, sub.watches);
    }
    try {
      await this.ctx.subscriptions.reserveCSeq(sub);
      const doc = sub.watches === 'group' ? await groupAffiliationOf(this.ctx.server.store, sub.userId, sub.service) : await this.userStatusOf(sub, pId);
      const state = end ? { active: false as const, reason: end } : { active: true as const, expiresIn: Math.round((sub.expiresAt - this.ctx.server.clock.now()) / 1000) };
      const { request, branch } = buildNotify(sub, this.ctx.psi, this.localOf(sub.flow), state, doc);
      this.transactions.sendRequest(branch, 'NOTIFY', serialize(request), sub.flow, (status) => {
        // RFC 6665 §4.2.2: a NOTIFY that fails (481, timeout, transport error) ends the subscription; RFC 5057 §5.1:
        // 500, 503, 504 and 491 concern that transaction only (a client answers 500 to a NOTIFY it got out of order).
        if (status >= 300 && !TRANSACTION_ONLY_FAILURES.has(status) && sub.state === 'active') {
          this.log.info({ status, subscription: sub.id }, 'NOTIFY failed; subscription terminated');
          this.ctx.subscriptions.transition(sub, 'notify-failed');
          this.unwatchIfIdle(sub.userId);
          // Only this instance's row: the owner sent the NOTIFY, and no instance deletes another's subscription.
          void this.ctx.subscriptions.forget([sub]).catch((e: unknown) => this.log.error({ err: e, subscription: sub.id }, 'ended SIP subscription could not be deleted from the store'));
        }
      });
    } catch (e) {
      this.log.error({ err: e, subscription: sub.id }, 'NOTIFY could not be built');
    }
  }

  /**
   * A user's own status as the store has it, with the stored publication's tuple id; the p-id only of the PUBLISH
   * this NOTIFY answers (STAGE3.md): a NOTIFY for a change made otherwise (HTTP, a remote change, an expiry, a new
   * subscription) carries none, so a client never takes it for the outcome of its own PUBLISH.
   */
  private async userStatusOf(sub: Subscription, pId: string | undefined): Promise<AffiliationStatusDocument> {
    // The publication as stored: whichever instance took the PUBLISH, its tuple id is in the NOTIFY (the p-id only
    // when this NOTIFY answers that PUBLISH: `pId`).
    const [records, pub] = await Promise.all([this.ctx.server.store.affiliationsOfUser(sub.userId, sub.service), this.ctx.publications.get(sub.userId, sub.service)]);
    return {
      entity: sub.userId,
      service: sub.service,
      tupleId: pub?.tupleId ?? this.ctx.publications.tupleOf(sub.userId, sub.service) ?? `${sub.service}-status`,
      groups: records.map((r) => ({ groupId: r.groupId, state: r.state })),
      pId,
    };
  }

  /** Stops serving; the stored subscriptions and publications stay for the next start (only memory is let go). */
  stop(): void {
    this.stopped = true;
    for (const sub of this.ctx.subscriptions.all()) this.ctx.subscriptions.transition(sub, 'shutdown');
    for (const off of this.watching.values()) off();
    this.watching.clear();
  }
}

/** A group's affiliated members for one service, as the store has them now (what GET /mc/v1/groups/:id/members lists). */
async function groupAffiliationOf(store: SipFaceContext['server']['store'], group: McUri, service: McService): Promise<GroupAffiliationDocument> {
  const records = await store.affiliationsOfGroup(group, service);
  return { group, service, members: records.filter((r) => r.state === 'affiliated').map((r) => ({ userId: r.userId, state: r.state })) };
}

/** A stable To tag per request (Call-ID + CSeq), so the response and its retransmissions agree. */
function tagFor(req: IncomingRequest): string {
  let h = 0;
  for (const ch of `${req.callId}|${req.cseq.seq}`) h = (h * 31 + ch.charCodeAt(0)) >>> 0;
  return h.toString(16);
}

function statusText(status: number): string {
  return ({ 400: 'Bad Request', 401: 'Unauthorized', 403: 'Forbidden', 404: 'Not Found', 406: 'Not Acceptable', 412: 'Conditional Request Failed', 413: 'Request Entity Too Large', 415: 'Unsupported Media Type', 481: 'Call/Transaction Does Not Exist', 489: 'Bad Event', 500: 'Server Internal Error' } as Record<number, string>)[status] ?? 'Error';
}

/** Error answers to an in-dialog request that end that transaction, not the subscription (RFC 5057 §5.1). */
const TRANSACTION_ONLY_FAILURES = new Set([491, 500, 503, 504]);

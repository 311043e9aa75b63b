// TS 24.379 §9.2.2.2.4 (MC service server receives a SUBSCRIBE for affiliation status) over RFC 6665 §4.2.1
// (notifier SUBSCRIBE behaviour): create, refresh or end a subscription; the NOTIFYs follow the 200. The watched
// entity (mcptt-request-uri) is a user, or a group of this system (its affiliated members).
import { randomUUID } from 'node:crypto';
import { MusterError } from '../../domain/errors.ts';
import { mayView, mayViewMembers } from '../../domain/decisions/remote-change-right.ts';
import { domainOf, type McUri } from '../../domain/ids.ts';
import type { IncomingRequest } from './message.ts';
import type { Flow } from './transport.ts';
import { readAffiliationBody, PIDF_TYPE } from './affiliation-document.ts';
import { serviceOf } from './service-marker.ts';
import { senderOf } from './identity.ts';
import { SipRefusal } from './sip-refusal.ts';
import { tagOf, uriOf } from './name-addr.ts';
import { newTag } from './outgoing-message.ts';
import type { Subscription } from './subscription-state.ts';
import { expiresOf, requirePresenceEvent, requirePsi, type SipFaceContext } from './face-context.ts';
import type { UasAnswer } from './publish-user-agent-server.ts';
import { contactOf } from './notify-user-agent-client.ts';

export const DEFAULT_SUBSCRIBE_EXPIRES = 3600;
export const MAX_SUBSCRIBE_EXPIRES = 86_400;

/** What the core does with a subscription after the 200: send its NOTIFY (active or terminated). */
export interface SubscribeAnswer extends UasAnswer {
  toTag?: string;
}

export async function subscribeUas(ctx: SipFaceContext, req: IncomingRequest, flow: Flow, notify: (sub: Subscription, terminated?: 'timeout') => void): Promise<SubscribeAnswer> {
  const eventId = requirePresenceEvent(req);
  const accept = req.headers.all('accept');
  if (accept.length > 0 && !accept.some((a) => /^(application\/pidf\+xml|application\/\*|\*\/\*)\b/i.test(a.trim()))) throw new SipRefusal(406, 'only application/pidf+xml is offered', [['Accept', PIDF_TYPE]]);
  const sender = await senderOf(req, flow, ctx);
  const requested = expiresOf(req, DEFAULT_SUBSCRIBE_EXPIRES);
  const expires = Math.min(requested, MAX_SUBSCRIBE_EXPIRES);
  const fromTag = tagOf(req.headers.get('from') ?? '');
  if (!fromTag) throw new MusterError('bad-request', 'SUBSCRIBE without a From tag (RFC 3261 §8.1.1.3)');
  const toTag = tagOf(req.headers.get('to') ?? '');
  const clock = ctx.server.clock;

  if (toTag) {
    // RFC 6665 §4.2.1.2: a refresh or an unsubscribe inside the subscription's dialog.
    const sub = ctx.subscriptions.find(req.callId, fromTag, toTag);
    if (!sub) throw new SipRefusal(481, 'no such subscription');
    if (sub.watcher !== sender) throw new MusterError('forbidden', 'the subscription belongs to another user');
    // RFC 6665 §4.1.2 / §8.2.1: a subscription is its dialog and its Event id; another id names none we hold here.
    if (eventId !== sub.eventId) throw new SipRefusal(481, 'no such subscription (Event id differs)');
    // RFC 3261 §12.2.2: a lower CSeq inside a dialog is out of order.
    if (req.cseq.seq <= sub.remoteCSeq) throw new SipRefusal(500, 'CSeq out of order');
    sub.remoteCSeq = req.cseq.seq;
    if (expires === 0) {
      return { status: 200, headers: [['Expires', '0']], after: () => notify(sub, 'timeout') };
    }
    // RFC 6665 §4.1.2.2: SUBSCRIBE is a target refresh request (RFC 3261 §12.2.2): a new Contact and a new flow
    // (a client that reconnected over TCP) are where the NOTIFYs go from now on.
    const contact = req.headers.get('contact');
    await ctx.subscriptions.refresh(sub, clock.now() + expires * 1000, req.cseq.seq, { remoteTarget: (contact && uriOf(contact)) || sub.remoteTarget, flow });
    // §12.2.2: the 2xx to a target refresh carries the Contact too.
    return { status: 200, headers: [['Expires', String(expires)], ['Contact', contactOf(ctx.psi, ctx.localOf(flow))]], after: () => notify(sub) };
  }

  requirePsi(req, ctx.psi);
  const service = serviceOf(req);
  const body = req.body.length > 0 ? readAffiliationBody(req, service, { requirePidf: false }) : undefined;
  const target = body?.requestUri ?? sender;
  const watches = target !== sender && (await isOwnGroup(ctx, target)) ? 'group' : 'user';
  if (watches === 'group') {
    // Issue 4: a group's affiliated members, for those who may read them over HTTP too (GET /mc/v1/groups/:id/members).
    if (!mayViewMembers(ctx.server.profiles.get(sender), sender, ctx.server.gms.policyOf(target), target)) throw new MusterError('forbidden', `${sender} may not watch the members of ${target}`);
  } else if (!mayView(ctx.server.profiles.get(sender), sender, target, ctx.server.domain)) {
    // TS 24.379 §9.2.2.2.4: another user's status needs the same right as changing it.
    throw new MusterError('forbidden', `${sender} may not watch the affiliations of ${target}`);
  }
  const contact = req.headers.get('contact');
  const remoteTarget = contact ? uriOf(contact) : undefined;
  if (!remoteTarget) throw new MusterError('bad-request', 'SUBSCRIBE without a Contact (RFC 6665 §4.1.2.1)');
  // Each subscription is memory, a row and a NOTIFY per change: one watcher holds a bounded number (a fetch, Expires:
  // 0, ends at once and is not counted against it).
  if (expires > 0 && ctx.subscriptions.ofWatcher(sender) >= ctx.maxSubscriptionsPerWatcher) {
    throw new SipRefusal(403, `too many subscriptions: ${sender} holds ${ctx.maxSubscriptionsPerWatcher} here; end one first`);
  }

  const sub: Subscription = {
    id: randomUUID(),
    state: 'active',
    callId: req.callId,
    localTag: newTag(),
    remoteTag: fromTag,
    remoteFrom: req.headers.get('from')!,
    remoteTarget,
    eventId,
    flow,
    watcher: sender,
    userId: target,
    watches,
    service,
    expiresAt: clock.now() + expires * 1000,
    localCSeq: 0,
    cseqMark: 0,
    remoteCSeq: req.cseq.seq,
  };
  // Stored before the 200 (a fetch is not): after a restart this instance sends its NOTIFYs again.
  await ctx.subscriptions.open(sub, { durable: expires > 0 });
  if (expires === 0) {
    // RFC 6665 §4.2.1.1: Expires 0 is a fetch: one NOTIFY with the state, and the subscription ends.
    return { status: 200, toTag: sub.localTag, headers: [['Expires', '0'], ['Contact', contactOf(ctx.psi, ctx.localOf(flow))]], after: () => notify(sub, 'timeout') };
  }
  return { status: 200, toTag: sub.localTag, headers: [['Expires', String(expires)], ['Contact', contactOf(ctx.psi, ctx.localOf(flow))]], after: () => notify(sub) };
}

/** A group of this system (its policy known to the GMS), not a user: a user's URI has a profile, a group's a policy. */
export async function isOwnGroup(ctx: Pick<SipFaceContext, 'server'>, uri: McUri): Promise<boolean> {
  if (domainOf(uri) !== ctx.server.domain || ctx.server.profiles.get(uri)) return false;
  await ctx.server.gms.ensurePolicies([uri]);
  return ctx.server.gms.policyOf(uri) !== undefined;
}

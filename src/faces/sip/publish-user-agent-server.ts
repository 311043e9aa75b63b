// TS 24.379 §9.2.2.2.3 (MC service server receives an affiliation PUBLISH) over RFC 3903 §6 (processing PUBLISH):
// the PIDF's set of groups replaces the user's previous set for the service; the face computes what was added and
// what was left out and hands both to the affiliation and de-affiliation procedures (for another user, to the
// mandatory remote change). No rule is decided here.
import { randomUUID } from 'node:crypto';
import type { McUri } from '../../domain/ids.ts';
import type { McService } from '../../domain/services.ts';
import { notAnsweredYet, type ChangeRequest, type GroupStatus } from '../../domain/flows.ts';
import type { StoredAlongside } from '../../procedures/affiliate.ts';
import { MusterError } from '../../domain/errors.ts';
import { decideChangeRight } from '../../domain/decisions/remote-change-right.ts';
import { changeOfPublishedSet, followLivePublication, groupsOf, replaceAffiliationSet, replaceAffiliationSetAmong, undoSetChange, type PublishedSet, type SetChange, type SetProgress } from '../../procedures/replace-affiliation-set.ts';
import { remoteChangeMandatory } from '../../procedures/remote-change-mandatory.ts';
import { acceptChangesByPublication } from '../../procedures/accept-changes-by-publication.ts';
import type { IncomingRequest } from './message.ts';
import type { Flow } from './transport.ts';
import type { HeaderList } from './outgoing-message.ts';
import { readAffiliationBody } from './affiliation-document.ts';
import { serviceOf } from './service-marker.ts';
import { senderOf } from './identity.ts';
import { refusalWarnings } from './warning.ts';
import { SipRefusal } from './sip-refusal.ts';
import { DEFAULT_PUBLISH_EXPIRES, type Publication } from './publication-state.ts';
import { expiresOf, requirePresenceEvent, requirePsi, type SipFaceContext } from './face-context.ts';
import { audited, changeAnswerEntry, type AuditedAnswer, type AuditEntryOf } from './sip-audit.ts';

export interface UasAnswer {
  status: number;
  headers: HeaderList;
  /** Runs after the final response left (a NOTIFY must not overtake the 200 it follows). */
  after?: () => void;
}

export async function publishUas(ctx: SipFaceContext, req: IncomingRequest, flow: Flow): Promise<UasAnswer> {
  requirePresenceEvent(req);
  requirePsi(req, ctx.psi);
  const sender = await senderOf(req, flow, ctx);
  const service = serviceOf(req);
  const expires = expiresOf(req, DEFAULT_PUBLISH_EXPIRES);
  const ifMatch = req.headers.get('sip-if-match')?.trim();
  // RFC 3903 §11.3.2: one entity-tag; a list is not a condition this server can test.
  if (ifMatch?.includes(',')) throw new MusterError('bad-request', 'SIP-If-Match takes one entity-tag');

  // RFC 3903 §6 step 3-4: a body is a new or modified publication; without one it is a refresh or a removal.
  const body = req.body.length > 0 ? readAffiliationBody(req, service, { requirePidf: true }) : undefined;
  const pidf = body?.pidf;
  if (pidf && body.requestUri && body.requestUri !== pidf.entity) throw new MusterError('bad-request', `PIDF entity ${pidf.entity} is not the mcptt-request-uri ${body.requestUri}`);
  let served: McUri;
  if (pidf) served = body.requestUri ?? pidf.entity;
  else if (ifMatch) served = body?.requestUri ?? sender;
  else if (expires === 0) served = body?.requestUri ?? sender;
  else throw new MusterError('bad-request', 'an initial PUBLISH needs a PIDF body (RFC 3903 §4.1)');

  // Issue 7: the request is on record from here, refused or not (sip-audit.ts); recorded while the user's lock is
  // held, so the NOTIFY this PUBLISH causes still follows its 200.
  return ctx.exclusive(served, () =>
    audited(ctx, { sender, onBehalfOf: served, action: 'sip-publish', service, groups: expires === 0 ? [] : (pidf?.groups ?? []) }, async (entryOf, noteRefusal): Promise<AuditedAnswer> => {
      // TS 23.280 10.X.5.1.1: acting for another user is a mandatory remote change and needs the right.
      const right = decideChangeRight(sender, ctx.server.profiles.get(sender), served, ctx.server.domain);
      if (!right.allowed) throw new MusterError('forbidden', `${sender} may not change the affiliations of ${served}`);
      if (sender !== served) return publishOnBehalf(ctx, sender, served, service, expires === 0 ? [] : pidf!.groups, pidf?.pId, ifMatch, entryOf);

      // From the store: a publication made before a restart, or on another instance, is found too.
      const current = await ctx.publications.get(served, service);
      // RFC 3903 §6 step 4: an entity-tag we do not hold is answered 412.
      if (ifMatch !== undefined && current?.etag !== ifMatch) throw new SipRefusal(412, `no publication with entity-tag ${ifMatch}`);

      if (!pidf && expires > 0) {
        // Refresh: same set, new entity-tag and expiry; nothing changes, so no NOTIFY.
        const pub = await ctx.publications.refresh(current!, expires);
        if (!pub) throw new SipRefusal(412, `no publication with entity-tag ${ifMatch}`); // refreshed or removed elsewhere meanwhile
        return { status: 200, headers: publicationHeaders(pub) };
      }

      const wanted = expires === 0 ? [] : pidf!.groups;
      // What this PUBLISH asks of the groups, each change as read: if it fails later, those changes are undone.
      const asked: SetChange = { affiliate: [], deaffiliate: [] };
      const progress: SetProgress = {
        // While partner systems decide, watchers get a NOTIFY with those groups `affiliating` (TS 24.379 §9.2.2.2.5),
        // without a p-id: it does not answer the PUBLISH yet.
        reserved: (): void => ctx.notifyWatchers(served, service),
        asked: (change) => void (asked.affiliate.push(...change.affiliate), asked.deaffiliate.push(...change.deaffiliate)),
      };
      // The publication is written alongside the affiliation change (on SQLite in the same group commit, so the
      // PUBLISH costs no extra fsync); if the change fails, the publication before it is put back over this one only.
      const publication: Promise<Publication | 'removed' | undefined> =
        expires === 0
          ? current
            ? ctx.publications.remove(served, service, current.etag).then((gone) => (gone ? 'removed' : undefined))
            : Promise.resolve(undefined)
          : ctx.publications.put(served, service, expires, { pId: pidf!.pId, tupleId: pidf!.clientId, groups: pidf!.groups }, ifMatch).then((pub) => {
              // RFC 3903 §6 step 4 again at the write: the entity-tag read above was refreshed or replaced elsewhere meanwhile.
              if (!pub) throw new SipRefusal(412, `no publication with entity-tag ${ifMatch}`);
              return pub;
            });
      // The audit entry goes in the transaction of the set's last write (issue 6): change, publication and entry then
      // share one commit and fsync. A set that changes nothing writes nothing, and its entry is stored on its own.
      const alongside = (status: GroupStatus[]): StoredAlongside => ({ audit: entryOf(200, { expires, status }) });
      const [applied, stored] = await Promise.allSettled([replaceAffiliationSet(ctx.server, served, service, wanted, progress, alongside), publication]);
      let status: GroupStatus[];
      let regained: GroupStatus[];
      try {
        if (applied.status === 'rejected') throw applied.reason;
        if (stored.status === 'rejected') throw stored.reason;
        // Instances share the store, not this lock: between this set's write and its publication's, an expiry elsewhere
        // may have left groups, or another instance's whole PUBLISH run; so the groups now follow the live publication.
        const refused = new Set(applied.value.filter((s) => s.status === 'rejected').map((s) => s.groupId));
        // What the re-check changes is stored with an entry of its own, of the whole outcome (the set's may be stored already).
        const regainedAlongside = (r: GroupStatus[]): StoredAlongside => ({ audit: entryOf(200, { expires, status: outcomeOf(applied.value, r), regained: r.map((s) => s.groupId) }) });
        const own = typeof stored.value === 'object' ? stored.value.etag : undefined;
        // This PUBLISH's refusals stand while its own publication (none, after its Expires: 0) is the live one.
        // A removal that lost to another request leaves a publication this PUBLISH has not seen: that one is read.
        const written: PublishedSet | undefined = typeof stored.value === 'object' ? { tag: own, groups: stored.value.groups } : undefined;
        regained = await followLivePublication(ctx.server, served, service, () => liveSetOf(ctx, served, service), { tag: own, groups: refused }, progress, regainedAlongside, written);
        status = outcomeOf(applied.value, regained);
      } catch (e) {
        // The error answer tells the client nothing was done, so nothing this PUBLISH did may stay.
        const undone = await undoPublish(ctx, served, service, current, stored.status === 'fulfilled' ? stored.value : undefined, asked);
        if (undone.length > 0) noteRefusal({ undone });
        throw e;
      }
      // TS 24.379 §9.2.1.5: the user's own new set also answers the negotiated changes it fulfils, once it stands (a failed PUBLISH answers nothing).
      if (pidf) await answerByPublication(ctx, served, service, wanted);
      const headers: HeaderList = typeof stored.value === 'object' ? publicationHeaders(stored.value) : [...(current ? [['SIP-ETag', current.etag] as [string, string]] : []), ['Expires', '0']];
      const pId = pidf?.pId;
      const result = { expires, status, ...(regained.length > 0 ? { regained: regained.map((s) => s.groupId) } : {}) };
      return { status: 200, headers: [...headers, ...refusalWarnings(ctx.agent, service, status)], after: () => ctx.notifyWatchers(served, service, pId), result };
    }),
  );
}

/**
 * The negotiated changes the standing PUBLISH's set fulfils, answered `accepted`, each on record before the 200 as the
 * HTTP answer route records the target's answer (a `change-answer` entry, docs/audit.md): the PUBLISH's own entry is
 * stored with its set's write, before any change is answered, so it cannot name them. Failures are logged, not refused.
 */
async function answerByPublication(ctx: SipFaceContext, served: McUri, service: McService, published: readonly McUri[]): Promise<void> {
  const answers = await acceptChangesByPublication(ctx.server, served, service, published).catch((err: unknown) => void notAccepted(ctx, served, service, err));
  if (!answers) return;
  for (const { id, error } of answers.failed) notAccepted(ctx, served, service, error, id);
  await ctx.audit.record(answers.accepted.map((a) => changeAnswerEntry(ctx.server.clock.now(), served, { ...a, accept: true }, 'sip-publish')));
}

/**
 * The PUBLISH stands, but answering a change its set fulfils failed (the store went away): its 200 is still true.
 * A change left `asked` times out; one stored `accepted` without its result is finished by the expiry round.
 */
function notAccepted(ctx: SipFaceContext, userId: McUri, service: McService, err: unknown, changeId?: string): void {
  ctx.server.log.error({ err, userId, service, changeId }, 'negotiated changes a SIP PUBLISH fulfilled could not all be answered accepted');
}

/** The user's live publication for the service as the store holds it now: its entity-tag and its set (none: no groups). */
async function liveSetOf(ctx: SipFaceContext, userId: McUri, service: McService): Promise<PublishedSet> {
  const pub = await ctx.publications.get(userId, service);
  return { tag: pub?.etag, groups: pub ? pub.groups : [] };
}

/**
 * The user's groups made exactly the set of `found`, a live publication newer than the caller's (an expiry's or a
 * failed PUBLISH's undo), and of any stored after it: the PUBLISH re-check's full replacement, with its rounds.
 */
function followNewerPublication(ctx: SipFaceContext, userId: McUri, service: McService, found: PublishedSet): Promise<GroupStatus[]> {
  return followLivePublication(ctx.server, userId, service, () => liveSetOf(ctx, userId, service), undefined, undefined, undefined, found);
}

/** A PUBLISH's outcome per group: its set's statuses, those of the groups its re-check changed in their place. */
function outcomeOf(set: GroupStatus[], regained: GroupStatus[]): GroupStatus[] {
  return [...set.filter((s) => !regained.some((r) => r.groupId === s.groupId)), ...regained];
}

/**
 * TS 24.379 §9.2.1.4 mandatory mode: an authorised client PUBLISHes a set for another user. What the set changes of
 * that user's groups is run as the HTTP API's mandatory remote change (remoteChangeMandatory: the right per group,
 * the change record, the target's `affiliation-change` event), so the target learns it by NOTIFY and as any change
 * request. The publication is not kept: the served user's own publication (its client's entity-tag, its expiry)
 * stands, so its client's next refresh still matches and its own expiry decides when its groups end, not the
 * dispatcher's. The 200 says `Expires: 0`: nothing to refresh.
 */
async function publishOnBehalf(ctx: SipFaceContext, sender: McUri, served: McUri, service: McService, wanted: readonly McUri[], pId: string | undefined, ifMatch: string | undefined, entryOf: AuditEntryOf): Promise<AuditedAnswer> {
  if (ifMatch !== undefined) throw new SipRefusal(412, `no publication with entity-tag ${ifMatch}: one made for another user is not kept`);
  const change = await changeOfPublishedSet(ctx.server, served, service, wanted);
  // The set the user holds asks nothing: no change request to record (an HTTP one names at least one group).
  if (change.affiliate.length + change.deaffiliate.length === 0) return onBehalfAnswer(ctx, served, service, pId, [], { expires: 0, status: [] });
  const id = randomUUID();
  const request: ChangeRequest = { mcServiceId: sender, service, mode: 'mandatory', targets: [served], ...change };
  const [result] = await remoteChangeMandatory(ctx.server, request, id, {
    progress: () => ({ reserved: (): void => ctx.notifyWatchers(served, service) }),
    audit: (_target, status) => entryOf(200, { expires: 0, status, changeId: id }),
    // The lists are decided again in the target's write transaction: its own PUBLISH elsewhere may have run since the read.
    publishedSet: wanted,
  });
  // The right is decided again after the store read; a profile changed meanwhile refuses the request as a whole.
  if (!result || result.outcome === 'not-authorised') throw new MusterError('forbidden', `${sender} may not change the affiliations of ${served}`);
  return onBehalfAnswer(ctx, served, service, pId, result.status, { expires: 0, status: result.status, changeId: id });
}

/** The 200 to a PUBLISH on another's behalf: an entity-tag that is not kept, `Expires: 0`, a Warning per refused group. */
function onBehalfAnswer(ctx: SipFaceContext, served: McUri, service: McService, pId: string | undefined, status: GroupStatus[], result: unknown): AuditedAnswer {
  const headers: HeaderList = [['SIP-ETag', ctx.publications.unkeptEtag()], ['Expires', '0'], ...refusalWarnings(ctx.agent, service, status)];
  return { status: 200, headers, after: () => ctx.notifyWatchers(served, service, pId), result };
}

function publicationHeaders(pub: Publication): HeaderList {
  return [
    ['SIP-ETag', pub.etag],
    ['Expires', String(pub.expires)],
  ];
}

/**
 * A PUBLISH answered with an error: what it changed of the user's groups (its set's change, and what its re-check took
 * back) and its publication are put back. Then, if the live publication is not the one before, read after every write
 * of the undo: a newer one (another instance stored it meanwhile) is followed as the PUBLISH re-check does, the user's
 * groups made exactly its set; with none (the one before has expired, or was removed elsewhere) the groups this PUBLISH
 * touched are left, and one stored since is followed the same way. Returns what became of the groups changed.
 */
async function undoPublish(ctx: SipFaceContext, userId: McUri, service: McService, before: Publication | undefined, written: Publication | 'removed' | undefined, asked: SetChange): Promise<GroupStatus[]> {
  const touched = groupsOf(asked);
  const undone = new Map<McUri, GroupStatus>();
  const record = (status: GroupStatus[]): void => status.forEach((s) => undone.set(s.groupId, s));
  try {
    if (touched.size > 0) record(await undoSetChange(ctx.server, userId, service, asked));
    if (written) await undoPublication(ctx, userId, service, before, written);
    let live: PublishedSet = touched.size > 0 ? await liveSetOf(ctx, userId, service) : { tag: before?.etag, groups: null };
    if (live.tag !== before?.etag) {
      if (live.tag === undefined) {
        // Groups this PUBLISH did not touch are left by whoever removed the publication (an expiry, an Expires: 0).
        record(await replaceAffiliationSetAmong(ctx.server, userId, service, [], touched));
        // One stored after that read may have read the groups before these writes left some: it is followed below.
        live = await liveSetOf(ctx, userId, service);
      }
      if (live.tag !== undefined) record(await followNewerPublication(ctx, userId, service, live));
    }
  } catch (e) {
    ctx.server.log.error({ err: e, userId, service }, 'the groups a failed SIP PUBLISH changed could not all be put back');
  }
  return [...undone.values()];
}

/**
 * The PUBLISH failed after it wrote its publication (or removed the one before): the one before comes back (or none,
 * as before), but only over what this PUBLISH wrote. A publication another instance stored since is newer and stays.
 */
async function undoPublication(ctx: SipFaceContext, userId: McUri, service: McService, before: Publication | undefined, written: Publication | 'removed'): Promise<void> {
  try {
    // Over this PUBLISH's own entity-tag, or, after its removal, only where none is stored now.
    if (before) await ctx.publications.restore(before, written === 'removed' ? null : written.etag);
    else if (written !== 'removed') await ctx.publications.remove(userId, service, written.etag);
  } catch (e) {
    ctx.server.log.error({ err: e, userId, service }, 'SIP publication could not be put back after a failed PUBLISH');
  }
}

/** How soon an expired publication whose groups could not all be left is expired again. */
export const EXPIRY_RETRY_MS = 30_000;

/**
 * RFC 3903 §6: an expired publication is removed; for affiliation that means leaving its groups (as Expires: 0).
 * Claimed by removing it under its entity-tag: of two instances taking the same page, one de-affiliates; a refresh
 * or a new PUBLISH that came first keeps the user's groups. A group that could not be left now (its partner system or
 * GMS not answering, the store failing) brings the publication back, expiring again in EXPIRY_RETRY_MS: the user's
 * groups end with it, not when someone notices.
 *
 * The per-user lock orders this against a PUBLISH of this process only; a new PUBLISH on another instance may read
 * the groups as held (nothing to change) while they are being left here. So whoever finishes last restores its set:
 * the PUBLISH reads the groups again once its publication is stored, and this expiry, after its last removal (a
 * partner's group included), reads the publication again and makes the user's groups exactly a new one's stored set
 * (followLivePublication, as the PUBLISH's re-check: read again after each write, a newer one followed next). A
 * publication stored before that read is seen by it; one stored after it follows every removal, which its own read
 * sees. A retry puts the old publication back only where there is none (restore over null), never over the new one.
 */
export async function expirePublication(ctx: SipFaceContext, pub: Publication): Promise<void> {
  const { userId, service } = pub;
  try {
    const ended = await ctx.exclusive(userId, async () => {
      if (!(await ctx.publications.remove(userId, service, pub.etag))) return false;
      let status: GroupStatus[] = [];
      let failure: { cause: unknown } | undefined;
      try {
        status = await replaceAffiliationSet(ctx.server, userId, service, []);
      } catch (e) {
        failure = { cause: e };
      }
      const retry = failure !== undefined || status.some(notAnsweredYet);
      const back = retry && (await ctx.publications.restore({ ...pub, expiresAt: ctx.server.clock.now() + EXPIRY_RETRY_MS }, null));
      // Any publication found now was stored after the claim removed this one (a new PUBLISH, on another instance):
      // the groups follow it exactly, as that PUBLISH's re-check does, also where it was written before these removals.
      const newer = back ? undefined : await liveSetOf(ctx, userId, service);
      if (newer?.tag !== undefined) await followNewerPublication(ctx, userId, service, newer);
      if (failure) throw failure.cause;
      return true;
    });
    if (ended) ctx.notifyWatchers(userId, service);
  } catch (e) {
    ctx.server.log.error({ err: e, userId, service }, 'SIP publication expiry failed');
  }
}

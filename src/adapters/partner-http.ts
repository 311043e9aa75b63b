// Partner MC service servers over HTTP (/federation/v1), through an intermediate node when configured.
// Every failure (down, slow past the timeout, garbled answer) becomes partner-unreachable for that partner's groups,
// and a request the partner may have applied without the primary learning it is undone at the partner.
import type { GroupStatus } from '../domain/flows.ts';
import { REFUSAL_REASONS } from '../domain/reasons.ts';
import type { PartnerConfig } from '../config/config.ts';
import type { PartnerHealth, PartnerRequest, PartnerServers, PartnerTrouble, ResyncPage, ResyncPageAnswer, ResyncPageOutcome } from '../ports/partner.ts';
import { compareResyncKeys, type ResyncKey } from '../domain/decisions/partner-resync.ts';
import { MC_SERVICES } from '../domain/services.ts';
import type { McUri } from '../domain/ids.ts';
import type { McService } from '../domain/services.ts';
import { ServerCredentials } from './partner-gate.ts';
import type { Logger } from 'pino';
import { PartnerPeers, failureOf, jsonOf } from './peer-http.ts';
import { groupsToUndo } from '../domain/decisions/partner-answers.ts';

type Path = 'affiliations' | 'deaffiliations';
/**
 * `declined`: an answer refusing the request as a whole, nothing of it applied (a 4xx, or an error marked `processed:
 * false`); `refused`: not sent or not taken (stopping, connection refused), nothing applied; `unknown`: it may have been.
 */
type PostOutcome =
  | { kind: 'answered'; status: GroupStatus[] }
  // The refusal's HTTP status and error code, which the logs of a refused undo name.
  | { kind: 'declined'; why: string; httpStatus: number; code: string | undefined }
  | { kind: 'refused' | 'unknown'; why: string };
const UNDO_ATTEMPTS = 4;
const latestKey = (req: PartnerRequest, groupId: string): string => `${req.mcServiceId} ${req.service} ${groupId}`;

/** A partner's answer: its status, Retry-After, and its body as JSON (or why that could not be read). */
type Exchange = { status: number; retryAfter: string | undefined } & ({ body: unknown } | { bodyError: string });

/** What the primary's store holds for a user and service now. */
export type HeldNow = (userId: McUri, service: McService) => Promise<ReadonlyMap<McUri, 'affiliated' | 'reserved'>>;

export class HttpPartnerServers implements PartnerServers {
  private readonly byDomain: Map<string, PartnerConfig>;
  private readonly credentials: ServerCredentials;
  /** The last request sent per user, service and group: an undo stops for groups a later request was sent for. */
  private readonly latest = new Map<string, number>();
  private seq = 0;
  private probing: Promise<Record<string, 'up' | 'down'>> | undefined;
  private lastHealth: Record<string, 'up' | 'down'> = {};
  private readonly troubleListeners: ((domain: string, trouble: PartnerTrouble) => void)[] = [];
  /** The connections to each partner (to its next hop). */
  private readonly peers = new PartnerPeers();
  /** Undo retries waiting for their moment; dropped on close (the re-synchronisation at the next start settles them). */
  private readonly undoRetries = new Set<NodeJS.Timeout>();
  /** Per partner, the relay loop (508) its last answer reported, for /healthz; gone with its next other answer. */
  private readonly loops = new Map<string, string>();
  private closed = false;
  /**
   * `heldNow`: what the primary's store holds for a user and service now. An undo is sent only for groups that still
   * need it (another instance sharing the store may have completed a later request for them; `latest` knows only
   * this one's). Asked of the constructor, not defaulted: an adapter that took "holds nothing" would undo wrongly.
   */
  constructor(
    ownDomain: string,
    partners: PartnerConfig[],
    private readonly log: Logger,
    private readonly heldNow: HeldNow,
  ) {
    this.byDomain = new Map(partners.map((p) => [p.domain, p]));
    this.credentials = new ServerCredentials(ownDomain);
  }

  domains(): string[] {
    return [...this.byDomain.keys()];
  }

  affiliate(req: PartnerRequest): Promise<GroupStatus[]> {
    return this.send('affiliations', req, 'affiliated');
  }

  deaffiliate(req: PartnerRequest): Promise<GroupStatus[]> {
    return this.send('deaffiliations', req, 'deaffiliated');
  }

  /**
   * Probes each partner's /healthz. Partners probe each other, so a probe arriving while this system's own probe
   * is in flight gets the last result at once instead of probing again (which would recurse between partners
   * until every probe timed out and reported them all down).
   */
  async health(): Promise<Record<string, PartnerHealth>> {
    if (!this.probing) {
      this.probing = this.probe().finally(() => (this.probing = undefined));
      this.lastHealth = await this.probing;
    }
    // A node on the way answers its /healthz whatever lies beyond it: a loop is known from the last answer through it.
    return Object.fromEntries(Object.entries(this.lastHealth).map(([domain, h]) => [domain, h === 'up' && this.loops.has(domain) ? 'loop-detected' : h]));
  }

  private async probe(): Promise<Record<string, 'up' | 'down'>> {
    const out: Record<string, 'up' | 'down'> = {};
    await Promise.all(
      [...this.byDomain.values()].map(async (p) => {
        out[p.domain] = (await this.probeOne(p)) ? 'up' : 'down';
      }),
    );
    return out;
  }

  /**
   * Any answer of the partner's /healthz counts (503 is a partner up with a dependency down), a gateway failure does
   * not. `partners=omit`: the partner answers for itself without probing its own partners, so probes do not cascade.
   */
  private async probeOne(p: PartnerConfig): Promise<boolean> {
    const timeout = Math.min(p.timeoutMs, 2000);
    try {
      const res = await this.peers.of(p).request('GET', '/healthz?partners=omit', { timeoutMs: timeout });
      await res.body.dump();
      return res.statusCode < 500 || res.statusCode === 503;
    } catch {
      return false;
    }
  }

  async reachable(domain: string): Promise<boolean> {
    const p = this.byDomain.get(domain);
    if (!p) return false;
    const up = await this.probeOne(p);
    // Fresher than the last full probe, which /healthz answers with while another probe is under way.
    this.lastHealth = { ...this.lastHealth, [domain]: up ? 'up' : 'down' };
    return up;
  }

  inFlight(key: ResyncKey): boolean {
    return this.latest.has(`${key.userId} ${key.service} ${key.groupId}`);
  }

  onTrouble(listener: (domain: string, trouble: PartnerTrouble) => void): void {
    this.troubleListeners.push(listener);
  }

  private trouble(domain: string, what: PartnerTrouble): void {
    for (const l of this.troubleListeners) l(domain, what);
  }

  /** One page of a re-synchronisation to the group host (README "Partner re-synchronisation"). */
  async resync(page: ResyncPage): Promise<ResyncPageOutcome> {
    const partner = this.byDomain.get(page.domain);
    if (!partner) return { kind: 'failed', why: `no partner ${page.domain}` };
    const wire = (k: ResyncKey) => ({ mcServiceId: k.userId, service: k.service, groupId: k.groupId });
    const body = { host: page.domain, ...(page.after ? { after: wire(page.after) } : {}), ...(page.through ? { through: wire(page.through) } : {}), affiliations: page.affiliations.map(wire), ...(page.startUp ? { startUp: true } : {}) };
    // A 429 goes back to the procedure, which reads the page again before it sends it: a page kept while waiting would
    // miss what was affiliated meanwhile, and the host would remove it once older than its grace.
    return this.postPage(partner, body, page);
  }

  private async postPage(partner: PartnerConfig, body: unknown, page: ResyncPage): Promise<ResyncPageOutcome> {
    let res: Exchange;
    try {
      res = await this.postJson(partner, 'affiliation-resyncs', body);
    } catch (e) {
      return { kind: 'failed', why: failureOf(e) };
    }
    // A 429 whatever its body (a proxy's may not be JSON).
    // Retry-After in seconds, as the host said (an HTTP-date or nothing: 1 s); how long to wait is the procedure's.
    const retryAfterMs = 1000 * Math.max(1, Number(res.retryAfter) || 1);
    const loop = this.noteLoop(partner, res);
    if (res.status === 429) return { kind: 'rate-limited', retryAfterMs };
    // A relay loop: sending the page again meets it again; the procedure says so and the recovery backs off.
    if (loop !== undefined) return { kind: 'loop-detected', why: loop };
    if (!('body' in res)) return { kind: 'failed', why: res.bodyError };
    const answer = res.body;
    // A node at its bound or a host shedding load refused it before doing anything: for now, as a 429. An unmarked 503
    // (a next hop that failed mid-page) failed: the host may have compared part of it, and may be down.
    if (res.status === 503 && unprocessed(answer)) return { kind: 'unavailable', retryAfterMs, why: `status 503: ${messageOf(answer)}` };
    if (res.status !== 200) return { kind: 'failed', why: `status ${res.status}: ${JSON.stringify(answer).slice(0, 200)}` };
    const read = readResyncAnswer(answer, page);
    return read ? { kind: 'answered', answer: read } : { kind: 'failed', why: `malformed answer: ${JSON.stringify(answer).slice(0, 200)}` };
  }

  private async send(path: Path, req: PartnerRequest, success: 'affiliated' | 'deaffiliated'): Promise<GroupStatus[]> {
    const unreachable = (): GroupStatus[] => req.groupIds.map((groupId) => ({ groupId, status: 'rejected', reason: 'partner-unreachable' }));
    const partner = this.byDomain.get(req.domain);
    if (!partner) return unreachable();
    const seq = ++this.seq;
    req.groupIds.forEach((g) => this.latest.set(latestKey(req, g), seq));
    const outcome = await this.post(partner, path, req, success);
    if (outcome.kind !== 'unknown') this.forget(req, seq);
    if (outcome.kind === 'answered') return outcome.status;
    if (outcome.kind === 'declined') {
      // It (or a node on the way) answered, and applied nothing: there is nothing to undo or to re-synchronise, and a
      // re-synchronisation would only meet the same refusal (a bound, a rate limit, a credential, a relay loop).
      this.log.warn({ partner: partner.domain, path, status: outcome.httpStatus, code: outcome.code, why: outcome.why }, 'partner request refused; nothing applied');
      return unreachable();
    }
    this.log.warn({ partner: partner.domain, path, why: outcome.why }, 'partner unreachable');
    // Whatever it missed meanwhile is re-synchronised once it answers again.
    this.trouble(partner.domain, 'unreachable');
    // The partner may have applied a request whose answer never arrived (slow past the timeout, garbled): the
    // primary stores nothing for it, so the partner must keep nothing either. Undo it, in the background.
    if (outcome.kind === 'unknown') this.undo(partner, path, req, seq);
    return unreachable();
  }

  /**
   * One server-to-server request. `declined` or `refused`: the partner (or a node on the way) definitely applied nothing
   * (`declined`: it answered so, a 4xx refusal or an error marked `processed: false`: an intermediate node's bound or
   * loop, a host's load shedding; `refused`: not reachable); `unknown`: it may have applied the request (timeout, any
   * other 5xx, garbled answer).
   */
  private async post(partner: PartnerConfig, path: Path, req: PartnerRequest, success: 'affiliated' | 'deaffiliated', undo = false): Promise<PostOutcome> {
    // Stopping: nothing is sent, so nothing can have been applied.
    if (this.closed) return { kind: 'refused', why: 'stopping' };
    let res: Exchange;
    try {
      res = await this.postJson(partner, path, { mcServiceId: req.mcServiceId, service: req.service, groupIds: req.groupIds, ...(undo && path === 'deaffiliations' ? { undo: true } : {}) });
    } catch (e) {
      const why = failureOf(e);
      return { kind: why === 'ECONNREFUSED' ? 'refused' : 'unknown', why };
    }
    const loop = this.noteLoop(partner, res);
    const refusal = res.status >= 400 && res.status < 500;
    if (!('body' in res)) {
      const why = `status ${res.status}, body not JSON: ${res.bodyError}`;
      return refusal ? { kind: 'declined', why, httpStatus: res.status, code: undefined } : { kind: 'unknown', why };
    }
    const body = res.body;
    if (res.status !== 200) {
      const why = `status ${res.status}: ${loop ?? JSON.stringify(body).slice(0, 200)}`;
      return refusal || unprocessed(body) ? { kind: 'declined', why, httpStatus: res.status, code: codeOf(body) } : { kind: 'unknown', why };
    }
    const status = this.readStatus(body, req, success);
    return status ? { kind: 'answered', status } : { kind: 'unknown', why: `malformed answer: ${JSON.stringify(body).slice(0, 200)}` };
  }

  /** Sends the inverse request until the partner answers it (bounded: a few attempts, then it is logged). */
  private undo(partner: PartnerConfig, path: Path, original: PartnerRequest, seq: number, attempt = 1): void {
    void this.undoOnce(partner, path, original, seq, attempt).catch((err: unknown) => {
      // The primary's store could not be read: nothing is known to undo; a re-synchronisation settles it later.
      this.forget(original, seq);
      this.log.warn({ err, partner: partner.domain, user: original.mcServiceId }, 'undo of an unanswered partner request not sent');
      this.trouble(partner.domain, 'undo-failed');
    });
  }

  private async undoOnce(partner: PartnerConfig, path: Path, original: PartnerRequest, seq: number, attempt: number): Promise<void> {
    const inverse: Path = path === 'affiliations' ? 'deaffiliations' : 'affiliations';
    // A later request for a group (the user tried again) decides that group; the undo must not overtake it.
    const stillLatest = (): McUri[] => original.groupIds.filter((g) => this.latest.get(latestKey(original, g)) === seq);
    if (stillLatest().length === 0 || this.closed) return;
    // Nor a later one that another instance completed (groupsToUndo, by what the primary's store holds now).
    const held = await this.heldNow(original.mcServiceId, original.service);
    const latest = stillLatest(); // again: the user may have tried again while the store was read
    const groupIds = groupsToUndo(path === 'affiliations' ? 'affiliate' : 'deaffiliate', latest, held);
    const settled = latest.filter((g) => !groupIds.includes(g));
    if (settled.length > 0) this.forget({ ...original, groupIds: settled }, seq);
    if (groupIds.length === 0 || this.closed) return;
    const req = { ...original, groupIds };
    const undoneStatus = inverse === 'affiliations' ? 'affiliated' : 'deaffiliated';
    await this.post(partner, inverse, req, undoneStatus, true).then((outcome) => {
      if (outcome.kind !== 'unknown' || attempt >= UNDO_ATTEMPTS) this.forget(req, seq);
      const about = { partner: partner.domain, path: inverse, user: req.mcServiceId, groups: req.groupIds };
      if (outcome.kind === 'answered') {
        // Answered, but a group the partner rejected (or left as it was) was not undone: the re-synchronisation settles it.
        const refused = outcome.status.filter((s) => s.status !== undoneStatus);
        if (refused.length === 0) return this.log.info({ ...about, outcome: outcome.kind }, 'unanswered partner request undone');
        this.log.warn({ ...about, refused, undone: outcome.status.filter((s) => s.status === undoneStatus).map((s) => s.groupId) }, 'undo of an unanswered partner request refused by the partner for some groups; those not undone');
        this.trouble(partner.domain, 'undo-failed');
        return;
      }
      if (outcome.kind === 'declined') {
        // Refused as a whole, nothing undone: the partner may still hold what the primary does not; a re-synchronisation settles it.
        this.log.warn({ ...about, status: outcome.httpStatus, code: outcome.code, why: outcome.why }, 'undo of an unanswered partner request refused by the partner; not undone');
        this.trouble(partner.domain, 'undo-failed');
        return;
      }
      if (outcome.kind === 'refused') {
        // Not sent (stopping, connection refused): the re-synchronisation once the partner answers (start-up, back after being unreachable) settles it.
        this.log.warn({ ...about, why: outcome.why }, 'undo of an unanswered partner request not sent; not undone');
        return;
      }
      if (attempt >= UNDO_ATTEMPTS) {
        this.log.error({ partner: partner.domain, path: inverse, user: req.mcServiceId, groups: req.groupIds, why: outcome.why }, 'could not undo an unanswered partner request');
        // The re-synchronisation removes it once the partner answers again.
        this.trouble(partner.domain, 'undo-failed');
        return;
      }
      const retry = setTimeout(() => {
        this.undoRetries.delete(retry);
        this.undo(partner, path, original, seq, attempt + 1);
      }, 500 * attempt).unref();
      this.undoRetries.add(retry);
    });
  }

  /**
   * Keeps what an answer on the way to `partner` says of a relay loop, and gives the loop's description when it is one
   * (508, RFC 5842 Loop Detected: an intermediate node met a request it had already passed on, or too long a chain;
   * its refusal names the chain). A loop is a configuration error of the partners' `via` routes that retrying will not
   * fix: logged at error level when it appears or changes, and /healthz says `loop-detected` until an answer gets
   * through: any answer but a refusal made before anything was done (`processed: false`), which a node before the loop
   * may have given (its rate limit, its bound).
   */
  private noteLoop(partner: PartnerConfig, res: Exchange): string | undefined {
    if (res.status !== 508) {
      const through = !('body' in res && unprocessed(res.body));
      if (through && this.loops.delete(partner.domain)) this.log.info({ partner: partner.domain }, 'the route to the partner no longer loops');
      return undefined;
    }
    const why = 'body' in res ? messageOf(res.body) : `a 508 answer, body not JSON: ${res.bodyError}`;
    if (this.loops.get(partner.domain) !== why) {
      const chain = /\S+(?: -> \S+)+/.exec(why)?.[0];
      this.log.error({ partner: partner.domain, nextHop: partner.nextHop, ...(chain ? { chain } : {}), why }, 'relay loop on the way to the partner: a configuration error of the partners\' `via` routes, which retrying will not fix');
    }
    this.loops.set(partner.domain, why);
    return why;
  }

  private forget(req: PartnerRequest, seq: number): void {
    for (const g of req.groupIds) if (this.latest.get(latestKey(req, g)) === seq) this.latest.delete(latestKey(req, g));
  }

  /** Accepts only an answer with one well-formed status for each group asked, nothing else. */
  private readStatus(body: unknown, req: PartnerRequest, success: string): GroupStatus[] | undefined {
    const list = (body as { status?: unknown } | null)?.status;
    if (!Array.isArray(list) || list.length !== req.groupIds.length) return undefined;
    const out: GroupStatus[] = [];
    for (const [i, groupId] of req.groupIds.entries()) {
      const s = list[i] as { groupId?: unknown; status?: unknown; reason?: unknown } | null;
      if (!s || s.groupId !== groupId) return undefined;
      if (s.status === success) out.push({ groupId, status: success as 'affiliated' });
      else if (s.status === 'rejected' && (REFUSAL_REASONS as readonly unknown[]).includes(s.reason)) out.push({ groupId, status: 'rejected', reason: s.reason as GroupStatus & { status: 'rejected' } extends { reason: infer R } ? R : never });
      else return undefined;
    }
    return out;
  }

  /** POSTs JSON to the partner's /federation/v1/<path>; throws on a transport failure (no answer at all). */
  private async postJson(partner: PartnerConfig, path: string, body: unknown): Promise<Exchange> {
    // Through an intermediate Muster node: it relays only for a partner that identifies itself at its hop.
    const node = partner.viaPartner === undefined ? undefined : this.byDomain.get(partner.viaPartner);
    const res = await this.peers.of(partner).request('POST', `/federation/v1/${path}`, {
      headers: {
        'content-type': 'application/json',
        authorization: `Bearer ${await this.credentials.of(partner)}`,
        ...(node ? { 'proxy-authorization': `Bearer ${await this.credentials.of(node)}` } : {}),
      },
      body: JSON.stringify(body),
    });
    return { status: res.statusCode, retryAfter: [res.headers['retry-after']].flat()[0], ...(await jsonOf(res, partner.timeoutMs)) };
  }

  /** Closes the connections to the partners (on stop). */
  async close(): Promise<void> {
    this.closed = true;
    this.undoRetries.forEach(clearTimeout);
    this.undoRetries.clear();
    await this.peers.close();
  }
}

/** An error its sender refused before it did or passed on anything (error-reply.ts, toUnprocessedReply). */
function unprocessed(body: unknown): boolean {
  // Anyone answering can set it, but a host or node that applied the request could as well answer a 4xx, which we already take as "not applied".
  return (body as { error?: { processed?: unknown } } | null)?.error?.processed === false;
}

/** An error answer's code (CONTRACT.md "Errors"), bounded; none when the body has no such field. */
function codeOf(body: unknown): string | undefined {
  const code = (body as { error?: { code?: unknown } } | null)?.error?.code;
  return typeof code === 'string' ? code.slice(0, 100) : undefined;
}

/** An error answer's message (the refusal's own words, bounded), else the answer itself as JSON. */
function messageOf(body: unknown): string {
  const message = (body as { error?: { message?: unknown } } | null)?.error?.message;
  return typeof message === 'string' ? message.slice(0, 1000) : JSON.stringify(body).slice(0, 200);
}

/**
 * Accepts only a well-formed answer: key lists, a `through` inside the page's range, and `missing` keys that the page
 * listed (a partner cannot make the primary ask for anything it did not hold).
 */
function readResyncAnswer(body: unknown, page: ResyncPage): ResyncPageAnswer | undefined {
  const b = body as { through?: unknown; removed?: unknown; spared?: unknown; missing?: unknown; graceMs?: unknown } | null;
  if (!b || typeof b !== 'object') return undefined;
  const keys = (v: unknown): ResyncKey[] | undefined => {
    if (!Array.isArray(v)) return undefined;
    const out: ResyncKey[] = [];
    for (const x of v as unknown[]) {
      const k = readKey(x);
      if (!k) return undefined;
      out.push(k);
    }
    return out;
  };
  const removed = keys(b.removed);
  const spared = keys(b.spared);
  const missing = keys(b.missing);
  const through = b.through === undefined || b.through === null ? undefined : readKey(b.through);
  if (!removed || !spared || !missing || (b.through !== undefined && b.through !== null && !through)) return undefined;
  if (typeof b.graceMs !== 'number' || !Number.isFinite(b.graceMs) || b.graceMs < 0) return undefined;
  const listed = new Set(page.affiliations.map((k) => `${k.userId} ${k.service} ${k.groupId}`));
  if (missing.some((k) => !listed.has(`${k.userId} ${k.service} ${k.groupId}`))) return undefined;
  // Stopping short is allowed, going past the page is not, and a host that stops must have moved past `after`.
  if (page.through && (!through || compareResyncKeys(through, page.through) > 0)) return undefined;
  if (through && page.after && compareResyncKeys(through, page.after) <= 0) return undefined;
  return { ...(through ? { through } : {}), removed, spared, missing, graceMs: b.graceMs };
}

function readKey(x: unknown): ResyncKey | undefined {
  const k = x as { mcServiceId?: unknown; service?: unknown; groupId?: unknown } | null;
  if (!k || typeof k.mcServiceId !== 'string' || typeof k.groupId !== 'string' || !(MC_SERVICES as readonly unknown[]).includes(k.service)) return undefined;
  return { userId: k.mcServiceId as McUri, service: k.service as ResyncKey['service'], groupId: k.groupId as McUri };
}

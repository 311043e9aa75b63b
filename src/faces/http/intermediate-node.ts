// This system as an intermediate signalling node (10.X.3.2 step 3, "possibly through intermediate signalling nodes"):
// it passes a federation request for another partner's groups on unchanged; the end-to-end credential is the group
// host's to check. It relays only for a configured partner that identifies itself at this hop with a hop credential
// (Proxy-Authorization, RFC 9110 11.7.2: signed with the secret of that pair; checked before anything else, refused
// 407 Proxy Authentication Required with its challenge, RFC 9110 15.5.8), whose rate budget the request takes
// (rate-limit.ts), and holds at most `maxRelaysInFlight` relays per next hop. It adds itself to Via (RFC 9110 7.6.3,
// its domain as pseudonym) and refuses a request that already passed it (a relay loop) or passed `maxIntermediateNodes`.
// Its refusals of a valid request made before anything was forwarded say `processed: false`: the sender has no undo to send.
// The next hop's answer goes back with its end-to-end fields (a host's Retry-After among them) and this node in its Via.
import type { IncomingHttpHeaders } from 'node:http';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { MusterError, badInput } from '../../domain/errors.ts';
import type { PartnerConfig, SystemConfig } from '../../config/config.ts';
import { ServerCredentials, type PartnerGate } from '../../adapters/partner-gate.ts';
import { PartnerPeers, failureOf, textOf } from '../../adapters/peer-http.ts';
import { toErrorReply, toUnprocessedReply } from './error-reply.ts';
import { parseVia } from './via.ts';

/** The header of the hop credential: for the intermediate node that receives it, never passed on. */
export const HOP_CREDENTIAL = 'proxy-authorization';

/**
 * The fields of the next hop's answer passed back to the sender (RFC 9110 7.6: a proxy passes end-to-end fields on and
 * drops hop-by-hop ones). The ones that matter to a sender, rather than all but the hop-by-hop ones, so nothing
 * meant for this node leaks: Content-Type (the body goes back unchanged), Retry-After (a host's 429 or 503 says when to
 * send again: the sender's re-synchronisation waits it out) and WWW-Authenticate (the challenge of the end-to-end
 * credential). Not Connection, Keep-Alive, Transfer-Encoding or any field Connection names (this connection only),
 * Proxy-Authenticate (the next hop's challenge to this node's hop credential), Content-Length (fastify sets it for the
 * body it sends) nor Content-Encoding (the body is read as text); Via is added to (RFC 9110 7.6.3).
 */
const PASSED_BACK = ['content-type', 'retry-after', 'www-authenticate'] as const;
/**
 * A hop credential refused: the proxy's own authentication (RFC 9110 15.5.8, 11.7.1), not the group host's 401; the
 * error code stays the catalogue's `unauthenticated`, only the status and the challenge field say which hop.
 */
const PROXY_AUTHENTICATION_REQUIRED = 407;
/** The scheme this node's challenge names: a hop credential is a bearer server credential (partner-gate.ts). */
const PROXY_CHALLENGE = 'Bearer';
/** The protocol this node receives answers in: undici's pool speaks HTTP/1.1 to every next hop (no allowH2). */
const NEXT_HOP_PROTOCOL = '1.1';

export class IntermediateSignallingNode {
  /** The connections to each next hop. */
  private readonly nextHops = new PartnerPeers();
  /** Relays under way per next hop URL (several partners may share one next hop). */
  private readonly inFlight = new Map<string, number>();
  private readonly byDomain: Map<string, PartnerConfig>;
  private readonly credentials: ServerCredentials;

  constructor(
    private readonly config: SystemConfig,
    private readonly gate: PartnerGate,
  ) {
    this.byDomain = new Map(config.partners.map((p) => [p.domain, p]));
    this.credentials = new ServerCredentials(config.domain);
  }

  /**
   * Whether a configured partner sent this hop (its hop credential verifies); when not, answers 407 with this node's
   * challenge (Proxy-Authenticate) and the catalogue's `unauthenticated` body naming the header.
   */
  private async identified(req: FastifyRequest, reply: FastifyReply): Promise<boolean> {
    try {
      await this.gate.verify(headerOf(req, HOP_CREDENTIAL));
      return true;
    } catch (e) {
      if (!(e instanceof MusterError)) throw e;
      const { body } = toErrorReply(new MusterError('unauthenticated', `Proxy-Authorization: ${e.message}; ${this.config.domain} relays only for a partner system that identifies itself at this hop`));
      await reply.code(PROXY_AUTHENTICATION_REQUIRED).header('proxy-authenticate', PROXY_CHALLENGE).send(body);
      return false;
    }
  }

  /**
   * Passes the request on towards `host` (the system hosting its groups; `field` names them) with the end-to-end
   * credential unchanged and the next hop's answer back (its body unchanged, its end-to-end fields), with this node
   * added to Via both ways. Refused before anything is sent: no hop credential of a partner (407, before any other
   * check, so an unidentified caller learns nothing of this node's routes), no route to `host` (403), no end-to-end
   * credential (401), a malformed Via (400), this node already in Via or the chain at `maxIntermediateNodes` (508),
   * `maxRelaysInFlight` already under way to that next hop (503 with Retry-After).
   */
  async relay(req: FastifyRequest, reply: FastifyReply, host: string, path: string, field: string | undefined): Promise<void> {
    if (!(await this.identified(req, reply))) return;
    const next = this.byDomain.get(host);
    if (!next) throw new MusterError('forbidden', `groups of ${host} are not hosted here and there is no route to them`, field);
    const authorization = headerOf(req, 'authorization');
    if (!authorization) throw new MusterError('unauthenticated', `relayed request without the credential for the group host ${next.domain} (Authorization)`);
    const loop = this.loopIn(headerOf(req, 'via'), next);
    if (loop) {
      const { status, body } = toUnprocessedReply(loop);
      await reply.code(status).send(body);
      return;
    }
    const where = next.nextHop;
    const held = this.inFlight.get(where) ?? 0;
    if (held >= this.config.maxRelaysInFlight) {
      // Answered at once, like load shedding: a queue towards a slow next hop would only grow.
      const { status, body } = toUnprocessedReply(new MusterError('unavailable', `next hop ${where} has ${held} relayed requests in progress (maxRelaysInFlight); retry shortly`));
      await reply.code(status).header('retry-after', '1').send(body);
      return;
    }
    this.inFlight.set(where, held + 1);
    try {
      // The next hop may itself be an intermediate Muster node (our partner): it wants our hop credential, not the sender's.
      const node = next.viaPartner === undefined ? undefined : this.byDomain.get(next.viaPartner);
      // RFC 9110 7.6.3: a proxy appends `received-protocol received-by` for itself to the Via it received.
      const received = `${req.raw.httpVersion} ${this.config.domain}`;
      const via = headerOf(req, 'via');
      const headers: Record<string, string> = {
        'content-type': 'application/json',
        authorization,
        via: via ? `${via}, ${received}` : received,
        ...(node ? { [HOP_CREDENTIAL]: `Bearer ${await this.credentials.of(node)}` } : {}),
      };
      const res = await this.nextHops
        .of(next)
        .request('POST', path, { headers, body: JSON.stringify(req.body) })
        .catch((e: unknown) => {
          throw new MusterError('unavailable', `next hop ${where}${path} unreachable: ${failureOf(e)}`);
        });
      const read = await textOf(res, next.timeoutMs);
      if (!('text' in read)) throw new MusterError('unavailable', `next hop ${where}${path} broke off its answer: ${read.bodyError}`);
      if (res.statusCode === PROXY_AUTHENTICATION_REQUIRED) {
        // The next hop refused this node's own hop credential (or wanted one): a fault between the two nodes, not the
        // sender's, so its challenge is not passed back; refused before anything was done there (processed: false).
        const refused = new MusterError('unavailable', `${next.viaPartner ?? where} refused ${this.config.domain}'s hop credential (407): the hop credentials between these two nodes are misconfigured`);
        const { status, body } = toUnprocessedReply(refused);
        req.log.warn({ nextHop: where, partner: next.domain }, refused.message);
        await reply.code(status).headers({ via: this.answerFields(res.headers)['via']! }).send(body);
        return;
      }
      await reply.code(res.statusCode).headers(this.answerFields(res.headers)).send(read.text);
    } finally {
      const left = (this.inFlight.get(where) ?? 1) - 1;
      if (left > 0) this.inFlight.set(where, left);
      else this.inFlight.delete(where);
    }
  }

  /**
   * The fields of the next hop's answer to pass back (PASSED_BACK, less any the next hop's Connection names), and Via
   * with this node appended: RFC 9110 7.6.3 asks it of a proxy in responses as in requests.
   */
  private answerFields(received: IncomingHttpHeaders): Record<string, string> {
    const field = (name: string): string | undefined => {
      const v = received[name];
      const joined = Array.isArray(v) ? v.join(', ') : v;
      return joined === undefined || joined === '' ? undefined : joined;
    };
    const hopByHop = new Set((field('connection') ?? '').split(',').map((n) => n.trim().toLowerCase()));
    const out: Record<string, string> = {};
    for (const name of PASSED_BACK) {
      const v = field(name);
      if (v !== undefined && !hopByHop.has(name)) out[name] = v;
    }
    out['content-type'] ??= 'application/json';
    const via = hopByHop.has('via') ? undefined : field('via');
    const own = `${NEXT_HOP_PROTOCOL} ${this.config.domain}`;
    out['via'] = via ? `${via}, ${own}` : own;
    return out;
  }

  /**
   * Why a request with this Via must not be relayed towards `next`: it already passed this node (a loop of the
   * partners' `via` routes), or as many intermediaries as `maxIntermediateNodes` allows; none when it may go on.
   * A malformed Via is bad input (400): a loop could hide in it.
   */
  private loopIn(value: string | undefined, next: PartnerConfig): MusterError | undefined {
    const via = parseVia(value);
    if (!via) throw badInput('Via', 'not a list of `received-protocol received-by [comment]` (RFC 9110 7.6.3)');
    const own = this.config.domain.toLowerCase();
    const chain = [...via.map((v) => v.receivedBy), this.config.domain].join(' -> ');
    if (via.some((v) => v.receivedBy.toLowerCase() === own)) {
      return new MusterError('loop-detected', `relay loop towards ${next.domain}: ${chain} (Via); the partners' \`via\` routes to ${next.domain} lead back to ${this.config.domain}`);
    }
    if (via.length >= this.config.maxIntermediateNodes) {
      return new MusterError('loop-detected', `relay chain towards ${next.domain} too long: ${chain} (Via) would pass more than maxIntermediateNodes (${this.config.maxIntermediateNodes}) intermediate nodes`);
    }
    return undefined;
  }

  /** Waits for the relays under way, then closes the connections (with the face). */
  close(): Promise<void> {
    return this.nextHops.close();
  }
}

/** One header's value, absent when empty (Node keeps the first of repeated credential headers, joins repeated Via with ", "). */
function headerOf(req: FastifyRequest, name: 'authorization' | 'via' | typeof HOP_CREDENTIAL): string | undefined {
  const v = req.headers[name];
  return typeof v === 'string' && v.length > 0 ? v : undefined;
}

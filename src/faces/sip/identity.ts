// Who sent a request (RFC 3325 §9.1 P-Asserted-Identity within a trust domain; otherwise RFC 3261 §22 / RFC 7616
// digest, or an RFC 8898 Bearer credential): the asserted identity counts only from a trusted peer address; anyone
// else proves who they are with the same credentials as over HTTP (both come from the system secret).
import { MusterError } from '../../domain/errors.ts';
import { InvalidId, parseMcUri, type McUri } from '../../domain/ids.ts';
import type { IncomingRequest } from './message.ts';
import type { Flow } from './transport.ts';
import type { HeaderList } from './outgoing-message.ts';
import type { SipFaceContext } from './face-context.ts';
import { SipRefusal } from './sip-refusal.ts';
import { addressOfRecord, assertedUri, uriOf } from './name-addr.ts';

type SenderChecks = Pick<SipFaceContext, 'trustedPeers' | 'verifier' | 'digest' | 'agent' | 'senderRate'>;

/** The sender, identified, and admitted by its rate (issue 7: per sender, as per credential over HTTP). */
export async function senderOf(req: IncomingRequest, flow: Flow, ctx: SenderChecks): Promise<McUri> {
  const sender = await identify(req, flow, ctx);
  const wait = ctx.senderRate.take(`user:${sender}`);
  // RFC 3261 §21.5.4: 503 with Retry-After asks this client, not the others, to wait (SIP has no 429).
  if (wait > 0) throw new SipRefusal(503, `too many requests from ${sender}; retry after ${wait} s`, [['Retry-After', String(wait)]]);
  return sender;
}

async function identify(req: IncomingRequest, flow: Flow, ctx: SenderChecks): Promise<McUri> {
  const trusted = ctx.trustedPeers.includes(flow.remoteAddress) || ctx.trustedPeers.includes(flow.remoteAddress.replace(/^::ffff:/, ''));
  if (trusted && req.headers.has('p-asserted-identity')) {
    const uri = assertedUri(req.headers.all('p-asserted-identity'));
    return mcUri(uri ? addressOfRecord(uri) : undefined, 'P-Asserted-Identity');
  }
  // Outside the trust domain a P-Asserted-Identity means nothing (RFC 3325 §5); a credential decides.
  const authorizations = req.headers.all('authorization');
  const digest = authorizations.find((a) => /^\s*Digest\s/i.test(a));
  if (digest) {
    const verdict = ctx.digest.verify(digest, req.method, req.uri);
    if (!verdict.ok) throw new SipRefusal(401, verdict.why, challenges(ctx, verdict.stale));
    // The digest username is the sender's MC service ID, and the From header must name the same user.
    const sender = mcUri(verdict.username, 'Digest username');
    const from = uriOf(req.headers.get('from') ?? '');
    if (!from || parseOrUndefined(addressOfRecord(from)) !== sender) throw new MusterError('forbidden', `From is not the digest user ${sender}`);
    return sender;
  }
  if (authorizations.length === 0) throw new SipRefusal(401, 'no credential: answer a Digest challenge or present a Bearer credential', challenges(ctx, false));
  let cred;
  try {
    cred = await ctx.verifier.verify(authorizations[0]);
  } catch (e) {
    if (e instanceof MusterError && e.code === 'unauthenticated') throw new SipRefusal(401, e.message, challenges(ctx, false));
    throw e;
  }
  if (cred.role !== 'user') throw new MusterError('forbidden', `a ${cred.role} credential does not speak for an MC service user`);
  return cred.subject as McUri;
}

/** RFC 3261 §22.1: every scheme we accept, Digest (SHA-256 then MD5) before Bearer (RFC 8898 §3). */
function challenges(ctx: SenderChecks, stale: boolean): HeaderList {
  return [...ctx.digest.challenges(stale), ['WWW-Authenticate', `Bearer realm="${ctx.agent}"`]];
}

function mcUri(raw: string | undefined, field: string): McUri {
  try {
    return parseMcUri(raw);
  } catch (e) {
    if (e instanceof InvalidId) throw new MusterError('forbidden', `${field} ${e.why}`);
    throw e;
  }
}

function parseOrUndefined(raw: string): McUri | undefined {
  try {
    return parseMcUri(raw);
  } catch {
    return undefined;
  }
}

// Refusals the SIP face answers itself: the statuses RFC 3903 / RFC 6665 / RFC 3261 define that have no entry in
// the shared error catalogue (src/domain/errors.ts), and the mapping of that catalogue to SIP statuses.
import { ERRORS, MusterError } from '../../domain/errors.ts';
import { InvalidId } from '../../domain/ids.ts';
import type { HeaderList } from './outgoing-message.ts';
import { forbiddenWarning } from './warning.ts';

export class SipRefusal extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly headers: HeaderList = [],
  ) {
    super(message);
  }
}

/** Any error thrown while handling a request, as the SIP status and extra headers to answer with. */
export function refusalOf(e: unknown, realm: string): { status: number; reason: string | undefined; headers: HeaderList; internal: boolean } {
  if (e instanceof SipRefusal) return { status: e.status, reason: undefined, headers: e.headers, internal: false };
  if (e instanceof MusterError) {
    // RFC 8898 §3: a 401 names the Bearer scheme it wants; a 403 says why in an MCPTT Warning (STAGE3.md, TS 24.379 §4.4).
    const headers: HeaderList = e.code === 'unauthenticated' ? [['WWW-Authenticate', `Bearer realm="${realm}"`]] : e.code === 'forbidden' ? [forbiddenWarning(realm)] : [];
    return { status: ERRORS[e.code].sip, reason: undefined, headers, internal: e.code === 'internal' };
  }
  if (e instanceof InvalidId) return { status: 400, reason: undefined, headers: [], internal: false };
  return { status: 500, reason: undefined, headers: [], internal: true };
}

/** The reason phrase carries the cause (RFC 3261 §21 lets a UAS pick it); kept short and free of CR/LF. */
export function reasonPhrase(e: unknown, fallback: string): string {
  const msg = e instanceof Error ? e.message : '';
  const clean = msg.replace(/\p{Cc}/gu, ' ').slice(0, 120);
  return clean ? `${fallback} (${clean})` : fallback;
}

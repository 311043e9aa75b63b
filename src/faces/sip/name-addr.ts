// RFC 3261 §20.10 / §20.20 / §20.39 (Contact, From, To): the URI of a name-addr or addr-spec and its tag,
// and RFC 3325 §9.1 (P-Asserted-Identity).
import { headerParam } from './parser.ts';

/** The URI inside `"Name" <uri>;params`, or of a bare addr-spec `uri;params`. */
export function uriOf(value: string): string | undefined {
  const lt = value.indexOf('<');
  if (lt >= 0) {
    const gt = value.indexOf('>', lt);
    return gt > lt ? value.slice(lt + 1, gt).trim() : undefined;
  }
  const bare = value.trim().split(';')[0]?.trim();
  return bare && /^[A-Za-z][A-Za-z0-9+.-]*:/.test(bare) ? bare : undefined;
}

export function tagOf(value: string): string | undefined {
  const t = headerParam(value, 'tag');
  return typeof t === 'string' && t.length > 0 ? t : undefined;
}

/** A SIP URI without its URI parameters and headers: `sip:alice@police.example;user=phone` -> `sip:alice@police.example`. */
export function addressOfRecord(uri: string): string {
  return uri.replace(/[;?].*$/, '');
}

/** The first sip:/sips: URI of P-Asserted-Identity (a tel: URI is the second form RFC 3325 allows). */
export function assertedUri(values: readonly string[]): string | undefined {
  const uris = values.map(uriOf).filter((u): u is string => u !== undefined);
  return uris.find((u) => /^sips?:/i.test(u)) ?? uris[0];
}

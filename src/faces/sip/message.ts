// RFC 3261 §7 (SIP messages) and §20 (header fields): what the parser hands over. Incoming and outgoing
// messages are different types (STYLE.md, SIP.js habit): this file holds the incoming side and the header table.

/** Bounds that keep one message cheap (checked by the parser and the TCP framer). */
export const SIP_LIMITS = { messageBytes: 64 * 1024, headers: 100, startLineBytes: 2048 } as const;

/** RFC 3261 §7.3.3 compact forms, plus the ones RFC 6665 (o, u), RFC 3841 (a, j), RFC 3515 (r), RFC 3892 (b), RFC 4028 (x) add. */
export const COMPACT_FORMS: Readonly<Record<string, string>> = {
  i: 'call-id',
  m: 'contact',
  e: 'content-encoding',
  l: 'content-length',
  c: 'content-type',
  f: 'from',
  s: 'subject',
  k: 'supported',
  t: 'to',
  v: 'via',
  o: 'event',
  u: 'allow-events',
  a: 'accept-contact',
  j: 'reject-contact',
  r: 'refer-to',
  b: 'referred-by',
  x: 'session-expires',
};

/** Headers whose values may be comma-separated lists that mean several header fields (RFC 3261 §7.3.1). */
const LIST_HEADERS = new Set(['via', 'contact', 'route', 'record-route', 'allow', 'supported', 'require', 'unsupported', 'accept', 'accept-contact', 'p-asserted-identity', 'warning', 'allow-events', 'p-asserted-service', 'p-preferred-service']);

/** Header fields by lower-case full name, values in arrival order; comma lists of LIST_HEADERS split into one value each. */
export class SipHeaders {
  private readonly map = new Map<string, string[]>();

  static canonicalName(raw: string): string {
    const lower = raw.toLowerCase();
    // Compact forms are one letter; a longer name is never looked up (nor found among Object.prototype's names).
    return lower.length === 1 ? (COMPACT_FORMS[lower] ?? lower) : lower;
  }

  add(name: string, value: string): void {
    const key = SipHeaders.canonicalName(name);
    const values = LIST_HEADERS.has(key) ? splitList(value) : [value];
    const list = this.map.get(key);
    if (list) list.push(...values);
    else this.map.set(key, values);
  }

  /** The first value of a header, or undefined. */
  get(name: string): string | undefined {
    return this.map.get(SipHeaders.canonicalName(name))?.[0];
  }

  all(name: string): readonly string[] {
    return this.map.get(SipHeaders.canonicalName(name)) ?? [];
  }

  has(name: string): boolean {
    return this.map.has(SipHeaders.canonicalName(name));
  }

  entries(): [string, readonly string[]][] {
    return [...this.map];
  }
}

/** Splits a header value at commas that are outside quotes and angle brackets. */
export function splitList(value: string): string[] {
  const out: string[] = [];
  let depth = 0;
  let quoted = false;
  let start = 0;
  for (let i = 0; i < value.length; i++) {
    const ch = value[i];
    if (quoted) {
      if (ch === '\\') i++;
      else if (ch === '"') quoted = false;
    } else if (ch === '"') quoted = true;
    else if (ch === '<') depth++;
    else if (ch === '>') depth = Math.max(0, depth - 1);
    else if (ch === ',' && depth === 0) {
      out.push(value.slice(start, i).trim());
      start = i + 1;
    }
  }
  out.push(value.slice(start).trim());
  return out.filter((v) => v.length > 0);
}

export interface CSeq {
  seq: number;
  method: string;
}

export interface IncomingRequest {
  kind: 'request';
  method: string;
  uri: string;
  headers: SipHeaders;
  body: Buffer;
  callId: string;
  cseq: CSeq;
}

export interface IncomingResponse {
  kind: 'response';
  status: number;
  reason: string;
  headers: SipHeaders;
  body: Buffer;
  callId: string;
  cseq: CSeq;
}

export type IncomingMessage = IncomingRequest | IncomingResponse;

// RFC 3261 §7 (message format), §7.3 (header fields, folding, compact forms), §18.3 (framing by Content-Length),
// §8.2.2 / §16.3 (the checks a UAS makes before it looks further). A pure function: no I/O, no logging.
import { isUtf8 } from 'node:buffer';
import { SIP_LIMITS, SipHeaders, type CSeq, type IncomingMessage } from './message.ts';

export class SipParseError extends Error {
  constructor(
    message: string,
    /** The headers read before the fault, so a UAS can still answer 400 when Via, From, To, Call-ID and CSeq are there. */
    readonly headers?: SipHeaders,
  ) {
    super(message);
  }
}

const TOKEN = /^[A-Za-z0-9\-.!%*_+`'~]+$/;
const REQUEST_LINE = /^([A-Za-z0-9\-.!%*_+`'~]+) (\S+) SIP\/2\.0$/;
const STATUS_LINE = /^SIP\/2\.0 ([1-6][0-9]{2}) (.*)$/;
const CSEQ = /^([0-9]{1,10})\s+([A-Za-z0-9\-.!%*_+`'~]+)$/;
// eslint-disable-next-line no-control-regex -- finding control characters is the point
const CONTROL = /[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f]/;
/** Header fields RFC 3261 §7.3 (and RFC 6665, RFC 3903 for Event, SIP-If-Match) allow once per message. */
const SINGLE_VALUED = ['call-id', 'cseq', 'from', 'to', 'content-length', 'content-type', 'expires', 'max-forwards', 'event', 'sip-if-match'] as const;

/** Where the header block ends: the index of the empty line's first byte and the body's first byte, or undefined. */
export function findHeaderEnd(buf: Buffer, from = 0): { headEnd: number; bodyStart: number } | undefined {
  const crlf = buf.indexOf('\r\n\r\n', from, 'latin1');
  const lf = buf.indexOf('\n\n', from, 'latin1');
  if (crlf >= 0 && (lf < 0 || crlf < lf)) return { headEnd: crlf, bodyStart: crlf + 4 };
  if (lf >= 0) return { headEnd: lf, bodyStart: lf + 2 };
  return undefined;
}

/**
 * Parses one whole message (one UDP datagram, or one message the TCP framer cut out). With `stream` the
 * Content-Length header is mandatory (§18.3); on a datagram a missing one means "the rest of the datagram".
 */
export function parseMessage(buf: Buffer, opts: { stream?: boolean } = {}): IncomingMessage {
  if (buf.length > SIP_LIMITS.messageBytes) throw new SipParseError(`message larger than ${SIP_LIMITS.messageBytes} bytes`);
  // §7.5: a server ignores CRLFs before the start-line (keep-alives).
  let start = 0;
  while (start < buf.length && (buf[start] === 0x0d || buf[start] === 0x0a)) start++;
  const end = findHeaderEnd(buf, start);
  if (!end) throw new SipParseError('no empty line after the header fields');
  const head = buf.toString('utf8', start, end.headEnd);
  const lines = head.split(/\r?\n/);
  const startLine = lines.shift() ?? '';
  if (startLine.length > SIP_LIMITS.startLineBytes) throw new SipParseError('start-line too long');

  const headers = new SipHeaders();
  let count = 0;
  let current: { name: string; value: string } | undefined;
  const flush = (): void => {
    if (!current) return;
    headers.add(current.name, current.value.trim());
    current = undefined;
  };
  for (const line of lines) {
    if (line.startsWith(' ') || line.startsWith('\t')) {
      // §7.3.1: a line starting with whitespace continues the previous header field (folding).
      if (!current) throw new SipParseError('continuation line before any header field', headers);
      current.value += ' ' + line.trim();
      continue;
    }
    flush();
    const colon = line.indexOf(':');
    if (colon <= 0) throw new SipParseError(`malformed header line "${line.slice(0, 40)}"`, headers);
    const name = line.slice(0, colon).trim();
    if (!TOKEN.test(name)) throw new SipParseError(`malformed header name "${name.slice(0, 40)}"`, headers);
    if (++count > SIP_LIMITS.headers) throw new SipParseError(`more than ${SIP_LIMITS.headers} header fields`, headers);
    current = { name, value: line.slice(colon + 1) };
  }
  flush();

  // §7.3.1: header values are UTF-8; other bytes were decoded to U+FFFD, so IDs not sent would be read.
  if (!isUtf8(buf.subarray(start, end.headEnd))) throw new SipParseError('header fields are not valid UTF-8', headers);
  // §25.1: no control character but HTAB in a header field (a NUL in a Call-ID or tag reached PostgreSQL as a 500).
  const control = CONTROL.exec(head);
  if (control) throw new SipParseError(`control character 0x${control[0].charCodeAt(0).toString(16).padStart(2, '0')} in the header fields`, headers);
  // §7.3: these appear once; two that differ are ambiguous (two Expires removed a publication; two Content-Lengths desync TCP).
  for (const name of SINGLE_VALUED) {
    const values = headers.all(name);
    if (values.some((v) => v !== values[0])) throw new SipParseError(`${name} header repeated with different values`, headers);
  }

  // §7.3.1: Content-Length frames the body; on a datagram a shorter body is an error, extra bytes are dropped.
  const rawLength = headers.get('content-length');
  const available = buf.length - end.bodyStart;
  let length: number;
  if (rawLength === undefined) {
    if (opts.stream) throw new SipParseError('Content-Length is required on a stream transport', headers);
    length = available;
  } else {
    if (!/^[0-9]{1,6}$/.test(rawLength)) throw new SipParseError('malformed Content-Length', headers);
    length = Number(rawLength);
    if (length > available) throw new SipParseError(`Content-Length ${length} exceeds the ${available} bytes received`, headers);
  }
  const body = buf.subarray(end.bodyStart, end.bodyStart + length);

  const callId = headers.get('call-id');
  const cseqRaw = headers.get('cseq');
  const req = REQUEST_LINE.exec(startLine);
  const res = req ? null : STATUS_LINE.exec(startLine);
  if (!req && !res) throw new SipParseError(`malformed start-line "${startLine.slice(0, 60)}"`, headers);
  // §8.1.1: every message carries these; a request without them cannot be answered properly.
  for (const h of ['via', 'from', 'to', 'call-id', 'cseq']) if (!headers.has(h)) throw new SipParseError(`missing ${h} header`, headers);
  if (!callId || callId.length > 256 || /\s/.test(callId)) throw new SipParseError('malformed Call-ID', headers);
  const cseq = parseCSeq(cseqRaw ?? '');
  if (!cseq) throw new SipParseError('malformed CSeq', headers);
  if (req) {
    const method = req[1]!;
    // §8.2.2 and §17.2.3: the CSeq method names the request's method.
    if (cseq.method !== method) throw new SipParseError(`CSeq method ${cseq.method} does not match ${method}`, headers);
    const mf = headers.get('max-forwards');
    if (mf !== undefined && !/^[0-9]{1,3}$/.test(mf)) throw new SipParseError('malformed Max-Forwards', headers);
    return { kind: 'request', method, uri: req[2]!, headers, body, callId, cseq };
  }
  return { kind: 'response', status: Number(res![1]), reason: res![2]!, headers, body, callId, cseq };
}

/** §20.16: CSeq is a 32-bit sequence number below 2**31 and a method. */
export function parseCSeq(raw: string): CSeq | undefined {
  const m = CSEQ.exec(raw.trim());
  if (!m) return undefined;
  const seq = Number(m[1]);
  if (seq >= 2 ** 31) return undefined;
  return { seq, method: m[2]! };
}

/** The value of a header parameter (`;name=value`), unquoted; `true` for a bare flag; undefined when absent. */
export function headerParam(value: string, name: string): string | true | undefined {
  return headerParams(value).get(name.toLowerCase());
}

/** Every parameter of a header value by lower-case name (the first of a repeated one), as headerParam reads them. */
export function headerParams(value: string): Map<string, string | true> {
  const out = new Map<string, string | true>();
  // Parameters follow the last '>' of a name-addr, or the value itself when there is none.
  const gt = value.lastIndexOf('>');
  const params = (gt >= 0 ? value.slice(gt + 1) : value).split(';');
  for (let i = 1; i < params.length; i++) {
    const p = params[i]!;
    const eq = p.indexOf('=');
    const key = (eq < 0 ? p : p.slice(0, eq)).trim().toLowerCase();
    if (out.has(key)) continue;
    out.set(key, eq < 0 ? true : p.slice(eq + 1).trim().replace(/^"(.*)"$/, '$1'));
  }
  return out;
}

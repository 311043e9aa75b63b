// RFC 3261 §7 (message format) and §8.2.6 (a UAS's response): what we build and put on the wire.
// Building is pure; the transports send the bytes (STYLE.md: build and send kept apart).
import { randomBytes } from 'node:crypto';
import type { IncomingRequest } from './message.ts';

export const REASON_PHRASES: Readonly<Record<number, string>> = {
  100: 'Trying',
  200: 'OK',
  202: 'Accepted',
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  405: 'Method Not Allowed',
  406: 'Not Acceptable',
  409: 'Conflict',
  412: 'Conditional Request Failed',
  413: 'Request Entity Too Large',
  415: 'Unsupported Media Type',
  420: 'Bad Extension',
  423: 'Interval Too Brief',
  481: 'Call/Transaction Does Not Exist',
  489: 'Bad Event',
  500: 'Server Internal Error',
  503: 'Service Unavailable',
};

/** Header fields in the order they go on the wire; a name may repeat. */
export type HeaderList = [name: string, value: string][];

export interface OutgoingResponse {
  kind: 'response';
  status: number;
  reason: string;
  headers: HeaderList;
  body?: { contentType: string; bytes: Buffer };
}

export interface OutgoingRequest {
  kind: 'request';
  method: string;
  uri: string;
  headers: HeaderList;
  body?: { contentType: string; bytes: Buffer };
}

export const newTag = (): string => randomBytes(6).toString('hex');
/** §8.1.1.7: branches start with the magic cookie, unique per transaction. */
export const newBranch = (): string => `z9hG4bK${randomBytes(9).toString('base64url')}`;

/**
 * §8.2.6.2: copies Via (all, in order), From, Call-ID, CSeq and To, adding a To tag when the request had none
 * (`toTag`, kept stable by the caller so a retransmitted request gets the same answer). `topVia`: the top Via as
 * the server recorded it (§18.2.1 `received`, RFC 3581 `rport`: stampVia), in place of the request's.
 */
export function responseTo(req: IncomingRequest, status: number, opts: { toTag?: string; headers?: HeaderList; body?: OutgoingResponse['body']; reason?: string; topVia?: string } = {}): OutgoingResponse {
  const to = req.headers.get('to') ?? '';
  const hasTag = /;\s*tag=/i.test(to);
  const headers: HeaderList = [
    ...req.headers.all('via').map((v, i): [string, string] => ['Via', i === 0 && opts.topVia !== undefined ? opts.topVia : v]),
    ['From', req.headers.get('from') ?? ''],
    ['To', hasTag || !opts.toTag || status === 100 ? to : `${to};tag=${opts.toTag}`],
    ['Call-ID', req.callId],
    ['CSeq', `${req.cseq.seq} ${req.cseq.method}`],
    ...(opts.headers ?? []),
  ];
  return { kind: 'response', status, reason: opts.reason ?? REASON_PHRASES[status] ?? 'Unknown', headers, ...(opts.body ? { body: opts.body } : {}) };
}

/** Serialises a message; Content-Type and Content-Length are written from the body (Content-Length always, §20.14). */
export function serialize(msg: OutgoingResponse | OutgoingRequest): Buffer {
  const start = msg.kind === 'response' ? `SIP/2.0 ${msg.status} ${msg.reason}` : `${msg.method} ${msg.uri} SIP/2.0`;
  const lines = [start];
  for (const [name, value] of msg.headers) {
    if (/[\r\n]/.test(name) || /[\r\n]/.test(value)) throw new Error(`header ${name} would break the message framing`);
    lines.push(`${name}: ${value}`);
  }
  const body = msg.body?.bytes ?? Buffer.alloc(0);
  if (msg.body) lines.push(`Content-Type: ${msg.body.contentType}`);
  lines.push(`Content-Length: ${body.length}`);
  return Buffer.concat([Buffer.from(lines.join('\r\n') + '\r\n\r\n', 'utf8'), body]);
}

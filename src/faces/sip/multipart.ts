// RFC 2046 §5.1 (multipart/mixed) and RFC 3261 §20.15 (Content-Type): split a body into typed parts, and write one.
import { MusterError } from '../../domain/errors.ts';
import { randomBytes } from 'node:crypto';
import { isUtf8 } from 'node:buffer';
import { headerParam } from './parser.ts';

const MAX_PARTS = 8;

/** A body as text; bytes that are not UTF-8 are refused (decoded, they named groups and users as U+FFFD). */
export function utf8Text(body: Buffer): string {
  if (!isUtf8(body)) throw new MusterError('bad-request', 'body is not valid UTF-8');
  return body.toString('utf8');
}

export function mediaType(contentType: string): string {
  return contentType.split(';')[0]!.trim().toLowerCase();
}

export function parseMultipart(body: Buffer, contentType: string): { type: string; body: string }[] {
  const boundary = headerParam(contentType, 'boundary');
  if (typeof boundary !== 'string' || boundary.length === 0 || boundary.length > 70) throw new MusterError('bad-request', 'multipart/mixed without a valid boundary');
  const text = utf8Text(body);
  const delimiter = `--${boundary}`;
  const chunks = text.split(delimiter);
  if (chunks.length < 3) throw new MusterError('bad-request', 'multipart/mixed body has no parts');
  const parts: { type: string; body: string }[] = [];
  // chunks[0] is the preamble; the last chunk starts with "--" (close delimiter) and is the epilogue.
  for (const chunk of chunks.slice(1)) {
    if (chunk.startsWith('--')) break;
    if (parts.length >= MAX_PARTS) throw new MusterError('bad-request', `more than ${MAX_PARTS} body parts`);
    const part = chunk.replace(/^[ \t]*\r?\n/, '');
    const sep = /\r?\n\r?\n/.exec(part);
    const head = sep ? part.slice(0, sep.index) : '';
    const content = sep ? part.slice(sep.index + sep[0].length) : part.replace(/^\r?\n/, '');
    const type = /(?:^|\n)content-type[ \t]*:[ \t]*([^\r\n]+)/i.exec(head)?.[1];
    parts.push({ type: type ? mediaType(type) : 'text/plain', body: content.replace(/\r?\n$/, '') });
  }
  return parts;
}

/** RFC 2046 §5.1.1: a multipart/mixed body of typed parts, with a boundary that none of the parts contains. */
export function renderMultipart(parts: readonly { type: string; body: string }[]): { contentType: string; bytes: Buffer } {
  let boundary = `muster-${randomBytes(8).toString('hex')}`;
  while (parts.some((p) => p.body.includes(boundary))) boundary = `muster-${randomBytes(8).toString('hex')}`;
  const text = parts.map((p) => `--${boundary}\r\nContent-Type: ${p.type}\r\n\r\n${p.body}\r\n`).join('') + `--${boundary}--\r\n`;
  return { contentType: `multipart/mixed;boundary=${boundary}`, bytes: Buffer.from(text, 'utf8') };
}

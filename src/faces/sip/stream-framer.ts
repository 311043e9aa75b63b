// RFC 3261 §18.3: on a stream transport (TCP) messages are cut out by Content-Length. A byte-level state
// machine without I/O (nats.js parser habit): bytes in, whole messages or a framing error out.
import { SIP_LIMITS } from './message.ts';
import { findHeaderEnd } from './parser.ts';

export type FramerOutput = { kind: 'message'; bytes: Buffer } | { kind: 'error'; why: string };

export class StreamFramer {
  /** The bytes not yet framed are data[start, end); data grows by doubling, so a trickling sender costs linear time. */
  private data: Buffer = Buffer.alloc(0);
  private start = 0;
  private end = 0;
  /** How far the current message's head has been searched for its end without finding it. */
  private scanned = 0;
  /** The current message's whole length, once its head is read: a trickled body is not parsed again per byte. */
  private total: number | undefined;
  private failed = false;

  /** Feeds bytes; returns the messages now complete, or an error after which the stream cannot be resynchronised. */
  push(chunk: Buffer): FramerOutput[] {
    if (this.failed) return [];
    this.append(chunk);
    const out: FramerOutput[] = [];
    for (;;) {
      // §7.5: CRLFs between messages are keep-alives (RFC 5626 §4.4.1 double CRLF ping).
      while (this.start < this.end && (this.data[this.start] === 0x0d || this.data[this.start] === 0x0a)) {
        this.start++;
        this.scanned = 0;
      }
      const buf = this.data.subarray(this.start, this.end);
      if (buf.length === 0) break;
      if (this.total === undefined) {
        const length = this.lengthOf(buf);
        if (typeof length === 'string') return this.fail(out, length);
        if (length === undefined) break;
        this.total = length;
      }
      if (buf.length < this.total) break;
      out.push({ kind: 'message', bytes: Buffer.from(buf.subarray(0, this.total)) });
      this.start += this.total;
      this.total = undefined;
      this.scanned = 0;
    }
    if (this.start === this.end) {
      this.start = this.end = 0;
      if (this.data.length > 2 * SIP_LIMITS.messageBytes) this.data = Buffer.alloc(0); // a burst's room is not kept
    }
    return out;
  }

  /** The whole length of the message `buf` starts with; undefined while its head is incomplete; a string: why it is refused. */
  private lengthOf(buf: Buffer): number | undefined | string {
    // Only the bytes that came since the last search, and the three before them (a terminator split across chunks).
    const end = findHeaderEnd(buf, Math.max(0, this.scanned - 3));
    if (!end) {
      if (buf.length > SIP_LIMITS.messageBytes) return `no end of headers within ${SIP_LIMITS.messageBytes} bytes`;
      this.scanned = buf.length;
      return undefined;
    }
    const head = buf.toString('latin1', 0, end.headEnd);
    const lengths = [...head.matchAll(/(?:^|\r?\n)(?:content-length|l)[ \t]*:[ \t]*([0-9]+)[ \t]*(?=\r?\n|$)/gi)].map((m) => Number(m[1]));
    if (lengths.length === 0) return 'Content-Length is required on a stream transport';
    // Two that differ leave the next message's start to a guess (the rest of the body read as a message): refused.
    if (lengths.some((l) => l !== lengths[0])) return 'Content-Length repeated with different values';
    const total = end.bodyStart + lengths[0]!;
    if (total > SIP_LIMITS.messageBytes) return `message larger than ${SIP_LIMITS.messageBytes} bytes`;
    return total;
  }

  private append(chunk: Buffer): void {
    if (this.end + chunk.length > this.data.length) {
      const live = this.end - this.start;
      const next = Buffer.allocUnsafe(Math.max(4096, 2 * (live + chunk.length)));
      this.data.copy(next, 0, this.start, this.end);
      this.data = next;
      this.start = 0;
      this.end = live;
    }
    chunk.copy(this.data, this.end);
    this.end += chunk.length;
  }

  private fail(out: FramerOutput[], why: string): FramerOutput[] {
    this.failed = true;
    this.data = Buffer.alloc(0);
    this.start = this.end = 0;
    this.total = undefined;
    out.push({ kind: 'error', why });
    return out;
  }
}

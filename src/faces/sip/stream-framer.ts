// RFC 3261 §18.3: on a stream transport (TCP) messages are cut out by Content-Length. A byte-level state
// machine without I/O (nats.js parser habit): bytes in, whole messages or a framing error out.
import { SIP_LIMITS } from './message.ts';
import { findHeaderEnd } from './parser.ts';

export type FramerOutput = { kind: 'message'; bytes: Buffer } | { kind: 'error'; why: string };

export class StreamFramer {
  private buf: Buffer = Buffer.alloc(0);
  private failed = false;

  /** Feeds bytes; returns the messages now complete, or an error after which the stream cannot be resynchronised. */
  push(chunk: Buffer): FramerOutput[] {
    if (this.failed) return [];
    this.buf = this.buf.length === 0 ? chunk : Buffer.concat([this.buf, chunk]);
    const out: FramerOutput[] = [];
    for (;;) {
      // §7.5: CRLFs between messages are keep-alives (RFC 5626 §4.4.1 double CRLF ping).
      let skip = 0;
      while (skip < this.buf.length && (this.buf[skip] === 0x0d || this.buf[skip] === 0x0a)) skip++;
      if (skip > 0) this.buf = this.buf.subarray(skip);
      if (this.buf.length === 0) break;
      const end = findHeaderEnd(this.buf);
      if (!end) {
        if (this.buf.length > SIP_LIMITS.messageBytes) return this.fail(out, `no end of headers within ${SIP_LIMITS.messageBytes} bytes`);
        break;
      }
      const head = this.buf.toString('latin1', 0, end.headEnd);
      const m = /(?:^|\r?\n)(?:content-length|l)[ \t]*:[ \t]*([0-9]+)[ \t]*(?:\r?\n|$)/i.exec(head);
      if (!m) return this.fail(out, 'Content-Length is required on a stream transport');
      const total = end.bodyStart + Number(m[1]);
      if (total > SIP_LIMITS.messageBytes) return this.fail(out, `message larger than ${SIP_LIMITS.messageBytes} bytes`);
      if (this.buf.length < total) break;
      out.push({ kind: 'message', bytes: Buffer.from(this.buf.subarray(0, total)) });
      this.buf = this.buf.subarray(total);
    }
    return out;
  }

  private fail(out: FramerOutput[], why: string): FramerOutput[] {
    this.failed = true;
    this.buf = Buffer.alloc(0);
    out.push({ kind: 'error', why });
    return out;
  }
}

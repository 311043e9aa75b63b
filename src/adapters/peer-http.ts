// Server-to-server HTTP (partner systems and the next hops towards them, a GMS elsewhere): undici's request API over
// one connection pool per peer. fetch's WHATWG streams, AbortSignal and Response were 26 % of a primary's main thread
// in bench 2's profile (issue 6). Connecting, waiting for the answer's head and reading its whole body (textOf,
// jsonOf: within the deadline and MAX_ANSWER_BYTES) are each bounded by the peer's timeout.
import { Pool, type Dispatcher } from 'undici';
import { MusterError } from '../domain/errors.ts';

export interface PeerRequest {
  headers?: Record<string, string>;
  body?: string;
  /** A tighter bound than the peer's for this request (a health probe). */
  timeoutMs?: number;
  /** A stream that lives as long as the peer keeps it: only the wait for its head is bounded; `signal` ends it. */
  stream?: { signal: AbortSignal };
}

export class PeerHttp {
  private readonly pool: Pool;
  /** The path the peer's URL may carry (a next hop under a prefix), put before every request's path. */
  private readonly prefix: string;

  constructor(base: string, timeoutMs: number) {
    const url = new URL(base);
    this.prefix = url.pathname.replace(/\/$/, '');
    this.pool = new Pool(url.origin, { connect: { timeout: timeoutMs }, headersTimeout: timeoutMs, bodyTimeout: timeoutMs });
  }

  /** Throws on a transport failure (no answer at all); `failureOf` names it. */
  request(method: 'GET' | 'POST', path: string, opts: PeerRequest = {}): Promise<Dispatcher.ResponseData> {
    return this.pool.request({
      method,
      path: this.prefix + path,
      ...(opts.headers ? { headers: opts.headers } : {}),
      ...(opts.body !== undefined ? { body: opts.body } : {}),
      ...(opts.timeoutMs !== undefined ? { headersTimeout: opts.timeoutMs, bodyTimeout: opts.timeoutMs } : {}),
      ...(opts.stream ? { bodyTimeout: 0, signal: opts.stream.signal } : {}),
    });
  }

  /** Waits for the requests under way, then closes the connections. */
  close(): Promise<void> {
    return this.pool.close();
  }

  /** Ends every request and connection at once (a stop that must not wait for a stream). */
  destroy(): Promise<void> {
    return this.pool.destroy();
  }
}

/**
 * One PeerHttp per partner domain (towards its next hop), made on first use: for the partner adapter and for an
 * intermediate node's relay. After close() none is made again, so no connection outlives the stop.
 */
export class PartnerPeers {
  private readonly peers = new Map<string, PeerHttp>();
  private closed = false;

  of(partner: { domain: string; nextHop: string; timeoutMs: number }): PeerHttp {
    if (this.closed) throw new MusterError('unavailable', `stopping: no more requests to partner ${partner.domain}`);
    let peer = this.peers.get(partner.domain);
    if (!peer) {
      peer = new PeerHttp(partner.nextHop, partner.timeoutMs);
      this.peers.set(partner.domain, peer);
    }
    return peer;
  }

  /** Waits for the requests under way, then closes every connection. */
  async close(): Promise<void> {
    this.closed = true;
    await Promise.all([...this.peers.values()].map((peer) => peer.close()));
    this.peers.clear();
  }
}

/**
 * A peer's answer body larger than this is refused: the largest a peer sends, a re-sync page's answer, is tens of KiB.
 * Counted here, not by undici's maxResponseSize: that is a pool's, and a pool also carries streams that live for days.
 */
export const MAX_ANSWER_BYTES = 4 * 1024 * 1024;

/**
 * An answer's body as text, read whole within `deadlineMs` and MAX_ANSWER_BYTES; else why not. undici bounds each
 * wait for a piece of the body, not the whole: a peer sending a byte now and then kept the request open without end.
 */
export async function textOf(res: Dispatcher.ResponseData, deadlineMs: number): Promise<{ text: string } | { bodyError: string }> {
  const timer = setTimeout(() => res.body.destroy(Object.assign(new Error(`answer not complete in ${deadlineMs} ms`), { code: 'ANSWER_DEADLINE' })), deadlineMs);
  try {
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of res.body as AsyncIterable<Buffer>) {
      size += chunk.length;
      if (size > MAX_ANSWER_BYTES) {
        res.body.destroy();
        return { bodyError: `answer over ${MAX_ANSWER_BYTES} bytes` };
      }
      chunks.push(chunk);
    }
    return { text: Buffer.concat(chunks).toString('utf8') };
  } catch (e) {
    return { bodyError: failureOf(e) };
  } finally {
    clearTimeout(timer);
  }
}

/** The JSON body of an answer (as textOf reads it), or why it could not be read (late, too big, broken off, not JSON). */
export async function jsonOf(res: Dispatcher.ResponseData, deadlineMs: number): Promise<{ body: unknown } | { bodyError: string }> {
  const read = await textOf(res, deadlineMs);
  if (!('text' in read)) return read;
  try {
    return { body: JSON.parse(read.text) as unknown };
  } catch (e) {
    return { bodyError: failureOf(e) };
  }
}

/** A transport failure's code (ECONNREFUSED, UND_ERR_HEADERS_TIMEOUT, ...), else its message. */
export function failureOf(e: unknown): string {
  return (e as { code?: string }).code ?? (e as { cause?: { code?: string } }).cause?.code ?? (e as Error).message;
}

// The client's event stream (CONTRACT.md `GET /mc/v1/events`): Server-Sent Events parsed with eventsource-parser,
// replayed from Last-Event-ID after a reconnect (DESIGN.md "Events a client must not miss").
import { createParser, type EventSourceMessage } from 'eventsource-parser';
import { baseUrlOf, causeOf, errorFromAnswer, MusterClientError, noAnswer, type TransportOptions } from './transport.ts';

/** One event of the stream: `affiliation-change` or `affiliation-status` (CONTRACT.md), data JSON-parsed. */
export interface McEvent {
  /** The SSE event ID (what Last-Event-ID resumes from); '' when the server gave none yet. */
  id: string;
  /** The SSE event name; 'message' when the server named none. */
  type: string;
  /** The parsed JSON data, or the raw text when it is not JSON. */
  data: unknown;
}

export interface EventStreamOptions {
  /** Resume after this event: the server replays what came later. */
  lastEventId?: string;
  /** Ends the stream (the iterator returns, it does not throw). */
  signal?: AbortSignal;
  /** Called once the server accepted the stream (2xx headers). */
  onOpen?: () => void;
  /** Called with the server's `retry:` hint, in milliseconds. */
  onRetry?: (ms: number) => void;
}

/**
 * One connection to the event stream. Ends when the signal aborts or the server closes the stream;
 * throws MusterClientError on a non-2xx answer, on no answer within the timeout, or on a dropped connection.
 */
export async function* eventStream(transport: TransportOptions, opts: EventStreamOptions = {}): AsyncGenerator<McEvent, void, undefined> {
  const base = baseUrlOf(transport.server);
  const { signal } = opts;
  if (signal?.aborted) return;
  const controller = new AbortController();
  const onAbort = (): void => controller.abort(signal?.reason);
  signal?.addEventListener('abort', onAbort, { once: true });
  // The timeout covers the wait for the answer's headers only: the stream itself lives as long as it is wanted.
  const connectTimeout = new AbortController();
  const timer = setTimeout(() => connectTimeout.abort(), transport.timeoutMs);
  const connectAbort = (): void => controller.abort();
  connectTimeout.signal.addEventListener('abort', connectAbort, { once: true });
  try {
    const headers: Record<string, string> = { accept: 'text/event-stream', authorization: `Bearer ${transport.token}` };
    if (opts.lastEventId) headers['last-event-id'] = opts.lastEventId;
    let response: Response;
    try {
      response = await fetch(`${base}/mc/v1/events`, { headers, signal: controller.signal });
    } catch (e) {
      if (signal?.aborted) return;
      throw noAnswer(e, base, { timeout: connectTimeout.signal, timeoutMs: transport.timeoutMs });
    } finally {
      clearTimeout(timer);
      connectTimeout.signal.removeEventListener('abort', connectAbort);
    }
    if (!response.ok) throw errorFromAnswer(response, await response.text().catch(() => ''));
    opts.onOpen?.();
    if (!response.body) return;

    let lastId = opts.lastEventId ?? '';
    const parsed: McEvent[] = [];
    const parser = createParser({
      onEvent(message: EventSourceMessage) {
        // SSE: the last event ID buffer persists from event to event until the server sets a new one.
        if (message.id !== undefined) lastId = message.id;
        parsed.push({ id: lastId, type: message.event ?? 'message', data: parseData(message.data) });
      },
      onRetry: (ms: number) => opts.onRetry?.(ms),
    });
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    for (;;) {
      let chunk: ReadableStreamReadResult<Uint8Array>;
      try {
        chunk = await reader.read();
      } catch (e) {
        if (signal?.aborted) return;
        throw new MusterClientError(0, 'unreachable', `the event stream from ${base} was cut (${causeOf(e)})`);
      }
      if (chunk.done) break;
      parser.feed(decoder.decode(chunk.value, { stream: true }));
      while (parsed.length > 0) yield parsed.shift()!;
      if (signal?.aborted) return;
    }
  } finally {
    signal?.removeEventListener('abort', onAbort);
    controller.abort();
  }
}

function parseData(data: string): unknown {
  try {
    return JSON.parse(data) as unknown;
  } catch {
    return data;
  }
}

export interface ReconnectInfo {
  /** 1 for the first retry after a loss, growing while retries fail. */
  attempt: number;
  delayMs: number;
  lastEventId: string | undefined;
  /** Why the stream ended: an error, or undefined when the server closed it. */
  error: MusterClientError | undefined;
}

export interface ReconnectingEventStreamOptions extends EventStreamOptions {
  /** First wait before reconnecting (or the server's `retry:` hint), doubled after each failed try, up to maxDelayMs. */
  initialDelayMs?: number;
  maxDelayMs?: number;
  onReconnect?: (info: ReconnectInfo) => void;
}

/** Errors worth a retry: no answer, an overloaded or broken server. A refusal (401, 403, 404, ...) is final. */
export function isRetryable(e: MusterClientError): boolean {
  return e.status === 0 || e.status >= 500 || e.status === 408 || e.status === 429;
}

/**
 * The event stream kept open: after a dropped connection or a close by the server, reconnects with Last-Event-ID
 * and bounded exponential backoff, so no event is missed. Ends only when the signal aborts. The first connection
 * must succeed: a server that never answered is reported at once rather than retried for ever.
 */
export async function* reconnectingEventStream(transport: TransportOptions, opts: ReconnectingEventStreamOptions = {}): AsyncGenerator<McEvent, void, undefined> {
  const initial = opts.initialDelayMs ?? 500;
  const max = opts.maxDelayMs ?? 15_000;
  const { signal } = opts;
  let lastEventId = opts.lastEventId;
  let everOpened = false;
  let retryHint: number | undefined;
  let delay = initial;
  let attempt = 0;
  while (!signal?.aborted) {
    let opened = false;
    let error: MusterClientError | undefined;
    try {
      const stream = eventStream(transport, {
        ...(lastEventId !== undefined ? { lastEventId } : {}),
        ...(signal ? { signal } : {}),
        onOpen: () => {
          opened = everOpened = true;
          opts.onOpen?.();
        },
        onRetry: (ms) => {
          retryHint = ms;
          opts.onRetry?.(ms);
        },
      });
      for await (const event of stream) {
        if (event.id) lastEventId = event.id;
        yield event;
      }
    } catch (e) {
      if (!(e instanceof MusterClientError) || !isRetryable(e) || !everOpened) throw e;
      error = e;
    }
    if (signal?.aborted) return;
    if (opened) {
      attempt = 0;
      delay = retryHint ?? initial;
    }
    attempt += 1;
    opts.onReconnect?.({ attempt, delayMs: delay, lastEventId, error });
    if (!(await sleep(delay, signal))) return; // aborted while waiting
    delay = Math.min(Math.max(delay, 1) * 2, max);
  }
}

/** Waits `ms`; false when `signal` aborted first. Plain setTimeout, so the SDK runs in a browser as well as in Node. */
function sleep(ms: number, signal: AbortSignal | undefined): Promise<boolean> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve(false);
    const onAbort = (): void => {
      clearTimeout(timer);
      resolve(false);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve(true);
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

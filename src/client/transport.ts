// The SDK's one HTTP exchange: JSON in, JSON out, every failure mapped to MusterClientError (CONTRACT.md "Errors").

/** An answer other than 2xx, or no answer at all (status 0: 'unreachable' or 'timeout'). */
export class MusterClientError extends Error {
  override readonly name = 'MusterClientError';
  constructor(
    /** HTTP status; 0 when no answer came. */
    readonly status: number,
    /** The server's error code (CONTRACT.md "Errors"), or 'unreachable' / 'timeout' / 'bad-response' from the client. */
    readonly code: string,
    message: string,
    /** The request field the server named as wrong (a 400's `field`), when it named one. */
    readonly field?: string,
  ) {
    super(message);
  }
}

export interface TransportOptions {
  server: string;
  token: string;
  timeoutMs: number;
}

export interface RequestOptions {
  /** Overrides the client's timeout for this request. */
  timeoutMs?: number;
  /** Cancels the request; an abort by this signal is rethrown as the signal's reason. */
  signal?: AbortSignal;
}

export type HttpMethod = 'GET' | 'POST' | 'PUT' | 'DELETE';

/** The server's base URL without a trailing slash; refuses what is not an http(s) URL. */
export function baseUrlOf(server: string): string {
  let url: URL;
  try {
    url = new URL(server);
  } catch {
    throw new MusterClientError(0, 'bad-request', `server ${JSON.stringify(server)} is not a URL (e.g. http://127.0.0.1:8080)`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new MusterClientError(0, 'bad-request', `server ${server} must be an http:// or https:// URL`);
  }
  return server.replace(/\/+$/, '');
}

/**
 * Sends one request and returns the parsed JSON body (undefined for an empty 2xx body). `answers`: statuses other
 * than 2xx whose body is an answer, not an error (GET /healthz says what is down with a 503).
 */
export async function requestJson(
  transport: TransportOptions,
  method: HttpMethod,
  path: string,
  body?: unknown,
  opts: RequestOptions = {},
  answers: readonly number[] = [],
): Promise<unknown> {
  const base = baseUrlOf(transport.server);
  const timeoutMs = opts.timeoutMs ?? transport.timeoutMs;
  const timeout = AbortSignal.timeout(timeoutMs);
  const signal = opts.signal ? AbortSignal.any([timeout, opts.signal]) : timeout;
  const headers: Record<string, string> = { accept: 'application/json', authorization: `Bearer ${transport.token}` };
  if (body !== undefined) headers['content-type'] = 'application/json';
  let response: Response;
  let text: string;
  try {
    response = await fetch(base + path, {
      method,
      headers,
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
      signal,
    });
    text = await response.text();
  } catch (e) {
    throw noAnswer(e, base, { timeout, timeoutMs, ...(opts.signal ? { caller: opts.signal } : {}) });
  }
  if (!response.ok && !answers.includes(response.status)) throw errorFromAnswer(response, text);
  if (text.trim() === '') return undefined;
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw new MusterClientError(response.status, 'bad-response', `${method} ${path}: the server answered ${response.status} with a body that is not JSON`);
  }
}

/** Maps a failed fetch to MusterClientError; an abort asked by the caller is passed on as is. */
export function noAnswer(e: unknown, base: string, why: { timeout?: AbortSignal; timeoutMs?: number; caller?: AbortSignal }): unknown {
  if (why.caller?.aborted) return why.caller.reason;
  if (why.timeout?.aborted) return new MusterClientError(0, 'timeout', `${base} did not answer within ${why.timeoutMs} ms`);
  return new MusterClientError(0, 'unreachable', `cannot reach the server at ${base} (${causeOf(e)})`);
}

/** The system error under fetch's "fetch failed": ECONNREFUSED, ENOTFOUND, UND_ERR_SOCKET, ... */
export function causeOf(e: unknown): string {
  const cause = e instanceof Error && e.cause instanceof Error ? e.cause : e;
  return cause instanceof Error ? ((cause as Error & { code?: string }).code ?? cause.message) : String(cause);
}

/** Reads the `{ "error": { "code", "message" } }` body; a body of another shape still gives a readable error. */
export function errorFromAnswer(response: Response, text: string): MusterClientError {
  let code = `http-${response.status}`;
  let message = response.statusText || `HTTP ${response.status}`;
  let field: string | undefined;
  try {
    const parsed = JSON.parse(text) as unknown;
    const error = isRecord(parsed) ? parsed['error'] : undefined;
    if (isRecord(error)) {
      if (typeof error['code'] === 'string') code = error['code'];
      if (typeof error['message'] === 'string') message = error['message'];
      if (typeof error['field'] === 'string') field = error['field'];
    }
  } catch {
    const snippet = text.trim().slice(0, 200);
    if (snippet) message = snippet;
  }
  return new MusterClientError(response.status, code, message, field);
}

export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

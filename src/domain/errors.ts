// The one error catalogue (STYLE.md habit 11): each error a stable code, an HTTP status and a SIP status.

export const ERRORS = {
  'bad-request': { http: 400, sip: 400 },
  unauthenticated: { http: 401, sip: 401 },
  forbidden: { http: 403, sip: 403 },
  'not-found': { http: 404, sip: 404 },
  conflict: { http: 409, sip: 409 },
  'too-large': { http: 413, sip: 413 },
  // A body in a media type the route does not read (RFC 9110 15.5.16); SIP has the same status (RFC 3261 21.4.13).
  'unsupported-media-type': { http: 415, sip: 415 },
  // SIP has no "too many requests" (429 there is Provide Referrer Identity): overload is 503 with Retry-After (RFC 3261 21.5.4).
  'rate-limited': { http: 429, sip: 503 },
  'unavailable': { http: 503, sip: 503 },
  // A relay loop, or a chain of intermediate nodes longer than allowed: HTTP 508 (RFC 5842 7.2), SIP 482 (RFC 3261 21.4.20).
  'loop-detected': { http: 508, sip: 482 },
  internal: { http: 500, sip: 500 },
} as const;
export type ErrorCode = keyof typeof ERRORS;

export class MusterError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
    /** The request field at fault, e.g. "groupIds[2]", for bad input. */
    readonly field?: string,
  ) {
    super(field ? `${field}: ${message}` : message);
  }
  get httpStatus(): number {
    return ERRORS[this.code].http;
  }
}

export const badInput = (field: string, why: string): MusterError => new MusterError('bad-request', why, field);

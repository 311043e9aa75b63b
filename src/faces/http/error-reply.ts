// Renders every failure as CONTRACT.md's error body { error: { code, message } } with the catalogue's status.
import type { Socket } from 'node:net';
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import { MusterError, ERRORS, type ErrorCode } from '../../domain/errors.ts';

export interface ErrorBody {
  /** `processed: false`: refused before any of the request was done or passed on (toUnprocessedReply). */
  error: { code: string; message: string; field?: string; processed?: false };
}

interface ValidationIssue {
  instancePath: string;
  keyword: string;
  message?: string;
  params?: Record<string, unknown>;
}

/** "/groupIds/0" -> "groupIds[0]", so a field is named the same way in every error. */
export function fieldOf(pointer: string): string {
  return pointer
    .split('/')
    .slice(1)
    .map((p) => (/^\d+$/.test(p) ? `[${p}]` : `.${p.replace(/~1/g, '/').replace(/~0/g, '~')}`))
    .join('')
    .replace(/^\./, '');
}

function describeIssue(issue: ValidationIssue, part: string): { field: string; message: string } {
  const params = issue.params ?? {};
  const field = fieldOf(issue.instancePath);
  switch (issue.keyword) {
    case 'additionalProperties': {
      const extra = (params['additionalProperties'] as string[] | undefined) ?? [];
      const name = [field, extra[0]].filter(Boolean).join('.');
      return { field: name || part, message: 'unknown field' };
    }
    case 'required':
      return { field: [field, ((params['requiredProperties'] as string[] | undefined) ?? []).join(', ')].filter(Boolean).join('.') || part, message: 'is required' };
    case 'pattern':
      return { field, message: 'must be an MC URI (sip:name@domain or tel:number)' };
    case 'enum':
      return { field, message: `must be one of ${((params['allowedValues'] as unknown[] | undefined) ?? []).join(', ')}` };
    default:
      return { field: field || part, message: issue.message ?? 'is not valid' };
  }
}

export function toErrorReply(err: unknown): { status: number; body: ErrorBody } {
  if (err instanceof MusterError) {
    return { status: err.httpStatus, body: { error: { code: err.code, message: err.message, ...(err.field ? { field: err.field } : {}) } } };
  }
  const fe = err as FastifyError & { validation?: ValidationIssue[]; validationContext?: string };
  if (fe.validation && fe.validation.length > 0) {
    // The most specific issue names the field: a boolean-schema echo of additionalProperties says less.
    const issue = fe.validation.find((i) => i.keyword !== 'boolean') ?? fe.validation[0]!;
    const { field, message } = describeIssue(issue, fe.validationContext ?? 'body');
    return { status: 400, body: { error: { code: 'bad-request', message: `${field}: ${message}`, field } } };
  }
  switch (fe.code) {
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return { status: 400, body: { error: { code: 'bad-request', message: `body: not valid JSON (${fe.message})`, field: 'body' } } };
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return { status: 413, body: { error: { code: 'too-large', message: 'body: larger than the server accepts' } } };
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      // A Content-Type fastify cannot parse (malformed): refused as any other body that is not JSON (app.ts).
      return toErrorReply(notJson(undefined));
    case 'FST_ERR_BAD_URL':
      return { status: 400, body: { error: { code: 'bad-request', message: 'path: not a valid URL (malformed percent-encoding)', field: 'path' } } };
    case 'FST_ERR_MAX_PARAM_LENGTH':
      return { status: 414, body: { error: { code: 'too-large', message: 'path: a path segment is longer than the server accepts' } } };
  }
  const status = typeof fe.statusCode === 'number' && fe.statusCode >= 400 && fe.statusCode < 500 ? fe.statusCode : 500;
  // A client error the catalogue has no entry for (406, 431, ...) is still the client's: bad-request, not internal.
  const code = (Object.keys(ERRORS) as ErrorCode[]).find((c) => ERRORS[c].http === status) ?? (status < 500 ? 'bad-request' : 'internal');
  return { status, body: { error: { code, message: status === 500 ? 'internal error' : fe.message, ...(status === 400 ? { field: 'request' } : {}) } } };
}

/** A request body that is not JSON (`sent`: its Content-Type, undefined when unknown or none): 415 naming content-type. */
export function notJson(sent: string | undefined): MusterError {
  return new MusterError('unsupported-media-type', `a request body must be application/json${sent === undefined ? '' : `, not ${JSON.stringify(sent)}`}`, 'content-type');
}

/**
 * A refusal made before any of the request was done or passed on (a bound, a relay loop): `processed: false` tells the
 * sender that nothing was applied, which a 503 or 508 alone does not, so it has nothing to undo (RFC 9113 8.7 says the
 * same of a refused stream: "prior to any processing").
 */
export function toUnprocessedReply(err: MusterError): { status: number; body: ErrorBody } {
  const { status, body } = toErrorReply(err);
  return { status, body: { error: { ...body.error, processed: false } } };
}

/** Fastify's own refusals before a route is found (a malformed percent-encoding, an over-long path segment). */
export function replyFrameworkError(err: FastifyError, _req: FastifyRequest, reply: FastifyReply): void {
  const { status, body } = toErrorReply(err);
  void reply.code(status).send(body);
}

/** What Node's HTTP parser refuses (headers too large, not HTTP) gets the same error body; then the connection closes. */
export function replyClientError(err: Error & { code?: string }, socket: Socket): void {
  if (err.code === 'ECONNRESET' || socket.destroyed) return;
  const [status, reason, error]: [number, string, ErrorBody['error']] =
    err.code === 'HPE_HEADER_OVERFLOW'
      ? [431, 'Request Header Fields Too Large', { code: 'too-large', message: 'headers: larger than the server accepts' }]
      : err.code === 'ERR_HTTP_REQUEST_TIMEOUT'
        ? [408, 'Request Timeout', { code: 'bad-request', message: 'request: not received in time', field: 'request' }]
        : [400, 'Bad Request', { code: 'bad-request', message: 'request: not valid HTTP', field: 'request' }];
  const body = JSON.stringify({ error });
  if (socket.writable) socket.write(`HTTP/1.1 ${status} ${reason}\r\nContent-Length: ${Buffer.byteLength(body)}\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n${body}`);
  socket.destroy(err);
}

// Renders every failure as CONTRACT.md's error body { error: { code, message } } with the catalogue's status.
import type { FastifyError } from 'fastify';
import { MusterError, ERRORS, type ErrorCode } from '../../domain/errors.ts';

export interface ErrorBody {
  error: { code: string; message: string; field?: string };
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
      return { status: 415, body: { error: { code: 'bad-request', message: 'Content-Type must be application/json' } } };
  }
  const status = typeof fe.statusCode === 'number' && fe.statusCode >= 400 && fe.statusCode < 500 ? fe.statusCode : 500;
  const code = (Object.keys(ERRORS) as ErrorCode[]).find((c) => ERRORS[c].http === status) ?? 'internal';
  return { status, body: { error: { code, message: status === 500 ? 'internal error' : fe.message } } };
}

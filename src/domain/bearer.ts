// RFC 6750 2.1: the credential of an Authorization or Proxy-Authorization field in the Bearer scheme, read one way for
// user credentials (faces/http/credentials.ts) and partner server credentials (adapters/partner-gate.ts).

/** RFC 9110 11.1: the auth-scheme is case-insensitive ("bearer" is Bearer); Muster's credentials are compact JWS. */
const BEARER_FIELD = /^Bearer\s+([A-Za-z0-9_.-]{10,4096})$/i;

/** The bearer credential a field carries, or undefined when it carries none (no field, another scheme, no JWS). */
export function bearerCredential(field: string | undefined): string | undefined {
  return field === undefined ? undefined : BEARER_FIELD.exec(field)?.[1];
}

// The signed-in user's credential: in this tab's sessionStorage only (never localStorage), gone at sign-out or
// when the tab closes. The console never makes a credential.
import { decodeJwt } from 'jose';

const KEY = 'muster.console.credential';

export function storedCredential(): string | undefined {
  return sessionStorage.getItem(KEY) ?? undefined;
}

export function keepCredential(token: string): void {
  sessionStorage.setItem(KEY, token);
}

export function forgetCredential(): void {
  sessionStorage.removeItem(KEY);
}

/**
 * The claims a credential carries (its JWT `sub` and `role`), read without checking the signature: only to choose
 * which view to ask the server for; the server checks the credential on every request and decides what it may do.
 */
export function claimsOf(token: string): { subject?: string; role?: string } {
  try {
    const { sub, role } = decodeJwt(token);
    return { ...(typeof sub === 'string' ? { subject: sub } : {}), ...(typeof role === 'string' ? { role } : {}) };
  } catch {
    // not a JWT: said by the caller
    return {};
  }
}

/** The user a credential names (its JWT `sub`): whose affiliations to ask for. */
export const subjectOf = (token: string): string | undefined => claimsOf(token).subject;

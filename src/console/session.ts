// The signed-in user's credential: in this tab's sessionStorage only (never localStorage), gone at sign-out or
// when the tab closes. The console never makes a credential.
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
  const payload = token.split('.')[1];
  if (payload === undefined) return {};
  try {
    const json = atob(payload.replace(/-/g, '+').replace(/_/g, '/').padEnd(Math.ceil(payload.length / 4) * 4, '='));
    const claims = JSON.parse(json) as unknown;
    if (typeof claims !== 'object' || claims === null) return {};
    const { sub, role } = claims as Record<string, unknown>;
    return { ...(typeof sub === 'string' ? { subject: sub } : {}), ...(typeof role === 'string' ? { role } : {}) };
  } catch {
    // not a JWT: said by the caller
    return {};
  }
}

/** The user a credential names (its JWT `sub`): whose affiliations to ask for. */
export const subjectOf = (token: string): string | undefined => claimsOf(token).subject;

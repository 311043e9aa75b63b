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
 * The user a credential names (its JWT `sub`), read without checking the signature: only to know whose affiliations
 * to ask for; the server checks the credential on every request and answers with the ID it verified.
 */
export function subjectOf(token: string): string | undefined {
  const payload = token.split('.')[1];
  if (payload === undefined) return undefined;
  try {
    const json = atob(payload.replace(/-/g, '+').replace(/_/g, '/').padEnd(Math.ceil(payload.length / 4) * 4, '='));
    const claims = JSON.parse(json) as unknown;
    if (typeof claims === 'object' && claims !== null && 'sub' in claims && typeof claims.sub === 'string') return claims.sub;
  } catch {
    // not a JWT: said by the caller
  }
  return undefined;
}

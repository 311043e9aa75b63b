// What a partner MC service server may ask (SPEC.md "Who may act"): a server-to-server request concerns groups of
// one system, and a partner acts only for users of its own system.
import { domainOf, type McUri } from '../ids.ts';
import { badInput, MusterError } from '../errors.ts';

/** The one system that hosts every group of the request; a request spanning systems is refused, naming `field`. */
export function hostOfPartnerRequest(groupIds: readonly McUri[], field: string): string {
  const domains = new Set(groupIds.map((g) => domainOf(g) ?? ''));
  if (domains.size !== 1) throw badInput(field, 'a partner request names groups of one system only');
  return [...domains][0]!;
}

/** Refuses (403, naming the field) the first user that is not of the requesting partner's system. */
export function requireUsersOfPartner(origin: string, users: readonly { id: McUri; field: string }[]): void {
  const foreign = users.find((u) => domainOf(u.id) !== origin);
  if (foreign) throw new MusterError('forbidden', `partner ${origin} may act only for its own users, not ${foreign.id}`, foreign.field);
}

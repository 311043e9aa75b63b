// What a partner MC service server may ask (SPEC.md "Who may act"): a server-to-server request concerns groups of
// one system, and a partner acts only for users of its own system.
import { domainOf, type McUri } from '../ids.ts';
import { badInput, MusterError } from '../errors.ts';

/** The one system that hosts every group of the request; a request spanning systems, or naming none, is refused (400 naming the list). */
export function hostOfPartnerRequest(lists: readonly { field: string; groupIds: readonly McUri[] }[]): string {
  let host: string | undefined;
  for (const { field, groupIds } of lists) {
    for (const g of groupIds) {
      const d = domainOf(g) ?? '';
      // The list that brings a second system is the field named (a change's affiliate or deaffiliate).
      if (host !== undefined && d !== host) throw badInput(field, 'a partner request names groups of one system only');
      host = d;
    }
  }
  if (host === undefined) throw badInput(lists[0]?.field ?? 'groupIds', 'a partner request names at least one group');
  return host;
}

/** Refuses (403, naming the field) the first user that is not of the requesting partner's system. */
export function requireUsersOfPartner(origin: string, users: readonly { id: McUri; field: string }[]): void {
  const foreign = users.find((u) => domainOf(u.id) !== origin);
  if (foreign) throw new MusterError('forbidden', `partner ${origin} may act only for its own users, not ${foreign.id}`, foreign.field);
}

// TS 24.379 9.2.2.2.3 (STAGE3.md): a client's PUBLISH states the whole set of groups it wants; against what the
// user holds, the additions are to be affiliated and the omissions de-affiliated.
import type { McUri } from '../ids.ts';
import type { HeldGroups } from './group-home.ts';

export function publicationDelta(wanted: readonly McUri[], held: HeldGroups): { affiliate: McUri[]; deaffiliate: McUri[] } {
  return {
    affiliate: wanted.filter((g) => !held.has(g)),
    // A reservation is a partner still deciding an earlier request: not the client's to withdraw by omission.
    deaffiliate: [...held].filter(([g, state]) => state === 'affiliated' && !wanted.includes(g)).map(([g]) => g),
  };
}

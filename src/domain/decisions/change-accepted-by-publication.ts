// TS 24.379 §9.2.1.5 (README "Remote change"): the target of a negotiated affiliation change accepts it by doing
// the affiliation and de-affiliation itself, i.e. by publishing a set that holds every group the change asked it to
// join and none it asked it to leave. Which of a user's waiting changes does a published set answer that way?
import type { McUri } from '../ids.ts';

export interface WaitingChange {
  id: string;
  affiliate: readonly McUri[];
  deaffiliate: readonly McUri[];
}

/** The ids of the waiting changes the published set fulfils; a set that fulfils a change only in part answers nothing. */
export function changesAcceptedByPublication(waiting: readonly WaitingChange[], published: readonly McUri[]): string[] {
  const set = new Set(published);
  return waiting.filter((c) => c.affiliate.every((g) => set.has(g)) && c.deaffiliate.every((g) => !set.has(g))).map((c) => c.id);
}

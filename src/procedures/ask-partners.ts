// 10.X.3.2 step 3 and 10.X.4.3 step 3: the primary server splits a request by the systems hosting its groups and
// asks every partner at once; the answer is complete when each has answered (or timed out, in the adapter).
import type { McUri } from '../domain/ids.ts';
import type { McService } from '../domain/services.ts';
import type { GroupStatus } from '../domain/flows.ts';
import type { McServiceServer } from './context.ts';

/**
 * Records whose de-affiliation a procedure has sent to a partner and not yet stored the outcome of (10.X.4.3 steps
 * 3-7): still `affiliated` here, maybe gone at the partner. The re-synchronisation leaves them to that outcome
 * instead of asking for them again. Per store (one per system), in this process.
 */
const forwarding = new WeakMap<object, Map<string, number>>();
const forwardKey = (userId: McUri, service: McService, groupId: McUri): string => `${userId} ${service} ${groupId}`;

export async function whileForwarding<T>(server: McServiceServer, userId: McUri, service: McService, groupIds: readonly McUri[], work: () => Promise<T>): Promise<T> {
  const held = forwarding.get(server.store) ?? new Map<string, number>();
  forwarding.set(server.store, held);
  const keys = groupIds.map((g) => forwardKey(userId, service, g));
  keys.forEach((k) => held.set(k, (held.get(k) ?? 0) + 1));
  try {
    return await work();
  } finally {
    for (const k of keys) {
      const n = (held.get(k) ?? 1) - 1;
      if (n > 0) held.set(k, n);
      else held.delete(k);
    }
  }
}

export function isForwarding(server: McServiceServer, key: { userId: McUri; service: McService; groupId: McUri }): boolean {
  return forwarding.get(server.store)?.has(forwardKey(key.userId, key.service, key.groupId)) ?? false;
}

export async function askPartners(
  server: McServiceServer,
  flow: 'affiliate' | 'deaffiliate',
  userId: McUri,
  service: McService,
  asked: readonly { groupId: McUri; domain: string }[],
): Promise<Map<McUri, GroupStatus>> {
  const byDomain = new Map<string, McUri[]>();
  for (const a of asked) byDomain.set(a.domain, [...(byDomain.get(a.domain) ?? []), a.groupId]);
  const answers = new Map<McUri, GroupStatus>();
  await Promise.all(
    [...byDomain].map(async ([domain, groupIds]) => {
      // The request may pass intermediate signalling nodes; the partner adapter bounds the wait and maps every
      // failure to partner-unreachable for this partner's groups only.
      const status = await server.partners[flow]({ domain, mcServiceId: userId, service, groupIds });
      status.forEach((s) => answers.set(s.groupId, s));
    }),
  );
  return answers;
}

// 10.X.3.2 step 3 and 10.X.4.3 step 3: the primary server splits a request by the systems hosting its groups and
// asks every partner at once; the answer is complete when each has answered (or timed out, in the adapter).
import type { McUri } from '../domain/ids.ts';
import type { McService } from '../domain/services.ts';
import type { GroupStatus } from '../domain/flows.ts';
import type { McServiceServer } from './context.ts';

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

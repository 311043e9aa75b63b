// A partner port for procedure tests on real systems in one process (no HTTP between them): one partner system,
// always reachable, nothing in flight. The test gives what it answers; unset requests answer partner-unreachable
// and an unset re-synchronisation fails, so a test that did not expect them sees them.
import type { PartnerServers } from '../../src/ports/partner.ts';

export function standInPartners(domain: string, answers: Partial<PartnerServers> = {}): PartnerServers {
  const unreachable: PartnerServers['affiliate'] = async (req) => req.groupIds.map((groupId) => ({ groupId, status: 'rejected', reason: 'partner-unreachable' }));
  return {
    domains: () => [domain],
    health: async () => ({ [domain]: 'up' }),
    reachable: async () => true,
    inFlight: () => false,
    onTrouble: () => undefined,
    affiliate: unreachable,
    deaffiliate: unreachable,
    resync: async () => ({ kind: 'failed', why: 'not answered by this stand-in' }),
    ...answers,
  };
}

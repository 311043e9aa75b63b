// What every procedure of one MC service server works with: its ports, its domain and its partners.
import { domainOf, type McUri } from '../domain/ids.ts';
import type { GroupHome } from '../domain/decisions/group-home.ts';
import type { UserProfile } from '../domain/profile.ts';
import type { Store } from '../ports/store.ts';
import type { GroupManagement } from '../ports/group-management.ts';
import type { PartnerServers } from '../ports/partner.ts';
import type { Notifier } from '../ports/notifier.ts';
import type { Clock } from '../ports/clock.ts';
import type { ChangeOutcomes } from './change-outcomes.ts';
import type { Logger } from 'pino';

export interface UserProfiles {
  get(id: McUri): UserProfile | undefined;
}

export interface McServiceServer {
  domain: string;
  store: Store;
  gms: GroupManagement;
  partners: PartnerServers;
  profiles: UserProfiles;
  notifier: Notifier;
  clock: Clock;
  changeOutcomes: ChangeOutcomes;
  negotiationTimeoutMs: number;
  /**
   * Wakes the sender that drains the GMS outbox (step 5b and friends) when the GMS is elsewhere; a GMS in the same
   * store was told by the commit itself, since it reads the affiliations (sqlite-gms-store.ts).
   */
  tellGmsSoon(): void;
  /** Re-synchronises with a partner once it answers (it holds records this server does not): partner-recovery.ts. */
  resyncPartnerSoon(domain: string, reason: string): void;
  log: Logger;
}

/** Where a group lives, from its domain: this system (with its cached policy, unless the GMS could not be asked), a configured partner, or nowhere. */
export function homeOf(server: McServiceServer, groupId: McUri): GroupHome {
  const domain = domainOf(groupId);
  if (domain === server.domain) return server.gms.unavailable(groupId) ? { home: 'own-gms-unavailable' } : { home: 'own', policy: server.gms.policyOf(groupId) };
  if (domain && server.partners.domains().includes(domain)) return { home: 'partner', domain };
  return { home: 'unroutable' };
}

export function ownGroups(server: McServiceServer, groupIds: readonly McUri[]): McUri[] {
  return groupIds.filter((g) => domainOf(g) === server.domain);
}

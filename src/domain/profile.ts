// The MC service user profile (user subscription) as far as affiliation needs it: services, groups, N2, rights.
import type { McUri } from './ids.ts';
import type { McService } from './services.ts';

/** The remote-change right (SPEC.md "Who may act"): everyone of the own system, or only listed users or groups. */
export type RemoteChangeRight = false | true | { users?: McUri[]; groups?: McUri[] };

export interface UserProfile {
  id: McUri;
  services: McService[];
  /** N2: maximum simultaneous affiliations, one number for every service or one per service. */
  n2: number | Partial<Record<McService, number>>;
  /** The groups this user's subscription allows, of any system. */
  groups: McUri[];
  remoteChange: RemoteChangeRight;
}

export function n2For(profile: UserProfile, service: McService): number {
  return typeof profile.n2 === 'number' ? profile.n2 : (profile.n2[service] ?? 0);
}

/** The profile of a user this server does not know: no service, no group, so every check refuses (not-authorised). */
export function unknownUserProfile(id: McUri): UserProfile {
  return { id, services: [], n2: 0, groups: [], remoteChange: false };
}

// The group policy the GMS holds for each MC service group (TS 23.280 10.X.3.1 step 2b).
import type { McUri } from './ids.ts';
import type { McService } from './services.ts';

export interface GroupPolicy {
  id: McUri;
  /** One line of well-formed Unicode: no control characters, no lone surrogate (parseDisplayName). */
  displayName?: string;
  services: McService[];
  enabled: boolean;
  /** Users the group policy admits to affiliate (group members). */
  members: McUri[];
  /** Members may not de-affiliate on their own (e.g. an all-call group). */
  deaffiliationForbidden: boolean;
  /** Increases with every change at the GMS, so a cache never goes back in time. */
  revision: number;
}

// The one place that talks to partner MC service servers (10.X.3.2 step 3, 10.X.4.3 step 3, 10.X.5.2.1 step 3).
import type { McUri } from '../domain/ids.ts';
import type { McService } from '../domain/services.ts';
import type { GroupStatus } from '../domain/flows.ts';

export interface PartnerRequest {
  /** The partner system's domain that hosts every group of the request. */
  domain: string;
  mcServiceId: McUri;
  service: McService;
  groupIds: McUri[];
}

export interface PartnerServers {
  /** Resolves with one status per group; a partner down, slow or garbled gives partner-unreachable for its groups. */
  affiliate(req: PartnerRequest): Promise<GroupStatus[]>;
  deaffiliate(req: PartnerRequest): Promise<GroupStatus[]>;
  domains(): string[];
  health(): Promise<Record<string, 'up' | 'down'>>;
}

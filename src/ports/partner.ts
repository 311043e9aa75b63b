// The one place that talks to partner MC service servers (10.X.3.2 step 3, 10.X.4.3 step 3, 10.X.5.2.1 step 3).
import type { McUri } from '../domain/ids.ts';
import type { McService } from '../domain/services.ts';
import type { GroupStatus } from '../domain/flows.ts';
import type { ResyncKey } from '../domain/decisions/partner-resync.ts';

export interface PartnerRequest {
  /** The partner system's domain that hosts every group of the request. */
  domain: string;
  mcServiceId: McUri;
  service: McService;
  groupIds: McUri[];
}

/** One page of a re-synchronisation: the primary's records (keys) of its users in the host's groups within (after, through]. */
export interface ResyncPage {
  domain: string;
  /** Exclusive; none: from the first key. */
  after?: ResyncKey;
  /** Inclusive; none: to the last key. */
  through?: ResyncKey;
  affiliations: ResyncKey[];
  /** This system has just started: the host re-synchronises the other way too (its records of its users here). */
  startUp?: boolean;
}

/** The group host's answer to one page. */
export interface ResyncPageAnswer {
  /** How far it compared (it may stop short of the page's `through`); none: to the last key. */
  through?: ResyncKey;
  removed: ResyncKey[];
  spared: ResyncKey[];
  missing: ResyncKey[];
  /** Records it spared change within this long; a re-sync after it can remove them. */
  graceMs: number;
}

/** What made a partner need a re-synchronisation, told by the adapter to whoever re-synchronises. */
export type PartnerTrouble = 'unreachable' | 'undo-failed';

/**
 * `rate-limited` (429) and `unavailable` (503 marked `processed: false`: an intermediate node at its bound, a host
 * shedding load): refused for now before anything was done, to be read again and sent after `retryAfterMs`.
 * `loop-detected` (508): the route to the partner loops through intermediate nodes, a configuration error of the
 * partners' `via` routes that sending again will not fix; `why` is the refusal, naming the chain.
 */
export type ResyncPageOutcome =
  | { kind: 'answered'; answer: ResyncPageAnswer }
  | { kind: 'failed'; why: string }
  | { kind: 'rate-limited'; retryAfterMs: number }
  | { kind: 'unavailable'; retryAfterMs: number; why: string }
  | { kind: 'loop-detected'; why: string };

/** A partner's state in /healthz: `loop-detected` while the last answer on the way to it was a relay loop (508). */
export type PartnerHealth = 'up' | 'down' | 'loop-detected';

export interface PartnerServers {
  /** Resolves with one status per group; a partner down, slow or garbled gives partner-unreachable for its groups. */
  affiliate(req: PartnerRequest): Promise<GroupStatus[]>;
  deaffiliate(req: PartnerRequest): Promise<GroupStatus[]>;
  domains(): string[];
  health(): Promise<Record<string, PartnerHealth>>;
  /** Whether the partner answers its /healthz now (any answer but a gateway failure). */
  reachable(domain: string): Promise<boolean>;
  /**
   * Sends one re-synchronisation page; `failed` when the partner did not answer it well (it may have applied it);
   * `rate-limited` or `unavailable` when it (or a node on the way) refused it for now, to be read again and sent after
   * `retryAfterMs`; `loop-detected` when a node on the way found a relay loop.
   */
  resync(page: ResyncPage): Promise<ResyncPageOutcome>;
  /** Whether a request (or its undo) for this user, service and group is on its way to a partner now. */
  inFlight(key: ResyncKey): boolean;
  /** Tells `listener` when a partner did not answer, and when an undo failed all its attempts. */
  onTrouble(listener: (domain: string, trouble: PartnerTrouble) => void): void;
}

// Where a group lives as seen by one MC service server: its own system, a partner system, or nowhere it can reach.
import type { McUri } from '../ids.ts';
import type { GroupPolicy } from '../group-policy.ts';

export type GroupHome =
  | { home: 'own'; policy: GroupPolicy | undefined }
  /** An own group whose policy the GMS could not be asked for (down, or slower than its timeout) and none is cached. */
  | { home: 'own-gms-unavailable' }
  | { home: 'partner'; domain: string }
  | { home: 'unroutable' };

/** An affiliation record's state: `reserved` holds an N2 slot while a partner decides (DESIGN.md). */
export type HeldState = 'affiliated' | 'reserved';
export type HeldGroups = ReadonlyMap<McUri, HeldState>;

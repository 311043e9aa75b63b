// The group management server's durable storage: group documents and the affiliated-member lists it is told.
import type { McUri } from '../domain/ids.ts';
import type { McService } from '../domain/services.ts';
import type { GroupPolicy } from '../domain/group-policy.ts';
import type { GmsStatusUpdate } from './store.ts';

export interface GroupAffiliation {
  userId: McUri;
  service: McService;
  status: 'affiliated' | 'deaffiliated';
  updatedAt: number;
}

/** One row of the GMS's affiliation table: the last status a source told for a (group, service, user). */
export interface GmsAffiliationRecord extends GroupAffiliation {
  groupId: McUri;
  source: string;
  seq: number;
}

/** Everything the GMS stores, for `muster export` / `muster import`. */
export interface GmsDump {
  /** Every group document with its revision. */
  groups: GroupPolicy[];
  /** Every row, de-affiliated ones included (their seqs still guard against older updates). */
  affiliations: GmsAffiliationRecord[];
}

export interface GmsStore {
  /** Every group document, its ID strings shared with every other mention of them (uriIntern), as a cache keeps them. */
  allGroups(): Promise<GroupPolicy[]>;
  getGroup(id: McUri): Promise<GroupPolicy | undefined>;
  /** Stores the document with the next revision (one more than the stored one) and returns it. */
  putGroup(doc: Omit<GroupPolicy, 'revision'>): Promise<GroupPolicy>;
  deleteGroup(id: McUri): Promise<boolean>;
  /**
   * Applies status updates idempotently: per group, service and user, an update of the same source with a
   * sequence number not above the stored one is ignored. Returns how many were applied.
   */
  applyStatusUpdates(source: string, updates: GmsStatusUpdate[], at: number): Promise<number>;
  affiliatedMembers(groupId: McUri, service?: McService): Promise<GroupAffiliation[]>;
  /** Every affiliated (group, service, user) row: for agreement checks and export. */
  allAffiliations(): Promise<(GroupAffiliation & { groupId: McUri; source: string; seq: number })[]>;
  /** Everything stored, read in one consistent snapshot. */
  dump(): Promise<GmsDump>;
  /** Writes a dump in one transaction, revisions and seqs kept. Refuses (MusterError 'conflict') unless the GMS store is empty. */
  restore(dump: GmsDump): Promise<void>;
}

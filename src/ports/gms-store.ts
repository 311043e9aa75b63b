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

export interface GmsStore {
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
}

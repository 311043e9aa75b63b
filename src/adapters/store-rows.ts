// Rows of the store's tables as the port's records, for both SQL adapters: the schemas have the same columns, and
// Number() reads SQLite's integers and PostgreSQL's BIGINT strings alike.
import type { McUri } from '../domain/ids.ts';
import type { McService } from '../domain/services.ts';
import type { HeldState } from '../domain/decisions/group-home.ts';
import type { AffiliationRecord, AuditAction, AuditEntry, ChangeRecord, ChangeState, ClientEvent, NewAuditEntry } from '../ports/store.ts';
import type { GmsAffiliationRecord, GroupAffiliation } from '../ports/gms-store.ts';

export type Row = Record<string, unknown>;

const json = (v: unknown): unknown => JSON.parse(v as string) as unknown;

export function toAffiliationRecord(r: Row): AffiliationRecord {
  return { userId: r['user_id'] as McUri, groupId: r['group_id'] as McUri, service: r['service'] as McService, state: r['state'] as HeldState, updatedAt: Number(r['updated_at']) };
}

/** The MC service server's tables a dump holds: a restore goes only into a store where all of them are empty. */
export const DUMPED_TABLES = ['affiliations', 'gms_outbox', 'events', 'user_profiles', 'change_requests', 'audit_log', 'sip_publications', 'sip_subscriptions'] as const;

/** One row, `used`: whether any of DUMPED_TABLES has a row (the same SQL on SQLite and PostgreSQL). */
export const STORE_USED_SQL = `SELECT ${DUMPED_TABLES.map((t) => `EXISTS (SELECT 1 FROM ${t})`).join(' OR ')} AS used`;

/** The audit log's columns after its id, and an entry's values in their order (positional: cheaper to bind than names). */
export const AUDIT_COLUMNS = ['at', 'subject', 'role', 'on_behalf_of', 'action', 'service', 'groups', 'http_status', 'error_code', 'result'] as const;

export function auditRow(e: NewAuditEntry): unknown[] {
  return [e.at, e.subject, e.role, e.onBehalfOf, e.action, e.service, JSON.stringify(e.groups), e.httpStatus, e.errorCode, JSON.stringify(e.result ?? null)];
}

export function toClientEvent(r: Row): ClientEvent {
  return { id: Number(r['id']), userId: r['user_id'] as McUri, type: r['type'] as ClientEvent['type'], data: json(r['data']), at: Number(r['created_at']) };
}

export function toChangeRecord(r: Row): ChangeRecord {
  return {
    id: r['id'] as string,
    target: r['target'] as McUri,
    actor: r['actor'] as McUri,
    service: r['service'] as McService,
    mode: r['mode'] as ChangeRecord['mode'],
    affiliate: json(r['affiliate']) as McUri[],
    deaffiliate: json(r['deaffiliate']) as McUri[],
    state: r['state'] as ChangeState,
    deadline: Number(r['deadline']),
    result: json(r['result']),
    createdAt: Number(r['created_at']),
  };
}

export function toAuditEntry(r: Row): AuditEntry {
  return {
    id: Number(r['id']),
    at: Number(r['at']),
    subject: r['subject'] as string,
    role: r['role'] as string,
    onBehalfOf: (r['on_behalf_of'] as string | null) ?? null,
    action: r['action'] as AuditAction,
    service: (r['service'] as string | null) ?? null,
    groups: json(r['groups']) as string[],
    httpStatus: Number(r['http_status']),
    errorCode: (r['error_code'] as string | null) ?? null,
    result: json(r['result']),
  };
}

/** A GMS's affiliated members among its rows (the member list of GmsStore.affiliatedMembers). */
export function affiliatedMembersOf(rows: GmsAffiliationRecord[]): GroupAffiliation[] {
  return rows.filter((r) => r.status === 'affiliated').map(({ userId, service, status, updatedAt }) => ({ userId, service, status, updatedAt }));
}

export function toGmsAffiliationRecord(r: Row): GmsAffiliationRecord {
  return {
    userId: r['user_id'] as McUri,
    service: r['service'] as McService,
    status: r['status'] as GroupAffiliation['status'],
    updatedAt: Number(r['updated_at']),
    groupId: r['group_id'] as McUri,
    source: r['source'] as string,
    seq: Number(r['seq']),
  };
}

/**
 * A co-located GMS's rows (both stores): what other sources told it (`told`) with its own server's affiliations
 * (`mine`); per group, service and user the later update wins (ties: `mine`), as one table of told rows kept it.
 * Sorted by group, service and user.
 */
export function latestPerKey(told: GmsAffiliationRecord[], mine: GmsAffiliationRecord[]): GmsAffiliationRecord[] {
  if (told.length === 0) return mine;
  const key = (r: GmsAffiliationRecord): string => `${r.groupId} ${r.service} ${r.userId}`;
  const byKey = new Map(told.map((r) => [key(r), r]));
  for (const r of mine) {
    const other = byKey.get(key(r));
    if (!other || other.updatedAt <= r.updatedAt) byKey.set(key(r), r);
  }
  return [...byKey.values()].sort((a, b) => (key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0));
}

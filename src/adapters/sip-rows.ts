// Rows of the SIP face's tables (migration 3 of both SQL adapters) as the store port's records, and back. Number()
// reads SQLite's integers and PostgreSQL's BIGINT strings alike.
import type { McUri } from '../domain/ids.ts';
import type { McService } from '../domain/services.ts';
import type { SipPublicationRecord, SipSubscriptionRecord } from '../ports/store.ts';
import type { Row } from './store-rows.ts';

export const SIP_PUBLICATION_COLUMNS = ['user_id', 'service', 'etag', 'expires', 'expires_at', 'p_id', 'tuple_id', 'groups'] as const;

/** PostgreSQL's types of SIP_PUBLICATION_COLUMNS, for a restore's column arrays (postgres-store.ts). */
export const SIP_PUBLICATION_TYPES = ['text', 'text', 'text', 'bigint', 'bigint', 'text', 'text', 'text'] as const;

export const SIP_SUBSCRIPTION_COLUMNS = [
  'id',
  'owner',
  'call_id',
  'local_tag',
  'remote_tag',
  'remote_from',
  'remote_target',
  'event_id',
  'transport',
  'remote_address',
  'remote_port',
  'watcher',
  'user_id',
  'service',
  'expires_at',
  'local_cseq',
  'remote_cseq',
] as const;

/** PostgreSQL's types of SIP_SUBSCRIPTION_COLUMNS. */
export const SIP_SUBSCRIPTION_TYPES = ['text', 'text', 'text', 'text', 'text', 'text', 'text', 'text', 'text', 'text', 'integer', 'text', 'text', 'text', 'bigint', 'bigint', 'bigint'] as const;

/** A publication's values in SIP_PUBLICATION_COLUMNS order. */
export function sipPublicationValues(p: SipPublicationRecord): (string | number | null)[] {
  // The set as a JSON array; a dump written before sets were kept has none (undefined): null.
  return [p.userId, p.service, p.etag, p.expires, p.expiresAt, p.pId, p.tupleId, p.groups ? JSON.stringify(p.groups) : null];
}

/** A subscription's values in SIP_SUBSCRIPTION_COLUMNS order. */
export function sipSubscriptionValues(s: SipSubscriptionRecord): (string | number | null)[] {
  return [s.id, s.owner, s.callId, s.localTag, s.remoteTag, s.remoteFrom, s.remoteTarget, s.eventId, s.transport, s.remoteAddress, s.remotePort, s.watcher, s.userId, s.service, s.expiresAt, s.localCSeq, s.remoteCSeq];
}

export function toSipPublication(r: Row): SipPublicationRecord {
  return {
    userId: r['user_id'] as McUri,
    service: r['service'] as McService,
    etag: r['etag'] as string,
    expires: Number(r['expires']),
    expiresAt: r['expires_at'] === null ? null : Number(r['expires_at']),
    pId: (r['p_id'] as string | null) ?? null,
    tupleId: (r['tuple_id'] as string | null) ?? null,
    groups: typeof r['groups'] === 'string' ? (JSON.parse(r['groups']) as McUri[]) : null,
  };
}

export function toSipSubscription(r: Row): SipSubscriptionRecord {
  return {
    id: r['id'] as string,
    owner: r['owner'] as string,
    callId: r['call_id'] as string,
    localTag: r['local_tag'] as string,
    remoteTag: r['remote_tag'] as string,
    remoteFrom: r['remote_from'] as string,
    remoteTarget: r['remote_target'] as string,
    eventId: (r['event_id'] as string | null) ?? null,
    transport: r['transport'] as SipSubscriptionRecord['transport'],
    remoteAddress: r['remote_address'] as string,
    remotePort: Number(r['remote_port']),
    watcher: r['watcher'] as McUri,
    userId: r['user_id'] as McUri,
    service: r['service'] as McService,
    expiresAt: Number(r['expires_at']),
    localCSeq: Number(r['local_cseq']),
    remoteCSeq: Number(r['remote_cseq']),
  };
}

// The data of the event stream's events (CONTRACT.md `GET /mc/v1/events`), parsed at the edge: used by the CLI's
// `watch` and the console alike.
import type { AffiliationChangeEventData, AffiliationStatusEventData } from './muster-client.ts';
import { isRecord } from './transport.ts';
import { isMcService } from '../domain/services.ts';
import type { RefusalReason } from '../domain/reasons.ts';

const isStringList = (v: unknown): v is string[] => Array.isArray(v) && v.every((x) => typeof x === 'string');

/** Parses an `affiliation-change` event's data at the edge; undefined when it is not of that shape. */
export function asChange(data: unknown): AffiliationChangeEventData | undefined {
  if (!isRecord(data)) return undefined;
  const { id, mode, actor, target, service, affiliate, deaffiliate, deadline, status } = data;
  if (typeof id !== 'string' || (mode !== 'mandatory' && mode !== 'negotiated') || typeof actor !== 'string' || typeof target !== 'string' || !isMcService(service)) return undefined;
  const affiliateList = affiliate === undefined ? [] : affiliate;
  const deaffiliateList = deaffiliate === undefined ? [] : deaffiliate;
  if (!isStringList(affiliateList) || !isStringList(deaffiliateList)) return undefined;
  const statusList = status === undefined ? undefined : asStatusList(status);
  return { id, mode, actor, target, service, affiliate: affiliateList, deaffiliate: deaffiliateList, ...(typeof deadline === 'string' ? { deadline } : {}), ...(statusList ? { status: statusList } : {}) };
}

export function asStatus(data: unknown): AffiliationStatusEventData | undefined {
  if (!isRecord(data) || !isMcService(data['service'])) return undefined;
  const status = asStatusList(data['status']);
  return status ? { service: data['service'], status } : undefined;
}

export function asStatusList(value: unknown): AffiliationStatusEventData['status'] | undefined {
  if (!Array.isArray(value)) return undefined;
  const list: AffiliationStatusEventData['status'] = [];
  for (const item of value) {
    if (!isRecord(item) || typeof item['groupId'] !== 'string') return undefined;
    const { groupId, status, reason } = item;
    if (status === 'affiliated' || status === 'deaffiliated') list.push({ groupId, status });
    else if (status === 'rejected' && typeof reason === 'string') list.push({ groupId, status, reason: reason as RefusalReason }); // a newer server's reason prints as is
    else return undefined;
  }
  return list;
}

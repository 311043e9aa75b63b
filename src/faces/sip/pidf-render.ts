// The NOTIFY body of TS 24.379 §9.2.2.2.5 / §9.3.1.2: PIDF (RFC 3863), entity the user, one tuple, one
// <mcpttPI10:affiliation group status/> per held group, then the p-id of the PUBLISH it answers. Pure; xmlbuilder2 writes it.
import { create } from 'xmlbuilder2';
import type { McUri } from '../../domain/ids.ts';
import type { McService } from '../../domain/services.ts';
import type { HeldState } from '../../domain/decisions/group-home.ts';
import { PIDF_NS, PRES_INFO_NS, PRES_INFO_PREFIX } from './affiliation-document.ts';

export interface AffiliationStatusDocument {
  entity: McUri;
  service: McService;
  tupleId: string;
  groups: { groupId: McUri; state: HeldState }[];
  pId: string | undefined;
}

/** `reserved` (a partner is still deciding) is reported as `affiliating`. */
const STATUS: Record<HeldState, string> = { affiliated: 'affiliated', reserved: 'affiliating' };

export function renderAffiliationStatus(doc: AffiliationStatusDocument): string {
  const ns = PRES_INFO_NS[doc.service];
  const prefix = PRES_INFO_PREFIX[doc.service];
  const presence = create({ version: '1.0', encoding: 'UTF-8' }).ele(PIDF_NS, 'presence').att('http://www.w3.org/2000/xmlns/', `xmlns:${prefix}`, ns).att('entity', doc.entity);
  const status = presence.ele(PIDF_NS, 'tuple').att('id', doc.tupleId).ele(PIDF_NS, 'status');
  for (const g of doc.groups) status.ele(ns, `${prefix}:affiliation`).att('group', g.groupId).att('status', STATUS[g.state]);
  if (doc.pId !== undefined) presence.ele(ns, `${prefix}:p-id`).txt(doc.pId);
  return presence.end({ prettyPrint: false });
}

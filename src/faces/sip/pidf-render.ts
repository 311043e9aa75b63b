// The NOTIFY body of TS 24.379 §9.2.2.2.5 / §9.3.1.2: PIDF (RFC 3863), entity the user, one tuple, one
// <mcpttPI10:affiliation group status/> per held group, then the p-id of the PUBLISH it answers. Also a group's
// affiliated members (entity the group, one tuple per member; README "SUBSCRIBE to a group"). Pure; xmlbuilder2 writes it.
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

/** A group's affiliated members for one MC service, as its watchers get them. */
export interface GroupAffiliationDocument {
  group: McUri;
  service: McService;
  members: { userId: McUri; state: HeldState }[];
}

/**
 * Entity = the group; one tuple per member, in the order given: `id` = "member-<n>" (a tuple id is an xs:ID, which a
 * SIP URI is not), its status the member's `<affiliation group status/>` for this group, its `<contact>` the member.
 */
export function renderGroupAffiliation(doc: GroupAffiliationDocument): string {
  const ns = PRES_INFO_NS[doc.service];
  const prefix = PRES_INFO_PREFIX[doc.service];
  const presence = create({ version: '1.0', encoding: 'UTF-8' }).ele(PIDF_NS, 'presence').att('http://www.w3.org/2000/xmlns/', `xmlns:${prefix}`, ns).att('entity', doc.group);
  doc.members.forEach((m, i) => {
    const tuple = presence.ele(PIDF_NS, 'tuple').att('id', `member-${i + 1}`);
    tuple.ele(PIDF_NS, 'status').ele(ns, `${prefix}:affiliation`).att('group', doc.group).att('status', STATUS[m.state]);
    tuple.ele(PIDF_NS, 'contact').txt(m.userId);
  });
  return presence.end({ prettyPrint: false });
}

/** Whichever document a subscription watches (a user's own status, or a group's members). */
export function renderStatusDocument(doc: AffiliationStatusDocument | GroupAffiliationDocument): string {
  return 'members' in doc ? renderGroupAffiliation(doc) : renderAffiliationStatus(doc);
}

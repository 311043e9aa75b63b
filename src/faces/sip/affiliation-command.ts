// The affiliation command of TS 24.379 §9.2.1.4 / §9.2.1.5 and Annex F.4 (MCVideo: TS 24.281, MCData: TS 24.282):
// <command-list xmlns="urn:3gpp:ns:affiliationCommand:1.0"> with an <affiliate> and a <de-affiliate> list of <group>
// URIs, carried in a MESSAGE with an mcptt-info part naming the target (README "Remote change" says what was verified).
// Read with the safe XML reader (no DTD, no entities); written with xmlbuilder2. Pure: no rule decided here.
import { create } from 'xmlbuilder2';
import { MusterError, badInput } from '../../domain/errors.ts';
import { LIMITS } from '../../domain/flows.ts';
import { parseIdList } from '../../domain/parse-flows.ts';
import type { McUri } from '../../domain/ids.ts';
import type { McService } from '../../domain/services.ts';
import { childrenNamed, parseXmlDocument, XmlRefused, type XmlElement } from './xml-document.ts';

export const AFFILIATION_COMMAND_NS = 'urn:3gpp:ns:affiliationCommand:1.0';

/** One media type per MC service (IANA lists the MCPTT and MCData ones; MCVideo's follows the same pattern). */
export const AFFILIATION_COMMAND_TYPE: Readonly<Record<McService, string>> = {
  mcptt: 'application/vnd.3gpp.mcptt-affiliation-command+xml',
  mcvideo: 'application/vnd.3gpp.mcvideo-affiliation-command+xml',
  mcdata: 'application/vnd.3gpp.mcdata-affiliation-command+xml',
};

/** The mcptt-info document of each service (Annex F.1 and its MCVideo / MCData twins): type, namespace, element stem. */
export const MC_INFO: Readonly<Record<McService, { type: string; ns: string; stem: string }>> = {
  mcptt: { type: 'application/vnd.3gpp.mcptt-info+xml', ns: 'urn:3gpp:ns:mcpttInfo:1.0', stem: 'mcptt' },
  mcvideo: { type: 'application/vnd.3gpp.mcvideo-info+xml', ns: 'urn:3gpp:ns:mcvideoInfo:1.0', stem: 'mcvideo' },
  mcdata: { type: 'application/vnd.3gpp.mcdata-info+xml', ns: 'urn:3gpp:ns:mcdataInfo:1.0', stem: 'mcdata' },
};

export interface AffiliationCommand {
  affiliate: McUri[];
  deaffiliate: McUri[];
}

/** The MC service an affiliation-command media type belongs to, or undefined for any other type. */
export function serviceOfCommandType(mediaType: string): McService | undefined {
  return (Object.keys(AFFILIATION_COMMAND_TYPE) as McService[]).find((s) => AFFILIATION_COMMAND_TYPE[s] === mediaType);
}

/** Parses a command; bad XML or a bad group URI is a 400 naming the element (`affiliate[1]`, `de-affiliate[0]`). */
export function parseAffiliationCommand(text: string): AffiliationCommand {
  let root: XmlElement;
  try {
    root = parseXmlDocument(text);
  } catch (e) {
    if (e instanceof XmlRefused) throw badInput('affiliation-command', e.message);
    throw e;
  }
  if (root.ns !== AFFILIATION_COMMAND_NS || root.local !== 'command-list') throw badInput('affiliation-command', `root must be <command-list xmlns="${AFFILIATION_COMMAND_NS}">`);
  const groupsOf = (list: 'affiliate' | 'de-affiliate'): string[] => {
    const lists = childrenNamed(root, AFFILIATION_COMMAND_NS, list);
    if (lists.length > 1) throw badInput(list, `<${list}> appears more than once`);
    return lists.flatMap((l) => childrenNamed(l, AFFILIATION_COMMAND_NS, 'group').map((g) => g.text));
  };
  const rawAffiliate = groupsOf('affiliate');
  const rawDeaffiliate = groupsOf('de-affiliate');
  if (rawAffiliate.length + rawDeaffiliate.length > LIMITS.groupsPerRequest) throw new MusterError('too-large', `more than ${LIMITS.groupsPerRequest} groups in one affiliation command`);
  const affiliate = parseIdList(rawAffiliate, 'affiliate');
  const deaffiliate = parseIdList(rawDeaffiliate, 'de-affiliate');
  if (affiliate.length + deaffiliate.length === 0) throw badInput('affiliate', 'the command names no <group> to affiliate or de-affiliate');
  const both = affiliate.find((g) => deaffiliate.includes(g));
  if (both) throw badInput('de-affiliate', `${both} is also in <affiliate>`);
  return { affiliate, deaffiliate };
}

export function renderAffiliationCommand(cmd: AffiliationCommand): string {
  const root = create({ version: '1.0', encoding: 'UTF-8' }).ele(AFFILIATION_COMMAND_NS, 'command-list');
  for (const [list, groups] of [['affiliate', cmd.affiliate], ['de-affiliate', cmd.deaffiliate]] as const) {
    if (groups.length === 0) continue;
    const el = root.ele(AFFILIATION_COMMAND_NS, list);
    for (const g of groups) el.ele(AFFILIATION_COMMAND_NS, 'group').txt(g);
  }
  return root.end({ prettyPrint: false });
}

/** The mcptt-info part of the server's MESSAGE (§9.2.2.2.x): the target as request URI, the asking user as calling user. */
export function renderMcInfo(service: McService, requestUri: McUri, callingUserId: McUri): string {
  const { ns, stem } = MC_INFO[service];
  const params = create({ version: '1.0', encoding: 'UTF-8' }).ele(ns, `${stem}info`).ele(ns, `${stem}-Params`);
  params.ele(ns, `${stem}-request-uri`).att('type', 'Normal').ele(ns, `${stem}URI`).txt(requestUri);
  params.ele(ns, `${stem}-calling-user-id`).att('type', 'Normal').ele(ns, `${stem}URI`).txt(callingUserId);
  return params.end({ prettyPrint: false });
}

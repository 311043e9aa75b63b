// Reads the bodies of an affiliation PUBLISH / status SUBSCRIBE (TS 24.379 §9.2.1.2, §9.2.1.3):
// PIDF (RFC 3863) with the MC presence extension (TS 24.379 Annex F.2: urn:3gpp:ns:mcpttPresInfo:1.0),
// mcptt-info (Annex F.1), alone or in multipart/mixed (RFC 2046 §5.1). Parse only: no rule decided here.
import { MusterError } from '../../domain/errors.ts';
import { LIMITS } from '../../domain/flows.ts';
import { InvalidId, parseMcUri, type McUri } from '../../domain/ids.ts';
import type { McService } from '../../domain/services.ts';
import type { IncomingRequest } from './message.ts';
import { parseXmlDocument, childrenNamed, XmlRefused, type XmlElement } from './xml-document.ts';
import { parseMultipart, mediaType, utf8Text } from './multipart.ts';
import { SipRefusal } from './sip-refusal.ts';

export const PIDF_NS = 'urn:ietf:params:xml:ns:pidf';
export const PIDF_TYPE = 'application/pidf+xml';
/** The affiliation extension per service; MCData's namespace follows the same pattern (a choice, see README). */
export const PRES_INFO_NS: Readonly<Record<McService, string>> = {
  mcptt: 'urn:3gpp:ns:mcpttPresInfo:1.0',
  mcvideo: 'urn:3gpp:ns:mcvideoPresInfo:1.0',
  mcdata: 'urn:3gpp:ns:mcdataPresInfo:1.0',
};
export const PRES_INFO_PREFIX: Readonly<Record<McService, string>> = { mcptt: 'mcpttPI10', mcvideo: 'mcvideoPI10', mcdata: 'mcdataPI10' };
const INFO_TYPES = ['application/vnd.3gpp.mcptt-info+xml', 'application/vnd.3gpp.mcvideo-info+xml', 'application/vnd.3gpp.mcdata-info+xml'];

/** What a PIDF says: whose affiliations, from which client, the whole wanted set, and the publication's p-id. */
export interface PublishedAffiliations {
  entity: McUri;
  clientId: string | undefined;
  groups: McUri[];
  pId: string | undefined;
}

export interface AffiliationBody {
  pidf: PublishedAffiliations | undefined;
  /** The served MC service ID of the mcptt-info part (`mcptt-request-uri`), when there is one. */
  requestUri: McUri | undefined;
}

const bad = (why: string): MusterError => new MusterError('bad-request', why);

function id(raw: string | undefined, what: string): McUri {
  try {
    return parseMcUri(raw?.trim());
  } catch (e) {
    if (e instanceof InvalidId) throw bad(`${what}: ${e.why}`);
    throw e;
  }
}

function xml(text: string): XmlElement {
  try {
    return parseXmlDocument(text);
  } catch (e) {
    if (e instanceof XmlRefused) throw bad(e.message);
    throw e;
  }
}

/** The body of a request, split into its PIDF and mcptt-info parts; `requirePidf` gives 415 when there is none. */
export function readAffiliationBody(req: IncomingRequest, service: McService, opts: { requirePidf: boolean }): AffiliationBody {
  const type = req.headers.get('content-type');
  const parts = req.body.length === 0 ? [] : type && mediaType(type) === 'multipart/mixed' ? parseMultipart(req.body, type) : [{ type: type ? mediaType(type) : '', body: utf8Text(req.body) }];
  const pidfPart = parts.find((p) => p.type === PIDF_TYPE);
  const infoPart = parts.find((p) => INFO_TYPES.includes(p.type));
  if (opts.requirePidf && !pidfPart) throw new SipRefusal(415, 'no application/pidf+xml body', [['Accept', `${PIDF_TYPE}, multipart/mixed`]]);
  return { pidf: pidfPart ? parsePidf(pidfPart.body, service) : undefined, requestUri: infoPart ? parseRequestUri(infoPart.body) : undefined };
}

/** RFC 3863 <presence entity> with <tuple id><status><mcpttPI10:affiliation group/></status></tuple> and <mcpttPI10:p-id>. */
export function parsePidf(text: string, service: McService): PublishedAffiliations {
  const root = xml(text);
  if (root.ns !== PIDF_NS || root.local !== 'presence') throw bad(`PIDF root must be <presence xmlns="${PIDF_NS}">`);
  const entity = id(root.attrs.get('entity')?.replace(/^pres:/i, 'sip:'), 'presence entity');
  const ext = PRES_INFO_NS[service];
  const tuples = childrenNamed(root, PIDF_NS, 'tuple');
  const groups: McUri[] = [];
  let clientId: string | undefined;
  let pId = childrenNamed(root, ext, 'p-id')[0]?.text;
  for (const tuple of tuples) {
    clientId ??= tuple.attrs.get('id');
    pId ??= childrenNamed(tuple, ext, 'p-id')[0]?.text;
    const holders = [tuple, ...childrenNamed(tuple, PIDF_NS, 'status')];
    for (const holder of holders) {
      for (const a of childrenNamed(holder, ext, 'affiliation')) {
        const g = id(a.attrs.get('group'), 'affiliation group');
        if (!groups.includes(g)) groups.push(g);
      }
    }
  }
  if (groups.length > LIMITS.groupsPerRequest) throw new MusterError('too-large', `more than ${LIMITS.groupsPerRequest} groups in one PUBLISH`);
  if (pId !== undefined && (pId.length > 128 || !/^[\x21-\x7e]+$/.test(pId))) throw bad('p-id must be at most 128 visible ASCII characters');
  return { entity, clientId, groups, pId };
}

/** TS 24.379 Annex F.1: <mcpttinfo><mcptt-Params><mcptt-request-uri><mcpttURI>sip:…</mcpttURI>… (any MC service's spelling). */
export function parseRequestUri(text: string): McUri | undefined {
  const root = xml(text);
  if (!/^(mcptt|mcvideo|mcdata)info$/.test(root.local)) throw bad('mcptt-info root must be <mcpttinfo>');
  for (const params of root.children.filter((c) => /-Params$/.test(c.local))) {
    for (const r of params.children.filter((c) => /-request-uri$/.test(c.local))) {
      const uri = r.children.find((c) => /URI$/.test(c.local));
      if (uri) return id(uri.text, 'mcptt-request-uri');
    }
  }
  return undefined;
}

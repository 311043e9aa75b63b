// XML bodies (PIDF RFC 3863, mcptt-info TS 24.379 Annex F) read safely: no DOCTYPE, no entity expansion
// (processEntities off; only the five predefined entities and character references are decoded, by hand),
// bounded size and nesting; element names resolved to {namespace, local name} (Namespaces in XML 1.0).
// A pure parser: no I/O, no logging.
import { XMLParser, XMLValidator } from 'fast-xml-parser';

export const XML_LIMITS = { bytes: 32 * 1024, depth: 16, elements: 2000 } as const;

export class XmlRefused extends Error {}

export interface XmlElement {
  ns: string | undefined;
  local: string;
  /** Attributes without a prefix, by name (namespaced attributes are not needed by the documents we read). */
  attrs: ReadonlyMap<string, string>;
  children: XmlElement[];
  text: string;
}

const parser = new XMLParser({
  preserveOrder: true,
  ignoreAttributes: false,
  attributeNamePrefix: '',
  processEntities: false,
  htmlEntities: false,
  parseTagValue: false,
  parseAttributeValue: false,
  trimValues: true,
  ignoreDeclaration: true,
  ignorePiTags: true,
  maxNestedTags: XML_LIMITS.depth,
});

/** The shape fast-xml-parser returns with preserveOrder: one key per node (its name), attributes under ':@'. */
type OrderedNode = Record<string, unknown>;

export function parseXmlDocument(text: string): XmlElement {
  if (Buffer.byteLength(text, 'utf8') > XML_LIMITS.bytes) throw new XmlRefused(`XML body larger than ${XML_LIMITS.bytes} bytes`);
  // No DTD at all: refused before any parser sees it (billion laughs, external entities).
  if (/<!DOCTYPE|<!ENTITY|<!ELEMENT|<!ATTLIST/i.test(text)) throw new XmlRefused('DOCTYPE and entity declarations are not allowed');
  if (depthOf(text) > XML_LIMITS.depth) throw new XmlRefused(`XML nested deeper than ${XML_LIMITS.depth}`);
  const valid = XMLValidator.validate(text);
  if (valid !== true) throw new XmlRefused(`malformed XML: ${valid.err.msg} (line ${valid.err.line})`);
  let nodes: unknown;
  try {
    nodes = parser.parse(text);
  } catch (e) {
    throw new XmlRefused(`malformed XML: ${e instanceof Error ? e.message : String(e)}`);
  }
  const roots = (Array.isArray(nodes) ? (nodes as OrderedNode[]) : []).filter((n) => elementName(n) !== undefined);
  if (roots.length !== 1) throw new XmlRefused('XML document must have exactly one root element');
  const budget = { left: XML_LIMITS.elements };
  return toElement(roots[0]!, new Map([['xml', 'http://www.w3.org/XML/1998/namespace']]), budget);
}

function elementName(node: OrderedNode): string | undefined {
  return Object.keys(node).find((k) => k !== ':@' && k !== '#text');
}

function toElement(node: OrderedNode, scope: ReadonlyMap<string, string>, budget: { left: number }): XmlElement {
  if (--budget.left < 0) throw new XmlRefused(`more than ${XML_LIMITS.elements} XML elements`);
  const name = elementName(node)!;
  const rawAttrs = (node[':@'] ?? {}) as Record<string, string>;
  const inner = new Map(scope);
  const attrs = new Map<string, string>();
  for (const [k, v] of Object.entries(rawAttrs)) {
    if (k === 'xmlns') inner.set('', decodeEntities(v));
    else if (k.startsWith('xmlns:')) inner.set(k.slice(6), decodeEntities(v));
    else if (!k.includes(':')) attrs.set(k, decodeEntities(v));
  }
  const colon = name.indexOf(':');
  const prefix = colon < 0 ? '' : name.slice(0, colon);
  const ns = inner.get(prefix);
  if (prefix !== '' && ns === undefined) throw new XmlRefused(`undeclared namespace prefix ${prefix}`);
  const children: XmlElement[] = [];
  let text = '';
  for (const child of (node[name] ?? []) as OrderedNode[]) {
    if (typeof child['#text'] === 'string' || typeof child['#text'] === 'number') text += decodeEntities(String(child['#text']));
    else if (elementName(child) !== undefined) children.push(toElement(child, inner, budget));
  }
  return { ns, local: colon < 0 ? name : name.slice(colon + 1), attrs, children, text };
}

/** The predefined entities and character references (XML 1.0 §4.6, §4.1); nothing else is expanded. */
export function decodeEntities(s: string): string {
  return s.replace(/&(lt|gt|amp|quot|apos|#[0-9]{1,7}|#x[0-9A-Fa-f]{1,6});/g, (_m, e: string) => {
    switch (e) {
      case 'lt':
        return '<';
      case 'gt':
        return '>';
      case 'amp':
        return '&';
      case 'quot':
        return '"';
      case 'apos':
        return "'";
      default: {
        const code = e.startsWith('#x') ? parseInt(e.slice(2), 16) : parseInt(e.slice(1), 10);
        return code > 0 && code <= 0x10ffff ? String.fromCodePoint(code) : '';
      }
    }
  });
}

/** Maximum element nesting, by a scan that respects quoted attribute values, comments and CDATA. */
function depthOf(text: string): number {
  let depth = 0;
  let max = 0;
  let i = 0;
  while (i < text.length) {
    const lt = text.indexOf('<', i);
    if (lt < 0) break;
    if (text.startsWith('<!--', lt)) {
      const end = text.indexOf('-->', lt + 4);
      i = end < 0 ? text.length : end + 3;
      continue;
    }
    if (text.startsWith('<![CDATA[', lt)) {
      const end = text.indexOf(']]>', lt + 9);
      i = end < 0 ? text.length : end + 3;
      continue;
    }
    let j = lt + 1;
    let quote = '';
    while (j < text.length) {
      const c = text[j]!;
      if (quote) {
        if (c === quote) quote = '';
      } else if (c === '"' || c === "'") quote = c;
      else if (c === '>') break;
      j++;
    }
    const tag = text.slice(lt + 1, j);
    if (tag.startsWith('/')) depth--;
    else if (!tag.startsWith('?') && !tag.startsWith('!') && !tag.endsWith('/')) max = Math.max(max, ++depth);
    i = j + 1;
  }
  return max;
}

export function childrenNamed(el: XmlElement, ns: string | readonly string[], local: string): XmlElement[] {
  const spaces = typeof ns === 'string' ? [ns] : ns;
  return el.children.filter((c) => c.local === local && c.ns !== undefined && spaces.includes(c.ns));
}

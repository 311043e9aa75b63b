// XML bodies (PIDF RFC 3863, mcptt-info TS 24.379 Annex F) read safely: no DOCTYPE, no entity expansion (saxes
// decodes only the five predefined entities and character references; any other reference is an error), bounded
// size, nesting and element count; element names resolved to {namespace, local name} (Namespaces in XML 1.0).
// saxes is a strict, non-validating, one-pass parser (jsdom's): well-formedness is checked in the same pass that
// builds the tree (issue 6's profile had a validator, a parser, a depth scan and a conversion: four passes, 9 % of
// the PUBLISH load). A pure parser: no I/O, no logging.
import { SaxesParser, type SaxesTagNS } from 'saxes';

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

export function parseXmlDocument(text: string): XmlElement {
  if (text.length > XML_LIMITS.bytes || Buffer.byteLength(text, 'utf8') > XML_LIMITS.bytes) throw new XmlRefused(`XML body larger than ${XML_LIMITS.bytes} bytes`);
  // No DTD at all: refused before anything is read (billion laughs, external entities).
  if (/<!DOCTYPE|<!ENTITY|<!ELEMENT|<!ATTLIST/i.test(text)) throw new XmlRefused('DOCTYPE and entity declarations are not allowed');
  const parser = new SaxesParser({ xmlns: true });
  const stack: XmlElement[] = [];
  let root: XmlElement | undefined;
  let elements = 0;
  // saxes reports errors through this handler; throwing stops the parse at the first one.
  parser.on('error', (e) => {
    throw new XmlRefused(`malformed XML: ${e.message}`);
  });
  parser.on('doctype', () => {
    throw new XmlRefused('DOCTYPE and entity declarations are not allowed');
  });
  parser.on('opentag', (tag: SaxesTagNS) => {
    if (++elements > XML_LIMITS.elements) throw new XmlRefused(`more than ${XML_LIMITS.elements} XML elements`);
    if (stack.length >= XML_LIMITS.depth) throw new XmlRefused(`XML nested deeper than ${XML_LIMITS.depth}`);
    const attrs = new Map<string, string>();
    for (const a of Object.values(tag.attributes)) if (a.prefix === '' && a.local !== 'xmlns') attrs.set(a.local, a.value.trim());
    const el: XmlElement = { ns: tag.uri === '' ? undefined : tag.uri, local: tag.local, attrs, children: [], text: '' };
    const parent = stack[stack.length - 1];
    if (parent) parent.children.push(el);
    else root = el;
    stack.push(el);
  });
  parser.on('text', (t) => {
    const el = stack[stack.length - 1];
    if (el) el.text += t.trim(); // each run of text between children, trimmed
  });
  parser.on('cdata', (t) => {
    const el = stack[stack.length - 1];
    if (el) el.text += t.trim();
  });
  parser.on('closetag', () => void stack.pop());
  try {
    parser.write(text).close();
  } catch (e) {
    if (e instanceof XmlRefused) throw e;
    throw new XmlRefused(`malformed XML: ${e instanceof Error ? e.message : String(e)}`);
  }
  if (!root) throw new XmlRefused('XML document must have exactly one root element');
  return root;
}

export function childrenNamed(el: XmlElement, ns: string | readonly string[], local: string): XmlElement[] {
  const spaces = typeof ns === 'string' ? [ns] : ns;
  return el.children.filter((c) => c.local === local && c.ns !== undefined && spaces.includes(c.ns));
}

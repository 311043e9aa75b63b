// XML bodies (PIDF RFC 3863, mcptt-info TS 24.379 Annex F) read safely: no DOCTYPE, no entity expansion (only the
// five predefined entities and character references are decoded; any other reference is refused), bounded size,
// nesting and element count; element names resolved to {namespace, local name} (Namespaces in XML 1.0).
// One pass over the text checks well-formedness (XML 1.0 §2.1: one root, matching tags, quoted and unique attributes)
// and builds the tree: issue 6's profile had fast-xml-parser's validator, its parser, a depth scan and the tree
// conversion as four passes, 9 % of the PUBLISH load. A pure parser: no I/O, no logging.

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

/** XML 1.0 §2.3 Name, close enough for the documents we read (any non-ASCII letter allowed). */
const NAME = /[A-Za-z_:\u00C0-\uFFFF][\w.\-:\u00B7\u00C0-\uFFFF]*/y;
/** A reference that is not one of the predefined entities or a character reference: an undeclared entity. */
const UNDECLARED_REFERENCE = /&(?!(?:lt|gt|amp|quot|apos|#[0-9]{1,7}|#x[0-9A-Fa-f]{1,6});)/;
/** §2.8 XMLDecl: version, encoding, standalone as quoted pseudo-attributes. */
const DECLARATION = /<\?xml(?:[ \t\r\n]+[A-Za-z]+[ \t\r\n]*=[ \t\r\n]*(?:"[^"<?]*"|'[^'<?]*'))*[ \t\r\n]*\?>/y;
const XML_NS = new Map([['xml', 'http://www.w3.org/XML/1998/namespace']]);

/** An element being read: its tree node, its raw name (for the end tag) and its namespace declarations. */
interface Open {
  el: XmlElement;
  name: string;
  scope: Scope;
}
/** Namespace declarations of one element, falling back to the enclosing element's. */
interface Scope {
  decls: Map<string, string> | undefined;
  parent: Scope | undefined;
}

export function parseXmlDocument(text: string): XmlElement {
  if (text.length > XML_LIMITS.bytes || Buffer.byteLength(text, 'utf8') > XML_LIMITS.bytes) throw new XmlRefused(`XML body larger than ${XML_LIMITS.bytes} bytes`);
  // No DTD at all: refused before anything is read (billion laughs, external entities).
  if (/<!DOCTYPE|<!ENTITY|<!ELEMENT|<!ATTLIST/i.test(text)) throw new XmlRefused('DOCTYPE and entity declarations are not allowed');
  return new XmlReader(text).document();
}

class XmlReader {
  private i = 0;
  private elements = 0;
  private readonly stack: Open[] = [];
  private root: XmlElement | undefined;
  /** Text of the element being read, as trimmed segments between its children. */
  private text = '';

  constructor(private readonly s: string) {}

  document(): XmlElement {
    const s = this.s;
    if (s.charCodeAt(0) === 0xfeff) this.i = 1;
    // §2.8: the XML declaration, only at the very start.
    if (s.startsWith('<?xml', this.i) && /[\s?]/.test(s[this.i + 5] ?? '')) {
      DECLARATION.lastIndex = this.i;
      const m = DECLARATION.exec(s);
      if (!m) throw new XmlRefused('malformed XML: XML declaration');
      this.i += m[0].length;
    }
    while (this.i < s.length) {
      const lt = s.indexOf('<', this.i);
      const chunk = s.slice(this.i, lt < 0 ? s.length : lt);
      if (this.stack.length > 0) this.addText(chunk);
      else if (chunk.trim() !== '') throw new XmlRefused('malformed XML: text outside the root element');
      if (lt < 0) break;
      this.i = lt;
      if (s.startsWith('<!--', lt)) this.skipPast('-->', 'comment', lt + 4);
      else if (s.startsWith('<![CDATA[', lt)) {
        if (this.stack.length === 0) throw new XmlRefused('malformed XML: CDATA outside the root element');
        const end = s.indexOf(']]>', lt + 9);
        if (end < 0) throw new XmlRefused('malformed XML: unclosed CDATA section');
        this.text += s.slice(lt + 9, end); // character data as written, not trimmed
        this.i = end + 3;
      } else if (s.startsWith('<?', lt)) {
        this.i += 2;
        // §2.6: a processing instruction starts with its target's name; "xml" is reserved.
        if (this.name().toLowerCase() === 'xml') throw new XmlRefused('malformed XML: XML declaration allowed only at the start');
        if (!this.skipSpace() && !s.startsWith('?>', this.i)) throw new XmlRefused('malformed XML: processing instruction target');
        this.skipPast('?>', 'processing instruction', this.i);
      } else if (s.startsWith('</', lt)) this.endTag();
      else if (s.startsWith('<!', lt)) throw new XmlRefused('malformed XML: unexpected <! markup');
      else this.startTag();
    }
    if (this.stack.length > 0) throw new XmlRefused(`malformed XML: <${this.stack[this.stack.length - 1]!.name}> is not closed`);
    if (!this.root) throw new XmlRefused('XML document must have exactly one root element');
    return this.root;
  }

  private skipPast(end: string, what: string, from: number): void {
    const at = this.s.indexOf(end, from);
    if (at < 0) throw new XmlRefused(`malformed XML: unclosed ${what}`);
    this.i = at + end.length;
  }

  private addText(raw: string): void {
    const t = raw.trim();
    if (t === '') return;
    if (UNDECLARED_REFERENCE.test(t)) throw new XmlRefused('malformed XML: a reference to an undeclared entity, or a bare &');
    if (t.includes(']]>')) throw new XmlRefused('malformed XML: ]]> in text');
    this.text += decodeEntities(t);
  }

  private name(): string {
    NAME.lastIndex = this.i;
    const m = NAME.exec(this.s);
    if (!m) throw new XmlRefused(`malformed XML: a name expected at offset ${this.i}`);
    this.i += m[0].length;
    return m[0];
  }

  private skipSpace(): boolean {
    const from = this.i;
    for (let c = this.s.charCodeAt(this.i); c === 0x20 || c === 0x9 || c === 0xa || c === 0xd; c = this.s.charCodeAt(++this.i));
    return this.i > from;
  }

  private startTag(): void {
    const s = this.s;
    if (this.root && this.stack.length === 0) throw new XmlRefused('XML document must have exactly one root element');
    if (this.stack.length >= XML_LIMITS.depth) throw new XmlRefused(`XML nested deeper than ${XML_LIMITS.depth}`);
    if (++this.elements > XML_LIMITS.elements) throw new XmlRefused(`more than ${XML_LIMITS.elements} XML elements`);
    this.i++;
    const name = this.name();
    const raw = new Map<string, string>();
    let selfClosing = false;
    for (;;) {
      const spaced = this.skipSpace();
      if (s.startsWith('/>', this.i)) {
        selfClosing = true;
        this.i += 2;
        break;
      }
      if (s[this.i] === '>') {
        this.i++;
        break;
      }
      if (this.i >= s.length) throw new XmlRefused(`malformed XML: <${name}> is not closed`);
      if (!spaced) throw new XmlRefused(`malformed XML: space expected between attributes of <${name}>`);
      const attr = this.name();
      this.skipSpace();
      if (s[this.i] !== '=') throw new XmlRefused(`malformed XML: attribute ${attr} has no value`);
      this.i++;
      this.skipSpace();
      const quote = s[this.i];
      if (quote !== '"' && quote !== "'") throw new XmlRefused(`malformed XML: value of attribute ${attr} is not quoted`);
      const end = s.indexOf(quote, this.i + 1);
      if (end < 0) throw new XmlRefused(`malformed XML: value of attribute ${attr} is not closed`);
      const value = s.slice(this.i + 1, end);
      if (value.includes('<') || UNDECLARED_REFERENCE.test(value)) throw new XmlRefused(`malformed XML: value of attribute ${attr} holds < or an undeclared entity`);
      if (raw.has(attr)) throw new XmlRefused(`malformed XML: attribute ${attr} is repeated`);
      raw.set(attr, value.trim()); // trimmed, as fast-xml-parser (trimValues) gave them before
      this.i = end + 1;
    }
    const parent = this.stack[this.stack.length - 1];
    const scope: Scope = { decls: undefined, parent: parent?.scope };
    const attrs = new Map<string, string>();
    for (const [k, v] of raw) {
      if (k === 'xmlns') (scope.decls ??= new Map()).set('', decodeEntities(v));
      else if (k.startsWith('xmlns:')) (scope.decls ??= new Map()).set(k.slice(6), decodeEntities(v));
      else if (!k.includes(':')) attrs.set(k, decodeEntities(v));
    }
    const colon = name.indexOf(':');
    const prefix = colon < 0 ? '' : name.slice(0, colon);
    const ns = resolve(scope, prefix);
    if (prefix !== '' && ns === undefined) throw new XmlRefused(`undeclared namespace prefix ${prefix}`);
    const el: XmlElement = { ns, local: colon < 0 ? name : name.slice(colon + 1), attrs, children: [], text: '' };
    if (parent) {
      parent.el.children.push(el);
      parent.el.text = this.text; // the parent's text so far; it goes on after this child
    } else this.root = el;
    this.text = '';
    if (selfClosing) this.text = parent ? parent.el.text : '';
    else this.stack.push({ el, name, scope });
  }

  private endTag(): void {
    this.i += 2;
    const name = this.name();
    this.skipSpace();
    if (this.s[this.i] !== '>') throw new XmlRefused(`malformed XML: end tag </${name}> is not closed`);
    this.i++;
    const open = this.stack.pop();
    if (!open || open.name !== name) throw new XmlRefused(`malformed XML: </${name}> does not close ${open ? `<${open.name}>` : 'any element'}`);
    open.el.text = this.text;
    this.text = this.stack.length > 0 ? this.stack[this.stack.length - 1]!.el.text : '';
  }
}

function resolve(scope: Scope | undefined, prefix: string): string | undefined {
  for (let s = scope; s; s = s.parent) {
    const ns = s.decls?.get(prefix);
    if (ns !== undefined) return ns;
  }
  return XML_NS.get(prefix);
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

export function childrenNamed(el: XmlElement, ns: string | readonly string[], local: string): XmlElement[] {
  const spaces = typeof ns === 'string' ? [ns] : ns;
  return el.children.filter((c) => c.local === local && c.ns !== undefined && spaces.includes(c.ns));
}

// Via (RFC 9110 7.6.3): the intermediaries a request has passed, one list element each,
// `received-protocol RWS received-by [ RWS comment ]`. The intermediate signalling node reads it to find a relay loop
// and adds itself (intermediate-node.ts); this file only parses, it neither logs nor answers.

export interface ViaEntry {
  /** `[ protocol-name "/" ] protocol-version`: "1.1" for HTTP/1.1, or e.g. "HTTP/1.1". */
  receivedProtocol: string;
  /** `pseudonym [ ":" port ]`, or a host with a port: who received it (a Muster node gives its domain). */
  receivedBy: string;
}

const TCHAR = "[!#$%&'*+.^_`|~0-9A-Za-z-]";
const RECEIVED_PROTOCOL = new RegExp(`^(?:${TCHAR}+/)?${TCHAR}+$`);
// RFC 7230's uri-host allowed an IP-literal; RFC 9110 kept only the token, so accept both.
const RECEIVED_BY = new RegExp(`^(?:${TCHAR}+|\\[[0-9A-Fa-f:.]+\\])(?::[0-9]*)?$`);
/** Controls other than HTAB, which no part of the field may hold. */
const CONTROL = /[^\P{Cc}\t]/u;

/**
 * The entries of a Via field value (Node joins repeated fields with ", "), in the order they were added; none for an
 * absent field; undefined when it is malformed. Comments (which may nest and hold commas) and empty elements are skipped.
 */
export function parseVia(value: string | undefined): ViaEntry[] | undefined {
  if (value === undefined) return [];
  if (CONTROL.test(value)) return undefined;
  const entries: ViaEntry[] = [];
  let element = '';
  /** Set after an element's comment: only whitespace may follow it. */
  let commented = false;
  const endElement = (): boolean => {
    const words = element.split(/[ \t]+/).filter((w) => w !== '');
    const [receivedProtocol, receivedBy] = words;
    element = '';
    if (words.length === 0 && !commented) return true; // an empty list element
    commented = false;
    if (words.length !== 2 || !RECEIVED_PROTOCOL.test(receivedProtocol!) || !RECEIVED_BY.test(receivedBy!)) return false;
    entries.push({ receivedProtocol: receivedProtocol!, receivedBy: receivedBy! });
    return true;
  };
  let depth = 0;
  for (let i = 0; i < value.length; i++) {
    const c = value[i]!;
    if (depth > 0) {
      if (c === '\\') i++; // a quoted-pair
      else if (c === '(') depth++;
      else if (c === ')') depth--;
    } else if (c === ',') {
      if (!endElement()) return undefined;
    } else if (c === '(') {
      depth = 1;
      commented = true;
    } else if (c === ')' || (commented && c !== ' ' && c !== '\t')) {
      return undefined;
    } else element += c;
  }
  return depth === 0 && endElement() ? entries : undefined;
}

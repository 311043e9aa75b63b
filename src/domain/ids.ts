// MC service IDs and MC service group IDs (TS 23.280 clause 3): URIs whose domain names the home MC system.

/** A URI in canonical spelling: scheme and host lower-cased, so two spellings of one URI are one ID. */
export type McUri = string & { readonly __mcUri: unique symbol };

const SIP_URI = /^(sips?):([^@\s;?<>"]+)@([A-Za-z0-9.-]+)$/;
const TEL_URI = /^(tel):(\+?[0-9][0-9.()-]*)$/;
const MAX_URI_LENGTH = 256;
/** C0 and C1 controls, DEL, zero-width and bidirectional formatting marks: invisible, and NUL breaks PostgreSQL text. */
// eslint-disable-next-line no-control-regex -- finding control characters is the point
const CONTROL_OR_INVISIBLE = /[\u0000-\u001f\u007f-\u009f\u200b-\u200f\u202a-\u202e\u2060-\u2069\ufeff]/;

/** In `u` mode \p{Cs} matches only a surrogate that is not half of a pair. */
const LONE_SURROGATE = /\p{Cs}/u;
const NOT_WELL_FORMED = 'must be well-formed Unicode (no lone surrogate)';
/**
 * C0 controls, DEL and C1 controls (Unicode's Cc), and the line and paragraph separators (Zl, Zp): none belongs in
 * one line of text, and NUL breaks PostgreSQL text.
 */
const CONTROL = /[\p{Cc}\p{Zl}\p{Zp}]/u;

export class InvalidId extends Error {
  constructor(readonly why: string) {
    super(why);
  }
}

/**
 * IDs parsed lately, as sent → canonical: clients name the same users and groups again and again, and parsing them
 * was 2 % of bench 1's main thread. Bounded: emptied when full, so any set of IDs costs at most PARSED_MAX entries.
 */
const parsed = new Map<string, McUri>();
const PARSED_MAX = 65_536;

/** Parses and normalises an ID; throws InvalidId with the reason when it is not an MC URI. */
export function parseMcUri(raw: unknown): McUri {
  if (typeof raw !== 'string') throw new InvalidId('must be a string');
  const known = parsed.get(raw);
  if (known !== undefined) return known;
  const id = parseString(raw);
  if (parsed.size >= PARSED_MAX) parsed.clear();
  parsed.set(raw, id);
  return id;
}

function parseString(raw: string): McUri {
  if (raw.length === 0) throw new InvalidId('must not be empty');
  if (raw.length > MAX_URI_LENGTH) throw new InvalidId(`must be at most ${MAX_URI_LENGTH} characters`);
  if (CONTROL_OR_INVISIBLE.test(raw)) throw new InvalidId('must not contain control characters or invisible formatting marks');
  // A lone surrogate has no UTF-8 form: stores and partners would hold U+FFFD, another ID than this one.
  if (LONE_SURROGATE.test(raw)) throw new InvalidId(NOT_WELL_FORMED);
  const sip = SIP_URI.exec(raw.replace(/^SIPS?:/i, (s) => s.toLowerCase()));
  if (sip) {
    const user = sip[2]!;
    const host = sip[3]!;
    if (host.startsWith('.') || host.endsWith('.') || host.includes('..')) throw new InvalidId('has a malformed domain');
    // RFC 3261 19.1.4: the user part compares case-sensitively, the host does not; sips and sip name one user here.
    return `sip:${user}@${host.toLowerCase()}` as McUri;
  }
  const tel = TEL_URI.exec(raw.replace(/^TEL:/i, 'tel:'));
  if (tel) return `tel:${tel[2]!.replace(/[.()-]/g, '')}` as McUri;
  throw new InvalidId('must be a sip: URI (sip:name@domain) or a tel: URI');
}

/**
 * Why `raw` is not one line of text (a display name) that stores and partners hold as sent, or undefined when it is:
 * IDs refuse the same characters (and invisible marks, which a name in a right-to-left script may need).
 */
export function lineTextFault(raw: string): string | undefined {
  if (CONTROL.test(raw)) return 'must not contain control characters or line breaks (C0, DEL, C1, U+2028, U+2029: it is one line of text)';
  if (LONE_SURROGATE.test(raw)) return NOT_WELL_FORMED;
  return undefined;
}

export function isMcUri(raw: unknown): raw is McUri {
  try {
    return parseMcUri(raw) === raw;
  } catch {
    return false;
  }
}

/** The domain of an ID: the MC system that is home to the user or the group. tel: URIs have none. */
export function domainOf(id: McUri): string | undefined {
  const at = id.lastIndexOf('@');
  return at < 0 ? undefined : id.slice(at + 1);
}

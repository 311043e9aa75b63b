// Issue 7: hostile input on the SIP face. fast-check drives the parser, the TCP framer and the PIDF reader with
// arbitrary and mutated input: each either yields a value or refuses with its own error, never anything else.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { parseMessage, SipParseError } from '../../src/faces/sip/parser.ts';
import { StreamFramer } from '../../src/faces/sip/stream-framer.ts';
import { parsePidf } from '../../src/faces/sip/affiliation-document.ts';
import { XmlRefused } from '../../src/faces/sip/xml-document.ts';

const VALID = [
  'PUBLISH sip:mc-server@police.example SIP/2.0',
  'Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-1;rport',
  'From: <sip:alice@police.example>;tag=a1',
  'To: <sip:mc-server@police.example>',
  'Call-ID: call-1@host',
  'CSeq: 3 PUBLISH',
  'Event: presence',
  'Content-Type: application/pidf+xml',
  'Content-Length: 5',
  '',
  'hello',
].join('\r\n');

const PIDF = '<?xml version="1.0"?><presence xmlns="urn:ietf:params:xml:ns:pidf" xmlns:mcpttPI10="urn:3gpp:ns:mcpttPresInfo:1.0" entity="sip:alice@police.example"><tuple id="t"><status><mcpttPI10:affiliation group="sip:patrol@police.example"/></status></tuple></presence>';

/** A valid text with a few characters replaced, inserted or cut: near misses find more than pure noise. */
const mutated = (base: string): fc.Arbitrary<string> =>
  fc.array(fc.tuple(fc.nat(base.length), fc.nat(3), fc.string({ maxLength: 8 })), { maxLength: 6 }).map((edits) => {
    let s = base;
    for (const [at, kind, text] of edits) {
      const i = Math.min(at, s.length);
      s = kind === 0 ? s.slice(0, i) + text + s.slice(i) : kind === 1 ? s.slice(0, i) + s.slice(i + text.length + 1) : kind === 2 ? s.slice(0, i) : s.slice(0, i) + text + s.slice(i + 1);
    }
    return s;
  });

function parseOrRefuse(bytes: Buffer): void {
  try {
    parseMessage(bytes);
  } catch (e) {
    if (!(e instanceof SipParseError)) throw e;
  }
}

void test('the SIP parser returns a message or a SipParseError for arbitrary bytes and near-miss messages', () => {
  fc.assert(fc.property(fc.uint8Array({ maxLength: 2048 }), (b) => parseOrRefuse(Buffer.from(b))), { numRuns: 2000 });
  fc.assert(fc.property(mutated(VALID), (s) => parseOrRefuse(Buffer.from(s))), { numRuns: 2000 });
});

void test('the TCP framer cuts arbitrary chunks into messages or errors without throwing', () => {
  fc.assert(
    fc.property(fc.array(fc.oneof(fc.uint8Array({ maxLength: 512 }), mutated(VALID).map((s) => Buffer.from(s))), { maxLength: 20 }), (chunks) => {
      const framer = new StreamFramer();
      for (const c of chunks) {
        const out = framer.push(Buffer.from(c));
        for (const o of out) assert.ok(o.kind === 'message' || o.kind === 'error');
      }
    }),
    { numRuns: 500 },
  );
});

void test('the PIDF reader returns affiliations or refuses (XmlRefused/Error) for mutated and hostile documents', () => {
  const hostile = fc.constantFrom(
    '<!DOCTYPE x [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;">]><presence>&b;</presence>',
    '<?xml version="1.0"?><!DOCTYPE presence SYSTEM "file:///etc/passwd"><presence/>',
    '<presence>' + '<a>'.repeat(100) + '</a>'.repeat(100) + '</presence>',
    '<presence xmlns="urn:ietf:params:xml:ns:pidf">' + '<tuple/>'.repeat(5000) + '</presence>',
  );
  fc.assert(
    fc.property(fc.oneof(mutated(PIDF), hostile, fc.string({ maxLength: 300 })), (text) => {
      try {
        const r = parsePidf(text, 'mcptt');
        assert.ok(Array.isArray(r.groups));
      } catch (e) {
        assert.ok(e instanceof XmlRefused || e instanceof Error, String(e));
        assert.ok(!(e instanceof TypeError) && !(e instanceof RangeError), `crashed rather than refused: ${String(e)}`);
      }
    }),
    { numRuns: 1500 },
  );
});

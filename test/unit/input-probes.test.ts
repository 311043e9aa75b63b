// Input a security review's probes found accepted (each failed on the code before): SIP header fields repeated with
// different values, control characters and non-UTF-8 bytes in them; TCP framing with two Content-Lengths; SIP bodies
// that are not UTF-8; IDs with a lone surrogate; credentials with "bearer" in lower case or a subject that is no ID;
// partner server credentials with "bearer" in lower case; group display names with control characters.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseMessage, SipParseError } from '../../src/faces/sip/parser.ts';
import { StreamFramer } from '../../src/faces/sip/stream-framer.ts';
import { utf8Text } from '../../src/faces/sip/multipart.ts';
import { InvalidId, parseMcUri } from '../../src/domain/ids.ts';
import { CredentialVerifier, issueToken } from '../../src/faces/http/credentials.ts';
import { MusterError } from '../../src/domain/errors.ts';
import { PartnerGate } from '../../src/adapters/partner-gate.ts';
import { parseDisplayName } from '../../src/domain/parse-flows.ts';
import type { PartnerConfig } from '../../src/config/config.ts';

const D = 'police.example';
const HEAD = [
  `PUBLISH sip:mc-server@${D} SIP/2.0`,
  'Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-1',
  `From: <sip:alice@${D}>;tag=a1`,
  `To: <sip:mc-server@${D}>`,
  'Call-ID: call-1',
  'CSeq: 1 PUBLISH',
  'Event: presence',
];
const msg = (extra: string[], body = ''): Buffer => Buffer.from([...HEAD, ...extra, `Content-Length: ${Buffer.byteLength(body)}`].join('\r\n') + '\r\n\r\n' + body);

/** A parse error that still carries the headers, so the UAS answers it with a stateless 400. */
function refused(bytes: Buffer, why: RegExp): void {
  assert.throws(
    () => parseMessage(bytes),
    (e: unknown) => e instanceof SipParseError && why.test(e.message) && e.headers?.get('call-id') !== undefined,
  );
}

void test('SIP: a single-valued header repeated with different values is refused (two Expires removed a publication)', () => {
  refused(msg(['Expires: 0', 'Expires: 3600']), /expires header repeated/);
  refused(msg([`From: <sip:bob@${D}>;tag=b1`]), /from header repeated/);
  refused(msg(['i: call-2']), /call-id header repeated/);
  refused(msg(['l: 5']), /content-length header repeated/);
  // The same value twice is not ambiguous; Via and other list headers repeat freely.
  assert.equal(parseMessage(msg(['Expires: 60', 'Expires: 60', 'Via: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bK-0'])).headers.get('expires'), '60');
});

void test('SIP: control characters and non-UTF-8 bytes in header fields are refused (a NUL Call-ID was a 500 on PostgreSQL)', () => {
  refused(Buffer.from(msg([]).toString().replace('Call-ID: call-1', 'Call-ID: call\u00001')), /control character 0x00/);
  refused(Buffer.from(msg([]).toString().replace(';tag=a1', ';tag=a\u00071')), /control character 0x07/);
  const bad = Buffer.concat([Buffer.from(`${HEAD.join('\r\n')}\r\nP-Asserted-Identity: <sip:al`), Buffer.from([0xff]), Buffer.from(`ice@${D}>\r\nContent-Length: 0\r\n\r\n`)]);
  refused(bad, /not valid UTF-8/);
  // HTAB stays allowed (linear white space), and so does UTF-8 text.
  assert.equal(parseMessage(msg(['Subject:\tcafé'])).headers.get('subject'), 'café');
});

void test('TCP: two Content-Lengths that differ are a framing error, not a guess at where the next message starts', () => {
  const body = '<presence/>';
  const two = new StreamFramer().push(Buffer.from([...HEAD, 'Content-Length: 0', `l: ${body.length}`].join('\r\n') + '\r\n\r\n' + body));
  assert.deepEqual(two, [{ kind: 'error', why: 'Content-Length repeated with different values' }]);
  const same = new StreamFramer().push(Buffer.from([...HEAD, `Content-Length: ${body.length}`, `l: ${body.length}`].join('\r\n') + '\r\n\r\n' + body));
  assert.equal(same.length, 1);
  assert.equal(same[0]!.kind, 'message');
});

void test('SIP bodies that are not UTF-8 are refused, not read with U+FFFD in a group ID', () => {
  assert.throws(() => utf8Text(Buffer.from([0x3c, 0x61, 0xff, 0x3e])), (e: unknown) => e instanceof MusterError && e.code === 'bad-request' && /UTF-8/.test(e.message));
  assert.equal(utf8Text(Buffer.from('<a>é</a>')), '<a>é</a>');
});

void test('IDs: a lone surrogate is refused (it has no UTF-8 form: stores would hold another ID)', () => {
  assert.throws(() => parseMcUri(`sip:g\ud800@${D}`), (e: unknown) => e instanceof InvalidId && /lone surrogate/.test(e.why));
  assert.throws(() => parseMcUri(`sip:g\udc00x@${D}`), InvalidId);
  // A surrogate pair is a character like any other.
  assert.equal(parseMcUri(`sip:g\u{1F692}@${D}`), `sip:g\u{1F692}@${D}`);
});

void test('credentials: "bearer" in any case is the Bearer scheme; a user credential whose subject is no MC service ID is a 401', async () => {
  const secret = 'x'.repeat(32);
  const verifier = new CredentialVerifier(secret, D);
  const token = await issueToken({ secret, domain: D, subject: `sip:alice@${D}`, role: 'user' });
  assert.equal((await verifier.verify(`bearer ${token}`)).subject, `sip:alice@${D}`);
  assert.equal((await verifier.verify(`BEARER ${token}`)).subject, `sip:alice@${D}`);
  const noId = await issueToken({ secret, domain: D, subject: 'not an id', role: 'user' });
  await assert.rejects(verifier.verify(`Bearer ${noId}`), (e: unknown) => e instanceof MusterError && e.code === 'unauthenticated' && /subject/.test(e.message));
});

void test('partner credentials: "bearer" in any case is the Bearer scheme (RFC 9110 11.1), as for user credentials', async () => {
  const fire: PartnerConfig = { domain: 'fire.example', url: 'http://127.0.0.1:1', nextHop: 'http://127.0.0.1:1', secret: 'shared-with-fire', timeoutMs: 1000 };
  const token = await PartnerGate.sign('fire.example', { ...fire, domain: D });
  for (const scheme of ['Bearer', 'bearer', 'BEARER', 'bEaReR']) {
    // A fresh gate each time: a verified credential is cached by token, so the scheme must be read every time.
    assert.equal(await new PartnerGate(D, [fire]).verify(`${scheme} ${token}`), 'fire.example', scheme);
  }
  for (const bad of [`Basic ${token}`, `Bearer`, `Bearer${token}`, token]) {
    await assert.rejects(new PartnerGate(D, [fire]).verify(bad), (e: unknown) => e instanceof MusterError && e.code === 'unauthenticated', bad);
  }
});

void test('group display names: C0 and C1 control characters (NUL among them), line and paragraph separators and lone surrogates are refused naming the field', () => {
  for (const bad of ['North\u0000', 'a\u0007b', 'two\nlines', 'tab\there', 'del\u007f', 'nel\u0085', 'csi\u009b', 'line\u2028sep', 'para\u2029sep', 'half\ud800', '\udc00x']) {
    assert.throws(
      () => parseDisplayName(bad, 'displayName'),
      (e: unknown) => e instanceof MusterError && e.code === 'bad-request' && e.field === 'displayName',
      JSON.stringify(bad),
    );
  }
  // Any other text is a name: accents, a surrogate pair, right-to-left text with its formatting marks.
  for (const good of ['Patrol North', 'Café — Nord', 'Fire \u{1F692}', '\u05e9\u05dc\u05d5\u05dd \u200fA', '']) assert.equal(parseDisplayName(good, 'displayName'), good);
});

// RFC 3261 parser, serializer and TCP framer: good input, compact forms, folding, bounds and malformed input.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseMessage, SipParseError, headerParam } from '../../src/faces/sip/parser.ts';
import { StreamFramer } from '../../src/faces/sip/stream-framer.ts';
import { responseTo, serialize } from '../../src/faces/sip/outgoing-message.ts';
import { parseVia, responseDestination } from '../../src/faces/sip/via.ts';
import { SIP_LIMITS } from '../../src/faces/sip/message.ts';

const msg = (lines: string[], body = ''): Buffer => Buffer.from(lines.join('\r\n') + '\r\n\r\n' + body);
const PUBLISH = [
  'PUBLISH sip:mc-server@police.example SIP/2.0',
  'v: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-1;rport, SIP/2.0/UDP 10.0.0.1;branch=z9hG4bK-0',
  'f: <sip:alice@police.example>;tag=a1',
  't: <sip:mc-server@police.example>',
  'i: call-1@host',
  'CSeq: 3 PUBLISH',
  'o: presence',
  'c: application/pidf+xml',
  'Subject: a folded',
  '  header value',
];

void test('parses a request with compact forms, comma-separated Via and folding', () => {
  const m = parseMessage(msg([...PUBLISH, 'l: 5'], 'hello'));
  assert.equal(m.kind, 'request');
  if (m.kind !== 'request') return;
  assert.equal(m.method, 'PUBLISH');
  assert.equal(m.uri, 'sip:mc-server@police.example');
  assert.equal(m.callId, 'call-1@host');
  assert.deepEqual(m.cseq, { seq: 3, method: 'PUBLISH' });
  assert.equal(m.headers.all('via').length, 2);
  assert.equal(m.headers.get('event'), 'presence');
  assert.equal(m.headers.get('content-type'), 'application/pidf+xml');
  assert.equal(m.headers.get('subject'), 'a folded header value');
  assert.equal(m.body.toString(), 'hello');
});

void test('parses a response; a datagram without Content-Length takes the rest as body', () => {
  const m = parseMessage(msg(['SIP/2.0 200 OK', 'Via: SIP/2.0/UDP h;branch=z9hG4bKx', 'From: <sip:a@b.c>;tag=1', 'To: <sip:a@b.c>;tag=2', 'Call-ID: x', 'CSeq: 1 NOTIFY'], 'ab'));
  assert.equal(m.kind, 'response');
  if (m.kind === 'response') {
    assert.equal(m.status, 200);
    assert.equal(m.body.toString(), 'ab');
  }
});

const malformed: [string, Buffer][] = [
  ['no empty line', Buffer.from('PUBLISH sip:a@b SIP/2.0\r\nVia: x')],
  ['bad start line', msg(['PUBLISH sip:a@b SIP/3.0', ...PUBLISH.slice(1)])],
  ['CSeq method differs', msg([PUBLISH[0]!, ...PUBLISH.slice(1, 5), 'CSeq: 3 SUBSCRIBE'])],
  ['CSeq too large', msg([PUBLISH[0]!, ...PUBLISH.slice(1, 5), 'CSeq: 4294967296 PUBLISH'])],
  ['missing Call-ID', msg(PUBLISH.filter((l) => !l.startsWith('i:')))],
  ['Content-Length not a number', msg([...PUBLISH, 'Content-Length: 12x'], '<presence/>')],
  ['Content-Length beyond the datagram', msg([...PUBLISH, 'Content-Length: 99'], 'short')],
  ['header without colon', msg([...PUBLISH, 'Broken header'])],
  ['continuation first', msg([PUBLISH[0]!, ' folded', ...PUBLISH.slice(1)])],
  ['too many headers', msg([...PUBLISH, ...Array.from({ length: SIP_LIMITS.headers }, (_, i) => `X-H${i}: v`)])],
  ['too large', msg([...PUBLISH], 'x'.repeat(SIP_LIMITS.messageBytes))],
  ['Content-Length required on a stream', msg(PUBLISH)],
];
for (const [name, bytes] of malformed) {
  void test(`refuses malformed input: ${name}`, () => {
    assert.throws(() => parseMessage(bytes, { stream: name.includes('stream') }), SipParseError);
  });
}

void test('a malformed request still carries the headers needed for a 400', () => {
  try {
    parseMessage(msg([...PUBLISH, 'Content-Length: 12x'], '<presence/>'));
    assert.fail('should throw');
  } catch (e) {
    assert.ok(e instanceof SipParseError);
    assert.ok(e.headers?.get('via') && e.headers.get('cseq'));
  }
});

void test('serialises a response from the request: Via list, tags, Content-Length', () => {
  const req = parseMessage(msg([...PUBLISH, 'l: 0']));
  if (req.kind !== 'request') throw new Error('request expected');
  const out = serialize(responseTo(req, 200, { toTag: 'srv', headers: [['SIP-ETag', 'e1']] })).toString();
  assert.match(out, /^SIP\/2.0 200 OK\r\n/);
  assert.match(out, /To: <sip:mc-server@police.example>;tag=srv\r\n/);
  assert.equal(out.match(/^Via: /gm)?.length, 2);
  assert.match(out, /Content-Length: 0\r\n\r\n$/);
  const again = parseMessage(Buffer.from(out));
  assert.equal(again.kind, 'response');
  assert.throws(() => serialize(responseTo(req, 200, { headers: [['X', 'a\r\nInjected: 1']] })));
});

void test('frames several messages and keep-alives out of a TCP stream, split anywhere', () => {
  const one = msg([...PUBLISH, 'l: 5'], 'hello');
  const stream = Buffer.concat([Buffer.from('\r\n\r\n'), one, one]);
  const f = new StreamFramer();
  const out = [...stream].flatMap((byte) => f.push(Buffer.from([byte])));
  assert.equal(out.length, 2);
  assert.ok(out.every((o) => o.kind === 'message' && parseMessage(o.bytes, { stream: true }).kind === 'request'));
  const bad = new StreamFramer().push(msg(PUBLISH));
  assert.equal(bad[0]?.kind, 'error');
});

void test('the TCP framer cuts the same messages, byte for byte, wherever the stream is split (a terminator across chunks too)', () => {
  const a = msg([...PUBLISH, 'l: 5'], 'hello');
  const b = Buffer.from([...PUBLISH, 'Content-Length: 3'].join('\n') + '\n\nabc'); // bare LF line ends
  const stream = Buffer.concat([a, Buffer.from('\r\n'), b]);
  for (let i = 0; i <= stream.length; i++) {
    for (const j of [i, Math.min(stream.length, i + 1), Math.min(stream.length, i + 3)]) {
      const f = new StreamFramer();
      const out = [stream.subarray(0, i), stream.subarray(i, j), stream.subarray(j)].flatMap((c) => f.push(c));
      assert.deepEqual(out.map((o) => (o.kind === 'message' ? o.bytes.toString('latin1') : o.why)), [a.toString('latin1'), b.toString('latin1')], `split at ${i}, ${j}`);
    }
  }
});

void test('Via: branch, received and rport decide where a UDP response goes', () => {
  const via = parseVia('SIP/2.0/UDP client.example:5070;branch=z9hG4bK-9;rport;received=192.0.2.7')!;
  assert.equal(via.branch, 'z9hG4bK-9');
  assert.deepEqual(responseDestination(via, { address: '192.0.2.7', port: 40000 }), { address: '192.0.2.7', port: 40000 });
  const plain = parseVia('SIP/2.0/UDP 192.0.2.8;branch=z9hG4bK-1')!;
  assert.deepEqual(responseDestination(plain, { address: '192.0.2.8', port: 41000 }), { address: '192.0.2.8', port: 5060 });
  // A received= the sender wrote itself is not followed: the answer goes where the packet came from.
  const claimed = parseVia('SIP/2.0/UDP 203.0.113.9;branch=z9hG4bK-2;received=203.0.113.9;rport')!;
  assert.deepEqual(responseDestination(claimed, { address: '192.0.2.8', port: 41000 }), { address: '192.0.2.8', port: 41000 });
  assert.equal(headerParam('<sip:a@b>;tag="x"', 'tag'), 'x');
});

// PIDF / mcptt-info reading (safe XML), NOTIFY body rendering, and the non-INVITE server transaction table.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parsePidf, parseRequestUri } from '../../src/faces/sip/affiliation-document.ts';
import { renderAffiliationStatus } from '../../src/faces/sip/pidf-render.ts';
import { MusterError } from '../../src/domain/errors.ts';
import { NonInviteServerTransaction } from '../../src/faces/sip/non-invite-server-transaction.ts';
import type { Clock } from '../../src/ports/clock.ts';
import type { McUri } from '../../src/domain/ids.ts';

const pidf = (inner: string, entity = 'sip:alice@police.example'): string =>
  `<presence xmlns="urn:ietf:params:xml:ns:pidf" xmlns:mcpttPI10="urn:3gpp:ns:mcpttPresInfo:1.0" entity="${entity}">${inner}</presence>`;

void test('reads the groups, client and p-id of an affiliation PIDF', () => {
  const doc = parsePidf(pidf('<tuple id="c1"><status><mcpttPI10:affiliation group="sip:patrol@police.example"/><mcpttPI10:affiliation group="SIP:north@POLICE.example"/></status></tuple><mcpttPI10:p-id>p-7</mcpttPI10:p-id>'), 'mcptt');
  assert.deepEqual(doc, { entity: 'sip:alice@police.example', clientId: 'c1', groups: ['sip:patrol@police.example', 'sip:north@police.example'], pId: 'p-7' });
});

void test('an empty set is a set (de-affiliate everything)', () => {
  assert.deepEqual(parsePidf(pidf('<tuple id="c1"><status/></tuple>'), 'mcptt').groups, []);
});

const refused: [string, string][] = [
  ['DOCTYPE', `<?xml version="1.0"?><!DOCTYPE presence [<!ENTITY x "y">]>${pidf('<tuple id="a"><status/></tuple>')}`],
  ['external DTD', `<!DOCTYPE presence SYSTEM "file:///etc/passwd">${pidf('')}`],
  ['not well-formed', pidf('<tuple id="a"><status></tuple>')],
  ['wrong root', '<notpresence xmlns="urn:ietf:params:xml:ns:pidf" entity="sip:a@b.c"/>'],
  ['no namespace', '<presence entity="sip:a@b.c"/>'],
  ['bad entity', pidf('', 'not a uri')],
  ['bad group', pidf('<tuple id="a"><status><mcpttPI10:affiliation group="x y"/></status></tuple>')],
  ['too deep', pidf('<a>'.repeat(40) + '</a>'.repeat(40))],
  ['undeclared prefix', pidf('<tuple id="a"><status><zz:affiliation group="sip:a@b.c"/></status></tuple>')],
  // Well-formedness, checked in the same pass that builds the tree (XML 1.0 §2.1, §3.1, §4.1, §2.8).
  ['an undeclared entity reference', pidf('<tuple id="a"><status/></tuple><mcpttPI10:p-id>&nbsp;</mcpttPI10:p-id>')],
  ['a bare &', pidf('<tuple id="a &amp b"><status/></tuple>')],
  ['< in an attribute value', pidf('<tuple id="a<b"><status/></tuple>')],
  ['a repeated attribute', pidf('<tuple id="a" id="b"><status/></tuple>')],
  ['an unquoted attribute', pidf('<tuple id=a><status/></tuple>')],
  ['text after the root', `${pidf('')}trailing`],
  ['a second root', `${pidf('')}<presence/>`],
  ['an unclosed root', pidf('').replace('</presence>', '')],
  ['an XML declaration not at the start', ` <?xml version="1.0"?>${pidf('')}`],
  ['a broken XML declaration', `<?xml version="1.0?>${pidf('')}`],
  ['an unclosed comment', pidf('<!-- <tuple id="a"/>')],
];
for (const [name, text] of refused) {
  void test(`refuses ${name} with bad-request`, () => {
    assert.throws(() => parsePidf(text, 'mcptt'), (e) => e instanceof MusterError && e.code === 'bad-request');
  });
}

void test('comments, processing instructions, CDATA, references and an XML declaration are read as XML 1.0 says', () => {
  const text = `\ufeff<?xml version='1.0' encoding="UTF-8" ?><!-- c --><?pi data?>${pidf('<tuple id=" c&amp;1 "><!-- <tuple id="no"/> --><status><mcpttPI10:affiliation group="sip:&#x70;atrol@police.example"/></status></tuple><mcpttPI10:p-id> p<![CDATA[-&amp;]]>7 </mcpttPI10:p-id>')}\n<!-- after -->\n`;
  assert.deepEqual(parsePidf(text, 'mcptt'), { entity: 'sip:alice@police.example', clientId: 'c&1', groups: ['sip:patrol@police.example'], pId: 'p-&amp;7' });
});

void test('MCVideo reads its own namespace, not MCPTT affiliation elements', () => {
  const text = `<presence xmlns="urn:ietf:params:xml:ns:pidf" xmlns:v="urn:3gpp:ns:mcvideoPresInfo:1.0" xmlns:p="urn:3gpp:ns:mcpttPresInfo:1.0" entity="sip:a@b.c"><tuple id="t"><status><v:affiliation group="sip:v@b.c"/><p:affiliation group="sip:p@b.c"/></status></tuple></presence>`;
  assert.deepEqual(parsePidf(text, 'mcvideo').groups, ['sip:v@b.c']);
});

void test('reads the served MC service ID of an mcptt-info body', () => {
  const info = '<mcpttinfo xmlns="urn:3gpp:ns:mcpttInfo:1.0"><mcptt-Params><mcptt-request-uri type="Normal"><mcpttURI>sip:bob@police.example</mcpttURI></mcptt-request-uri></mcptt-Params></mcpttinfo>';
  assert.equal(parseRequestUri(info), 'sip:bob@police.example');
});

void test('renders a NOTIFY body that reads back', () => {
  const text = renderAffiliationStatus({ entity: 'sip:a@b.c' as McUri, service: 'mcptt', tupleId: 't', groups: [{ groupId: 'sip:g@b.c' as McUri, state: 'affiliated' }, { groupId: 'sip:h@b.c' as McUri, state: 'reserved' }], pId: 'p1' });
  assert.match(text, /<mcpttPI10:affiliation group="sip:g@b.c" status="affiliated"\/>/);
  assert.match(text, /status="affiliating"/);
  assert.deepEqual(parsePidf(text, 'mcptt').groups, ['sip:g@b.c', 'sip:h@b.c']);
});

void test('server transaction: retransmissions re-send the final response; timer J ends it; illegal moves throw', () => {
  const timers: (() => void)[] = [];
  const clock: Clock = { now: () => 0, after: (_ms, fire) => (timers.push(fire), () => undefined) };
  const sent: string[] = [];
  let ended = false;
  const flow = { transport: 'udp' as const, remoteAddress: '127.0.0.1', remotePort: 1, send: (b: Buffer) => void sent.push(b.toString()), open: () => true };
  const tx = new NonInviteServerTransaction('k', flow, { address: '127.0.0.1', port: 1 }, clock, () => (ended = true));
  tx.retransmitted(); // trying: absorbed, nothing sent
  assert.equal(sent.length, 0);
  tx.respond(200, Buffer.from('final'));
  tx.retransmitted();
  tx.retransmitted();
  assert.deepEqual(sent, ['final', 'final', 'final']);
  assert.throws(() => tx.respond(200, Buffer.from('again')));
  timers.forEach((t) => t());
  assert.equal(tx.state, 'terminated');
  assert.ok(ended);
});

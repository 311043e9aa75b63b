// A refusal per reason code over SIP (TS 24.379 §4.4): for every reason the PUBLISH path can produce, sipp publishes a
// set with one refused group; the 200 carries `Warning: 399 police.example "<code> <text> (<reason>: <group>)"` with
// the MCPTT code of src/faces/sip/warning.ts, and the NOTIFY after it leaves the group out (a group the user may not
// leave stays, affiliated). One scenario (test/sipp/publish-refused.xml), run once per reason with its keys.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Muster, call, freePort, secret } from '../support/harness.ts';
import { sipp } from '../support/sipp.ts';
import { startPoliceWithSip } from '../support/sip-system.ts';
import { readRefusalWarning } from '../../src/faces/sip/warning.ts';
import { UdpClient } from '../support/sip-udp.ts';
import { parseVia } from '../../src/faces/sip/via.ts';

const D = 'police.example';
const PSI = `sip:mc-server@${D}`;
const g = (n: string, d = D): string => `sip:${n}@${d}`;
const patrol = g('patrol');
const north = g('north');
const night = g('night'); // disabled
const closed = g('closed'); // the users below are not members
const sticky = g('sticky'); // members may not leave
const engine = g('engine', 'fire.example'); // fire's system does not answer
const subscribed = [patrol, north, night, closed, sticky, engine];
const u = (n: string): string => `sip:${n}@${D}`;

let m: Muster;
let sipPort: number;

before(async () => {
  const nobody = await freePort(); // nothing listens here: the partner system is down
  const users = ['unknown', 'disabled', 'unauth', 'notmember', 'n2', 'sticky', 'partner'].map(u);
  ({ m, sipPort } = await startPoliceWithSip({
    partners: [{ domain: 'fire.example', url: `http://127.0.0.1:${nobody}`, secret: secret(), timeoutMs: 1000 }],
    users: users.map((id) => ({ id, services: ['mcptt'], n2: id === u('n2') ? 1 : 4, groups: id === u('unauth') ? [patrol] : subscribed })),
    groups: [
      { id: patrol, services: ['mcptt'], members: users },
      { id: north, services: ['mcptt'], members: users },
      { id: night, services: ['mcptt'], members: users, enabled: false },
      { id: closed, services: ['mcptt'], members: [] },
      { id: sticky, services: ['mcptt'], members: users, deaffiliationForbidden: true },
    ],
  }));
  // The user who will try to leave `sticky` holds it already.
  const r = await call('POST', `${m.url()}/mc/v1/affiliations`, await m.token(u('sticky')), { mcServiceId: u('sticky'), service: 'mcptt', groupIds: [sticky] });
  assert.deepEqual((r.body as { status: unknown }).status, [{ groupId: sticky, status: 'affiliated' }]);
});

after(async () => {
  await m?.stop();
});

const cases: { reason: string; user: string; set: string[]; refused: string; code: number; text: string; notified: string[] }[] = [
  { reason: 'unknown-group', user: u('unknown'), set: [g('nosuch')], refused: g('nosuch'), code: 113, text: 'group document does not exist', notified: [] },
  { reason: 'group-disabled', user: u('disabled'), set: [night], refused: night, code: 115, text: 'group is disabled', notified: [] },
  { reason: 'not-authorised', user: u('unauth'), set: [patrol, north], refused: north, code: 100, text: 'function not allowed due to user authorisation', notified: [patrol] },
  { reason: 'not-member', user: u('notmember'), set: [closed], refused: closed, code: 116, text: 'user is not part of the MCPTT group', notified: [] },
  { reason: 'n2-limit', user: u('n2'), set: [patrol, north], refused: north, code: 102, text: 'too many simultaneous affiliations', notified: [patrol] },
  { reason: 'deaffiliation-forbidden', user: u('sticky'), set: [patrol], refused: sticky, code: 100, text: 'function not allowed due to group definition', notified: [patrol, sticky] },
  { reason: 'partner-unreachable', user: u('partner'), set: [engine], refused: engine, code: 100, text: "function not allowed due to group's home system not reachable", notified: [] },
];

/** The received messages of a sipp trace, one string each. */
function received(messages: string): string[] {
  return messages.split(/^-{10,}.*$/m).filter((b) => b.includes('message received'));
}

for (const c of cases) {
  void test(`${c.reason}: the 200 carries warning ${c.code} for ${c.refused}, and the NOTIFY after it shows ${c.notified.length ? c.notified.join(', ') : 'no group'}`, async () => {
    const set = c.set.map((x) => `<mcpttPI10:affiliation group="${x}"/>`).join('');
    const run = await sipp('publish-refused.xml', { port: sipPort }, { psi: PSI, user: c.user, set });
    assert.equal(run.code, 0, run.output);
    const blocks = received(run.messages);
    const answer = blocks.find((b) => /SIP\/2\.0 200 OK/.test(b) && b.includes('CSeq: 2 PUBLISH'));
    assert.ok(answer, 'the 200 to the PUBLISH');
    const warnings = [...answer.matchAll(/^Warning: (.*)$/gm)].map((w) => readRefusalWarning(w[1]!));
    assert.deepEqual(warnings, [{ agent: D, code: c.code, text: c.text, reason: c.reason, groupId: c.refused }]);
    const notify = blocks.filter((b) => b.includes('NOTIFY sip:') && b.includes('pub-refused')).at(-1);
    assert.ok(notify, 'the NOTIFY answering the PUBLISH');
    const groups = [...notify.matchAll(/affiliation group="([^"]+)" status="affiliated"/g)].map((x) => x[1]).sort();
    assert.deepEqual(groups, [...c.notified].sort());
    if (!c.notified.includes(c.refused)) assert.ok(!notify.includes(`group="${c.refused}"`), 'the refused group is not in the NOTIFY in any status');
  });
}

/** An OPTIONS from the client's port on loopback, with the Via and extra headers given. */
function options(c: UdpClient, via: string, extra: string[] = []): void {
  c.send([...c.request({ method: 'OPTIONS', uri: PSI, user: `sip:alice@${D}`, callId: `opt-${c.port}-${extra.length}`, cseq: 1, fromTag: `opt-${c.port}`, via }), ...extra]);
}

void test('a request that requires an extension gets 420 naming every option tag (RFC 3261 §8.2.2.3)', async () => {
  const c = await UdpClient.open(sipPort);
  try {
    options(c, `SIP/2.0/UDP 127.0.0.1:${c.port};branch=z9hG4bK-req-${c.port};rport`, ['Require: foo, bar']);
    const res = await c.response('OPTIONS');
    assert.equal(res.status, 420);
    assert.deepEqual(res.headers.all('unsupported'), ['foo', 'bar']);
    assert.match(res.headers.get('to') ?? '', /;tag=/);
  } finally {
    c.close();
  }
});

void test("a response goes to the packet's source, never to a received= the client wrote, and its Via records received and rport", async () => {
  const c = await UdpClient.open(sipPort);
  try {
    // The sender claims another address for itself; the answer still comes back here, to where the packet came from.
    options(c, `SIP/2.0/UDP 203.0.113.9:5060;branch=z9hG4bK-via-${c.port};received=203.0.113.9;rport`);
    const res = await c.response('OPTIONS');
    assert.equal(res.status, 200);
    const via = parseVia(res.headers.get('via') ?? '');
    assert.deepEqual([via?.received, res.headers.get('via')?.match(/;rport=(\d+)/)?.[1]], ['127.0.0.1', String(c.port)]);
  } finally {
    c.close();
  }
});

void test('CANCEL of a request known here gets 200; of an unknown one 481 (RFC 3261 §9.2)', async () => {
  const c = await UdpClient.open(sipPort);
  try {
    const via = `SIP/2.0/UDP 127.0.0.1:${c.port};branch=z9hG4bK-cancel-${c.port};rport`;
    options(c, via);
    assert.equal((await c.response('OPTIONS')).status, 200);
    const cancel = (v: string): string[] => c.request({ method: 'CANCEL', uri: PSI, user: `sip:alice@${D}`, callId: `opt-${c.port}-0`, cseq: 1, fromTag: `opt-${c.port}`, via: v });
    c.send(cancel(via));
    assert.equal((await c.response('CANCEL')).status, 200);
    c.send(cancel(`SIP/2.0/UDP 127.0.0.1:${c.port};branch=z9hG4bK-nothing-${c.port};rport`));
    assert.equal((await c.response('CANCEL')).status, 481);
  } finally {
    c.close();
  }
});

void test('a PUBLISH whose SIP-If-Match lists several entity-tags gets 400 (RFC 3903: one tag)', async () => {
  const c = await UdpClient.open(sipPort);
  try {
    c.send([...c.request({ method: 'PUBLISH', uri: PSI, user: `sip:alice@${D}`, callId: `ifm-${c.port}`, cseq: 1, fromTag: `ifm-${c.port}` }), 'SIP-If-Match: a1, b2', 'Expires: 600']);
    assert.equal((await c.response('PUBLISH')).status, 400);
  } finally {
    c.close();
  }
});

void test('a malformed request whose Via names a port no answer can reach does not bring the server down: it goes on serving', async () => {
  const c = await UdpClient.open(sipPort);
  try {
    for (const port of [0, 70000]) {
      // CSeq's method differs from the request's: a parse error with every header a stateless 400 needs.
      c.send([...c.request({ method: 'OPTIONS', uri: PSI, user: `sip:alice@${D}`, callId: `badport-${port}`, cseq: 1, fromTag: 'bp', via: `SIP/2.0/UDP 192.0.2.1:${port};branch=z9hG4bK-bp-${port}` }).filter((l) => !l.startsWith('CSeq')), 'CSeq: 1 PUBLISH']);
    }
    options(c, `SIP/2.0/UDP 127.0.0.1:${c.port};branch=z9hG4bK-after-${c.port};rport`);
    assert.equal((await c.response('OPTIONS')).status, 200, 'the server still answers');
    const health = await call('GET', `${m.url()}/healthz?partners=omit`, undefined);
    assert.equal(health.status, 200);
  } finally {
    c.close();
  }
});

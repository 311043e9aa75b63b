// A bound on what one SIP watcher holds (sip.maxSubscriptionsPerWatcher): each subscription is memory, a stored row
// and a NOTIFY per change, so one client cannot open them without end. Against a real server with a limit of 2,
// driven by sipp: two subscriptions are accepted, the third gets 403 saying why, and an operator lists the two.
// Also where this server says it is (sip.advertisedHost): the Contact of the SUBSCRIBE's 200 and of its NOTIFY.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Muster, call } from '../support/harness.ts';
import { sipp } from '../support/sipp.ts';
import { startPoliceWithSip } from '../support/sip-system.ts';
import { UdpClient } from '../support/sip-udp.ts';

const D = 'police.example';
const PSI = `sip:mc-server@${D}`;
const alice = `sip:alice@${D}`;
const bob = `sip:bob@${D}`;

let m: Muster;
let sipPort: number;

before(async () => {
  ({ m, sipPort } = await startPoliceWithSip({
    sip: { trustedPeers: ['127.0.0.1'], maxSubscriptionsPerWatcher: 2, advertisedHost: 'mc.police.example' },
    users: [alice, bob].map((id) => ({ id, services: ['mcptt'], n2: 3, groups: [] })),
  }));
});

after(async () => {
  await m?.stop();
});

void test('a watcher at its limit of subscriptions gets 403 for another; other watchers are not affected', async () => {
  for (let i = 0; i < 2; i++) {
    const run = await sipp('subscribe-and-stay.xml', { port: sipPort }, { psi: PSI, user: alice });
    assert.equal(run.code, 0, run.output);
  }
  const refused = await sipp('subscribe-over-limit.xml', { port: sipPort }, { psi: PSI, user: alice });
  assert.equal(refused.code, 0, refused.output);
  const other = await sipp('subscribe-and-stay.xml', { port: sipPort }, { psi: PSI, user: bob });
  assert.equal(other.code, 0, other.output);
  const listed = await call('GET', `${m.url()}/admin/v1/sip/subscriptions?user=${encodeURIComponent(alice)}`, await m.operatorToken());
  assert.equal((listed.body as { subscriptions: unknown[] }).subscriptions.length, 2);
});

void test("the SUBSCRIBE's 200 and the NOTIFY give the server's advertised address as Contact, not the PSI (RFC 3261 §12.1.1)", async () => {
  const c = await UdpClient.open(sipPort);
  try {
    c.send([...c.request({ method: 'SUBSCRIBE', uri: PSI, user: bob, callId: `contact-${c.port}`, cseq: 1, fromTag: `b-${c.port}` }), 'Accept: application/pidf+xml', 'Expires: 0']);
    const ok = await c.response('SUBSCRIBE');
    assert.equal(ok.status, 200);
    const contact = `<sip:mc-server@mc.police.example:${sipPort};transport=udp>`;
    assert.equal(ok.headers.get('contact'), contact);
    assert.equal((await c.notify()).headers.get('contact'), contact);
  } finally {
    c.close();
  }
});

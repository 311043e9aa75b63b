// The SIP face against a real server process, driven by sipp as an MC client would (STAGE3.md): PUBLISH/NOTIFY,
// a smaller set, retransmission absorption, malformed input, HTTP <-> SIP visibility, UDP and TCP.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Muster, call, freePort } from '../support/harness.ts';
import { sipp } from '../support/sipp.ts';
import { startPoliceWithSip } from '../support/sip-system.ts';

const D = 'police.example';
const PSI = `sip:mc-server@${D}`;
const G = { patrol: `sip:patrol@${D}`, north: `sip:north@${D}`, south: `sip:south@${D}` };
const users = ['alice', 'bob', 'erin', 'frank'].map((n) => `sip:${n}@${D}`);
const [alice, bob, erin, frank] = users as [string, string, string, string];

let m: Muster;
let sipPort: number;

before(async () => {
  ({ m, sipPort } = await startPoliceWithSip({
    users: users.map((id) => ({ id, services: ['mcptt'], n2: 3, groups: Object.values(G) })),
    groups: Object.values(G).map((id) => ({ id, services: ['mcptt'], members: users })),
  }));
});

after(async () => {
  await m?.stop();
});


void test('PUBLISH affiliates to two groups: 200, then a NOTIFY with each group affiliated; visible over HTTP', async () => {
  const run = await sipp('affiliate-and-notify.xml', { port: sipPort }, { psi: PSI, user: alice });
  assert.equal(run.code, 0, run.output);
  assert.deepEqual(await m.affiliatedGroups(alice), [G.north, G.patrol]);
  // Issue 7: the change is in the audit log, as an HTTP one would be: who, for whom, what, and the per-group outcome.
  const audit = await call('GET', `${m.url()}/admin/v1/audit?onBehalfOf=${encodeURIComponent(alice)}`, await m.operatorToken());
  const [entry] = (audit.body as { entries: { subject: string; action: string; httpStatus: number; groups: string[]; result: { status: { groupId: string; status: string }[] } }[] }).entries;
  assert.deepEqual(entry && [entry.subject, entry.action, entry.httpStatus, [...entry.groups].sort()], [alice, 'sip-publish', 200, [G.north, G.patrol]]);
  assert.deepEqual(entry?.result.status.map((s) => s.status), ['affiliated', 'affiliated']);
});

void test('a PUBLISH naming a smaller set de-affiliates the groups left out', async () => {
  const run = await sipp('deaffiliate-smaller-set.xml', { port: sipPort }, { psi: PSI, user: alice });
  assert.equal(run.code, 0, run.output);
  assert.deepEqual(await m.affiliatedGroups(alice), [G.patrol]);
});

void test('the same over TCP', async () => {
  const run = await sipp('affiliate-and-notify.xml', { port: sipPort }, { psi: PSI, user: frank }, { transport: 't1' });
  assert.equal(run.code, 0, run.output);
  assert.deepEqual(await m.affiliatedGroups(frank), [G.north, G.patrol]);
});

void test('a retransmitted PUBLISH (same branch) gets the same answer and has no second effect', async () => {
  const keys = { psi: PSI, user: bob, br: 'z9hG4bK-muster-retx-1', group: G.south };
  const localPort = await freePort();
  const first = await sipp('publish-once.xml', { port: sipPort }, keys, { cidStr: 'muster-retx-%u', localPort });
  assert.equal(first.code, 0, first.output);
  assert.deepEqual(await m.affiliatedGroups(bob), [G.south]);
  // Meanwhile the user leaves the group over HTTP; the retransmission must not put it back.
  const left = await call('POST', `${m.url()}/mc/v1/deaffiliations`, await m.token(bob), { mcServiceId: bob, service: 'mcptt', groupIds: [G.south] });
  assert.equal(left.status, 200);
  const second = await sipp('publish-once.xml', { port: sipPort }, keys, { cidStr: 'muster-retx-%u', localPort });
  assert.equal(second.code, 0, second.output);
  assert.deepEqual(await m.affiliatedGroups(bob), []);
  const etag = (s: string): string | undefined => /SIP-ETag: *(\S+)/.exec(s)?.[1];
  assert.ok(etag(first.messages));
  assert.equal(etag(second.messages), etag(first.messages), 'the retransmission is answered with the first response');
});

void test('malformed SIP and XML (bad Content-Length, DOCTYPE, not well-formed, bad group URI) get 400 and store nothing', async () => {
  const run = await sipp('malformed.xml', { port: sipPort }, { psi: PSI, user: erin });
  assert.equal(run.code, 0, run.output);
  assert.deepEqual(await m.affiliatedGroups(erin), []);
});

void test('an affiliation made over HTTP reaches a SIP subscriber as a NOTIFY', async () => {
  const running = sipp('notify-after-http-change.xml', { port: sipPort }, { psi: PSI, user: alice });
  await new Promise((r) => setTimeout(r, 1500)); // let the subscription and its first NOTIFY complete
  const res = await call('POST', `${m.url()}/mc/v1/affiliations`, await m.token(alice), { mcServiceId: alice, service: 'mcptt', groupIds: [G.south] });
  assert.equal(res.status, 200);
  const run = await running;
  assert.equal(run.code, 0, run.output);
});

// SIP identity: outside trustedPeers a P-Asserted-Identity counts for nothing; the sender shows a Bearer credential
// (401 without), and a PUBLISH for another user without the remote-change right is refused (403), storing nothing.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Muster, call } from '../support/harness.ts';
import { sipp } from '../support/sipp.ts';
import { startPoliceWithSip } from '../support/sip-system.ts';

const D = 'police.example';
const alice = `sip:alice@${D}`;
const bob = `sip:bob@${D}`;
const patrol = `sip:patrol@${D}`;

let m: Muster;
let sipPort: number;

before(async () => {
  ({ m, sipPort } = await startPoliceWithSip({
    // 127.0.0.1 is deliberately not trusted here: sipp's packets come from an untrusted address.
    sip: { trustedPeers: ['192.0.2.1'] },
    users: [alice, bob].map((id) => ({ id, services: ['mcptt'], n2: 2, groups: [patrol] })),
    groups: [{ id: patrol, services: ['mcptt'], members: [alice, bob] }],
  }));
});

after(async () => {
  await m?.stop();
});

void test('untrusted source: 401 without a credential, 403 for another user without the right; nothing stored', async () => {
  const run = await sipp('publish-for-other-user.xml', { port: sipPort }, { psi: `sip:mc-server@${D}`, user: alice, other: bob, token: await m.token(alice) });
  assert.equal(run.code, 0, run.output);
  const res = await call('GET', `${m.url()}/mc/v1/users/${encodeURIComponent(bob)}/affiliations`, await m.token(bob));
  assert.equal(res.status, 200);
  assert.deepEqual((res.body as { affiliations: unknown }).affiliations, []);
  // The refused attempt is on record (who, for whom, what, the SIP status); the unauthenticated one is not (no one to name).
  const audit = await call('GET', `${m.url()}/admin/v1/audit?onBehalfOf=${encodeURIComponent(bob)}`, await m.operatorToken());
  const entries = (audit.body as { entries: { subject: string; action: string; httpStatus: number; errorCode: string | null; groups: string[] }[] }).entries;
  assert.deepEqual(
    entries.map((e) => [e.subject, e.action, e.httpStatus, e.errorCode]),
    [[alice, 'sip-publish', 403, 'forbidden']],
  );
});

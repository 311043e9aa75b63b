// Issue 7, rate per sender on the SIP face: a sender over its rate gets 503 with Retry-After (RFC 3261 §21.5.4) and
// nothing of the refused request is applied; the budget is the user's over both faces; another sender keeps its own.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Muster, call } from '../support/harness.ts';
import { sipp } from '../support/sipp.ts';
import { startPoliceWithSip } from '../support/sip-system.ts';

const D = 'police.example';
const PSI = `sip:mc-server@${D}`;
const [alice, bob] = ['alice', 'bob'].map((n) => `sip:${n}@${D}`) as [string, string];
const patrol = `sip:patrol@${D}`;

let m: Muster;
let sipPort: number;

before(async () => {
  ({ m, sipPort } = await startPoliceWithSip({
    users: [alice, bob].map((id) => ({ id, services: ['mcptt'], n2: 2, groups: [patrol] })),
    groups: [{ id: patrol, services: ['mcptt'], members: [alice, bob] }],
  }, {
    // Two requests at once, then one every 10 s: the third PUBLISH in a row is over the rate.
    rateLimit: { perSecond: 0.1, burst: 2 },
  }));
});

after(async () => {
  await m?.stop();
});

void test("a sender's third PUBLISH in a row gets 503 with Retry-After, and its HTTP requests 429; another sender is not held back", async () => {
  const first = await sipp('publish-rate-limited.xml', { port: sipPort }, { psi: PSI, user: alice });
  assert.equal(first.code, 0, first.output);
  assert.match(first.messages, /SIP\/2\.0 503 [^\r\n]*\r?\n(?:[^\r\n]+\r?\n)*Retry-After: (?:[1-9][0-9]*)/);
  // One budget for both faces: alice spent hers over SIP, so her HTTP request is refused too (a read: not audited).
  const overHttp = await call('GET', `${m.url()}/mc/v1/users/${encodeURIComponent(alice)}/affiliations`, await m.token(alice));
  assert.equal(overHttp.status, 429, JSON.stringify(overHttp.body));
  // bob's budget is his own: his first two PUBLISHes are answered 200 although alice is over hers.
  const second = await sipp('publish-rate-limited.xml', { port: sipPort }, { psi: PSI, user: bob });
  assert.equal(second.code, 0, second.output);
  // Nothing of the refused requests was applied or recorded as a change: the audit log has the four answered ones.
  const audit = await call('GET', `${m.url()}/admin/v1/audit?limit=100`, await m.operatorToken());
  const entries = (audit.body as { entries: { subject: string; httpStatus: number }[] }).entries;
  assert.deepEqual(entries.map((e) => [e.subject, e.httpStatus]), [[alice, 200], [alice, 200], [bob, 200], [bob, 200]]);
});

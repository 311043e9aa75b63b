// SUBSCRIBE to affiliation status against a real server process, driven by sipp (RFC 6665 §4.1.2, §4.2; TS 24.379
// §9.2.2.2.4): refresh inside the dialog, expiry with the final NOTIFY, unsubscribe, over UDP and TCP; and a group's
// affiliation status for users whose profile allows it (issue 4), 403 for the others.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Muster, call } from '../support/harness.ts';
import { sipp } from '../support/sipp.ts';
import { startPoliceWithSip } from '../support/sip-system.ts';

const D = 'police.example';
const PSI = `sip:mc-server@${D}`;
const G = { patrol: `sip:patrol@${D}`, north: `sip:north@${D}` };
const u = (n: string): string => `sip:${n}@${D}`;
const [alice, bob, carol, dave, dispatch, erin] = ['alice', 'bob', 'carol', 'dave', 'dispatch', 'erin'].map(u) as [string, string, string, string, string, string];

let m: Muster;
let sipPort: number;

before(async () => {
  const people = [alice, bob, carol, dave];
  ({ m, sipPort } = await startPoliceWithSip({
    users: [
      ...people.map((id) => ({ id, services: ['mcptt'], n2: 3, groups: Object.values(G) })),
      // Neither is a member of the groups: the dispatcher reads their members by its remote-change right, erin may not.
      { id: dispatch, services: ['mcptt'], n2: 3, groups: [], remoteChange: true },
      { id: erin, services: ['mcptt'], n2: 3, groups: [] },
    ],
    groups: Object.values(G).map((id) => ({ id, services: ['mcptt'], members: people })),
  }));
});

after(async () => {
  await m?.stop();
});

/** The live subscriptions to a user's status as the operator lists them (read from the store). */
async function subscriptionsOf(user: string): Promise<unknown[]> {
  const res = await call('GET', `${m.url()}/admin/v1/sip/subscriptions?user=${encodeURIComponent(user)}`, await m.operatorToken());
  assert.equal(res.status, 200, JSON.stringify(res.body));
  return (res.body as { subscriptions: unknown[] }).subscriptions;
}

/** When sipp received each NOTIFY (its -trace_msg separators carry a date and time before each message). */
function notifyTimes(messages: string): { at: number; state: string }[] {
  const out: { at: number; state: string }[] = [];
  for (const chunk of messages.split(/^-{10,} /m)) {
    const when = /^(\d{4}-\d{2}-\d{2})\s+(\d{2}:\d{2}:\d{2}\.\d{3})/.exec(chunk);
    if (!when || !/message received[^\n]*\n\s*NOTIFY /.test(chunk)) continue;
    // sipp writes local time; the difference between two of them is all the test uses.
    out.push({ at: Date.parse(`${when[1]}T${when[2]}`), state: /Subscription-State: *(\S+)/.exec(chunk)?.[1] ?? '' });
  }
  return out;
}

for (const [transport, user, other] of [
  ['u1', alice, bob],
  ['t1', carol, dave],
] as const) {
  const over = transport === 'u1' ? 'UDP' : 'TCP';

  void test(`${over}: SUBSCRIBE 600, refresh to 300 then 2 inside the dialog: each 200 grants it and its NOTIFY says so; at expiry a NOTIFY terminated;reason=timeout, then 481`, async () => {
    const run = await sipp('subscribe-refresh-expire.xml', { port: sipPort }, { psi: PSI, user }, { transport });
    assert.equal(run.code, 0, run.output);
    const notifies = notifyTimes(run.messages);
    assert.deepEqual(
      notifies.map((n) => n.state.replace(/expires=\d+/, 'expires=N')),
      ['active;expires=N', 'active;expires=N', 'active;expires=N', 'terminated;reason=timeout'],
    );
    // The final NOTIFY comes when the 2 s run out, not at once (expiry pages tick once a second).
    const gap = notifies[3]!.at - notifies[2]!.at;
    assert.ok(gap >= 1000 && gap <= 4500, `final NOTIFY ${gap} ms after the short refresh`);
    assert.deepEqual(await subscriptionsOf(user), [], 'the expired subscription left the store');
  });

  void test(`${over}: unsubscribe (Expires: 0 inside the dialog): 200 Expires: 0, final NOTIFY terminated;reason=timeout, then 481`, async () => {
    const run = await sipp('subscribe-unsubscribe.xml', { port: sipPort }, { psi: PSI, user: other }, { transport });
    assert.equal(run.code, 0, run.output);
    assert.deepEqual(await subscriptionsOf(other), [], 'the ended subscription left the store');
  });
}

/** Bounded wait until the store lists a live subscription to `watched` (the first NOTIFY follows the 200 at once). */
async function subscribed(watched: string): Promise<void> {
  for (let i = 0; i < 50; i++) {
    if ((await subscriptionsOf(watched)).length > 0) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.fail(`no subscription to ${watched} within 5 s`);
}

/** The members each NOTIFY's PIDF lists (entity checked to be the group), in order received. */
function membersPerNotify(messages: string, group: string): string[][] {
  return messages
    .split(/^-{10,} /m)
    .filter((chunk) => /message received[^\n]*\n\s*NOTIFY /.test(chunk) && chunk.includes('Subscription-State: active'))
    .map((chunk) => {
      assert.match(chunk, new RegExp(`entity="${group}"`));
      return [...chunk.matchAll(/<contact>([^<]+)<\/contact>/g)].map((x) => x[1]!).sort();
    });
}

for (const [transport, member, before] of [
  ['u1', alice, []],
  ['t1', bob, [alice]],
] as const) {
  const over = transport === 'u1' ? 'UDP' : 'TCP';
  void test(`${over}: a dispatcher with the right subscribes to a group; ${member} affiliates over HTTP; the next NOTIFY lists ${member} affiliated`, async () => {
    const running = sipp('subscribe-to-group.xml', { port: sipPort }, { psi: PSI, user: dispatch, group: G.patrol }, { transport });
    await subscribed(G.patrol);
    await new Promise((r) => setTimeout(r, 300)); // the first NOTIFY (the members as they were) is answered first
    const res = await call('POST', `${m.url()}/mc/v1/affiliations`, await m.token(member), { mcServiceId: member, service: 'mcptt', groupIds: [G.patrol] });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    const run = await running;
    assert.equal(run.code, 0, run.output);
    const lists = membersPerNotify(run.messages, G.patrol);
    assert.deepEqual([lists[0], lists.at(-1)], [[...before], [...before, member].sort()]);
    assert.match(run.messages, new RegExp(`<mcpttPI10:affiliation group="${G.patrol}" status="affiliated"/></status><contact>${member}</contact>`));
    assert.deepEqual(await subscriptionsOf(G.patrol), [], 'the unsubscribed group subscription left the store');
  });
}

void test('a user whose profile does not allow reading the group (not a member, no remote-change right) gets 403, and no subscription is kept', async () => {
  const run = await sipp('subscribe-to-group-refused.xml', { port: sipPort }, { psi: PSI, user: erin, group: G.north });
  assert.equal(run.code, 0, run.output);
  assert.match(run.messages, /SIP\/2.0 403 /);
  assert.deepEqual(await subscriptionsOf(G.north), []);
});

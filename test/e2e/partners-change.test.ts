// E2E (issue 3), three systems in three processes: remote change of affiliation whose groups sit in partner
// systems (TS 23.280 10.X.5.2.1 mandatory; 10.X.5.1.2 negotiated with Notes 2 and 3), own and partner groups of
// two partner systems in one change, partner policy and N2 applied, a partner unreachable at the time of the
// change. The primary and the partner GMSs agree after each scenario.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  Relay,
  affiliate,
  alice,
  answerChange,
  assertAgreement,
  bob,
  carol,
  change,
  dave,
  engine,
  hazmat,
  medic,
  nextChangeEvent,
  north,
  patrol,
  primaryRecords,
  rescue,
  startThreeSystems,
  statusMap,
  triage,
  type ThreeSystems,
} from '../support/partners.ts';

let sys: ThreeSystems;
let toFire: Relay;

before(async () => {
  sys = await startThreeSystems({
    negotiationTimeoutSeconds: 8,
    routes: async (urls) => {
      toFire = await Relay.start(urls.fire);
      return { toFire: { via: toFire.url, timeoutMs: 2500 }, toAmbulance: { timeoutMs: 5000 } };
    },
  });
});

after(async () => {
  await sys?.stop();
  await toFire?.stop();
});

const statusOf = (r: { results: { status: { groupId: string; status: string; reason?: string }[] }[] }, i = 0) => statusMap(r.results[i]!);

void describe('mandatory remote change of partner groups (10.X.5.2.1)', () => {
  void test('joins own and two partners\' groups and leaves partner groups in one change; client 2 is told; all agree', async () => {
    await affiliate(sys, bob, [rescue, triage]);
    const told = nextChangeEvent(sys, bob, (e) => e.mode === 'mandatory');
    const r = await change(sys, { mode: 'mandatory', targets: [bob], affiliate: [engine, medic, patrol, hazmat], deaffiliate: [rescue, triage] });
    assert.equal(r.results[0]!.outcome, 'applied');
    assert.deepEqual(
      r.results[0]!.status.map((s) => s.groupId),
      [engine, medic, patrol, hazmat, rescue, triage],
    );
    assert.deepEqual(statusOf(r), {
      [engine]: 'affiliated',
      [medic]: 'affiliated',
      [patrol]: 'affiliated',
      [hazmat]: 'rejected:not-member', // fire's group policy
      [rescue]: 'deaffiliated',
      [triage]: 'deaffiliated',
    });
    const event = await told;
    assert.equal(event.id, r.id);
    assert.equal(event.actor, 'sip:dispatch@police.example');
    // Step 10b: client 2 acknowledges.
    const ack = await answerChange(sys, bob, r.id, true);
    assert.equal(ack.status, 200);
    assert.equal((ack.body as { state: string }).state, 'acknowledged');
    assert.deepEqual(await primaryRecords(sys, bob), { [engine]: 'affiliated', [medic]: 'affiliated', [patrol]: 'affiliated' });
    await assertAgreement(sys, bob, [engine, medic]);
  });

  void test('several targets at once; N2 of each target counts partner groups', async () => {
    // alice: n2 3 and already one own group; dave: n2 6.
    await affiliate(sys, alice, [north]);
    const r = await change(sys, { mode: 'mandatory', targets: [alice, dave], affiliate: [engine, medic, triage] });
    assert.deepEqual(
      r.results.map((x) => x.outcome),
      ['applied', 'applied'],
    );
    assert.deepEqual(statusOf(r, 0), { [engine]: 'affiliated', [medic]: 'affiliated', [triage]: 'rejected:n2-limit' });
    assert.deepEqual(statusOf(r, 1), { [engine]: 'affiliated', [medic]: 'affiliated', [triage]: 'affiliated' });
    await assertAgreement(sys, alice, [engine, medic]);
    await assertAgreement(sys, dave, [engine, medic, triage]);
  });

  void test('a partner unreachable during the change: its groups partner-unreachable, the rest applied, nothing left at the partner', async () => {
    toFire.mode = { kind: 'slow', ms: 8000 };
    try {
      const r = await change(sys, { mode: 'mandatory', targets: [dave], affiliate: [rescue, north], deaffiliate: [engine, medic] });
      assert.deepEqual(statusOf(r), { [rescue]: 'rejected:partner-unreachable', [north]: 'affiliated', [engine]: 'rejected:partner-unreachable', [medic]: 'deaffiliated' });
    } finally {
      toFire.mode = { kind: 'pass' };
    }
    await assertAgreement(sys, dave, [engine, triage]);
  });
});

void describe('negotiated remote change of partner groups (10.X.5.1.2 Notes 2 and 3)', () => {
  void test('accepted: the affiliation runs through both partner systems and client 1 gets every answer', async () => {
    await affiliate(sys, carol, [medic]);
    const asked = nextChangeEvent(sys, carol, (e) => e.mode === 'negotiated');
    const pending = change(sys, { mode: 'negotiated', targets: [carol], affiliate: [engine, triage, hazmat], deaffiliate: [medic] });
    const event = await asked;
    // hazmat is offered (the primary cannot see fire's policy); nothing changes before the answer.
    assert.deepEqual(event.affiliate, [engine, triage, hazmat]);
    assert.deepEqual(await primaryRecords(sys, carol), { [medic]: 'affiliated' });
    await assertAgreement(sys, carol, [medic]);
    const a = await answerChange(sys, carol, event.id, true);
    assert.equal(a.status, 200, JSON.stringify(a.body));
    const r = await pending;
    assert.equal(r.results[0]!.outcome, 'applied');
    assert.deepEqual(statusOf(r), { [engine]: 'affiliated', [triage]: 'affiliated', [hazmat]: 'rejected:not-member', [medic]: 'deaffiliated' });
    await assertAgreement(sys, carol, [engine, triage]);
  });

  void test('rejected by the user: nothing changes at the primary or any partner', async () => {
    const asked = nextChangeEvent(sys, carol, (e) => e.mode === 'negotiated' && e.deaffiliate.includes(engine));
    const pending = change(sys, { mode: 'negotiated', targets: [carol], affiliate: [rescue, medic], deaffiliate: [engine] });
    const event = await asked;
    assert.equal((await answerChange(sys, carol, event.id, false)).status, 200);
    const r = await pending;
    assert.equal(r.results[0]!.outcome, 'rejected-by-user');
    assert.deepEqual(statusOf(r), { [rescue]: 'rejected:rejected-by-user', [medic]: 'rejected:rejected-by-user', [engine]: 'rejected:rejected-by-user' });
    await assertAgreement(sys, carol, [engine, triage]);
  });

  void test('accepted while one partner answers garbage: that partner\'s groups partner-unreachable, the other partner applied', async () => {
    const asked = nextChangeEvent(sys, carol, (e) => e.mode === 'negotiated' && e.affiliate.includes(rescue));
    const pending = change(sys, { mode: 'negotiated', targets: [carol], affiliate: [rescue, medic], deaffiliate: [triage] });
    const event = await asked;
    toFire.mode = { kind: 'garble', status: 200, body: '{"status":"all good"}' };
    try {
      assert.equal((await answerChange(sys, carol, event.id, true)).status, 200);
      const r = await pending;
      assert.equal(r.results[0]!.outcome, 'applied');
      assert.deepEqual(statusOf(r), { [rescue]: 'rejected:partner-unreachable', [medic]: 'affiliated', [triage]: 'deaffiliated' });
    } finally {
      toFire.mode = { kind: 'pass' };
    }
    await assertAgreement(sys, carol, [engine, medic]);
  });
});

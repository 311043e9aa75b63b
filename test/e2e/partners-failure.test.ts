// E2E (issue 3), bounded failure with three systems in three processes: a partner answering slowly past its
// timeout (a slow relay as its next hop), garbage answers (a relay that garbles, a server that only answers junk),
// and a partner killed mid-test. Each gives partner-unreachable for that partner's groups only, the other groups
// are decided normally, and afterwards no reservation is left and the primary and the partner GMSs agree.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { call } from '../support/harness.ts';
import {
  Relay,
  affiliate,
  alice,
  assertAgreement,
  bob,
  carol,
  dave,
  deaffiliate,
  engine,
  ladder,
  medic,
  patrol,
  primaryRecords,
  rescue,
  startWithRelayToFire,
  statusMap,
  triage,
  north,
  type ThreeSystems,
} from '../support/partners.ts';

const TIMEOUT_MS = 2000;
/** How long the slow relay holds an answer back: far past the timeout, so an answer in time shows the bound. */
const SLOW_MS = TIMEOUT_MS + 5000;
let sys: ThreeSystems;
/** Police's next hop to fire: passes, holds answers back, or garbles them. */
let toFire: Relay;

before(async () => {
  const started = await startWithRelayToFire(TIMEOUT_MS);
  sys = started;
  toFire = started.toFire;
});

after(async () => {
  await sys?.stop();
});

const UNREACHABLE = 'rejected:partner-unreachable';

/** The partners as police's /healthz sees them (partners probe each other's /healthz). */
async function partnerHealth(): Promise<Record<string, string>> {
  const r = await call('GET', `${sys.urls.police}/healthz`, undefined);
  return (r.body as { partners: Record<string, string> }).partners;
}

void describe('a partner answering slowly past the timeout', () => {
  void test('affiliation: partner-unreachable for its groups only, within about the timeout; what it stored late is undone', async () => {
    toFire.mode = { kind: 'slow', ms: SLOW_MS };
    try {
      const t0 = Date.now();
      const body = await affiliate(sys, alice, [patrol, engine, medic]);
      assert.ok(Date.now() - t0 < SLOW_MS - 1000, `answered after ${Date.now() - t0} ms`);
      assert.deepEqual(statusMap(body), { [patrol]: 'affiliated', [engine]: UNREACHABLE, [medic]: 'affiliated' });
      assert.deepEqual(await primaryRecords(sys, alice), { [patrol]: 'affiliated', [medic]: 'affiliated' });
    } finally {
      toFire.mode = { kind: 'pass' };
    }
    await assertAgreement(sys, alice, [medic]);
    // The slot the slow request held is free again (alice: n2 3).
    assert.deepEqual(statusMap(await affiliate(sys, alice, [engine])), { [engine]: 'affiliated' });
    await assertAgreement(sys, alice, [engine, medic]);
  });

  void test('de-affiliation: the group stays affiliated at both ends', async () => {
    await affiliate(sys, bob, [engine, rescue, triage]);
    toFire.mode = { kind: 'slow', ms: SLOW_MS };
    try {
      const body = await deaffiliate(sys, bob, [engine, triage]);
      assert.deepEqual(statusMap(body), { [engine]: UNREACHABLE, [triage]: 'deaffiliated' });
    } finally {
      toFire.mode = { kind: 'pass' };
    }
    await assertAgreement(sys, bob, [engine, rescue]);
  });

  void test('affiliation to a group whose members may not leave: withdrawn at the partner all the same', async () => {
    toFire.mode = { kind: 'slow', ms: SLOW_MS };
    try {
      assert.deepEqual(statusMap(await affiliate(sys, bob, [ladder])), { [ladder]: UNREACHABLE });
    } finally {
      toFire.mode = { kind: 'pass' };
    }
    await assertAgreement(sys, bob, [engine, rescue]);
    // Once affiliated for real, the policy holds: bob may not leave.
    assert.deepEqual(statusMap(await affiliate(sys, bob, [ladder])), { [ladder]: 'affiliated' });
    assert.deepEqual(statusMap(await deaffiliate(sys, bob, [ladder])), { [ladder]: 'rejected:deaffiliation-forbidden' });
    await assertAgreement(sys, bob, [engine, ladder, rescue]);
  });
});

void describe('garbage answers', () => {
  const answers: [string, number, string][] = [
    ['not JSON', 200, 'hello, I am not JSON'],
    ['JSON without statuses', 200, '{"ok":true}'],
    ['statuses for other groups', 200, JSON.stringify({ status: [{ groupId: 'sip:other@fire.example', status: 'affiliated' }] })],
    ['an unknown status', 200, JSON.stringify({ status: [{ groupId: rescue, status: 'maybe' }] })],
    ['an unknown refusal reason', 200, JSON.stringify({ status: [{ groupId: rescue, status: 'rejected', reason: 'because' }] })],
    ['a server error', 500, '{"error":{"code":"internal","message":"boom"}}'],
  ];
  for (const [what, status, body] of answers) {
    void test(`a relay that forwards and answers ${what}: partner-unreachable for fire's group, nothing left behind`, async () => {
      toFire.mode = { kind: 'garble', status, body };
      try {
        const r = await affiliate(sys, carol, [rescue, medic]);
        assert.deepEqual(statusMap(r), { [rescue]: UNREACHABLE, [medic]: 'affiliated' });
      } finally {
        toFire.mode = { kind: 'pass' };
      }
      await assertAgreement(sys, carol, [medic]);
    });
  }

  void test('a stand-in partner that answers junk without forwarding', async () => {
    toFire.mode = { kind: 'junk', status: 200, body: '<html>surprise</html>' };
    try {
      const r = await affiliate(sys, carol, [rescue, engine, north]);
      assert.deepEqual(statusMap(r), { [rescue]: UNREACHABLE, [engine]: UNREACHABLE, [north]: 'affiliated' });
      const d = await deaffiliate(sys, carol, [medic]);
      assert.deepEqual(statusMap(d), { [medic]: 'deaffiliated' });
    } finally {
      toFire.mode = { kind: 'pass' };
    }
    await assertAgreement(sys, carol, []);
  });
});

void describe('a partner killed mid-test', () => {
  void test('ambulance down: its groups get partner-unreachable, other systems are decided; after its restart all agree', async () => {
    await affiliate(sys, dave, [triage]);
    await assertAgreement(sys, dave, [triage]);
    assert.deepEqual(await partnerHealth(), { 'fire.example': 'up', 'ambulance.example': 'up' });
    await sys.ambulance.kill();
    try {
      assert.deepEqual(await partnerHealth(), { 'fire.example': 'up', 'ambulance.example': 'down' });
      const t0 = Date.now();
      const r = await affiliate(sys, dave, [medic, engine, patrol]);
      assert.ok(Date.now() - t0 < SLOW_MS - 1000, `answered after ${Date.now() - t0} ms`);
      assert.deepEqual(statusMap(r), { [medic]: UNREACHABLE, [engine]: 'affiliated', [patrol]: 'affiliated' });
      const d = await deaffiliate(sys, dave, [triage, patrol]);
      assert.deepEqual(statusMap(d), { [triage]: UNREACHABLE, [patrol]: 'deaffiliated' });
      assert.deepEqual(await primaryRecords(sys, dave), { [triage]: 'affiliated', [engine]: 'affiliated' });
    } finally {
      await sys.ambulance.spawn();
    }
    await assertAgreement(sys, dave, [engine, triage]);
    // Back up: the same requests now go through.
    assert.deepEqual(statusMap(await affiliate(sys, dave, [medic])), { [medic]: 'affiliated' });
    assert.deepEqual(statusMap(await deaffiliate(sys, dave, [triage])), { [triage]: 'deaffiliated' });
    await assertAgreement(sys, dave, [engine, medic]);
  });
});

// E2E (issue 3), three MC systems in three processes (police, fire, ambulance): affiliation and de-affiliation
// to groups of partner systems (TS 23.280 10.X.3.2, 10.X.4.3), one request split over several partners, N2 counted
// across systems (also while a partner request is in flight), and a route through an intermediate node (fire)
// to ambulance with the originator intact. After each scenario the primary and the partner GMSs agree.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { call } from '../support/harness.ts';
import {
  A,
  F,
  Relay,
  affiliate,
  alice,
  assertAgreement,
  bob,
  carol,
  dave,
  deaffiliate,
  engine,
  hazmat,
  ladder,
  medic,
  north,
  patrol,
  primaryRecords,
  rescue,
  sleep,
  startThreeSystems,
  statusMap,
  triage,
  type ThreeSystems,
} from '../support/partners.ts';

let sys: ThreeSystems;
/** A plain relay in front of fire (held slow in the in-flight N2 test). */
let fireRelay: Relay;

before(async () => {
  sys = await startThreeSystems({
    routes: async (urls) => {
      fireRelay = await Relay.start(urls.fire);
      // Police reaches fire through a plain HTTP relay and ambulance through fire (another Muster system).
      return { toFire: { via: fireRelay.url, timeoutMs: 10000 }, toAmbulance: { via: urls.fire, timeoutMs: 10000 } };
    },
  });
});

after(async () => {
  await sys?.stop();
  await fireRelay?.stop();
});

void describe('affiliation across three systems', () => {
  void test('one request with own groups and groups of two partners is split, and each group answered in request order', async () => {
    const before = fireRelay.seen.length;
    const body = await affiliate(sys, bob, [patrol, engine, medic, rescue, hazmat, triage]);
    assert.deepEqual(
      body.status.map((s) => s.groupId),
      [patrol, engine, medic, rescue, hazmat, triage],
    );
    assert.deepEqual(statusMap(body), {
      [patrol]: 'affiliated',
      [engine]: 'affiliated',
      [medic]: 'affiliated',
      [rescue]: 'affiliated',
      [hazmat]: 'rejected:not-member', // fire's own group policy decided
      [triage]: 'affiliated',
    });
    // One server-to-server request per partner system, with all its groups, through the relay in front of fire.
    const sent = fireRelay.seen.slice(before).filter((s) => s.path === '/federation/v1/affiliations');
    assert.equal(sent.length, 1, 'one server-to-server request to fire for all its groups');
    assert.deepEqual(JSON.parse(sent[0]!.body), { mcServiceId: bob, service: 'mcptt', groupIds: [engine, rescue, hazmat] });
    assert.deepEqual(await primaryRecords(sys, bob), { [patrol]: 'affiliated', [engine]: 'affiliated', [medic]: 'affiliated', [rescue]: 'affiliated', [triage]: 'affiliated' });
    // The partners' MC service servers keep their own records (the members view of the group host).
    const members = await call('GET', `${sys.urls.ambulance}/mc/v1/groups/${encodeURIComponent(medic)}/members?service=mcptt`, await sys.ambulance.operatorToken(A));
    assert.equal(members.status, 200);
    assert.deepEqual(
      ((members.body as { members: { mcServiceId: string }[] }).members as { mcServiceId: string }[]).map((m) => m.mcServiceId),
      [bob],
    );
    await assertAgreement(sys, bob, [engine, medic, rescue, triage]);
  });

  void test('affiliating again is idempotent and does not ask the partner again', async () => {
    const before = fireRelay.seen.length;
    const body = await affiliate(sys, bob, [engine, rescue, medic]);
    assert.deepEqual(statusMap(body), { [engine]: 'affiliated', [rescue]: 'affiliated', [medic]: 'affiliated' });
    assert.equal(fireRelay.seen.length, before);
    await assertAgreement(sys, bob, [engine, medic, rescue, triage]);
  });

  void test('de-affiliation across systems: own and partner groups in one request; a partner policy may forbid leaving', async () => {
    await affiliate(sys, bob, [ladder]);
    const body = await deaffiliate(sys, bob, [patrol, engine, triage, ladder, north]);
    assert.deepEqual(statusMap(body), {
      [patrol]: 'deaffiliated',
      [engine]: 'deaffiliated',
      [triage]: 'deaffiliated',
      [ladder]: 'rejected:deaffiliation-forbidden',
      [north]: 'deaffiliated', // never affiliated: idempotent
    });
    assert.deepEqual(await primaryRecords(sys, bob), { [medic]: 'affiliated', [rescue]: 'affiliated', [ladder]: 'affiliated' });
    await assertAgreement(sys, bob, [ladder, medic, rescue]);
    // De-affiliating again changes nothing anywhere.
    const again = await deaffiliate(sys, bob, [engine, triage]);
    assert.deepEqual(statusMap(again), { [engine]: 'deaffiliated', [triage]: 'deaffiliated' });
    await assertAgreement(sys, bob, [ladder, medic, rescue]);
  });

  void test('N2 counts groups of all systems: the excess groups, in request order, get n2-limit without asking a partner', async () => {
    // alice: n2 3.
    const body = await affiliate(sys, alice, [engine, patrol, medic, rescue, triage]);
    assert.deepEqual(statusMap(body), {
      [engine]: 'affiliated',
      [patrol]: 'affiliated',
      [medic]: 'affiliated',
      [rescue]: 'rejected:n2-limit',
      [triage]: 'rejected:n2-limit',
    });
    await assertAgreement(sys, alice, [engine, medic]);
    // A partner's refusal releases the slot it held: leaving one frees room for another.
    await deaffiliate(sys, alice, [medic]);
    // hazmat holds the third slot while fire decides, and fire's refusal (not a member) releases it.
    assert.deepEqual(statusMap(await affiliate(sys, alice, [hazmat])), { [hazmat]: 'rejected:not-member' });
    assert.deepEqual(statusMap(await affiliate(sys, alice, [triage])), { [triage]: 'affiliated' });
    await assertAgreement(sys, alice, [engine, triage]);
  });

  void test('N2 holds while a partner request is in flight: the reserved slot counts, and is committed by the answer', async () => {
    // carol: n2 6; fill 4 slots, then ask fire (slow but within the timeout) for 2 more and, meanwhile, own groups.
    await affiliate(sys, carol, [medic, triage, ladder, patrol]);
    fireRelay.mode = { kind: 'slow', ms: 2500 };
    try {
      const slow = affiliate(sys, carol, [engine, rescue]);
      // Wait (bounded) until the request reached fire: the relay has seen it.
      for (let i = 0; i < 100 && !fireRelay.seen.some((s) => s.path === '/federation/v1/affiliations' && s.body.includes(carol) && s.body.includes(engine)); i++) await sleep(50);
      assert.deepEqual(await primaryRecords(sys, carol), { [medic]: 'affiliated', [triage]: 'affiliated', [ladder]: 'affiliated', [patrol]: 'affiliated', [engine]: 'reserved', [rescue]: 'reserved' });
      const meanwhile = await affiliate(sys, carol, [north]);
      assert.deepEqual(statusMap(meanwhile), { [north]: 'rejected:n2-limit' });
      assert.deepEqual(statusMap(await slow), { [engine]: 'affiliated', [rescue]: 'affiliated' });
    } finally {
      fireRelay.mode = { kind: 'pass' };
    }
    await assertAgreement(sys, carol, [engine, ladder, medic, rescue, triage]);
  });

  void test('concurrent requests of one user across systems never exceed N2', async () => {
    // dave: n2 6, 8 groups asked in 8 parallel requests.
    const groups = [patrol, north, engine, rescue, ladder, medic, triage, hazmat];
    const answers = await Promise.all(groups.map((g) => affiliate(sys, dave, [g])));
    const affiliated = answers.flatMap((a) => a.status).filter((s) => s.status === 'affiliated');
    assert.ok(affiliated.length <= 6, `affiliated ${affiliated.length} > N2`);
    const recs = await primaryRecords(sys, dave);
    assert.ok(Object.keys(recs).length <= 6);
    await assertAgreement(sys, dave);
  });

  void test('through an intermediate Muster node (fire) to ambulance: the originator is intact and fire stores nothing', async () => {
    const before = fireRelay.seen.length;
    await affiliate(sys, alice, [triage]); // idempotent; already affiliated
    await deaffiliate(sys, alice, [triage]);
    const body = await affiliate(sys, alice, [triage]);
    assert.deepEqual(statusMap(body), { [triage]: 'affiliated' });
    assert.equal(fireRelay.seen.length, before, 'the plain relay carries fire traffic only');
    // Fire relayed, it did not decide: no record of alice at fire, ambulance has alice (not fire's users) as member.
    const atFire = await call('GET', `${sys.urls.fire}/mc/v1/groups/${encodeURIComponent(triage)}/members?service=mcptt`, await sys.fire.operatorToken(F));
    assert.equal(atFire.status, 404);
    const gms = await call('GET', `${sys.urls.ambulance}/gms/v1/groups/${encodeURIComponent(triage)}/affiliations?service=mcptt`, await sys.ambulance.operatorToken(A));
    assert.ok(((gms.body as { members: { mcServiceId: string }[] }).members as { mcServiceId: string }[]).some((m) => m.mcServiceId === alice));
    await assertAgreement(sys, alice, [engine, triage]);
  });
});

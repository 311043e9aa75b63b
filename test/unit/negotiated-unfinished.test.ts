// TS 23.280 10.X.5.1.2 step 6 when applying client 2's answer fails (the store went away between the answer and its
// result): the change is stored as accepted with no result, client 2 hears the failure, and the expiry round finishes
// it once the deadline is past, so client 1 gets its answer instead of waiting for ever. On a real system (SQLite) in
// the test's process, with a settable clock and a store that fails the one write the test chooses.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { McUri } from '../../src/domain/ids.ts';
import { MusterError } from '../../src/domain/errors.ts';
import type { McServiceServer } from '../../src/procedures/context.ts';
import type { Store } from '../../src/ports/store.ts';
import { answerChange, expireChanges, remoteChangeNegotiated } from '../../src/procedures/remote-change-negotiated.ts';
import { policeId, policeSystem, withSystem } from '../support/in-process.ts';
import { standInPartners } from '../support/stand-in-partners.ts';

const alice = policeId('alice');
const dispatch = policeId('dispatch');
const patrol = policeId('patrol');

const system = policeSystem({
  users: [
    { id: alice, services: ['mcptt'], n2: 2, groups: [patrol] },
    { id: dispatch, services: ['mcptt'], n2: 2, groups: [patrol], remoteChange: true },
  ],
  groups: [{ id: patrol, services: ['mcptt'], members: [alice, dispatch] }],
});

void test("an accepted change whose application failed is finished by the expiry round after its deadline, and client 1 gets the answer", async () => {
  await withSystem(system, async (police) => {
    const clock = { t: Date.now(), now: () => clock.t, after: () => () => undefined };
    let failNext = false;
    // The real store, but its next affiliation write fails as an unavailable store's does.
    const store: Store = Object.create(police.server.store) as Store;
    store.changeAffiliations = (...args) => {
      if (!failNext) return police.server.store.changeAffiliations(...args);
      failNext = false;
      return Promise.reject(new MusterError('unavailable', 'store unavailable: SQLITE_IOERR'));
    };
    const s: McServiceServer = { ...police.server, store, clock };

    let clientOneAnswered = false;
    const clientOne = remoteChangeNegotiated(s, { mcServiceId: dispatch, service: 'mcptt', mode: 'negotiated', targets: [alice], affiliate: [patrol], deaffiliate: [] }, 'n-1').finally(() => (clientOneAnswered = true));
    for (let i = 0; i < 100 && (await s.store.changesInState('asked', alice)).length === 0; i++) await new Promise((r) => setTimeout(r, 5));

    failNext = true;
    await assert.rejects(answerChange(s, alice, 'n-1', true), (e: unknown) => e instanceof MusterError && e.code === 'unavailable', 'client 2 hears the failure');
    const stuck = await s.store.getChange('n-1', alice);
    assert.deepEqual([stuck?.state, stuck?.result], ['accepted', null]);

    // Before the deadline the round leaves it alone (the first try may still be running elsewhere).
    await expireChanges(s);
    assert.equal(clientOneAnswered, false);
    assert.deepEqual(await s.store.affiliationsOfUser(alice), []);

    clock.t += s.negotiationTimeoutMs + 1000;
    await expireChanges(s);
    assert.deepEqual(await clientOne, [{ target: alice, outcome: 'applied', status: [{ groupId: patrol, status: 'affiliated' }] }]);
    assert.deepEqual((await s.store.affiliationsOfUser(alice)).map((r) => [r.groupId, r.state]), [[patrol, 'affiliated']]);
    assert.deepEqual((await s.store.getChange('n-1', alice))?.result, [{ groupId: patrol, status: 'affiliated' }]);
    assert.deepEqual(await s.store.changesAnsweredUnfinished(clock.t, 10), [], 'finished once');
  });
});

void test('a store that fails when the negotiation times out is logged, not a crash; the expiry round times it out later', async () => {
  await withSystem(system, async (police) => {
    const unhandled: unknown[] = [];
    const onUnhandled = (e: unknown): void => void unhandled.push(e);
    process.on('unhandledRejection', onUnhandled);
    try {
      let failing = false;
      const store: Store = Object.create(police.server.store) as Store;
      store.transitionChange = (...args) => (failing ? Promise.reject(new MusterError('unavailable', 'store unavailable: SQLITE_FULL')) : police.server.store.transitionChange(...args));
      // The timeout fires as soon as it is armed.
      const clock = { t: Date.now(), now: () => clock.t, after: (_ms: number, fire: () => void) => (setImmediate(fire), () => undefined) };
      const warnings: string[] = [];
      const log = Object.assign(Object.create(police.server.log) as typeof police.server.log, { warn: (_o: unknown, msg: string) => void warnings.push(msg) });
      const s: McServiceServer = { ...police.server, store, clock, log };
      failing = true;
      const clientOne = remoteChangeNegotiated(s, { mcServiceId: dispatch, service: 'mcptt', mode: 'negotiated', targets: [alice], affiliate: [patrol], deaffiliate: [] }, 'n-2');
      for (let i = 0; i < 100 && warnings.length === 0; i++) await new Promise((r) => setTimeout(r, 5));
      assert.deepEqual(warnings, ['negotiated affiliation change could not be timed out; the expiry round tries again']);
      failing = false;
      clock.t += s.negotiationTimeoutMs + 1000;
      await expireChanges(s);
      assert.deepEqual(await clientOne, [{ target: alice, outcome: 'timeout', status: [{ groupId: patrol, status: 'rejected', reason: 'timeout' }] }]);
      assert.deepEqual(unhandled, []);
    } finally {
      process.off('unhandledRejection', onUnhandled);
    }
  });
});

void test('`asked` comes only once the request to the target is stored; a store that fails first fails the request instead', async () => {
  await withSystem(system, async (police) => {
    let release!: () => void;
    const storing = new Promise<void>((r) => (release = r));
    let stored = false;
    const store: Store = Object.create(police.server.store) as Store;
    store.createChanges = async (...args) => {
      await storing;
      const events = await police.server.store.createChanges(...args);
      stored = true;
      return events;
    };
    const clock = { t: Date.now(), now: () => clock.t, after: () => () => undefined };
    const s: McServiceServer = { ...police.server, store, clock };
    let askedWhileStored: boolean | undefined;
    const change = { mcServiceId: dispatch, service: 'mcptt' as const, mode: 'negotiated' as const, targets: [alice], affiliate: [patrol], deaffiliate: [] };
    void remoteChangeNegotiated(s, change, 'n-3', () => (askedWhileStored = stored));
    await new Promise((r) => setTimeout(r, 20));
    assert.equal(askedWhileStored, undefined, 'not before the store has it');
    release();
    for (let i = 0; i < 100 && askedWhileStored === undefined; i++) await new Promise((r) => setTimeout(r, 5));
    assert.equal(askedWhileStored, true);

    store.createChanges = () => Promise.reject(new MusterError('unavailable', 'store unavailable: SQLITE_READONLY'));
    let asked = false;
    await assert.rejects(remoteChangeNegotiated(s, { ...change, targets: [alice] }, 'n-4', () => (asked = true)), (e: unknown) => e instanceof MusterError && e.code === 'unavailable');
    assert.equal(asked, false);
  });
});

void test('the expiry round does not finish a second time an accepted change whose partner is still answering', async () => {
  const engine = 'sip:engine@fire.example' as McUri;
  const withPartner = {
    ...system,
    partners: [{ domain: 'fire.example', url: 'http://127.0.0.1:9', secret: 'shared' }],
    users: system.users.map((u) => ({ ...u, groups: [...u.groups, engine] })),
  };
  await withSystem(withPartner, async (police) => {
    const asked: ((s: { groupId: McUri; status: 'affiliated' }[]) => void)[] = [];
    const partners = standInPartners('fire.example', { affiliate: () => new Promise((answer) => asked.push(answer)) });
    const clock = { t: Date.now(), now: () => clock.t, after: () => () => undefined };
    const s: McServiceServer = { ...police.server, partners, clock };
    const clientOne = remoteChangeNegotiated(s, { mcServiceId: dispatch, service: 'mcptt', mode: 'negotiated', targets: [alice], affiliate: [engine], deaffiliate: [] }, 'n-5');
    for (let i = 0; i < 100 && (await s.store.changesInState('asked', alice)).length === 0; i++) await new Promise((r) => setTimeout(r, 5));
    const answering = answerChange(s, alice, 'n-5', true);
    for (let i = 0; i < 100 && asked.length === 0; i++) await new Promise((r) => setTimeout(r, 5));
    assert.equal(asked.length, 1, 'the partner is asked once');
    clock.t += s.negotiationTimeoutMs + 1000; // the partner is slow: the deadline passes meanwhile
    await expireChanges(s);
    assert.equal(asked.length, 1, 'and not a second time by the expiry round');
    asked[0]!([{ groupId: engine, status: 'affiliated' }]);
    assert.deepEqual((await answering).status, [{ groupId: engine, status: 'affiliated' }]);
    assert.deepEqual((await clientOne)[0]?.outcome, 'applied');
  });
});

void test('an answer after the deadline is refused (409) and the change is timed out, also when no timer fired', async () => {
  await withSystem(system, async (police) => {
    const clock = { t: Date.now(), now: () => clock.t, after: () => () => undefined }; // the timer never fires
    const s: McServiceServer = { ...police.server, clock };
    const clientOne = remoteChangeNegotiated(s, { mcServiceId: dispatch, service: 'mcptt', mode: 'negotiated', targets: [alice], affiliate: [patrol], deaffiliate: [] }, 'n-late');
    for (let i = 0; i < 100 && (await s.store.changesInState('asked', alice)).length === 0; i++) await new Promise((r) => setTimeout(r, 5));
    clock.t += s.negotiationTimeoutMs + 1;
    await assert.rejects(answerChange(s, alice, 'n-late', true), (e: unknown) => e instanceof MusterError && e.code === 'conflict' && /timed-out/.test(e.message));
    assert.deepEqual(await clientOne, [{ target: alice, outcome: 'timeout', status: [{ groupId: patrol, status: 'rejected', reason: 'timeout' }] }]);
    assert.deepEqual(await s.store.affiliationsOfUser(alice), [], 'nothing applied');
  });
});

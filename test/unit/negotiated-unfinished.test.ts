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
import { withSystem } from '../support/in-process.ts';

const P = 'police.example';
const alice = `sip:alice@${P}` as McUri;
const dispatch = `sip:dispatch@${P}` as McUri;
const patrol = `sip:patrol@${P}` as McUri;

const system = {
  name: 'police',
  domain: P,
  http: { port: 0 },
  secret: 'police-secret',
  users: [
    { id: alice, services: ['mcptt'], n2: 2, groups: [patrol] },
    { id: dispatch, services: ['mcptt'], n2: 2, groups: [patrol], remoteChange: true },
  ],
  groups: [{ id: patrol, services: ['mcptt'], members: [alice, dispatch] }],
};

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

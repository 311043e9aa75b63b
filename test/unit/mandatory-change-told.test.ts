// TS 23.280 10.X.5.1.1 step 7a with a store that fails part-way: the change applied to client 2 and the record and
// event that tell it are stored in one transaction, so a store failure leaves both or neither. Before, the record went
// in a write of its own after the change: a failure there answered client 1 503 with user 2 changed and never told.
// On a real system (SQLite) in the test's process, with a store that fails the write the test chooses; a change with
// both lists also on PostgreSQL: before, it de-affiliated in a transaction of its own, so a failure of the next write
// answered 503 with the de-affiliation applied and user 2 never told.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { MusterError } from '../../src/domain/errors.ts';
import type { McServiceServer } from '../../src/procedures/context.ts';
import type { NewAuditEntry, Store } from '../../src/ports/store.ts';
import { remoteChangeMandatory } from '../../src/procedures/remote-change-mandatory.ts';
import { affiliate } from '../../src/procedures/affiliate.ts';
import { policeId, policeSystem, withSystem } from '../support/in-process.ts';
import { twoInstancesOf } from '../support/two-instances.ts';

const alice = policeId('alice');
const dispatch = policeId('dispatch');
const patrol = policeId('patrol');
const north = policeId('north');
const east = policeId('east');

const system = policeSystem({
  users: [
    { id: alice, services: ['mcptt'], n2: 2, groups: [patrol, north] },
    { id: dispatch, services: ['mcptt'], n2: 2, groups: [patrol], remoteChange: { groups: [patrol] } },
  ],
  groups: [
    { id: patrol, services: ['mcptt'], members: [alice, dispatch] },
    { id: north, services: ['mcptt'], members: [alice] },
  ],
});

/** The real store, whose writes (affiliation changes and change records alike) fail from the `failFrom`-th on. */
function failingFrom(real: Store, failFrom: number): Store {
  let writes = 0;
  const fails = (): boolean => ++writes >= failFrom;
  const store: Store = Object.create(real) as Store;
  store.changeAffiliations = (...args) => (fails() ? Promise.reject(new MusterError('unavailable', 'store unavailable: SQLITE_FULL')) : real.changeAffiliations(...args));
  store.createChanges = (...args) => (fails() ? Promise.reject(new MusterError('unavailable', 'store unavailable: SQLITE_FULL')) : real.createChanges(...args));
  return store;
}

const toldEvents = async (s: McServiceServer): Promise<unknown[]> => (await s.store.eventsAfter(alice, 0, 100)).filter((e) => e.type === 'affiliation-change').map((e) => (e.data as { id: string }).id);

for (const failFrom of [1, 2]) {
  void test(`a store failing from write ${failFrom} on: user 2 is changed and told, or neither`, async () => {
    await withSystem(system, async (police) => {
      const s: McServiceServer = { ...police.server, store: failingFrom(police.server.store, failFrom) };
      const outcome = await remoteChangeMandatory(s, { mcServiceId: dispatch, service: 'mcptt', mode: 'mandatory', targets: [alice], affiliate: [patrol], deaffiliate: [] }, 'm-1').then(
        (r) => ({ ok: true as const, r }),
        (e: unknown) => ({ ok: false as const, e }),
      );
      const affiliated = (await police.server.store.affiliationsOfUser(alice)).map((r) => r.groupId);
      const record = await police.server.store.getChange('m-1', alice);
      const told = await toldEvents(police.server);
      if (outcome.ok) {
        assert.deepEqual([affiliated, record?.state, told], [[patrol], 'told', ['m-1']], 'applied, recorded and told');
      } else {
        assert.ok(outcome.e instanceof MusterError && outcome.e.code === 'unavailable');
        assert.deepEqual([affiliated, record, told], [[], undefined, []], 'nothing applied, nothing told');
      }
    });
  });
}

void test('a change with nothing to apply (every group outside the right) is still recorded and told', async () => {
  await withSystem(system, async (police) => {
    const [result] = await remoteChangeMandatory(police.server, { mcServiceId: dispatch, service: 'mcptt', mode: 'mandatory', targets: [alice], affiliate: [north], deaffiliate: [] }, 'm-2');
    assert.deepEqual(result?.status, [{ groupId: north, status: 'rejected', reason: 'not-authorised' }]);
    assert.equal((await police.server.store.getChange('m-2', alice))?.state, 'told');
    assert.deepEqual(await toldEvents(police.server), ['m-2']);
  });
});

void test("a face's audit entry rides on the change's transaction (stored with it, or neither); with nothing to apply the hook is not called", async () => {
  await withSystem(system, async (police) => {
    const entry = (target: string, status: unknown): NewAuditEntry[] => [{ at: 1, subject: dispatch, role: 'user', onBehalfOf: target, action: 'sip-publish', service: 'mcptt', groups: [], httpStatus: 200, errorCode: null, result: { status } }];
    const failing: McServiceServer = { ...police.server, store: failingFrom(police.server.store, 1) };
    const refused = await remoteChangeMandatory(failing, { mcServiceId: dispatch, service: 'mcptt', mode: 'mandatory', targets: [alice], affiliate: [patrol], deaffiliate: [] }, 'm-3', { audit: entry }).catch((e: unknown) => e);
    assert.ok(refused instanceof MusterError && refused.code === 'unavailable');
    assert.deepEqual(await police.server.store.queryAudit({ limit: 10 }), [], 'no entry without the change');

    const [applied] = await remoteChangeMandatory(police.server, { mcServiceId: dispatch, service: 'mcptt', mode: 'mandatory', targets: [alice], affiliate: [patrol], deaffiliate: [] }, 'm-4', { audit: entry });
    assert.deepEqual((await police.server.store.queryAudit({ limit: 10 })).map((e) => e.result), [{ status: applied?.status }]);

    let called = false;
    await remoteChangeMandatory(police.server, { mcServiceId: dispatch, service: 'mcptt', mode: 'mandatory', targets: [alice], affiliate: [north], deaffiliate: [] }, 'm-5', { audit: (t, st) => ((called = true), entry(t, st)) });
    assert.equal(called, false, 'the face stores its entry itself');
    assert.equal((await police.server.store.getChange('m-5', alice))?.state, 'told');
  });
});

// Alice holds east and has one slot (N2 1): leaving east frees it for patrol, within the right to both.
const bothLists = policeSystem({
  users: [
    { id: alice, services: ['mcptt'], n2: 1, groups: [patrol, east] },
    { id: dispatch, services: ['mcptt'], n2: 1, groups: [patrol], remoteChange: { groups: [patrol, east] } },
  ],
  groups: [
    { id: patrol, services: ['mcptt'], members: [alice, dispatch] },
    { id: east, services: ['mcptt'], members: [alice] },
  ],
});

for (const kind of ['sqlite', 'postgres'] as const) {
  void describe(`a change with both lists of own groups, the store failing part-way (${kind})`, () => {
    for (const failFrom of [1, 2]) {
      void test(`failing from write ${failFrom} on: user 2 leaves east and joins patrol, told, or nothing changes`, async () => {
        await twoInstancesOf(kind, bothLists, async (police) => {
          await affiliate(police.server, { mcServiceId: alice, service: 'mcptt', groupIds: [east] });
          const s: McServiceServer = { ...police.server, store: failingFrom(police.server.store, failFrom) };
          const outcome = await remoteChangeMandatory(s, { mcServiceId: dispatch, service: 'mcptt', mode: 'mandatory', targets: [alice], affiliate: [patrol], deaffiliate: [east] }, 'm-6').then(
            (r) => ({ ok: true as const, r }),
            (e: unknown) => ({ ok: false as const, e }),
          );
          const affiliated = (await police.server.store.affiliationsOfUser(alice)).map((r) => r.groupId);
          const record = await police.server.store.getChange('m-6', alice);
          const told = await toldEvents(police.server);
          if (outcome.ok) {
            const status = [
              { groupId: patrol, status: 'affiliated' },
              { groupId: east, status: 'deaffiliated' },
            ];
            assert.deepEqual(outcome.r[0]?.status, status, 'the slot east freed counts for patrol');
            assert.deepEqual([affiliated, record?.state, record?.result, told], [[patrol], 'told', status, ['m-6']], 'applied, recorded and told');
          } else {
            assert.ok(outcome.e instanceof MusterError && outcome.e.code === 'unavailable');
            assert.deepEqual([affiliated, record, told], [[east], undefined, []], 'nothing applied, nothing told');
          }
        });
      });
    }
  });
}

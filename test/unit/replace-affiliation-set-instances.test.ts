// TS 24.379 9.2.2.2.3 set replacement (replaceAffiliationSet) run for one user on two instances of one system at once:
// two McSystems on one PostgreSQL store, and the same on one SQLite store seen twice (no face lock orders them there
// either). The interleaving is forced with gates in one instance's store reads and writes, never with timing. Each
// replacement asks for exactly its set: the user ends with exactly the set of the one whose write came last, nothing
// of the other's, and N2 counts what that set replaces as it is held then.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { McUri } from '../../src/domain/ids.ts';
import type { GroupStatus } from '../../src/domain/flows.ts';
import type { McServiceServer } from '../../src/procedures/context.ts';
import type { ClientEvent, Store } from '../../src/ports/store.ts';
import type { McSystem } from '../../src/system.ts';
import { replaceAffiliationSet } from '../../src/procedures/replace-affiliation-set.ts';
import { policeId, policeSystem } from '../support/in-process.ts';
import { deferred, holdNextGroupsRead, storeView, twoInstancesOf } from '../support/two-instances.ts';

const alice = policeId('alice');
const patrol = policeId('patrol');
const north = policeId('north');
const south = policeId('south');

function police(n2: number): Record<string, unknown> {
  const groups = [patrol, north, south];
  return policeSystem({ users: [{ id: alice, services: ['mcptt'], n2, groups }], groups: groups.map((id) => ({ id, services: ['mcptt'], members: [alice] })) });
}

/** One instance's server, with a store view of its own: what the test holds there holds that instance only. */
const serverOf = (system: McSystem): McServiceServer => ({ ...system.server, store: storeView(system.server.store) });

/** The next affiliation write at `server` commits, resolves `written`, then waits for `open`. */
function holdAfterWrite(server: McServiceServer, written: () => void, open: Promise<void>): void {
  const store = server.store;
  const original = store.changeAffiliations.bind(store);
  store.changeAffiliations = async function <T>(...args: Parameters<Store['changeAffiliations']>): Promise<{ result: T; events: ClientEvent[] }> {
    store.changeAffiliations = original;
    const done = (await original(...args)) as { result: T; events: ClientEvent[] };
    written();
    await open;
    return done;
  };
}

const held = async (server: McServiceServer): Promise<McUri[]> =>
  (await server.store.affiliationsOfUser(alice, 'mcptt'))
    .filter((r) => r.state === 'affiliated')
    .map((r) => r.groupId)
    .sort();

const statusOf = (status: GroupStatus[], groupId: McUri): string | undefined => {
  const s = status.find((x) => x.groupId === groupId);
  return s && (s.status === 'rejected' ? `rejected:${s.reason}` : s.status);
};

for (const kind of ['postgres', 'sqlite'] as const) {
  void describe(`two set replacements for one user at once, on instances A and B (${kind})`, () => {
    void test("A read alice's groups, B replaced them before A wrote: A's set is held, nothing of B's", async () => {
      await twoInstancesOf(kind, police(3), async (sa, sb) => {
        const a = serverOf(sa);
        const b = serverOf(sb);
        await replaceAffiliationSet(a, alice, 'mcptt', [patrol]);
        const read = deferred();
        const open = deferred();
        holdNextGroupsRead(a.store, { when: 'after', reached: read.resolve, open: open.promise });
        const replacing = replaceAffiliationSet(a, alice, 'mcptt', [north]);
        await read.promise; // A found {patrol}; it has written nothing yet.

        const byB = await replaceAffiliationSet(b, alice, 'mcptt', [south]);
        assert.equal(statusOf(byB, south), 'affiliated');
        assert.deepEqual(await held(b), [south]);
        open.resolve();
        const byA = await replacing;

        assert.equal(statusOf(byA, north), 'affiliated');
        assert.deepEqual(await held(a), [north], "A's write came last: exactly A's set, B's south left");
      });
    });

    void test("A's first write is done, B replaces the set before A's next one: exactly one published set is held", async () => {
      await twoInstancesOf(kind, police(3), async (sa, sb) => {
        const a = serverOf(sa);
        const b = serverOf(sb);
        await replaceAffiliationSet(a, alice, 'mcptt', [patrol]);
        const written = deferred();
        const open = deferred();
        holdAfterWrite(a, written.resolve, open.promise);
        const replacing = replaceAffiliationSet(a, alice, 'mcptt', [north]);
        await written.promise; // A's first write to the store committed; its replacement has not finished.

        await replaceAffiliationSet(b, alice, 'mcptt', [south]);
        open.resolve();
        await replacing;

        const now = await held(a);
        assert.ok(
          [[north], [south]].some((set) => JSON.stringify(set) === JSON.stringify(now)),
          `alice holds exactly one of the published sets, not ${JSON.stringify(now)}`,
        );
        assert.deepEqual(now, [south], "B's write came after A's: B's set");
      });
    });

    void test("N2 = 1: A read {patrol}, B swapped it for south meanwhile: A's north replaces south, it is not refused for B's slot", async () => {
      await twoInstancesOf(kind, police(1), async (sa, sb) => {
        const a = serverOf(sa);
        const b = serverOf(sb);
        await replaceAffiliationSet(a, alice, 'mcptt', [patrol]);
        const read = deferred();
        const open = deferred();
        holdNextGroupsRead(a.store, { when: 'after', reached: read.resolve, open: open.promise });
        const replacing = replaceAffiliationSet(a, alice, 'mcptt', [north]);
        await read.promise;

        await replaceAffiliationSet(b, alice, 'mcptt', [south]);
        open.resolve();
        const byA = await replacing;

        assert.equal(statusOf(byA, north), 'affiliated', 'the slot south held is freed by the same replacement');
        assert.deepEqual(await held(a), [north]);
      });
    });
  });
}

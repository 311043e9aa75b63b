// The set a SIP client publishes replaces the user's set (TS 24.379 9.2.2.2.3): the delta as a table, and the
// procedure on a real system (SQLite), where omissions are left before additions join so a full N2 still swaps.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { McUri } from '../../src/domain/ids.ts';
import type { HeldState } from '../../src/domain/decisions/group-home.ts';
import { publicationDelta } from '../../src/domain/decisions/publication-set.ts';
import type { McSystem } from '../../src/system.ts';
import { withSystem } from '../support/in-process.ts';
import { replaceAffiliationSet, undoSetChange, type SetChange } from '../../src/procedures/replace-affiliation-set.ts';
import type { GroupStatus } from '../../src/domain/flows.ts';
import type { StoredAlongside } from '../../src/procedures/affiliate.ts';
import { standInPartners } from '../support/stand-in-partners.ts';

const g = (n: string): McUri => `sip:${n}@police.example` as McUri;
const alice = 'sip:alice@police.example' as McUri;

/** A real system on SQLite in a directory of its own: alice, with N2 = `n2`, may join each of `groups`. */
function withPolice(n2: number, groups: McUri[], work: (system: McSystem) => Promise<void>): Promise<void> {
  return withSystem(
    {
      name: 'police',
      domain: 'police.example',
      http: { port: 0 },
      secret: 'replace-test-secret',
      users: [{ id: alice, services: ['mcptt'], n2, groups }],
      groups: groups.map((id) => ({ id, services: ['mcptt'], members: [alice] })),
    },
    work,
  );
}

void test('publicationDelta: additions, omissions of affiliated groups; reservations are not withdrawn by omission', () => {
  const held = new Map<McUri, HeldState>([
    [g('a'), 'affiliated'],
    [g('b'), 'affiliated'],
    [g('r'), 'reserved'],
  ]);
  assert.deepEqual(publicationDelta([g('b'), g('c')], held), { affiliate: [g('c')], deaffiliate: [g('a')] });
  assert.deepEqual(publicationDelta([], held), { affiliate: [], deaffiliate: [g('a'), g('b')] });
  assert.deepEqual(publicationDelta([g('a'), g('b')], held), { affiliate: [], deaffiliate: [] });
});

void test('replacing a full set (N2 = 2) with two other groups leaves the old ones first, so the new ones join', () =>
  withPolice(2, ['a', 'b', 'c', 'd'].map(g), async (system) => {
    const first = await replaceAffiliationSet(system.server, alice, 'mcptt', [g('a'), g('b')]);
    assert.deepEqual(first.map((s) => s.status), ['affiliated', 'affiliated']);
    const swapped = await replaceAffiliationSet(system.server, alice, 'mcptt', [g('c'), g('d')]);
    assert.deepEqual(
      swapped.map((s) => `${s.groupId}=${s.status}`),
      [`${g('c')}=affiliated`, `${g('d')}=affiliated`, `${g('a')}=deaffiliated`, `${g('b')}=deaffiliated`],
    );
    assert.deepEqual((await system.server.store.affiliationsOfUser(alice, 'mcptt')).map((r) => r.groupId).sort(), [g('c'), g('d')]);
  }));

void test('the audit entry of a set goes in the transaction of its last write, with the statuses it returns; a set that changes nothing writes none', () =>
  withPolice(4, ['a', 'b', 'c'].map(g), async (system) => {
    const store = system.server.store;
    // Which of the store's writes carried audit entries, in order.
    const writes: boolean[] = [];
    const original = store.changeAffiliations.bind(store);
    store.changeAffiliations = (userId, service, decide) =>
      original(userId, service, (held) => {
        const w = decide(held);
        writes.push((w.audit ?? []).length > 0);
        return w;
      });
    const entry = (status: GroupStatus[]): StoredAlongside => ({ audit: [{ at: 1, subject: alice, role: 'user', onBehalfOf: alice, action: 'sip-publish', service: 'mcptt', groups: [], httpStatus: 200, errorCode: null, result: { status } }] });
    await replaceAffiliationSet(system.server, alice, 'mcptt', [g('a')], undefined, entry);
    writes.length = 0;
    // A swap: de-affiliation of a, then affiliation of b and c, in one write of the own groups, which carries the entry.
    const swapped = await replaceAffiliationSet(system.server, alice, 'mcptt', [g('b'), g('c')], undefined, entry);
    assert.deepEqual(writes, [true]);
    const audit = await store.queryAudit({ limit: 10 });
    assert.equal(audit.length, 2);
    assert.deepEqual(audit[1]!.result, { status: swapped });
    writes.length = 0;
    // The same set again: nothing to write, so the caller stores its entry itself.
    let called = false;
    await replaceAffiliationSet(system.server, alice, 'mcptt', [g('b'), g('c')], undefined, (s) => ((called = true), entry(s)));
    assert.deepEqual(writes, []);
    assert.equal(called, false);
  }));

void test('undoSetChange puts back what a set asked, as read: the omissions left are affiliated again, the additions left; other groups are not looked at', () =>
  withPolice(3, ['a', 'b', 'c', 'd'].map(g), async (system) => {
    const held = async (): Promise<McUri[]> => (await system.server.store.affiliationsOfUser(alice, 'mcptt')).map((r) => r.groupId).sort();
    await replaceAffiliationSet(system.server, alice, 'mcptt', [g('a'), g('b')]);
    const asked: SetChange[] = [];
    await replaceAffiliationSet(system.server, alice, 'mcptt', [g('b'), g('c')], { reserved: () => undefined, asked: (c) => void asked.push(c) });
    assert.deepEqual(asked, [{ affiliate: [g('c')], deaffiliate: [g('a')] }]);
    // Something else affiliates d meanwhile: not this set's to undo.
    await replaceAffiliationSet(system.server, alice, 'mcptt', [g('b'), g('c'), g('d')]);
    const undone = await undoSetChange(system.server, alice, 'mcptt', asked[0]!);
    assert.deepEqual(
      undone.map((s) => `${s.groupId}=${s.status}`),
      [`${g('a')}=affiliated`, `${g('c')}=deaffiliated`],
    );
    assert.deepEqual(await held(), [g('a'), g('b'), g('d')]);
  }));

void test("replacing a full set (N2 = 1) held at a partner's group: the host is asked to drop it first, so the own group takes its slot", () => {
  const engine = 'sip:engine@fire.example' as McUri;
  const hosted = new Set<McUri>();
  const asked: string[] = [];
  return withSystem(
    {
      name: 'police',
      domain: 'police.example',
      http: { port: 0 },
      secret: 'replace-test-secret',
      partners: [{ domain: 'fire.example', url: 'http://127.0.0.1:9', secret: 'shared' }],
      users: [{ id: alice, services: ['mcptt'], n2: 1, groups: [g('a'), engine] }],
      groups: [{ id: g('a'), services: ['mcptt'], members: [alice] }],
    },
    async (system) => {
      const partners = standInPartners('fire.example', {
        affiliate: async (req) => req.groupIds.map((groupId) => (asked.push(`join ${groupId}`), hosted.add(groupId), { groupId, status: 'affiliated' as const })),
        deaffiliate: async (req) => req.groupIds.map((groupId) => (asked.push(`leave ${groupId}`), hosted.delete(groupId), { groupId, status: 'deaffiliated' as const })),
      });
      const server = { ...system.server, partners };
      assert.deepEqual(await replaceAffiliationSet(server, alice, 'mcptt', [engine]), [{ groupId: engine, status: 'affiliated' }]);
      const swapped = await replaceAffiliationSet(server, alice, 'mcptt', [g('a')]);
      assert.deepEqual(swapped, [
        { groupId: g('a'), status: 'affiliated' },
        { groupId: engine, status: 'deaffiliated' },
      ]);
      assert.deepEqual(asked, [`join ${engine}`, `leave ${engine}`]);
      assert.deepEqual((await server.store.affiliationsOfUser(alice, 'mcptt')).map((r) => r.groupId), [g('a')]);
      assert.equal(hosted.size, 0);
    },
  );
});

// N2 while partner requests overlap (SPEC.md: "reserve, then commit or release"), on a real system (SQLite) in the
// test's process: the affiliation procedure talks to a stand-in partner port whose answers the test releases one by
// one, so requests of one user interleave exactly as a slow partner makes them.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { McUri } from '../../src/domain/ids.ts';
import type { GroupStatus } from '../../src/domain/flows.ts';
import type { PartnerRequest } from '../../src/ports/partner.ts';
import type { McServiceServer } from '../../src/procedures/context.ts';
import { affiliate } from '../../src/procedures/affiliate.ts';
import { policeId, policeSystem, withSystem } from '../support/in-process.ts';
import { standInPartners } from '../support/stand-in-partners.ts';

const F = 'fire.example';
const alice = policeId('alice');
const engine = `sip:engine@${F}` as McUri;
const patrol = policeId('patrol');

const system = policeSystem({
  partners: [{ domain: F, url: 'http://127.0.0.1:9', secret: 'shared' }],
  users: [{ id: alice, services: ['mcptt'], n2: 1, groups: [engine, patrol] }],
  groups: [{ id: patrol, services: ['mcptt'], members: [alice] }],
});

/** A partner whose answers wait until the test gives them, in the order it chooses; re-syncs asked are counted. */
function heldPartner(server: McServiceServer) {
  const waiting: { req: PartnerRequest; answer: (s: GroupStatus[]) => void }[] = [];
  const resyncs: string[] = [];
  const partners = standInPartners(F, { affiliate: (req) => new Promise((answer) => waiting.push({ req, answer })) });
  const s: McServiceServer = { ...server, partners, resyncPartnerSoon: (domain) => resyncs.push(domain) };
  /** Waits (bounded) until `n` requests wait for their partner answer. */
  const asked = async (n: number): Promise<void> => {
    for (let i = 0; i < 200 && waiting.length < n; i++) await new Promise((r) => setTimeout(r, 5));
    assert.equal(waiting.length, n, `${n} requests at the partner`);
  };
  return { s, waiting, resyncs, asked };
}

const request = (groupIds: McUri[]) => ({ mcServiceId: alice, service: 'mcptt' as const, groupIds });

void test('a request that asked without a slot does not release the slot another request reserved: N2 = 1 holds', async () => {
  await withSystem(system, async (police) => {
    const { s, waiting, asked } = heldPartner(police.server);
    const first = affiliate(s, request([engine])); // reserves engine's one slot
    await asked(1);
    const second = affiliate(s, request([engine])); // engine is reserved: asks too, without a slot
    await asked(2);
    waiting[1]!.answer([{ groupId: engine, status: 'rejected', reason: 'partner-unreachable' }]);
    assert.deepEqual((await second).status, [{ groupId: engine, status: 'rejected', reason: 'partner-unreachable' }]);
    // The first request still holds the slot, so an own group is refused.
    assert.deepEqual((await affiliate(s, request([patrol]))).status, [{ groupId: patrol, status: 'rejected', reason: 'n2-limit' }]);
    waiting[0]!.answer([{ groupId: engine, status: 'affiliated' }]);
    assert.deepEqual((await first).status, [{ groupId: engine, status: 'affiliated' }]);
    assert.deepEqual((await s.store.affiliationsOfUser(alice)).map((r) => [r.groupId, r.state]), [[engine, 'affiliated']]);
  });
});

void test('a confirmation whose reservation was swept finds no free slot: n2-limit, not stored, and the host is re-synchronised', async () => {
  await withSystem(system, async (police) => {
    const { s, waiting, resyncs, asked } = heldPartner(police.server);
    const first = affiliate(s, request([engine]));
    await asked(1);
    // The sweep takes the reservation (as after a crash), and the freed slot goes to an own group.
    assert.equal(await s.store.sweepReservations(s.clock.now() + 1), 1);
    assert.deepEqual((await affiliate(s, request([patrol]))).status, [{ groupId: patrol, status: 'affiliated' }]);
    waiting[0]!.answer([{ groupId: engine, status: 'affiliated' }]);
    assert.deepEqual((await first).status, [{ groupId: engine, status: 'rejected', reason: 'n2-limit' }]);
    assert.deepEqual((await s.store.affiliationsOfUser(alice)).map((r) => [r.groupId, r.state]), [[patrol, 'affiliated']]);
    assert.deepEqual(resyncs, [F], 'fire keeps a record police refused: a re-synchronisation removes it');
  });
});

void test('a confirmation whose reservation was swept takes the slot when one is free', async () => {
  await withSystem(system, async (police) => {
    const { s, waiting, resyncs, asked } = heldPartner(police.server);
    const first = affiliate(s, request([engine]));
    await asked(1);
    await s.store.sweepReservations(s.clock.now() + 1);
    waiting[0]!.answer([{ groupId: engine, status: 'affiliated' }]);
    assert.deepEqual((await first).status, [{ groupId: engine, status: 'affiliated' }]);
    assert.deepEqual((await s.store.affiliationsOfUser(alice)).map((r) => [r.groupId, r.state]), [[engine, 'affiliated']]);
    assert.deepEqual(resyncs, []);
  });
});

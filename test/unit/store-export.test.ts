// Store.dump/restore and GmsStore.dump/restore (issue 5, `muster export` / `muster import`): a system moves between
// SQLite and PostgreSQL without loss, ids and sequence numbers kept, and the sequences continue above them.
// PostgreSQL runs on every machine here, so these tests fail (never skip) without it; fresh databases per run.
import { describe, test, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { McUri } from '../../src/domain/ids.ts';
import type { GroupPolicy } from '../../src/domain/group-policy.ts';
import type { UserProfile } from '../../src/domain/profile.ts';
import type { ChangeRecord, Store, StoreDump } from '../../src/ports/store.ts';
import type { GmsDump, GmsStore } from '../../src/ports/gms-store.ts';
import { MusterError } from '../../src/domain/errors.ts';
import { openSqlite, SqliteStore } from '../../src/adapters/sqlite-store.ts';
import { SqliteGmsStore } from '../../src/adapters/sqlite-gms-store.ts';
import { openPostgres, PostgresStore } from '../../src/adapters/postgres-store.ts';
import { adminClient } from '../support/postgres.ts';


const uri = (s: string): McUri => s as McUri;
const alice = uri('sip:alice@police.example');
const bob = uri('sip:bob@police.example');
const dispatch = uri('sip:dispatch@police.example');
const g = (n: number | string): McUri => uri(`sip:g${n}@police.example`);

class TestClock {
  t = 1_700_000_000_000;
  readonly now = (): number => this.t;
}

interface Opened {
  store: Store;
  gms: GmsStore;
  clock: TestClock;
}

const dir = mkdtempSync(join(tmpdir(), 'muster-store-export-'));
const databases: string[] = [];
const closers: (() => Promise<void>)[] = [];
let files = 0;

after(async () => {
  await Promise.allSettled(closers.splice(0).map((c) => c()));
  rmSync(dir, { recursive: true, force: true });
  if (databases.length === 0) return;
  const admin = await adminClient();
  try {
    for (const db of databases) await admin.query(`DROP DATABASE IF EXISTS ${db} WITH (FORCE)`);
  } finally {
    await admin.end();
  }
});


function freshSqlite(): Opened {
  const clock = new TestClock();
  const db = openSqlite(join(dir, `store-${files++}.db`));
  const store = new SqliteStore(db, clock.now);
  closers.push(() => store.close());
  return { store, gms: new SqliteGmsStore(db), clock };
}

async function freshPostgres(): Promise<Opened> {
  const name = `muster_test_${randomBytes(6).toString('hex')}`;
  const admin = await adminClient();
  try {
    await admin.query(`CREATE DATABASE ${name}`);
    databases.push(name);
  } finally {
    await admin.end();
  }
  const clock = new TestClock();
  const { pool, gmsStore } = await openPostgres(`postgres://postgres@127.0.0.1:5432/${name}`);
  closers.push(() => pool.end());
  return { store: new PostgresStore(pool, clock.now), gms: gmsStore, clock };
}

const profile = (id: McUri, over: Partial<UserProfile> = {}): UserProfile => ({ id, services: ['mcptt', 'mcdata'], n2: 3, groups: [g(1), g(2), g(3)], remoteChange: false, ...over });

const group = (id: McUri, over: Partial<GroupPolicy> = {}): Omit<GroupPolicy, 'revision'> => ({
  id,
  displayName: 'Patrol',
  services: ['mcptt', 'mcdata'],
  enabled: true,
  members: [alice, bob, dispatch],
  deaffiliationForbidden: false,
  ...over,
});

const change = (over: Partial<ChangeRecord> & { id: string; target: McUri }): ChangeRecord => ({
  actor: dispatch,
  service: 'mcptt',
  mode: 'negotiated',
  affiliate: [g(1)],
  deaffiliate: [g(2)],
  state: 'asked',
  deadline: 1_700_000_030_000,
  result: null,
  createdAt: 1_700_000_000_000,
  ...over,
});

/**
 * Writes one of everything through the ports: affiliated and reserved rows, outbox rows of which some (the last
 * one among them) are confirmed, so the seq high-water mark is above every pending row, events of several users,
 * profiles (one with per-service N2 and a remote-change right), changes in several states, groups at revisions
 * above 1 (one disabled, one deleted and re-created), and GMS rows both affiliated and de-affiliated.
 */
async function populate({ store, gms, clock }: Opened): Promise<void> {
  await store.putProfile(profile(alice));
  await store.putProfile(profile(bob, { n2: { mcptt: 2, mcdata: 1 } }));
  await store.putProfile(profile(dispatch, { remoteChange: { users: [alice], groups: [g(1)] } }));
  for (const [i, user] of [alice, bob, alice, bob].entries()) {
    clock.t += 1000;
    await store.changeAffiliations(user, 'mcptt', (held) => ({
      put: [{ groupId: g(i + 1), state: 'affiliated' }],
      remove: [],
      tellGms: [{ groupId: g(i + 1), status: 'affiliated' }],
      events: [{ userId: user, type: 'affiliation-status', data: { service: 'mcptt', status: [{ groupId: g(i + 1), status: 'affiliated' }], held: held.size } }],
      result: null,
    }));
  }
  clock.t += 1000;
  await store.changeAffiliations(alice, 'mcdata', () => ({ put: [{ groupId: g(9), state: 'reserved' }], remove: [], tellGms: [], events: [], result: null }));
  await store.changeAffiliations(bob, 'mcptt', () => ({
    put: [],
    remove: [g(2)],
    tellGms: [{ groupId: g(2), status: 'deaffiliated' }],
    events: [{ userId: bob, type: 'affiliation-status', data: { service: 'mcptt', status: [{ groupId: g(2), status: 'deaffiliated' }] } }],
    result: null,
  }));
  // Outbox seqs 1..5; the GMS confirms 1, 2 and 5, so 3 and 4 stay pending with 5 handed out.
  const pending = await store.pendingGmsUpdates(10);
  assert.deepEqual(pending.map((p) => p.seq), [1, 2, 3, 4, 5]);
  await gms.applyStatusUpdates('police.example', pending.filter((p) => [1, 2, 5].includes(p.seq)), clock.now());
  await store.confirmGmsUpdates([1, 2, 5]);
  await gms.applyStatusUpdates('fire.example', [{ seq: 7, userId: uri('sip:zed@fire.example'), groupId: g(1), service: 'mcvideo', status: 'affiliated' }], clock.now() + 5);

  clock.t += 1000;
  await store.createChanges(
    [change({ id: 'c-asked', target: alice }), change({ id: 'c-asked', target: bob, deadline: 1_700_000_031_000 }), change({ id: 'c-told', target: bob, mode: 'mandatory', state: 'told' })],
    [
      { userId: alice, type: 'affiliation-change', data: { id: 'c-asked', mode: 'negotiated', actor: dispatch, affiliate: [g(1)], deaffiliate: [g(2)] } },
      { userId: bob, type: 'affiliation-change', data: { id: 'c-asked', mode: 'negotiated' } },
      { userId: bob, type: 'affiliation-change', data: { id: 'c-told', mode: 'mandatory' } },
    ],
  );
  await store.createChanges([change({ id: 'c-done', target: alice, createdAt: 1_700_000_001_000 })], []);
  assert.equal(await store.transitionChange('c-done', alice, ['asked'], 'accepted', { status: [{ groupId: g(1), status: 'affiliated' }] }), true);
  await store.createChanges([change({ id: 'c-late', target: bob, createdAt: 1_700_000_002_000 })], []);
  assert.equal(await store.transitionChange('c-late', bob, ['asked'], 'timed-out'), true);
  await store.appendEvents([{ userId: dispatch, type: 'affiliation-status', data: { note: 'ünïcødé ✓', nested: { a: [1, 2.5, null, true] } } }]);
  // The SIP face's state: a publication that never expires and one that does, a subscription over UDP and one over TCP.
  assert.equal(await store.putSipPublication({ userId: alice, service: 'mcptt', etag: 'etag-a', expires: 4294967295, expiresAt: null, pId: null, tupleId: null, groups: null }), 'stored');
  assert.equal(await store.putSipPublication({ userId: bob, service: 'mcptt', etag: 'etag-b', expires: 3600, expiresAt: 1_700_003_600_000, pId: 'sip:bob@police.example', tupleId: 't1', groups: [uri('sip:patrol@police.example'), uri('sip:north@police.example')] }), 'stored');
  for (const [id, transport] of [['sub-1', 'udp'], ['sub-2', 'tcp']] as const) {
    assert.equal(
      await store.putSipSubscription({
        id,
        owner: 'host-1 udp 127.0.0.1:5060',
        callId: `call-${id}`,
        localTag: 'lt',
        remoteTag: 'rt',
        remoteFrom: `<${dispatch}>;tag=rt`,
        remoteTarget: 'sip:dispatch@127.0.0.1:5070',
        eventId: transport === 'udp' ? null : 'e1',
        transport,
        remoteAddress: '127.0.0.1',
        remotePort: 5070,
        watcher: dispatch,
        userId: alice,
        service: 'mcptt',
        expiresAt: 1_700_003_600_000,
        localCSeq: 3,
        remoteCSeq: 7,
      }),
      true,
    );
  }

  await gms.putGroup(group(g(1)));
  await gms.putGroup(group(g(1), { displayName: 'Patrol 2' }));
  await gms.putGroup(group(g(1), { members: [alice, bob] }));
  await gms.putGroup(group(g(2), { enabled: false, deaffiliationForbidden: true, services: ['mcptt'] }));
  await gms.putGroup(group(g(3)));
  await gms.deleteGroup(g(3));
  const { displayName, ...noName } = group(g(4));
  void displayName; // a group without a display name
  await gms.putGroup(noName);
}

/** What a store and its GMS hold, as comparable data. */
async function snapshot(o: Opened): Promise<{ store: StoreDump; gms: GmsDump }> {
  return { store: await o.store.dump(), gms: await o.gms.dump() };
}

/** The dump's shape for the populated stores, independently of either backend's dump. */
function checkPopulated(d: { store: StoreDump; gms: GmsDump }): void {
  assert.deepEqual(
    d.store.affiliations.map((a) => [a.userId, a.service, a.groupId, a.state]),
    [
      [alice, 'mcdata', g(9), 'reserved'],
      [alice, 'mcptt', g(1), 'affiliated'],
      [alice, 'mcptt', g(3), 'affiliated'],
      [bob, 'mcptt', g(4), 'affiliated'],
    ],
  );
  assert.deepEqual(
    d.store.outbox.map((o) => [o.seq, o.userId, o.groupId, o.status]),
    [
      [3, alice, g(3), 'affiliated'],
      [4, bob, g(4), 'affiliated'],
    ],
  );
  assert.deepEqual(d.store.sequences, { outbox: 5, events: 9 });
  assert.deepEqual(d.store.events.map((e) => e.id), [1, 2, 3, 4, 5, 6, 7, 8, 9]);
  assert.deepEqual(d.store.profiles.map((p) => p.id), [alice, bob, dispatch]);
  assert.deepEqual(d.store.sip?.publications.map((p) => [p.etag, p.userId, p.expiresAt]), [['etag-a', alice, null], ['etag-b', bob, 1_700_003_600_000]]);
  assert.deepEqual(d.store.sip?.subscriptions.map((x) => [x.id, x.transport, x.eventId, x.localCSeq, x.remoteCSeq]), [['sub-1', 'udp', null, 3, 7], ['sub-2', 'tcp', 'e1', 3, 7]]);
  assert.deepEqual(
    d.store.changes.map((c) => [c.id, c.target, c.state]),
    [
      ['c-asked', alice, 'asked'],
      ['c-asked', bob, 'asked'],
      ['c-told', bob, 'told'],
      ['c-done', alice, 'accepted'],
      ['c-late', bob, 'timed-out'],
    ],
  );
  assert.deepEqual(
    d.gms.groups.map((x) => [x.id, x.revision]),
    [
      [g(1), 3],
      [g(2), 1],
      [g(4), 1],
    ],
  );
  assert.deepEqual(
    d.gms.affiliations.map((a) => [a.groupId, a.service, a.userId, a.status, a.source, a.seq]),
    [
      [g(1), 'mcptt', alice, 'affiliated', 'police.example', 1],
      [g(1), 'mcvideo', uri('sip:zed@fire.example'), 'affiliated', 'fire.example', 7],
      [g(2), 'mcptt', bob, 'deaffiliated', 'police.example', 5],
    ],
  );
}

/** After a restore, the next event and outbox row get numbers above every imported one (and every confirmed seq). */
async function checkContinuity(o: Opened): Promise<void> {
  const [e] = await o.store.appendEvents([{ userId: alice, type: 'affiliation-status', data: { after: 'restore' } }]);
  assert.equal(e?.id, 10, 'the next event id is above the imported ones');
  assert.deepEqual(
    (await o.store.eventsAfter(alice, 0, 100)).map((x) => x.id).at(-1),
    10,
  );
  await o.store.changeAffiliations(bob, 'mcptt', () => ({ put: [{ groupId: g(1), state: 'affiliated' }], remove: [], tellGms: [{ groupId: g(1), status: 'affiliated' }], events: [], result: null }));
  const pending = await o.store.pendingGmsUpdates(10);
  assert.deepEqual(pending.map((p) => p.seq), [3, 4, 6], 'the next outbox seq is above the highest ever handed out (5, confirmed)');
  // And the GMS, restored with its seqs, applies it (it would ignore a seq not above the stored one).
  assert.equal(await o.gms.applyStatusUpdates('police.example', pending, o.clock.now()), 3);
  assert.deepEqual(
    (await o.gms.affiliatedMembers(g(1), 'mcptt')).map((m) => m.userId),
    [alice, bob],
  );
}

async function roundTrip(from: Opened, to: Opened): Promise<void> {
  await populate(from);
  const source = await snapshot(from);
  checkPopulated(source);
  // Through JSON, as `muster export` writes it and `muster import` reads it.
  const wire = JSON.parse(JSON.stringify(source)) as typeof source;
  await to.store.restore(wire.store);
  await to.gms.restore(wire.gms);
  assert.deepEqual(await snapshot(to), source, 'everything equal after the restore');
  // The port reads agree as well, not only dump.
  assert.deepEqual(await to.store.affiliationsOfUser(alice), await from.store.affiliationsOfUser(alice));
  assert.deepEqual(await to.store.changesInState('asked'), await from.store.changesInState('asked'));
  assert.deepEqual(await to.store.eventsAfter(bob, 2, 100), await from.store.eventsAfter(bob, 2, 100));
  assert.deepEqual(await to.gms.allGroups().then((x) => x.sort((a, b) => a.id.localeCompare(b.id))), await from.gms.allGroups().then((x) => x.sort((a, b) => a.id.localeCompare(b.id))));
  assert.deepEqual(await to.gms.allAffiliations(), await from.gms.allAffiliations());
  assert.deepEqual(await to.store.getSipPublication(bob, 'mcptt', 1_700_000_000_000), await from.store.getSipPublication(bob, 'mcptt', 1_700_000_000_000));
  assert.deepEqual(await to.store.sipSubscriptionsOwnedBy('host-1 udp 127.0.0.1:5060'), await from.store.sipSubscriptionsOwnedBy('host-1 udp 127.0.0.1:5060'));
  await checkContinuity(to);
}

const conflict = (e: unknown): boolean => e instanceof MusterError && e.code === 'conflict' && /not empty/.test(e.message);

void describe('store export: dump and restore', () => {
  void test('SQLite -> PostgreSQL: everything equal, ids and seqs kept, sequences continue above them', async () => {
    await roundTrip(freshSqlite(), await freshPostgres());
  });

  void test('PostgreSQL -> SQLite: everything equal, ids and seqs kept, sequences continue above them', async () => {
    await roundTrip(await freshPostgres(), freshSqlite());
  });

  void test('an empty store dumps as empty, restores into either backend, and starts its sequences at 1', async () => {
    for (const open of [freshSqlite, freshPostgres]) {
      const empty = await snapshot(freshSqlite());
      assert.deepEqual(empty, { store: { affiliations: [], outbox: [], events: [], profiles: [], changes: [], audit: [], sip: { publications: [], subscriptions: [] }, sequences: { outbox: 0, events: 0 } }, gms: { groups: [], affiliations: [] } });
      const to = await open();
      await to.store.restore(empty.store);
      await to.gms.restore(empty.gms);
      assert.deepEqual(await snapshot(to), empty);
      assert.equal((await to.store.appendEvents([{ userId: alice, type: 'affiliation-status', data: 1 }]))[0]?.id, 1);
    }
  });

  void test('restore refuses a store that is not empty (conflict) and leaves it unchanged', async () => {
    const source = freshSqlite();
    await populate(source);
    const dump = await snapshot(source);
    for (const open of [freshSqlite, freshPostgres]) {
      const target = await open();
      await target.store.putProfile(profile(uri('sip:other@police.example')));
      await target.gms.putGroup(group(g('other')));
      const before = await snapshot(target);
      await assert.rejects(target.store.restore(dump.store), conflict);
      await assert.rejects(target.gms.restore(dump.gms), conflict);
      assert.deepEqual(await snapshot(target), before);
      // A second import into a store the first one filled is refused too.
      const again = await open();
      await again.store.restore(dump.store);
      await again.gms.restore(dump.gms);
      await assert.rejects(again.store.restore(dump.store), conflict);
      await assert.rejects(again.gms.restore(dump.gms), conflict);
    }
  });
});

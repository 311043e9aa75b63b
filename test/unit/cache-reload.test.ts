// What an instance does once its fabric connection is back (system.ts, onCatchUp): it reads its user profiles and
// group policies from the store again. Another instance changed or deleted some meanwhile (straight in the shared
// store here, as that instance would have); the reload takes them, and a change announced while it reads is kept.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { McUri } from '../../src/domain/ids.ts';
import type { UserProfile } from '../../src/domain/profile.ts';
import { openSqlite, SqliteStore } from '../../src/adapters/sqlite-store.ts';
import { SqliteGmsStore } from '../../src/adapters/sqlite-gms-store.ts';
import { UserProfileCache } from '../../src/adapters/user-profile-cache.ts';
import { GroupManagementServer } from '../../src/gms/group-management-server.ts';

const id = (s: string): McUri => s as McUri;
const profile = (name: string, n2: number): UserProfile => ({ id: id(`sip:${name}@police.example`), services: ['mcptt'], n2, groups: [], remoteChange: false });

void test('profiles read again: changed and deleted ones as the store has them; one announced during the read stays', async () => {
  const store = new SqliteStore(openSqlite(':memory:'));
  const cache = new UserProfileCache(store);
  for (const p of [profile('alice', 3), profile('bob', 3), profile('carol', 3)]) await cache.put(p);
  // Meanwhile, at another instance: alice's N2 lowered, bob deleted.
  await store.putProfile(profile('alice', 1));
  await store.deleteProfile(id('sip:bob@police.example'));
  const reading = cache.load();
  cache.apply(id('sip:carol@police.example'), profile('carol', 7)); // announced while the store is read
  await reading;
  assert.equal(cache.get(id('sip:alice@police.example'))?.n2, 1);
  assert.equal(cache.get(id('sip:bob@police.example')), undefined);
  assert.equal(cache.get(id('sip:carol@police.example'))?.n2, 7);
  assert.equal(cache.size, 2);
  await store.close();
});

void test("a profile read again after another instance's announcement: of overlapping reads the last begun wins, and one begun before a write here is dropped", async () => {
  const store = new SqliteStore(openSqlite(':memory:'));
  const cache = new UserProfileCache(store);
  const alice = id('sip:alice@police.example');
  await cache.put(profile('alice', 3));
  // The store's read of the profile is held until the test lets each one go, in the order it chooses.
  const read = store.profile.bind(store);
  const held: { release: () => void }[] = [];
  store.profile = async (who) => {
    const answer = await read(who); // read now, answered when released: an answer older than what follows
    return new Promise((resolve) => held.push({ release: () => resolve(answer) }));
  };
  await store.putProfile(profile('alice', 1)); // another instance's change, announced here
  const first = cache.reread(alice);
  await store.putProfile(profile('alice', 2)); // and another, announced too
  const second = cache.reread(alice);
  await new Promise((r) => setImmediate(r));
  held[1]!.release(); // the later read (n2 = 2) answers first
  await second;
  held[0]!.release(); // the earlier read's older answer (n2 = 1) comes last: dropped
  await first;
  assert.equal(cache.get(alice)?.n2, 2, 'the last read begun wins');

  const third = cache.reread(alice); // reads n2 = 2 ...
  await new Promise((r) => setImmediate(r));
  await cache.put(profile('alice', 5)); // ... then a write here commits n2 = 5
  held[2]!.release();
  await third;
  assert.equal(cache.get(alice)?.n2, 5, 'a read begun before the write here does not undo it');
  await store.close();
});

void test('group policies read again: a changed one replaces, a deleted one goes, each told to the policy listeners', async () => {
  const db = openSqlite(':memory:');
  const gmsStore = new SqliteGmsStore(db);
  const gms = await GroupManagementServer.open(gmsStore);
  const group = (name: string, enabled: boolean) => ({ id: id(`sip:${name}@police.example`), services: ['mcptt' as const], enabled, members: [], deaffiliationForbidden: false });
  await gms.putGroup(group('patrol', true));
  await gms.putGroup(group('north', true));
  // Another instance's GMS: patrol disabled (a new revision), north deleted.
  const other = await GroupManagementServer.open(gmsStore);
  await other.putGroup(group('patrol', false));
  await other.deleteGroup(id('sip:north@police.example'));
  const told: McUri[] = [];
  gms.onPolicyChange((g) => void told.push(g));
  await gms.reloadAll();
  assert.equal(gms.getGroup(id('sip:patrol@police.example'))?.enabled, false);
  assert.equal(gms.getGroup(id('sip:north@police.example')), undefined);
  assert.deepEqual(told.sort(), [id('sip:north@police.example'), id('sip:patrol@police.example')]);
  db.close();
});

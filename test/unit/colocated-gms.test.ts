// The co-located GMS (issue 6), on SQLite and on PostgreSQL: it lists its own MC service server's members from that
// server's affiliations table instead of rows written per request, and keeps only what other sources tell it. These
// tests hold it to what one table of told rows gave: own groups only, affiliated only, the later update wins between
// sources, and dumps and restores that either store reads alike. PostgreSQL runs on every machine here: these fail
// (never skip) without it; a fresh database per test, dropped at the end.
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { McUri } from '../../src/domain/ids.ts';
import type { AffiliationWrite, Store } from '../../src/ports/store.ts';
import type { GmsStore } from '../../src/ports/gms-store.ts';
import { openSqlite, SqliteStore } from '../../src/adapters/sqlite-store.ts';
import { SqliteGmsStore } from '../../src/adapters/sqlite-gms-store.ts';
import { openPostgres, PostgresStore } from '../../src/adapters/postgres-store.ts';
import { createTestDatabase, dropTestDatabases } from '../support/postgres.ts';

const uri = (s: string): McUri => s as McUri;
const D = 'police.example';
const alice = uri(`sip:alice@${D}`);
const bob = uri(`sip:bob@${D}`);
const zed = uri('sip:zed@fire.example');
const patrol = uri(`sip:patrol@${D}`);
const north = uri(`sip:north@${D}`);
const engine = uri('sip:engine@fire.example');

interface Opened {
  store: Store;
  gms: GmsStore;
  clock: { t: number };
  /** The rows the GMS's own table holds (what other sources told it). */
  toldRows(): Promise<number>;
  close(): Promise<void>;
}

const databases: string[] = [];
after(() => dropTestDatabases(databases));

function sqlite(): Opened {
  const dir = mkdtempSync(join(tmpdir(), 'muster-colocated-'));
  const clock = { t: 1_700_000_000_000 };
  const db = openSqlite(join(dir, 'muster.db'));
  const store = new SqliteStore(db, () => clock.t);
  const gms = new SqliteGmsStore(db);
  store.colocateGms(D, gms);
  return {
    store,
    gms,
    clock,
    toldRows: async () => (db.prepare('SELECT count(*) AS n FROM gms_affiliations').get() as { n: number }).n,
    close: async () => {
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

async function postgres(): Promise<Opened> {
  const { name, url } = await createTestDatabase();
  databases.push(name);
  const clock = { t: 1_700_000_000_000 };
  const { pool, gmsStore } = await openPostgres(url);
  const store = new PostgresStore(pool, () => clock.t);
  store.colocateGms(D, gmsStore);
  return { store, gms: gmsStore, clock, toldRows: async () => Number((await pool.query<{ n: string }>('SELECT count(*) AS n FROM gms_affiliations')).rows[0]!.n), close: () => pool.end() };
}

/** What the affiliation procedures write: own groups told to the GMS, a partner's group only reserved or confirmed. */
function write(put: { groupId: McUri; state: 'affiliated' | 'reserved' }[], remove: McUri[] = []): () => AffiliationWrite<null> {
  const own = (g: McUri): boolean => g.endsWith(`@${D}`);
  return () => ({
    put,
    remove,
    tellGms: [
      ...put.filter((p) => own(p.groupId) && p.state === 'affiliated').map((p) => ({ groupId: p.groupId, status: 'affiliated' as const })),
      ...remove.filter(own).map((groupId) => ({ groupId, status: 'deaffiliated' as const })),
    ],
    events: [],
    result: null,
  });
}

for (const [kind, open] of [
  ['SQLite', async (): Promise<Opened> => sqlite()],
  ['PostgreSQL', postgres],
] as const) {
  void describe(kind, () => {
    void test('the co-located GMS lists its server affiliated members of its own groups, from the affiliations', async () => {
      const o = await open();
      try {
        await o.store.changeAffiliations(alice, 'mcptt', write([{ groupId: patrol, state: 'affiliated' }, { groupId: north, state: 'affiliated' }, { groupId: engine, state: 'reserved' }]));
        o.clock.t += 1000;
        await o.store.changeAffiliations(bob, 'mcvideo', write([{ groupId: patrol, state: 'affiliated' }, { groupId: engine, state: 'affiliated' }]));
        // A partner's user, affiliated here as the group host would store it.
        await o.store.changeAffiliations(zed, 'mcptt', write([{ groupId: patrol, state: 'affiliated' }]));
        await o.store.changeAffiliations(alice, 'mcptt', write([], [north]));

        assert.deepEqual(
          (await o.gms.affiliatedMembers(patrol)).map((m) => [m.userId, m.service, m.status, m.updatedAt]),
          [
            [alice, 'mcptt', 'affiliated', 1_700_000_000_000],
            [zed, 'mcptt', 'affiliated', 1_700_000_001_000],
            [bob, 'mcvideo', 'affiliated', 1_700_000_001_000],
          ],
        );
        assert.deepEqual((await o.gms.affiliatedMembers(patrol, 'mcvideo')).map((m) => m.userId), [bob]);
        assert.deepEqual(await o.gms.affiliatedMembers(north), [], 'a removed affiliation leaves the list');
        // A partner's group is its own GMS's business: this one lists none of it, reserved or affiliated.
        assert.deepEqual(await o.gms.affiliatedMembers(engine), []);
        assert.deepEqual(
          (await o.gms.allAffiliations()).map((a) => [a.groupId, a.service, a.userId, a.source, a.seq]),
          [
            [patrol, 'mcptt', alice, D, 0],
            [patrol, 'mcptt', zed, D, 0],
            [patrol, 'mcvideo', bob, D, 0],
          ],
        );
        assert.equal(await o.store.pendingGmsUpdates(10).then((p) => p.length), 0, 'nothing goes through the outbox');
        assert.equal(await o.toldRows(), 0, 'nor into a second table');
      } finally {
        await o.close();
      }
    });

    void test('another source told of the same user and group: the later update wins, as in one table of rows', async () => {
      const o = await open();
      try {
        await o.store.changeAffiliations(alice, 'mcptt', write([{ groupId: patrol, state: 'affiliated' }, { groupId: north, state: 'affiliated' }]));
        // An MC service server elsewhere tells this GMS: alice left patrol later; bob joined north; alice joined north earlier.
        await o.gms.applyStatusUpdates('mcs2.police.example', [{ seq: 1, userId: alice, groupId: patrol, service: 'mcptt', status: 'deaffiliated' }], o.clock.t + 5);
        await o.gms.applyStatusUpdates('mcs2.police.example', [{ seq: 2, userId: bob, groupId: north, service: 'mcptt', status: 'affiliated' }], o.clock.t + 5);
        await o.gms.applyStatusUpdates('mcs2.police.example', [{ seq: 3, userId: alice, groupId: north, service: 'mcptt', status: 'deaffiliated' }], o.clock.t - 5);
        assert.deepEqual(await o.gms.affiliatedMembers(patrol), [], 'the later de-affiliation from elsewhere wins');
        assert.deepEqual((await o.gms.affiliatedMembers(north)).map((m) => m.userId), [alice, bob], 'the earlier one does not');

        // Alice affiliates to patrol again here: now the later one is this server's.
        o.clock.t += 10;
        await o.store.changeAffiliations(alice, 'mcptt', write([{ groupId: patrol, state: 'affiliated' }]));
        assert.deepEqual((await o.gms.affiliatedMembers(patrol)).map((m) => m.userId), [alice]);
      } finally {
        await o.close();
      }
    });

    void test("a dump holds the own server's rows with seq 0; a co-located restore takes them from the store's own dump", async () => {
      const a = await open();
      const b = await open();
      try {
        await a.gms.putGroup({ id: patrol, displayName: 'Patrol', services: ['mcptt'], members: [alice], enabled: true, deaffiliationForbidden: false });
        await a.store.changeAffiliations(alice, 'mcptt', write([{ groupId: patrol, state: 'affiliated' }]));
        await a.gms.applyStatusUpdates('mcs2.police.example', [{ seq: 4, userId: bob, groupId: patrol, service: 'mcptt', status: 'deaffiliated' }], a.clock.t);
        const gmsDump = await a.gms.dump();
        assert.deepEqual(
          gmsDump.affiliations.map((r) => [r.userId, r.status, r.source, r.seq]),
          [
            [alice, 'affiliated', D, 0],
            [bob, 'deaffiliated', 'mcs2.police.example', 4],
          ],
        );

        await b.store.restore(await a.store.dump());
        await b.gms.restore(gmsDump);
        assert.deepEqual(await b.gms.dump(), gmsDump, 'the same rows, none twice');
        assert.equal(await b.toldRows(), 1, "only the other source's row went into the GMS's table");
      } finally {
        await a.close();
        await b.close();
      }
    });

    void test('rows an earlier version (or a leftover outbox) told for the own server are not read: its affiliations are the truth', async () => {
      const o = await open();
      try {
        await o.store.changeAffiliations(bob, 'mcptt', write([{ groupId: patrol, state: 'affiliated' }]));
        // Before this version the co-located server's updates were rows of the GMS's table, under its own source.
        await o.gms.applyStatusUpdates(D, [{ seq: 5, userId: alice, groupId: north, service: 'mcptt', status: 'affiliated' }], o.clock.t + 1);
        await o.gms.applyStatusUpdates(D, [{ seq: 6, userId: bob, groupId: patrol, service: 'mcptt', status: 'deaffiliated' }], o.clock.t + 1);
        assert.deepEqual(await o.gms.affiliatedMembers(north), [], 'alice holds no affiliation to north');
        assert.deepEqual((await o.gms.affiliatedMembers(patrol)).map((m) => m.userId), [bob], 'bob holds his to patrol');
        assert.deepEqual(
          (await o.gms.dump()).affiliations.map((r) => [r.groupId, r.userId, r.status, r.seq]),
          [[patrol, bob, 'affiliated', 0]],
        );
      } finally {
        await o.close();
      }
    });
  });
}

// One storage contract (STYLE.md habit 14): the same tests against SqliteStore/SqliteGmsStore and
// PostgresStore/PostgresGmsStore. PostgreSQL runs on every machine here, so its tests fail (never skip) without it.
import { describe, test, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import type { McUri } from '../../src/domain/ids.ts';
import type { McService } from '../../src/domain/services.ts';
import type { UserProfile } from '../../src/domain/profile.ts';
import type { HeldGroups } from '../../src/domain/decisions/group-home.ts';
import type { GroupPolicy } from '../../src/domain/group-policy.ts';
import type { AffiliationWrite, ChangeRecord, NewAuditEntry, SipListFilter, SipPublicationRecord, SipSubscriptionRecord, Store } from '../../src/ports/store.ts';
import type { GmsStore } from '../../src/ports/gms-store.ts';
import { MusterError } from '../../src/domain/errors.ts';
import { openSqlite, SqliteStore } from '../../src/adapters/sqlite-store.ts';
import { SqliteGmsStore } from '../../src/adapters/sqlite-gms-store.ts';
import { openPostgres, PostgresStore } from '../../src/adapters/postgres-store.ts';
import { PostgresGmsStore } from '../../src/adapters/postgres-gms-store.ts';
import { POSTGRES_MIGRATIONS, migratePostgres } from '../../src/adapters/postgres-migrations.ts';
import { newPool } from '../../src/adapters/postgres-pool.ts';
import { adminClient } from '../support/postgres.ts';
import { PRUNE_CHUNK } from '../../src/adapters/retention.ts';


const uri = (s: string): McUri => s as McUri;
const alice = uri('sip:alice@police.example');
const bob = uri('sip:bob@police.example');
const g = (n: number | string): McUri => uri(`sip:g${n}@police.example`);

/** A settable clock shared by every store of one test. */
class TestClock {
  t = 1_700_000_000_000;
  readonly now = (): number => this.t;
}

interface Harness {
  store: Store;
  gms: GmsStore;
  /** Another instance on the same storage (its own connection or pool), to race against `store`. */
  second: Store;
  clock: TestClock;
}

interface Backend {
  name: string;
  /** A harness on empty storage. */
  fresh(): Promise<Harness>;
  teardown(): Promise<void>;
}

function sqliteBackend(): Backend {
  const dir = mkdtempSync(join(tmpdir(), 'muster-store-contract-'));
  const open: SqliteStore[] = [];
  let n = 0;
  return {
    name: 'sqlite',
    async fresh() {
      await Promise.all(open.splice(0).map((s) => s.close()));
      const file = join(dir, `store-${n++}.db`);
      const clock = new TestClock();
      const db = openSqlite(file);
      const store = new SqliteStore(db, clock.now);
      const second = new SqliteStore(openSqlite(file), clock.now);
      open.push(store, second);
      return { store, gms: new SqliteGmsStore(db), second, clock };
    },
    async teardown() {
      await Promise.all(open.splice(0).map((s) => s.close()));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}


/** A fresh database per run, dropped at the end; two pools on it mimic two server instances. */
function postgresBackend(): Backend {
  const dbName = `muster_test_${randomBytes(6).toString('hex')}`;
  let ready: Promise<{ pool: pg.Pool; pool2: pg.Pool }> | undefined;
  const setup = async (): Promise<{ pool: pg.Pool; pool2: pg.Pool }> => {
    const admin = await adminClient();
    try {
      await admin.query(`CREATE DATABASE ${dbName}`);
    } finally {
      await admin.end();
    }
    const url = `postgres://postgres@127.0.0.1:5432/${dbName}`;
    const { pool } = await openPostgres(url);
    return { pool, pool2: newPool(url, { max: 5 }) };
  };
  return {
    name: 'postgres',
    async fresh() {
      ready ??= setup();
      const { pool, pool2 } = await ready;
      await pool.query('TRUNCATE affiliations, gms_outbox, events, user_profiles, change_requests, gms_groups, gms_affiliations, audit_log, sip_publications, sip_subscriptions RESTART IDENTITY');
      const clock = new TestClock();
      return { store: new PostgresStore(pool, clock.now), gms: new PostgresGmsStore(pool), second: new PostgresStore(pool2, clock.now), clock };
    },
    async teardown() {
      const pools = await ready?.catch(() => undefined);
      if (!pools) return;
      await Promise.all([pools.pool.end(), pools.pool2.end()]);
      const admin = await adminClient();
      try {
        await admin.query(`DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`);
      } finally {
        await admin.end();
      }
    },
  };
}

/** A write that puts `groups` as affiliated, tells the GMS and emits one status event per group. */
function affiliate(userId: McUri, service: McService, groups: McUri[]): (held: HeldGroups) => AffiliationWrite<McUri[]> {
  return (held) => {
    const fresh = groups.filter((x) => held.get(x) !== 'affiliated');
    return {
      put: fresh.map((groupId) => ({ groupId, state: 'affiliated' as const })),
      remove: [],
      tellGms: fresh.map((groupId) => ({ groupId, status: 'affiliated' as const })),
      events: fresh.map((groupId) => ({ userId, type: 'affiliation-status' as const, data: { service, groupId, status: 'affiliated' } })),
      result: fresh,
    };
  };
}

/** The N2 decision in miniature: add requested groups in order while fewer than `n2` are held (reserved ones count). */
function withinN2(n2: number, requested: McUri[]): (held: HeldGroups) => AffiliationWrite<{ added: McUri[]; refused: McUri[] }> {
  return (held) => {
    let count = held.size;
    const added: McUri[] = [];
    const refused: McUri[] = [];
    for (const r of requested) {
      if (held.has(r)) continue;
      if (count < n2) {
        added.push(r);
        count += 1;
      } else refused.push(r);
    }
    return {
      put: added.map((groupId) => ({ groupId, state: 'affiliated' as const })),
      remove: [],
      tellGms: added.map((groupId) => ({ groupId, status: 'affiliated' as const })),
      events: [],
      result: { added, refused },
    };
  };
}

const change = (over: Partial<ChangeRecord> & { id: string; target: McUri }): ChangeRecord => ({
  actor: uri('sip:dispatch@police.example'),
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

const group = (id: McUri, over: Partial<GroupPolicy> = {}): Omit<GroupPolicy, 'revision'> => ({
  id,
  displayName: 'Patrol',
  services: ['mcptt', 'mcdata'],
  enabled: true,
  members: [alice, bob],
  deaffiliationForbidden: false,
  ...over,
});

function contract(backend: Backend): void {
  void describe(`store contract: ${backend.name}`, () => {
    after(() => backend.teardown());

    void test('put, remove and held: what decide sees is what was written, per user and service', async () => {
      const { store, clock } = await backend.fresh();
      const first = await store.changeAffiliations(alice, 'mcptt', (held) => {
        assert.equal(held.size, 0);
        return { put: [{ groupId: g(1), state: 'affiliated' }, { groupId: g(2), state: 'reserved' }], remove: [], tellGms: [], events: [], result: 'done' };
      });
      assert.deepEqual(first, { result: 'done', events: [] });
      await store.changeAffiliations(alice, 'mcdata', () => ({ put: [{ groupId: g(1), state: 'affiliated' }], remove: [], tellGms: [], events: [], result: null }));
      await store.changeAffiliations(bob, 'mcptt', () => ({ put: [{ groupId: g(1), state: 'affiliated' }], remove: [], tellGms: [], events: [], result: null }));

      clock.t += 1000;
      let seen: [McUri, string][] = [];
      await store.changeAffiliations(alice, 'mcptt', (held) => {
        seen = [...held].sort();
        return { put: [{ groupId: g(2), state: 'affiliated' }, { groupId: g(3), state: 'affiliated' }], remove: [g(1), g(9)], tellGms: [], events: [], result: null };
      });
      assert.deepEqual(seen, [
        [g(1), 'affiliated'],
        [g(2), 'reserved'],
      ]);
      assert.deepEqual(await store.affiliationsOfUser(alice, 'mcptt'), [
        { userId: alice, groupId: g(2), service: 'mcptt', state: 'affiliated', updatedAt: clock.t },
        { userId: alice, groupId: g(3), service: 'mcptt', state: 'affiliated', updatedAt: clock.t },
      ]);
      assert.deepEqual(
        (await store.affiliationsOfUser(alice)).map((r) => [r.service, r.groupId]),
        [
          ['mcdata', g(1)],
          ['mcptt', g(2)],
          ['mcptt', g(3)],
        ],
      );
      assert.deepEqual(
        (await store.affiliationsOfGroup(g(1))).map((r) => [r.service, r.userId]),
        [
          ['mcdata', alice],
          ['mcptt', bob],
        ],
      );
      assert.deepEqual(
        (await store.affiliationsOfGroup(g(1), 'mcptt')).map((r) => r.userId),
        [bob],
      );
      assert.deepEqual(await store.affiliationsOfUser(uri('sip:nobody@police.example')), []);
    });

    void test('affiliationsAcrossDomains: one domain\'s users in another\'s groups, in key order, paged within (after, through]', async () => {
      const { store } = await backend.fresh();
      const fire = (n: string): McUri => uri(`sip:${n}@fire.example`);
      const put = (user: McUri, service: McService, groups: McUri[], state: 'affiliated' | 'reserved' = 'affiliated') =>
        store.changeAffiliations(user, service, () => ({ put: groups.map((groupId) => ({ groupId, state })), remove: [], tellGms: [], events: [], result: null }));
      await put(alice, 'mcptt', [fire('engine'), fire('rescue'), g(1), uri('sip:x@sub.fire.example')]);
      await put(alice, 'mcdata', [fire('engine')], 'reserved');
      await put(bob, 'mcptt', [fire('engine')]);
      await put(uri('sip:fred@fire.example'), 'mcptt', [fire('engine')]);
      await put(uri('sip:eve@xpolice.example'), 'mcptt', [fire('engine')]);
      const key = (r: { userId: string; service: string; groupId: string }) => `${r.userId} ${r.service} ${r.groupId}`;
      const all = await store.affiliationsAcrossDomains({ userDomain: 'police.example', groupDomain: 'fire.example', limit: 100 });
      assert.deepEqual(all.map(key), [
        `${alice} mcdata ${fire('engine')}`,
        `${alice} mcptt ${fire('engine')}`,
        `${alice} mcptt ${fire('rescue')}`,
        `${bob} mcptt ${fire('engine')}`,
      ]);
      assert.equal(all[0]!.state, 'reserved');
      const first = await store.affiliationsAcrossDomains({ userDomain: 'police.example', groupDomain: 'fire.example', limit: 2 });
      assert.deepEqual(first.map(key), all.slice(0, 2).map(key));
      const rest = await store.affiliationsAcrossDomains({ userDomain: 'police.example', groupDomain: 'fire.example', after: first[1]!, limit: 100 });
      assert.deepEqual(rest.map(key), all.slice(2).map(key));
      const between = await store.affiliationsAcrossDomains({ userDomain: 'police.example', groupDomain: 'fire.example', after: all[0]!, through: all[2]!, limit: 100 });
      assert.deepEqual(between.map(key), all.slice(1, 3).map(key));
      assert.deepEqual(await store.affiliationsAcrossDomains({ userDomain: 'fire.example', groupDomain: 'police.example', limit: 100 }), []);
    });

    void test('a group put twice in one write keeps the last state; put then remove of the same group removes it', async () => {
      const { store } = await backend.fresh();
      await store.changeAffiliations(alice, 'mcptt', () => ({
        put: [
          { groupId: g(1), state: 'reserved' },
          { groupId: g(1), state: 'affiliated' },
          { groupId: g(2), state: 'affiliated' },
        ],
        remove: [g(2)],
        tellGms: [],
        events: [],
        result: null,
      }));
      assert.deepEqual(
        (await store.affiliationsOfUser(alice)).map((r) => [r.groupId, r.state]),
        [[g(1), 'affiliated']],
      );
    });

    void test('N2-style decide: reserved rows count, excess groups are refused', async () => {
      const { store } = await backend.fresh();
      await store.changeAffiliations(alice, 'mcptt', () => ({ put: [{ groupId: g(0), state: 'reserved' }], remove: [], tellGms: [], events: [], result: null }));
      const { result } = await store.changeAffiliations(alice, 'mcptt', withinN2(3, [g(1), g(2), g(3), g(4)]));
      assert.deepEqual(result, { added: [g(1), g(2)], refused: [g(3), g(4)] });
      // Another service has its own N2.
      const other = await store.changeAffiliations(alice, 'mcdata', withinN2(3, [g(1), g(2), g(3), g(4)]));
      assert.deepEqual(other.result, { added: [g(1), g(2), g(3)], refused: [g(4)] });
      assert.equal((await store.affiliationsOfUser(alice, 'mcptt')).length, 3);
    });

    void test('a decide that throws writes nothing and its error passes unchanged', async () => {
      const { store } = await backend.fresh();
      const boom = new MusterError('forbidden', 'no');
      await assert.rejects(
        store.changeAffiliations(alice, 'mcptt', () => {
          throw boom;
        }),
        (e) => e === boom,
      );
      assert.deepEqual(await store.affiliationsOfUser(alice), []);
      assert.deepEqual(await store.pendingGmsUpdates(10), []);
    });

    void test('audit entries of a write are stored in its transaction, with its rows; a decide that throws stores none', async () => {
      const { store } = await backend.fresh();
      const entry: NewAuditEntry = { at: 1_700_000_000_000, subject: alice, role: 'user', onBehalfOf: alice, action: 'sip-publish', service: 'mcptt', groups: [g(1)], httpStatus: 200, errorCode: null, result: { expires: 3600, status: [{ groupId: g(1), status: 'affiliated' }] } };
      await store.changeAffiliations(alice, 'mcptt', () => ({ put: [{ groupId: g(1), state: 'affiliated' }], remove: [], tellGms: [], events: [], audit: [entry], result: undefined }));
      assert.deepEqual((await store.affiliationsOfUser(alice)).map((r) => r.groupId), [g(1)]);
      assert.deepEqual((await store.queryAudit({ limit: 10 })).map(({ id: _id, ...e }) => e), [entry]);
      await assert.rejects(
        store.changeAffiliations(bob, 'mcptt', () => {
          throw new MusterError('forbidden', 'no');
        }),
      );
      assert.equal((await store.queryAudit({ limit: 10 })).length, 1);
    });

    void test('concurrency: 100 writes for one user from two instances, each adding only if held.size < 5, store exactly 5', async () => {
      const { store, second } = await backend.fresh();
      const outcomes = await Promise.all(
        Array.from({ length: 100 }, (_, i) =>
          (i % 2 === 0 ? store : second).changeAffiliations(alice, 'mcptt', (held) => {
            const add = held.size < 5;
            return {
              put: add ? [{ groupId: g(i), state: 'affiliated' as const }] : [],
              remove: [],
              tellGms: add ? [{ groupId: g(i), status: 'affiliated' as const }] : [],
              events: add ? [{ userId: alice, type: 'affiliation-status' as const, data: { groupId: g(i) } }] : [],
              result: add,
            };
          }),
        ),
      );
      assert.equal(outcomes.filter((o) => o.result).length, 5);
      const rows = await store.affiliationsOfUser(alice, 'mcptt');
      assert.equal(rows.length, 5);
      assert.equal((await store.pendingGmsUpdates(1000)).length, 5);
      const events = await store.eventsAfter(alice, 0, 1000);
      assert.equal(events.length, 5);
      assert.deepEqual(
        events.map((e) => e.id),
        outcomes.flatMap((o) => o.events.map((e) => e.id)).sort((a, b) => a - b),
      );
      assert.deepEqual(new Set(events.map((e) => (e.data as { groupId: McUri }).groupId)), new Set(rows.map((r) => r.groupId)));
    });

    void test('outbox: pending in write order with a limit; confirmed rows leave, the rest keep their order', async () => {
      const { store, second } = await backend.fresh();
      await store.changeAffiliations(alice, 'mcptt', affiliate(alice, 'mcptt', [g(1), g(2)]));
      await second.changeAffiliations(bob, 'mcdata', affiliate(bob, 'mcdata', [g(3)]));
      await store.changeAffiliations(alice, 'mcptt', (held) => ({
        put: [],
        remove: [...held.keys()].filter((x) => x === g(1)),
        tellGms: [{ groupId: g(1), status: 'deaffiliated' }],
        events: [],
        result: null,
      }));
      const all = await store.pendingGmsUpdates(10);
      assert.deepEqual(
        all.map(({ userId, groupId, service, status }) => [userId, groupId, service, status]),
        [
          [alice, g(1), 'mcptt', 'affiliated'],
          [alice, g(2), 'mcptt', 'affiliated'],
          [bob, g(3), 'mcdata', 'affiliated'],
          [alice, g(1), 'mcptt', 'deaffiliated'],
        ],
      );
      const seqs = all.map((u) => u.seq);
      assert.deepEqual(seqs, [...seqs].sort((a, b) => a - b));
      assert.equal(new Set(seqs).size, 4);
      assert.deepEqual(await store.pendingGmsUpdates(2), all.slice(0, 2));

      await second.confirmGmsUpdates([seqs[0]!, seqs[2]!]);
      assert.deepEqual(await store.pendingGmsUpdates(10), [all[1], all[3]]);
      await store.confirmGmsUpdates([]);
      await store.confirmGmsUpdates([seqs[0]!]); // already gone: no error
      await store.confirmGmsUpdates([seqs[1]!, seqs[3]!]);
      assert.deepEqual(await store.pendingGmsUpdates(10), []);
      // New rows never reuse a confirmed sequence number.
      await store.changeAffiliations(bob, 'mcptt', affiliate(bob, 'mcptt', [g(5)]));
      const [next] = await store.pendingGmsUpdates(10);
      assert.ok(next && next.seq > seqs[3]!);
    });

    void test('events: increasing ids, stamped with the clock, paged per user by eventsAfter', async () => {
      const { store, second, clock } = await backend.fresh();
      const written = await store.changeAffiliations(alice, 'mcptt', affiliate(alice, 'mcptt', [g(1), g(2)]));
      assert.deepEqual(
        written.events.map(({ userId, type, data, at }) => ({ userId, type, data, at })),
        [
          { userId: alice, type: 'affiliation-status', data: { service: 'mcptt', groupId: g(1), status: 'affiliated' }, at: clock.t },
          { userId: alice, type: 'affiliation-status', data: { service: 'mcptt', groupId: g(2), status: 'affiliated' }, at: clock.t },
        ],
      );
      clock.t += 5;
      const data = { nested: { z: 1, a: [1, 'two', null, true] }, text: 'ünïcödé ✓', big: 2 ** 40 };
      const appended = await second.appendEvents([
        { userId: bob, type: 'affiliation-change', data },
        { userId: alice, type: 'affiliation-change', data: 'plain' },
        { userId: alice, type: 'affiliation-status', data: null },
      ]);
      assert.deepEqual(await store.appendEvents([]), []);
      const ids = [...written.events, ...appended].map((e) => e.id);
      for (let i = 1; i < ids.length; i += 1) assert.ok(ids[i]! > ids[i - 1]!, `ids increase: ${ids.join(',')}`);

      const aliceAll = await store.eventsAfter(alice, 0, 100);
      assert.deepEqual(aliceAll, [...written.events, appended[1], appended[2]]);
      assert.equal(aliceAll[2]!.at, clock.t);
      assert.deepEqual(await store.eventsAfter(bob, 0, 100), [appended[0]]);
      assert.deepEqual((await store.eventsAfter(bob, 0, 100))[0]!.data, data);

      // Paging: resume after the last id seen, a page at a time.
      const pages: number[][] = [];
      let last = 0;
      for (;;) {
        const page = await second.eventsAfter(alice, last, 2);
        if (page.length === 0) break;
        pages.push(page.map((e) => e.id));
        last = page[page.length - 1]!.id;
      }
      assert.deepEqual(pages, [
        [ids[0], ids[1]],
        [ids[3], ids[4]],
      ]);
      assert.deepEqual(await store.eventsAfter(alice, ids[4]!, 10), []);
    });

    void test('newestEventId: 0 before any event, then the highest id issued, for every user and instance, also once pruned', async () => {
      const { store, second, clock } = await backend.fresh();
      assert.equal(await store.newestEventId(), 0);
      const first = await store.appendEvents([{ userId: alice, type: 'affiliation-status', data: 1 }]);
      const later = await second.appendEvents([{ userId: bob, type: 'affiliation-status', data: 2 }]);
      assert.equal(await store.newestEventId(), later[0]!.id);
      assert.equal(await second.newestEventId(), later[0]!.id);
      assert.ok(later[0]!.id > first[0]!.id);
      // Ids once issued stay issued: a client may hold one of a pruned event.
      clock.t += 10;
      assert.equal(await store.pruneEvents(clock.t), 2);
      assert.equal(await store.newestEventId(), later[0]!.id);
    });

    void test('profiles: put, overwrite, delete, all, one', async () => {
      const { store, second } = await backend.fresh();
      const a: UserProfile = { id: alice, services: ['mcptt', 'mcdata'], n2: { mcptt: 3, mcdata: 2 }, groups: [g(1), g(2)], remoteChange: { users: [bob] } };
      const b: UserProfile = { id: bob, services: ['mcptt'], n2: 5, groups: [], remoteChange: false };
      await store.putProfile(a);
      await store.putProfile(b);
      await second.putProfile({ ...b, n2: 7, remoteChange: true });
      const byId = (ps: UserProfile[]): UserProfile[] => [...ps].sort((x, y) => x.id.localeCompare(y.id));
      assert.deepEqual(byId(await store.allProfiles()), [a, { ...b, n2: 7, remoteChange: true }]);
      assert.deepEqual(await store.profile(bob), { ...b, n2: 7, remoteChange: true }, "one profile, as the other instance's write left it");
      assert.equal(await store.deleteProfile(bob), true);
      assert.equal(await second.deleteProfile(bob), false);
      assert.deepEqual(await store.allProfiles(), [a]);
      assert.equal(await second.profile(bob), undefined);
      assert.deepEqual(await second.profile(alice), a);
    });

    void test('change requests: create with events, get per target, transitions, changesInState', async () => {
      const { store, second, clock } = await backend.fresh();
      const carol = uri('sip:carol@police.example');
      const events = await store.createChanges(
        [change({ id: 'c1', target: alice }), change({ id: 'c1', target: bob, createdAt: 1_700_000_000_001 }), change({ id: 'm1', target: carol, mode: 'mandatory', state: 'told', result: { ok: [g(1)] } })],
        [
          { userId: bob, type: 'affiliation-change', data: { id: 'c1' } },
          { userId: alice, type: 'affiliation-change', data: { id: 'c1' } },
          { userId: carol, type: 'affiliation-change', data: { id: 'm1' } },
        ],
      );
      assert.deepEqual(
        events.map((e) => [e.userId, e.at]),
        [
          [bob, clock.t],
          [alice, clock.t],
          [carol, clock.t],
        ],
      );
      assert.ok(events[0]!.id < events[1]!.id && events[1]!.id < events[2]!.id);
      assert.deepEqual(await store.eventsAfter(alice, 0, 10), [events[1]]);

      assert.deepEqual(await second.getChange('c1', alice), change({ id: 'c1', target: alice }));
      assert.equal(await store.getChange('c1', carol), undefined);
      assert.equal(await store.getChange('nope', alice), undefined);
      assert.deepEqual(
        (await store.changesInState('asked')).map((c) => [c.id, c.target]),
        [
          ['c1', alice],
          ['c1', bob],
        ],
      );
      assert.deepEqual((await second.changesInState('asked', bob)).map((c) => [c.id, c.target]), [['c1', bob]], 'only the given target');
      assert.deepEqual(await store.changesInState('asked', carol), []);

      assert.equal(await store.transitionChange('c1', alice, ['asked'], 'accepted', { status: [{ groupId: g(1), status: 'affiliated' }] }), true);
      assert.equal(await store.transitionChange('c1', alice, ['asked'], 'timed-out'), false);
      assert.equal(await store.transitionChange('c1', carol, ['asked'], 'timed-out'), false);
      const accepted = await store.getChange('c1', alice);
      assert.equal(accepted?.state, 'accepted');
      assert.deepEqual(accepted?.result, { status: [{ groupId: g(1), status: 'affiliated' }] });
      // Without a result the stored one stays.
      assert.equal(await store.transitionChange('m1', carol, ['told', 'asked'], 'acknowledged'), true);
      assert.deepEqual(await store.getChange('m1', carol), change({ id: 'm1', target: carol, mode: 'mandatory', state: 'acknowledged', result: { ok: [g(1)] } }));
      assert.deepEqual(
        (await store.changesInState('asked')).map((c) => [c.id, c.target]),
        [['c1', bob]],
      );
      assert.deepEqual(await store.changesInState('rejected'), []);
    });

    void test('changesPastDeadline: asked negotiations at or past their deadline only, earliest first, at most the limit', async () => {
      const { store, second } = await backend.fresh();
      const carol = uri('sip:carol@police.example');
      await store.createChanges(
        [
          change({ id: 'late', target: alice, deadline: 3000 }),
          change({ id: 'early', target: bob, deadline: 1000 }),
          change({ id: 'now', target: carol, deadline: 2000 }),
          change({ id: 'future', target: alice, deadline: 9000 }),
          change({ id: 'answered', target: bob, deadline: 500 }),
          change({ id: 'told', target: carol, mode: 'mandatory', state: 'told', deadline: 0 }),
        ],
        [],
      );
      assert.equal(await store.transitionChange('answered', bob, ['asked'], 'accepted', []), true);
      assert.deepEqual((await second.changesPastDeadline(3000, 10)).map((c) => [c.id, c.target]), [['early', bob], ['now', carol], ['late', alice]]);
      assert.deepEqual((await store.changesPastDeadline(2000, 1)).map((c) => c.id), ['early'], 'the limit, earliest first');
      assert.deepEqual(await store.changesPastDeadline(999, 10), []);
      assert.deepEqual(await store.changesPastDeadline(3000, 10).then((cs) => cs[0]), change({ id: 'early', target: bob, deadline: 1000 }), 'whole records');
      // Answered without a result yet ('answered', accepted; 'now', rejected), and answered with one ('late').
      assert.equal(await store.transitionChange('now', carol, ['asked'], 'rejected'), true);
      assert.equal(await store.transitionChange('late', alice, ['asked'], 'accepted', [{ groupId: g(1), status: 'affiliated' }]), true);
      assert.equal(await store.transitionChange('answered', bob, ['accepted'], 'accepted', null), true);
      assert.deepEqual((await second.changesAnsweredUnfinished(3000, 10)).map((c) => [c.id, c.state]), [['answered', 'accepted'], ['now', 'rejected']]);
      assert.deepEqual((await store.changesAnsweredUnfinished(1000, 10)).map((c) => c.id), ['answered'], 'deadline at or before now');
      assert.deepEqual((await store.changesAnsweredUnfinished(3000, 1)).map((c) => c.id), ['answered'], 'the limit');
    });

    void test('change requests: concurrent transitions from asked, from two instances, have exactly one winner', async () => {
      const { store, second } = await backend.fresh();
      const n = 20;
      await store.createChanges(
        Array.from({ length: n }, (_, i) => change({ id: `r${i}`, target: alice })),
        [],
      );
      for (let i = 0; i < n; i += 1) {
        const [answer, timeout] = await Promise.all([
          store.transitionChange(`r${i}`, alice, ['asked'], 'accepted', { by: 'answer' }),
          second.transitionChange(`r${i}`, alice, ['asked'], 'timed-out', { by: 'timeout' }),
        ]);
        assert.equal(Number(answer) + Number(timeout), 1, `exactly one wins r${i}`);
        const stored = await store.getChange(`r${i}`, alice);
        assert.equal(stored?.state, answer ? 'accepted' : 'timed-out');
        assert.deepEqual(stored?.result, { by: answer ? 'answer' : 'timeout' });
      }
      assert.deepEqual(await store.changesInState('asked'), []);
    });

    void test('pruneEvents removes events older than the cut, except change requests still waiting for their target', async () => {
      const { store, clock } = await backend.fresh();
      const t0 = clock.t;
      const change = (id: string, state: 'told' | 'acknowledged' | 'asked') => ({
        id, target: alice, actor: bob, service: 'mcptt' as const, mode: 'mandatory' as const, affiliate: [g(1)], deaffiliate: [], state, deadline: 0, result: [], createdAt: t0,
      });
      const [status] = await store.appendEvents([{ userId: alice, type: 'affiliation-status', data: { service: 'mcptt', status: [] } }]);
      const [pending] = await store.createChanges([change('c-pending', 'told')], [{ userId: alice, type: 'affiliation-change', data: { id: 'c-pending', mode: 'mandatory' } }]);
      const [answered] = await store.createChanges([change('c-answered', 'acknowledged')], [{ userId: alice, type: 'affiliation-change', data: { id: 'c-answered', mode: 'mandatory' } }]);
      clock.t = t0 + 5000;
      const [recent] = await store.appendEvents([{ userId: alice, type: 'affiliation-status', data: null }]);
      assert.equal(await store.pruneEvents(t0 + 1), 2);
      assert.deepEqual((await store.eventsAfter(alice, 0, 10)).map((e) => e.id), [pending!.id, recent!.id]);
      void status;
      void answered;
      // The ended change request went too; the one still waiting stays.
      assert.equal(await store.getChange('c-answered', alice), undefined);
      assert.equal((await store.getChange('c-pending', alice))?.state, 'told');
      assert.equal(await store.pruneEvents(t0 + 1), 0);
    });

    void test('pruneEvents over several chunks: every old event goes, a waiting change request and the recent stay; it stops at retention', async () => {
      const { store, clock } = await backend.fresh();
      const t0 = clock.t;
      const status = (userId: McUri, n: number) => store.appendEvents(Array.from({ length: n }, (_, i) => ({ userId: i % 2 ? alice : bob, type: 'affiliation-status' as const, data: null })));
      // By id: a chunk of old events; a change request alice has not answered and a chunk less one of old events; the
      // recent event; then a chunk and one more written after the clock went back (old by their time, behind it).
      await status(bob, PRUNE_CHUNK);
      const [pending] = await store.createChanges(
        [{ id: 'c-waiting', target: alice, actor: bob, service: 'mcptt', mode: 'negotiated', affiliate: [g(1)], deaffiliate: [], state: 'asked', deadline: t0 + 1e9, result: null, createdAt: t0 }],
        [{ userId: alice, type: 'affiliation-change', data: { id: 'c-waiting', mode: 'negotiated' } }],
      );
      await status(bob, PRUNE_CHUNK - 1);
      clock.t = t0 + 5000;
      const [recent] = await store.appendEvents([{ userId: alice, type: 'affiliation-status', data: null }]);
      clock.t = t0;
      const setBack = await status(bob, PRUNE_CHUNK + 1);
      // Chunks of the first two runs go whole (but the waiting change); the chunk that reaches the recent event goes
      // in part, and the prune stops there: the two set-back events after it wait.
      assert.equal(await store.pruneEvents(t0 + 1), 3 * PRUNE_CHUNK - 2);
      const left = [...(await store.eventsAfter(alice, 0, 10)), ...(await store.eventsAfter(bob, 0, 10))].map((e) => e.id).sort((a, b) => a - b);
      assert.deepEqual(left, [pending!.id, recent!.id, ...setBack.slice(-2).map((e) => e.id)]);
      assert.equal(await store.pruneEvents(t0 + 1), 2, 'the next prune finds the two in its first chunk, with the recent event');
      assert.deepEqual((await store.eventsAfter(alice, 0, 10)).map((e) => e.id), [pending!.id, recent!.id]);
      assert.equal(await store.pruneEvents(t0 + 5001), 1, 'once the recent one is old too, it goes');
      assert.deepEqual((await store.eventsAfter(alice, 0, 10)).map((e) => e.id), [pending!.id]);
      assert.deepEqual(await store.eventsAfter(bob, 0, 10), []);
    });

    void test('sweepReservations removes only reservations older than the cut', async () => {
      const { store, clock } = await backend.fresh();
      const t0 = clock.t;
      await store.changeAffiliations(alice, 'mcptt', () => ({
        put: [
          { groupId: g(1), state: 'reserved' },
          { groupId: g(2), state: 'affiliated' },
        ],
        remove: [],
        tellGms: [],
        events: [],
        result: null,
      }));
      clock.t = t0 + 5000;
      await store.changeAffiliations(bob, 'mcptt', () => ({ put: [{ groupId: g(3), state: 'reserved' }], remove: [], tellGms: [], events: [], result: null }));
      assert.equal(await store.sweepReservations(t0), 0); // strictly older
      assert.equal(await store.sweepReservations(t0 + 1), 1);
      assert.equal(await store.sweepReservations(t0 + 1), 0);
      assert.deepEqual(
        (await store.affiliationsOfUser(alice)).map((r) => [r.groupId, r.state]),
        [[g(2), 'affiliated']],
      );
      assert.deepEqual(
        (await store.affiliationsOfUser(bob)).map((r) => [r.groupId, r.state]),
        [[g(3), 'reserved']],
      );
    });

    void test('forwarded stamps: seen by every instance, taken off only by their own stamp or with the record, swept when old', async () => {
      const { store, second } = await backend.fresh();
      const write = (w: Partial<AffiliationWrite<null>>, who = alice, s: Store = store) => s.changeAffiliations(who, 'mcptt', () => ({ put: [], remove: [], tellGms: [], events: [], result: null, ...w }));
      await write({ put: [1, 2, 3].map((n) => ({ groupId: g(n), state: 'affiliated' as const })) });
      await write({ put: [{ groupId: g(1), state: 'affiliated' }] }, bob);
      // Two de-affiliations on their way (stamped 100 and 200), one of them at the other instance.
      await write({ forwarded: { mark: [g(1), g(2)], at: 100 } });
      await write({ forwarded: { mark: [g(3)], at: 200 } }, alice, second);
      assert.deepEqual(await second.forwardedGroups(alice, 'mcptt'), [g(1), g(2), g(3)]);
      assert.deepEqual(await store.forwardedGroups(alice, 'mcdata'), []);
      assert.deepEqual(await store.forwardedGroups(bob, 'mcptt'), []);
      // A later request stamps g(2) again: the first one's outcome leaves that stamp on, and removes g(1) with its own.
      await write({ forwarded: { mark: [g(2)], at: 150 } }, alice, second);
      await write({ remove: [g(1)], forwarded: { clear: [g(1), g(2)], at: 100 } });
      assert.deepEqual(await second.forwardedGroups(alice, 'mcptt'), [g(2), g(3)]);
      assert.deepEqual((await store.affiliationsOfUser(alice)).map((r) => r.groupId), [g(2), g(3)], 'a refused or unanswered one keeps its record');
      await write({ forwarded: { clear: [g(2)], at: 150 } }, alice, second);
      assert.deepEqual(await store.forwardedGroups(alice, 'mcptt'), [g(3)]);
      // A crash before the outcome was stored: the stamp goes with the sweep of that age, not before.
      assert.equal(await store.sweepReservations(200), 0);
      assert.equal(await second.sweepReservations(201), 1);
      assert.deepEqual(await store.forwardedGroups(alice, 'mcptt'), []);
      assert.deepEqual((await store.affiliationsOfUser(alice)).map((r) => [r.groupId, r.state]), [[g(2), 'affiliated'], [g(3), 'affiliated']]);
    });

    void test('audit: append from two instances, ids increase oldest first, filters, limit and paging, dump and restore', async () => {
      const { store, second } = await backend.fresh();
      const dispatch = uri('sip:dispatch@police.example');
      const entry = (at: number, over: Partial<NewAuditEntry> = {}): NewAuditEntry => ({
        at,
        subject: alice,
        role: 'user',
        onBehalfOf: alice,
        action: 'affiliation',
        service: 'mcptt',
        groups: [g(1), g(2)],
        httpStatus: 200,
        errorCode: null,
        result: { status: [{ groupId: g(1), status: 'affiliated' }, { groupId: g(2), status: 'rejected', reason: 'n2-limit' }] },
        ...over,
      });
      assert.deepEqual(await store.queryAudit({ limit: 10 }), []);
      await store.appendAudit([]);
      await store.appendAudit([entry(1000), entry(1001, { action: 'de-affiliation', groups: [g(1)], result: { status: [{ groupId: g(1), status: 'deaffiliated' }] } })]);
      await second.appendAudit([entry(1002, { subject: dispatch, action: 'change-mandatory', onBehalfOf: bob, result: { outcome: 'applied', status: [], text: 'ünïcödé ✓' } })]);
      await Promise.all([
        store.appendAudit([entry(1003, { subject: alice, onBehalfOf: bob, httpStatus: 403, errorCode: 'forbidden', result: { error: { code: 'forbidden', message: 'no' } } })]),
        second.appendAudit([entry(1004, { subject: 'operator', role: 'operator', onBehalfOf: null, action: 'gms-group-put', service: null, groups: [g(3)], result: null })]),
      ]);
      const all = await second.queryAudit({ limit: 100 });
      assert.equal(all.length, 5);
      const ids = all.map((e) => e.id);
      for (let i = 1; i < ids.length; i += 1) assert.ok(ids[i]! > ids[i - 1]!, `ids increase: ${ids.join(',')}`);
      const { id: firstId, ...first } = all[0]!;
      assert.ok(firstId > 0);
      assert.deepEqual(first, entry(1000));
      assert.deepEqual(all[1]?.groups, [g(1)]);
      assert.deepEqual(all.slice(0, 3).map((e) => e.at), [1000, 1001, 1002]);
      const gmsPut = all.find((e) => e.action === 'gms-group-put');
      assert.deepEqual(gmsPut && { onBehalfOf: gmsPut.onBehalfOf, service: gmsPut.service, result: gmsPut.result, errorCode: gmsPut.errorCode }, { onBehalfOf: null, service: null, result: null, errorCode: null });
      assert.deepEqual((all.find((e) => e.httpStatus === 403))?.errorCode, 'forbidden');

      const ats = async (f: Omit<Parameters<Store['queryAudit']>[0], 'limit'> & { limit?: number }): Promise<number[]> => (await store.queryAudit({ limit: 100, ...f })).map((e) => e.at);
      assert.deepEqual(await ats({ subject: alice }), [1000, 1001, 1003]);
      assert.deepEqual(await ats({ onBehalfOf: bob }), [1002, 1003]);
      assert.deepEqual(await ats({ onBehalfOf: alice }), [1000, 1001], "entries on the subject's own behalf are found too (SQLite keeps them out of the on-behalf-of index)");
      assert.deepEqual(await ats({ subject: alice, onBehalfOf: bob }), [1003]);
      assert.deepEqual(await ats({ since: 1001, until: 1003 }), [1001, 1002]);
      assert.deepEqual(await ats({ since: 1004 }), [1004]);
      assert.deepEqual(await ats({ until: 1000 }), []);
      assert.deepEqual(await ats({ subject: 'nobody' }), []);
      assert.deepEqual(await ats({ limit: 2 }), [1000, 1001]);
      // Paging: resume after the last id seen.
      const pages: number[][] = [];
      let last = 0;
      for (;;) {
        const page = await second.queryAudit({ limit: 2, afterId: last, subject: alice });
        if (page.length === 0) break;
        pages.push(page.map((e) => e.at));
        last = page[page.length - 1]!.id;
      }
      assert.deepEqual(pages, [[1000, 1001], [1003]]);

      // dump carries the log; a restore keeps its ids and the next entry gets a larger one.
      const dump = await store.dump();
      assert.deepEqual(dump.audit, all);
      const target = await backend.fresh();
      await target.store.restore(dump);
      assert.deepEqual(await target.store.queryAudit({ limit: 100 }), all);
      await target.store.appendAudit([entry(2000)]);
      const after = await target.second.queryAudit({ limit: 100, since: 2000 });
      assert.ok(after.length === 1 && after[0]!.id > ids[ids.length - 1]!);
      // A store with audit entries is not empty: a restore into it is refused.
      await assert.rejects(target.store.restore({ ...dump, audit: [] }), (e) => e instanceof MusterError && e.code === 'conflict');
      // A dump written before the audit log existed (no `audit`) restores, with an empty log.
      const old = await backend.fresh();
      const withoutAudit = { ...dump };
      delete withoutAudit.audit;
      await old.store.restore(withoutAudit);
      assert.deepEqual(await old.store.queryAudit({ limit: 10 }), []);
      assert.equal((await old.store.dump()).events.length, dump.events.length);
    });

    void test('audit retention: pruneAudit removes entries older than the cut-off only, from any instance', async () => {
      const { store, second } = await backend.fresh();
      const entry = (at: number): NewAuditEntry => ({ at, subject: alice, role: 'user', onBehalfOf: alice, action: 'affiliation', service: 'mcptt', groups: [g(1)], httpStatus: 200, errorCode: null, result: null });
      await store.appendAudit([entry(1000), entry(2000), entry(3000)]);
      assert.equal(await second.pruneAudit(2000), 1, 'only the entry before the cut-off goes');
      assert.deepEqual((await store.queryAudit({ limit: 10 })).map((e) => e.at), [2000, 3000]);
      assert.equal(await store.pruneAudit(2000), 0, 'pruning again removes nothing');
      // Over several chunks, and entries out of order by time: every old one goes whatever its id.
      await store.appendAudit(Array.from({ length: 2 * PRUNE_CHUNK + 5 }, (_, i) => entry(i % 3 === 0 ? 5000 : 1500)));
      assert.equal(await store.pruneAudit(2500), 1 + 2 * PRUNE_CHUNK + 5 - Math.ceil((2 * PRUNE_CHUNK + 5) / 3), 'the one at 2000 and every one at 1500');
      assert.deepEqual(new Set((await store.queryAudit({ limit: 2 * PRUNE_CHUNK })).map((e) => e.at)), new Set([3000, 5000]));
    });

    void test('GMS: putGroup counts revisions from 1, get, all, delete', async () => {
      const { gms } = await backend.fresh();
      assert.equal(await gms.getGroup(g(1)), undefined);
      const first = await gms.putGroup(group(g(1)));
      assert.deepEqual(first, { ...group(g(1)), revision: 1 });
      const second = await gms.putGroup(group(g(1), { enabled: false, members: [bob] }));
      assert.deepEqual(second, { ...group(g(1), { enabled: false, members: [bob] }), revision: 2 });
      assert.deepEqual(await gms.getGroup(g(1)), second);
      // A caller's stale revision field does not count: the store's does.
      const third = await gms.putGroup({ ...group(g(1)), revision: 99 } as Omit<GroupPolicy, 'revision'>);
      assert.equal(third.revision, 3);
      assert.equal((await gms.getGroup(g(1)))?.revision, 3);
      await gms.putGroup(group(g(2), { displayName: 'Fire ops' }));
      assert.deepEqual(
        (await gms.allGroups()).map((x) => [x.id, x.revision]).sort(),
        [
          [g(1), 3],
          [g(2), 1],
        ],
      );
      assert.equal(await gms.deleteGroup(g(1)), true);
      assert.equal(await gms.deleteGroup(g(1)), false);
      assert.equal(await gms.getGroup(g(1)), undefined);
      assert.equal((await gms.putGroup(group(g(1)))).revision, 1);
    });

    void test('GMS: concurrent putGroup of one group hands out each revision once', async () => {
      const { gms } = await backend.fresh();
      const revisions = await Promise.all(Array.from({ length: 20 }, (_, i) => gms.putGroup(group(g(1), { displayName: `v${i}` })).then((x) => x.revision)));
      assert.deepEqual(
        [...revisions].sort((a, b) => a - b),
        Array.from({ length: 20 }, (_, i) => i + 1),
      );
      assert.equal((await gms.getGroup(g(1)))?.revision, 20);
    });

    void test('GMS: applyStatusUpdates is idempotent per source and sequence number', async () => {
      const { gms } = await backend.fresh();
      const up = (seq: number, userId: McUri, groupId: McUri, status: 'affiliated' | 'deaffiliated', service: McService = 'mcptt') => ({ seq, userId, groupId, service, status });
      assert.equal(await gms.applyStatusUpdates('police', [up(1, alice, g(1), 'affiliated'), up(2, bob, g(1), 'affiliated'), up(3, alice, g(1), 'affiliated', 'mcdata')], 100), 3);
      assert.equal(await gms.applyStatusUpdates('police', [up(1, alice, g(1), 'affiliated'), up(2, bob, g(1), 'affiliated')], 200), 0, 'a repeat changes nothing');
      assert.equal(await gms.applyStatusUpdates('police', [up(1, bob, g(1), 'deaffiliated')], 300), 0, 'an older seq is ignored');
      assert.equal(await gms.applyStatusUpdates('police', [], 300), 0);
      assert.deepEqual(await gms.affiliatedMembers(g(1), 'mcptt'), [
        { userId: alice, service: 'mcptt', status: 'affiliated', updatedAt: 100 },
        { userId: bob, service: 'mcptt', status: 'affiliated', updatedAt: 100 },
      ]);
      // Another source's update applies whatever its number; a newer one of the same source applies too.
      assert.equal(await gms.applyStatusUpdates('fire', [up(1, bob, g(1), 'deaffiliated')], 400), 1);
      assert.equal(await gms.applyStatusUpdates('police', [up(5, alice, g(1), 'deaffiliated'), up(6, alice, g(1), 'affiliated'), up(4, alice, g(1), 'deaffiliated')], 500), 2);
      assert.deepEqual(
        (await gms.affiliatedMembers(g(1))).map((m) => [m.service, m.userId, m.updatedAt]),
        [
          ['mcdata', alice, 100],
          ['mcptt', alice, 500],
        ],
      );
      assert.deepEqual(await gms.affiliatedMembers(g(9)), []);
      await gms.applyStatusUpdates('fire', [up(7, uri('sip:zed@fire.example'), g(0), 'affiliated', 'mcvideo')], 600);
      assert.deepEqual(await gms.allAffiliations(), [
        { groupId: g(0), service: 'mcvideo', userId: uri('sip:zed@fire.example'), status: 'affiliated', source: 'fire', seq: 7, updatedAt: 600 },
        { groupId: g(1), service: 'mcdata', userId: alice, status: 'affiliated', source: 'police', seq: 3, updatedAt: 100 },
        { groupId: g(1), service: 'mcptt', userId: alice, status: 'affiliated', source: 'police', seq: 6, updatedAt: 500 },
      ]);
    });

    void test('SIP publications: one per (user, service), a refresh only with the stored entity-tag, expired ones absent and listed for expiry oldest first', async () => {
      const { store, second } = await backend.fresh();
      const pub = (over: Partial<SipPublicationRecord>): SipPublicationRecord => ({ userId: alice, service: 'mcptt', etag: 'e1', expires: 60, expiresAt: 1000, pId: 'p-1', tupleId: 'client-1', groups: [g(1), g(2)], ...over });
      assert.equal(await store.putSipPublication(pub({})), 'stored');
      // The other instance reads what this one wrote (a refresh after a restart or on another instance).
      assert.deepEqual(await second.getSipPublication(alice, 'mcptt', 999), pub({}));
      assert.equal(await second.getSipPublication(alice, 'mcptt', 1000), undefined, 'expired at its expiresAt');
      assert.equal(await store.getSipPublication(alice, 'mcdata', 0), undefined);
      assert.equal(await second.putSipPublication(pub({ etag: 'e2', expiresAt: 5000 }), 'e0'), 'stale', 'a refresh naming another entity-tag changes nothing');
      assert.equal((await store.getSipPublication(alice, 'mcptt', 0))?.etag, 'e1');
      assert.equal(await second.putSipPublication(pub({ etag: 'e2', expiresAt: 5000, pId: null, tupleId: null, groups: [] }), 'e1'), 'stored');
      assert.deepEqual(await store.getSipPublication(alice, 'mcptt', 4999), pub({ etag: 'e2', expiresAt: 5000, pId: null, tupleId: null, groups: [] }));
      assert.equal(await store.putSipPublication(pub({ userId: bob, etag: 'e3', expires: 4294967295, expiresAt: null })), 'stored');
      assert.equal(await store.putSipPublication(pub({ service: 'mcdata', etag: 'e4', expiresAt: 3000 })), 'stored');
      assert.deepEqual((await store.expiredSipPublications(6000, 10)).map((p) => p.etag), ['e4', 'e2'], 'oldest first; a publication without expiry never');
      assert.deepEqual((await store.expiredSipPublications(6000, 1)).map((p) => p.etag), ['e4'], 'at most limit');
      assert.equal(await store.removeSipPublication(alice, 'mcptt', 'e1'), false, 'an old entity-tag removes nothing');
      assert.equal(await second.removeSipPublication(alice, 'mcptt', 'e2'), true);
      assert.equal(await store.removeSipPublication(alice, 'mcptt', 'e2'), false, 'removed once');
      assert.equal((await store.getSipPublication(bob, 'mcptt', 10 ** 13))?.etag, 'e3', 'no expiry');
    });

    void test("SIP publications: a put conditional on none stored (an expiry's retry) never replaces another instance's new one", async () => {
      const { store, second } = await backend.fresh();
      const pub = (etag: string, groups: McUri[] | null): SipPublicationRecord => ({ userId: alice, service: 'mcptt', etag, expires: 60, expiresAt: 1000, pId: null, tupleId: null, groups });
      assert.equal(await store.putSipPublication(pub('old', [g(1)]), null), 'stored', 'none stored: put');
      assert.equal(await second.removeSipPublication(alice, 'mcptt', 'old'), true);
      assert.equal(await second.putSipPublication(pub('new', [g(1), g(2)])), 'stored', 'a new PUBLISH on the other instance');
      assert.equal(await store.putSipPublication(pub('old', [g(1)]), null), 'stale', 'the old one does not come back over it');
      assert.deepEqual(await store.getSipPublication(alice, 'mcptt', 0), pub('new', [g(1), g(2)]), 'the new one stands, with its set');
      assert.equal(await store.putSipPublication({ ...pub('new', null), userId: bob }, null), 'etag-taken', 'a taken entity-tag is still refused');
      assert.equal(await second.putSipPublication({ ...pub('b1', null), userId: bob }, null), 'stored');
      assert.equal((await store.getSipPublication(bob, 'mcptt', 0))?.groups, null, 'a set not known is null');
    });

    void test('SIP publications never share an entity-tag (RFC 3903 §6), whichever instance writes', async () => {
      const { store, second } = await backend.fresh();
      const pub = (userId: McUri, etag: string): SipPublicationRecord => ({ userId, service: 'mcptt', etag, expires: 60, expiresAt: 1000, pId: null, tupleId: null, groups: null });
      assert.equal(await store.putSipPublication(pub(alice, 'same')), 'stored');
      assert.equal(await second.putSipPublication(pub(bob, 'same')), 'etag-taken');
      assert.equal(await second.getSipPublication(bob, 'mcptt', 0), undefined);
      assert.equal(await store.putSipPublication(pub(bob, 'other')), 'stored');
      assert.equal(await second.putSipPublication(pub(bob, 'same'), 'other'), 'etag-taken', 'a refresh to a taken entity-tag too');
      assert.equal((await store.getSipPublication(bob, 'mcptt', 0))?.etag, 'other');
      assert.equal((await store.getSipPublication(alice, 'mcptt', 0))?.etag, 'same');
    });

    void test('SIP subscriptions: stored per owner; only the owner updates or deletes one; listed live, by user, paged by id', async () => {
      const { store, second } = await backend.fresh();
      const sub = (id: string, over: Partial<SipSubscriptionRecord> = {}): SipSubscriptionRecord => ({
        id,
        owner: 'host-a/127.0.0.1:5060',
        callId: `call-${id}`,
        localTag: 'lt',
        remoteTag: 'rt',
        remoteFrom: '<sip:alice@police.example>;tag=rt',
        remoteTarget: 'sip:alice@127.0.0.1:40000',
        eventId: null,
        transport: 'udp',
        remoteAddress: '127.0.0.1',
        remotePort: 40000,
        watcher: alice,
        userId: alice,
        service: 'mcptt',
        expiresAt: 5000,
        localCSeq: 1000,
        remoteCSeq: 1,
        ...over,
      });
      assert.equal(await store.putSipSubscription(sub('s1')), true);
      assert.equal(await store.putSipSubscription(sub('s2', { userId: bob, eventId: 'x', transport: 'tcp' })), true);
      assert.equal(await second.putSipSubscription(sub('s3', { owner: 'host-b/127.0.0.1:5062', expiresAt: 100 })), true);
      assert.equal(await store.putSipSubscription(sub('s1', { expiresAt: 9000, remoteCSeq: 2, localCSeq: 2000 })), true, 'the owner refreshes');
      assert.equal(await second.putSipSubscription(sub('s1', { owner: 'host-b/127.0.0.1:5062', expiresAt: 1 })), false, 'another instance does not take it over');
      assert.deepEqual((await second.sipSubscriptionsOwnedBy('host-a/127.0.0.1:5060')).sort((a, b) => a.id.localeCompare(b.id)), [sub('s1', { expiresAt: 9000, remoteCSeq: 2, localCSeq: 2000 }), sub('s2', { userId: bob, eventId: 'x', transport: 'tcp' })].sort((a, b) => a.id.localeCompare(b.id)));
      // A failed NOTIFY on instance B never deletes A's subscription (the cluster bug this rule is about).
      assert.equal(await second.removeSipSubscriptions(['s1', 's2'], 'host-b/127.0.0.1:5062'), 0);
      assert.equal((await store.sipSubscriptionsOwnedBy('host-a/127.0.0.1:5060')).length, 2);
      const ids = async (f: Partial<SipListFilter>): Promise<string[]> => (await store.listSipSubscriptions({ now: 200, limit: 10, ...f })).map((s) => s.id);
      assert.deepEqual(await ids({}), ['s1', 's2'], 's3 expired at 100');
      assert.deepEqual(await ids({ now: 0 }), ['s1', 's2', 's3'], 'every instance\'s');
      assert.deepEqual(await ids({ userId: bob }), ['s2']);
      assert.deepEqual(await ids({ limit: 1 }), ['s1']);
      assert.deepEqual(await ids({ limit: 1, after: 's1' }), ['s2']);
      assert.equal(await store.removeSipSubscriptions(['s1', 's3'], 'host-a/127.0.0.1:5060'), 1, 'only its own');
      assert.deepEqual(await ids({ now: 0 }), ['s2', 's3']);
      // Long expired, of an instance that never came back: pruned whoever owns it; a live one stays.
      assert.equal(await second.pruneSipSubscriptions(101), 1);
      assert.deepEqual(await ids({ now: 0 }), ['s2']);
    });

    void test('SIP publications listed live for operators, by user, paged by entity-tag', async () => {
      const { store } = await backend.fresh();
      const pub = (userId: McUri, service: McService, etag: string, expiresAt: number | null): SipPublicationRecord => ({ userId, service, etag, expires: 60, expiresAt, pId: null, tupleId: null, groups: null });
      await store.putSipPublication(pub(alice, 'mcptt', 'b', 5000));
      await store.putSipPublication(pub(alice, 'mcdata', 'a', null));
      await store.putSipPublication(pub(bob, 'mcptt', 'c', 100));
      const etags = async (f: Partial<SipListFilter>): Promise<string[]> => (await store.listSipPublications({ now: 200, limit: 10, ...f })).map((p) => p.etag);
      assert.deepEqual(await etags({}), ['a', 'b']);
      assert.deepEqual(await etags({ now: 0 }), ['a', 'b', 'c']);
      assert.deepEqual(await etags({ userId: bob, now: 0 }), ['c']);
      assert.deepEqual(await etags({ limit: 1, after: 'a' }), ['b']);
    });
  });
}

contract(sqliteBackend());
contract(postgresBackend());

void describe('PostgreSQL specifics', () => {
  const dbName = `muster_test_${randomBytes(6).toString('hex')}`;
  const pools: pg.Pool[] = [];
  after(async () => {
    await Promise.all(pools.splice(0).map((p) => p.end()));
    const admin = await adminClient().catch(() => undefined);
    if (!admin) return;
    try {
      await admin.query(`DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`);
    } finally {
      await admin.end();
    }
  });

  void test('migrations: two instances starting together apply each version once; a restart applies none', async () => {
    const admin = await adminClient();
    try {
      await admin.query(`CREATE DATABASE ${dbName}`);
    } finally {
      await admin.end();
    }
    const url = `postgres://postgres@127.0.0.1:5432/${dbName}`;
    const a = newPool(url, { max: 2 });
    const b = newPool(url, { max: 2 });
    pools.push(a, b);
    const [ra, rb] = await Promise.all([migratePostgres(a), migratePostgres(b)]);
    const versions = POSTGRES_MIGRATIONS.map((_, i) => i + 1);
    assert.ok(versions.length >= 4);
    assert.deepEqual([...ra, ...rb].sort((x, y) => x - y), versions, 'each version once, by one of the two');
    assert.deepEqual(await migratePostgres(a), []);
    const { rows } = await a.query<{ version: number }>('SELECT version FROM schema_migrations ORDER BY version');
    assert.deepEqual(rows, versions.map((version) => ({ version })));
  });

  void test('an unreachable database is MusterError unavailable, within the connection timeout', async () => {
    const pool = newPool('postgres://postgres@127.0.0.1:1/muster');
    pools.push(pool);
    const store = new PostgresStore(pool);
    const gms = new PostgresGmsStore(pool);
    const isUnavailable = (e: unknown): boolean => e instanceof MusterError && e.code === 'unavailable' && e.message.startsWith('store unavailable: ');
    const started = Date.now();
    await assert.rejects(store.changeAffiliations(alice, 'mcptt', withinN2(1, [g(1)])), isUnavailable);
    await assert.rejects(store.affiliationsOfUser(alice), isUnavailable);
    await assert.rejects(store.appendEvents([{ userId: alice, type: 'affiliation-status', data: 1 }]), isUnavailable);
    await assert.rejects(gms.applyStatusUpdates('x', [{ seq: 1, userId: alice, groupId: g(1), service: 'mcptt', status: 'affiliated' }], 1), isUnavailable);
    await assert.rejects(openPostgres('postgres://postgres@127.0.0.1:1/muster'), isUnavailable);
    assert.ok(Date.now() - started < 10_000);
  });

  void test('a database that does not exist is MusterError unavailable (it cannot serve), not a crash', async () => {
    await assert.rejects(openPostgres(`postgres://postgres@127.0.0.1:5432/${dbName}_missing`), (e) => e instanceof MusterError && e.code === 'unavailable');
  });
});

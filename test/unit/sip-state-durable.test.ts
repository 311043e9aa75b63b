// The SIP face's state on a real (in-memory) SQLite store with a fake clock: subscriptions and publications expire in
// bounded pages (STAGE3.md: a burst of expiries must not exhaust memory), entity-tags are never shared (RFC 3903 §6),
// and what one process stored is what the next one finds (a restart).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { McUri } from '../../src/domain/ids.ts';
import { openSqlite, SqliteStore } from '../../src/adapters/sqlite-store.ts';
import { Subscriptions, subscriptionOf, type Subscription } from '../../src/faces/sip/subscription-state.ts';
import { Publications, EXPIRES_FOREVER } from '../../src/faces/sip/publication-state.ts';
import { PagedExpiry } from '../../src/faces/sip/expiry-pages.ts';
import type { Flow } from '../../src/faces/sip/transport.ts';
import { TestClock } from '../support/test-clock.ts';

const uri = (s: string): McUri => s as McUri;
const OWNER = 'test-host/127.0.0.1:5060';


const flow: Flow = { transport: 'udp', remoteAddress: '127.0.0.1', remotePort: 40000, send: () => undefined, open: () => true };

function subscription(n: number, expiresAt: number): Subscription {
  return {
    id: `sub-${String(n).padStart(6, '0')}`,
    state: 'active',
    callId: `call-${n}`,
    localTag: `l${n}`,
    remoteTag: `r${n}`,
    remoteFrom: `<sip:u${n}@police.example>;tag=r${n}`,
    remoteTarget: `sip:u${n}@127.0.0.1:40000`,
    eventId: undefined,
    flow,
    watcher: uri(`sip:u${n}@police.example`),
    userId: uri(`sip:u${n}@police.example`),
    watches: 'user',
    service: 'mcptt',
    expiresAt,
    localCSeq: 0,
    cseqMark: 0,
    remoteCSeq: 1,
  };
}

/** Lets the store's group commit (setImmediate) and the page's promises run. */
const settle = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

void test('100,000 subscriptions expiring at the same instant end in pages of at most 500, every one of them, rows included', async () => {
  const clock = new TestClock(1_700_000_000_000);
  const store = new SqliteStore(openSqlite(':memory:'), clock.now);
  const subs = new Subscriptions(store, OWNER);
  const N = 100_000;
  const expiresAt = clock.t + 60_000;
  const all = Array.from({ length: N }, (_, n) => subscription(n, expiresAt));
  await Promise.all(all.map((s) => subs.open(s, { durable: true })));
  assert.equal((await store.sipSubscriptionsOwnedBy(OWNER)).length, N);
  // One of them is refreshed in time: it stays.
  const kept = all[7]!;
  await subs.refresh(kept, expiresAt + 3600_000, 2);

  const pages: number[] = [];
  let inFlight = 0;
  let maxInFlight = 0;
  const expiry = new PagedExpiry<Subscription>(clock, {
    everyMs: 1000,
    pageSize: 500,
    take: (now, limit) => subs.takeExpired(now, limit),
    end: async (page) => {
      inFlight += page.length;
      maxInFlight = Math.max(maxInFlight, inFlight);
      pages.push(page.length);
      await subs.forget(page);
      inFlight -= page.length;
    },
    onError: (e) => assert.fail(String(e)),
  });
  expiry.start();
  clock.t += 30_000;
  assert.equal(clock.fireNext(), true);
  await settle();
  assert.equal(pages.length, 0, 'nothing is due before its expiry');

  clock.t = expiresAt;
  const started = Date.now();
  for (let ticks = 0; ticks < 1000 && clock.fireNext(); ticks++) {
    for (let i = 0; i < 5; i++) await settle();
  }
  expiry.stop();
  assert.ok(Date.now() - started < 60_000);
  assert.ok(pages.length >= 200, `${pages.length} pages`);
  assert.ok(pages.every((p) => p <= 500), 'no page above 500');
  assert.ok(maxInFlight <= 500, 'one page at a time');
  assert.equal(pages.reduce((a, b) => a + b, 0), N - 1);
  assert.equal(all.filter((s) => s.state === 'terminated').length, N - 1, 'every expired one ended');
  assert.equal(kept.state, 'active');
  assert.equal(subs.size, 1);
  assert.deepEqual((await store.sipSubscriptionsOwnedBy(OWNER)).map((r) => r.id), [kept.id], 'only the refreshed row is left');
  await store.close();
});

void test('a subscription read back after a restart goes on: same dialog, expiry, and a local CSeq above every one used before', async () => {
  const clock = new TestClock(1_700_000_000_000);
  const store = new SqliteStore(openSqlite(':memory:'), clock.now);
  const before = new Subscriptions(store, OWNER);
  const sub = subscription(1, clock.t + 600_000);
  await before.open(sub, { durable: true });
  // 2,500 requests of ours in the dialog (NOTIFYs), each reserving its CSeq first, as the core does.
  for (let i = 0; i < 2500; i++) {
    await before.reserveCSeq(sub);
    sub.localCSeq += 1;
  }
  const [row] = await store.sipSubscriptionsOwnedBy(OWNER);
  const after = new Subscriptions(store, OWNER);
  const back = subscriptionOf(row!, flow);
  after.hold(back);
  assert.equal(after.find(sub.callId, sub.remoteTag, sub.localTag), back);
  assert.equal(back.expiresAt, sub.expiresAt);
  assert.ok(back.localCSeq + 1 > 2500, `the next CSeq ${back.localCSeq + 1} is above the last one used (2500)`);
  assert.deepEqual(after.takeExpired(clock.t + 600_000, 10), [back]);
  // Another instance never deletes it; its owner does.
  await new Subscriptions(store, 'other-host/127.0.0.1:5062').forget([back]);
  assert.equal((await store.sipSubscriptionsOwnedBy(OWNER)).length, 1);
  await after.forget([back]);
  assert.equal((await store.sipSubscriptionsOwnedBy(OWNER)).length, 0);
  await store.close();
});

void test('a refresh is a target refresh (RFC 6665 §4.1.2.2): the new Contact and flow (a TCP reconnect) take the NOTIFYs and are stored', async () => {
  const clock = new TestClock(1_700_000_000_000);
  const store = new SqliteStore(openSqlite(':memory:'), clock.now);
  const subs = new Subscriptions(store, OWNER);
  const sub = subscription(1, clock.t + 600_000);
  await subs.open(sub, { durable: true });
  const reconnected: Flow = { transport: 'tcp', remoteAddress: '127.0.0.1', remotePort: 40001, send: () => undefined, open: () => true };
  await subs.refresh(sub, clock.t + 300_000, 2, { remoteTarget: 'sip:u1@127.0.0.1:40001;transport=tcp', flow: reconnected });
  assert.equal(sub.flow, reconnected);
  assert.equal(sub.remoteTarget, 'sip:u1@127.0.0.1:40001;transport=tcp');
  const [row] = await store.sipSubscriptionsOwnedBy(OWNER);
  assert.deepEqual(row && [row.transport, row.remotePort, row.remoteTarget, row.expiresAt, row.remoteCSeq], ['tcp', 40001, 'sip:u1@127.0.0.1:40001;transport=tcp', clock.t + 300_000, 2]);
  await store.close();
});

void test('entity-tags are random and never shared: a drawn tag another publication holds is drawn again', async () => {
  const clock = new TestClock(1_700_000_000_000);
  const store = new SqliteStore(openSqlite(':memory:'), clock.now);
  const draws = ['same', 'same', 'fresh'];
  const pubs = new Publications(store, clock, () => draws.shift() ?? 'exhausted');
  const alice = await pubs.put(uri('sip:alice@police.example'), 'mcptt', 60, { pId: 'p1', tupleId: 't1', groups: [] });
  const bob = await pubs.put(uri('sip:bob@police.example'), 'mcptt', 60, { pId: undefined, tupleId: undefined, groups: [] });
  assert.equal(alice.etag, 'same');
  assert.equal(bob.etag, 'fresh', 'the second draw of a taken tag was refused by the store and drawn again');
  // The default generator: 1,000 publications, 1,000 distinct tags.
  const real = new Publications(store, clock);
  const tags = new Set<string>();
  for (let i = 0; i < 1000; i++) tags.add((await real.put(uri(`sip:u${i}@police.example`), 'mcptt', 60, { pId: undefined, tupleId: undefined, groups: [] })).etag);
  assert.equal(tags.size, 1000);
  await store.close();
});

void test('a publication outlives its process: a new one finds it by user, refreshes it with its tag, and an old tag is stale', async () => {
  const clock = new TestClock(1_700_000_000_000);
  const store = new SqliteStore(openSqlite(':memory:'), clock.now);
  const alice = uri('sip:alice@police.example');
  const first = await new Publications(store, clock).put(alice, 'mcptt', 600, { pId: 'p1', tupleId: 'client-7', groups: [uri('sip:patrol@police.example')] });
  const restarted = new Publications(store, clock);
  const found = await restarted.get(alice, 'mcptt');
  assert.deepEqual(found, first);
  const refreshed = await restarted.refresh(found, 600);
  assert.ok(refreshed && refreshed.etag !== first.etag);
  assert.equal(refreshed.tupleId, 'client-7');
  assert.equal(await restarted.refresh(first, 600), undefined, 'the replaced tag no longer refreshes');
  const forever = await restarted.put(alice, 'mcdata', EXPIRES_FOREVER, { pId: undefined, tupleId: undefined, groups: [] });
  assert.equal(forever.expiresAt, null);
  clock.t += 601_000;
  assert.equal(await restarted.get(alice, 'mcptt'), undefined, 'expired');
  assert.deepEqual((await restarted.expired(clock.t, 10)).map((p) => p.etag), [refreshed.etag]);
  await store.close();
});

void test('1,000 publications expiring at once are taken in pages of 200 and each is removed once', async () => {
  const clock = new TestClock(1_700_000_000_000);
  const store = new SqliteStore(openSqlite(':memory:'), clock.now);
  const pubs = new Publications(store, clock);
  await Promise.all(Array.from({ length: 1000 }, (_, i) => pubs.put(uri(`sip:u${i}@police.example`), 'mcptt', 60, { pId: undefined, tupleId: undefined, groups: [] })));
  const pages: number[] = [];
  let removed = 0;
  const expiry = new PagedExpiry(clock, {
    everyMs: 1000,
    pageSize: 200,
    take: (now, limit) => pubs.expired(now, limit),
    end: async (page) => {
      pages.push(page.length);
      for (const ok of await Promise.all(page.map((p) => pubs.remove(p.userId, p.service, p.etag)))) removed += ok ? 1 : 0;
    },
    onError: (e) => assert.fail(String(e)),
  });
  expiry.start();
  clock.t += 61_000;
  for (let ticks = 0; ticks < 100 && clock.fireNext(); ticks++) for (let i = 0; i < 5; i++) await settle();
  expiry.stop();
  assert.deepEqual(pages, [200, 200, 200, 200, 200]);
  assert.equal(removed, 1000);
  assert.deepEqual(await pubs.expired(clock.t, 10), []);
  await store.close();
});

void test("a watcher's count of live subscriptions goes up as they open and down as they end, whichever way", async () => {
  const store = new SqliteStore(openSqlite(':memory:'));
  const subs = new Subscriptions(store, OWNER);
  const mine = [1, 2, 3].map((n) => ({ ...subscription(n, 2_000_000_000_000), watcher: uri('sip:dispatch@police.example') }));
  for (const s of mine) await subs.open(s, { durable: true });
  await subs.open(subscription(4, 2_000_000_000_000), { durable: true });
  assert.equal(subs.ofWatcher(uri('sip:dispatch@police.example')), 3);
  subs.transition(mine[0]!, 'unsubscribe');
  subs.transition(mine[1]!, 'notify-failed');
  assert.equal(subs.ofWatcher(uri('sip:dispatch@police.example')), 1);
  assert.deepEqual(subs.takeExpired(2_000_000_000_001, 10).map((s) => s.id).sort(), ['sub-000003', 'sub-000004']);
  assert.equal(subs.ofWatcher(uri('sip:dispatch@police.example')), 0);
  assert.equal(subs.ofWatcher(uri('sip:u4@police.example')), 0);
  await store.close();
});

// Unit tests for the per-credential token buckets (src/faces/http/rate-limit.ts, issue 7) on an injected clock,
// and for the configuration keys that set them (rateLimit, maxInFlight).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { TokenBuckets } from '../../src/faces/http/rate-limit.ts';
import { ConfigError, DEFAULT_MAX_IN_FLIGHT, DEFAULT_RATE_LIMIT, resolveConfig } from '../../src/config/config.ts';

function clock(): { now: () => number; advance(ms: number): void } {
  let t = 1_000_000;
  return { now: () => t, advance: (ms) => void (t += ms) };
}

void test('a bucket grants its burst at once, then refuses with the seconds until the next token', () => {
  const c = clock();
  const b = new TokenBuckets({ perSecond: 2, burst: 3 }, c.now);
  assert.deepEqual([b.take('a'), b.take('a'), b.take('a')], [0, 0, 0]);
  assert.equal(b.take('a'), 1);
  c.advance(499);
  assert.equal(b.take('a'), 1, 'not quite one token yet');
  c.advance(1);
  assert.equal(b.take('a'), 0, 'one token after 1/perSecond');
  assert.equal(b.take('a'), 1);
});

void test('Retry-After rounds up to whole seconds at a slow rate', () => {
  const c = clock();
  const b = new TokenBuckets({ perSecond: 0.25, burst: 1 }, c.now);
  assert.equal(b.take('a'), 0);
  assert.equal(b.take('a'), 4);
  c.advance(2500);
  assert.equal(b.take('a'), 2);
});

void test('one key over its rate does not touch another key', () => {
  const c = clock();
  const b = new TokenBuckets({ perSecond: 1, burst: 2 }, c.now);
  for (let i = 0; i < 50; i++) b.take('greedy');
  assert.equal(b.take('greedy') > 0, true);
  assert.deepEqual([b.take('polite'), b.take('polite')], [0, 0]);
});

void test('refused requests take no token: a client that keeps knocking is served once it waits', () => {
  const c = clock();
  const b = new TokenBuckets({ perSecond: 10, burst: 1 }, c.now);
  assert.equal(b.take('a'), 0);
  for (let i = 0; i < 100; i++) assert.ok(b.take('a') > 0);
  c.advance(100);
  assert.equal(b.take('a'), 0);
});

void test('the bucket never holds more than its burst, however long it was idle', () => {
  const c = clock();
  const b = new TokenBuckets({ perSecond: 100, burst: 5 }, c.now);
  b.take('a');
  c.advance(3600_000);
  const answers = Array.from({ length: 6 }, () => b.take('a'));
  assert.deepEqual(answers, [0, 0, 0, 0, 0, 1]);
});

void test('memory is bounded: idle (full) buckets are dropped, and at most maxKeys are kept', () => {
  const c = clock();
  const b = new TokenBuckets({ perSecond: 10, burst: 10 }, c.now, 100);
  for (let i = 0; i < 1000; i++) b.take(`user-${i}`);
  assert.ok(b.size <= 100, `${b.size} buckets`);
  c.advance(60_000);
  b.take('late');
  assert.equal(b.size, 1, 'the idle ones were forgotten');
});

void test('at the key bound, the least recently used bucket goes, not the busy one', () => {
  const c = clock();
  const b = new TokenBuckets({ perSecond: 1, burst: 2 }, c.now, 3);
  b.take('busy');
  b.take('busy');
  b.take('x');
  b.take('y');
  assert.ok(b.take('busy') > 0, 'busy is empty');
  b.take('z'); // evicts x, the least recently used
  assert.ok(b.take('busy') > 0, 'busy still empty: its bucket was kept');
});

const oneSystem = (extra: Record<string, unknown>): unknown => ({ ...extra, dataDir: '/tmp/muster-unused', systems: [{ name: 'p', domain: 'p.example', http: { port: 0 }, secret: 's' }] });

void test('config: rateLimit and maxInFlight default when absent, and are read when given', () => {
  const [d] = resolveConfig(oneSystem({}));
  assert.deepEqual(d!.rateLimit, DEFAULT_RATE_LIMIT);
  assert.equal(d!.maxInFlight, DEFAULT_MAX_IN_FLIGHT);
  const [s] = resolveConfig(oneSystem({ rateLimit: { perSecond: 2.5, burst: 7 }, maxInFlight: 4 }));
  assert.deepEqual(s!.rateLimit, { perSecond: 2.5, burst: 7 });
  assert.equal(s!.maxInFlight, 4);
  const [half] = resolveConfig(oneSystem({ rateLimit: { burst: 9 } }));
  assert.deepEqual(half!.rateLimit, { perSecond: DEFAULT_RATE_LIMIT.perSecond, burst: 9 });
});

const refusals: [name: string, extra: Record<string, unknown>, path: string][] = [
  ['a zero rate', { rateLimit: { perSecond: 0, burst: 1 } }, 'rateLimit.perSecond'],
  ['a burst below one', { rateLimit: { perSecond: 1, burst: 0 } }, 'rateLimit.burst'],
  ['a fractional burst', { rateLimit: { perSecond: 1, burst: 1.5 } }, 'rateLimit.burst'],
  ['a rate that is text', { rateLimit: { perSecond: 'fast' } }, 'rateLimit.perSecond'],
  ['an unknown key under rateLimit', { rateLimit: { perMinute: 5 } }, 'rateLimit.perMinute'],
  ['maxInFlight zero', { maxInFlight: 0 }, 'maxInFlight'],
  ['maxInFlight negative', { maxInFlight: -3 }, 'maxInFlight'],
];
for (const [name, extra, path] of refusals) {
  void test(`config: ${name} is refused naming ${path}`, () => {
    assert.throws(
      () => resolveConfig(oneSystem(extra)),
      (e: unknown) => e instanceof ConfigError && e.path === path,
    );
  });
}

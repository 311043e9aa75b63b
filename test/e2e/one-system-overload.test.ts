// E2E (issue 7), one MC system: rate limits per credential (429 + Retry-After, other clients served meanwhile,
// served again after waiting) and overload shedding (503 + Retry-After over maxInFlight, nothing hangs, recovery),
// against the real server process. Limits are per server instance: with MUSTER_E2E_BACKEND=postgres the balancer
// spreads a client over two instances, so a client gets up to twice the burst; the tests allow for that.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Muster, freePort, secret } from '../support/harness.ts';

const D = 'police.example';
const u = (name: string): string => `sip:${name}@${D}`;
const g = (name: string): string => `sip:${name}@${D}`;
const enc = encodeURIComponent;

interface Answer {
  status: number;
  retryAfter: string | null;
  body: { error?: { code: string; message: string } };
  ms: number;
}

/** One request, never longer than `timeoutMs` (a hang fails the test instead of stalling it). */
async function send(url: string, token: string | undefined, init: { method?: string; body?: unknown; timeoutMs?: number } = {}): Promise<Answer> {
  const t0 = Date.now();
  const res = await fetch(url, {
    method: init.method ?? 'GET',
    headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...(init.body !== undefined ? { 'content-type': 'application/json' } : {}) },
    body: init.body === undefined ? undefined : JSON.stringify(init.body),
    signal: AbortSignal.timeout(init.timeoutMs ?? 15_000),
  });
  const text = await res.text();
  return { status: res.status, retryAfter: res.headers.get('retry-after'), body: text ? (JSON.parse(text) as Answer['body']) : {}, ms: Date.now() - t0 };
}

const count = (answers: Answer[], status: number): number => answers.filter((a) => a.status === status).length;

void describe('rate limit per credential', () => {
  const BURST = 5;
  const PER_SECOND = 2;
  let m: Muster;
  let base: string;

  before(async () => {
    m = await Muster.start({
      rateLimit: { perSecond: PER_SECOND, burst: BURST },
      systems: [
        {
          name: 'police',
          domain: D,
          http: { host: '127.0.0.1', port: await freePort() },
          secret: secret(),
          users: ['greedy', 'polite', 'streamer'].map((n) => ({ id: u(n), services: ['mcptt'], n2: 5, groups: [g('patrol')] })),
          groups: [{ id: g('patrol'), services: ['mcptt'], members: [u('greedy'), u('polite'), u('streamer')] }],
        },
      ],
    });
    base = m.url('police');
  });
  after(async () => {
    await m?.stop();
  });

  const own = (name: string): string => `${base}/mc/v1/users/${enc(u(name))}/affiliations`;

  void test('a client over its rate gets 429 with Retry-After while another client is served; after waiting it is served again', async () => {
    const greedy = await m.token(u('greedy'));
    const polite = await m.token(u('polite'));
    const FLOOD = 40;
    // greedy floods; polite, at the same moment, sends no more than its burst (per instance).
    const [flood, served] = await Promise.all([
      Promise.all(Array.from({ length: FLOOD }, () => send(own('greedy'), greedy))),
      Promise.all(Array.from({ length: BURST - 1 }, () => send(own('polite'), polite))),
    ]);
    assert.deepEqual(served.map((a) => a.status), Array(BURST - 1).fill(200), 'the polite client is served in full');
    const limited = flood.filter((a) => a.status === 429);
    assert.equal(count(flood, 200) + limited.length, FLOOD, `only 200 or 429: ${flood.map((a) => a.status).join(' ')}`);
    // Per instance: the burst plus what refilled while the flood ran.
    assert.ok(count(flood, 200) <= m.instances * (BURST + 2), `${count(flood, 200)} of ${FLOOD} served`);
    assert.ok(limited.length >= FLOOD - m.instances * (BURST + 2));
    for (const a of limited) {
      assert.equal(a.body.error?.code, 'rate-limited', JSON.stringify(a.body));
      assert.equal(typeof a.body.error?.message, 'string');
      assert.match(a.retryAfter ?? '', /^[1-9][0-9]*$/, 'Retry-After in whole seconds');
    }
    const wait = Math.max(...limited.map((a) => Number(a.retryAfter)));
    assert.ok(wait <= Math.ceil(1 / PER_SECOND), `Retry-After ${wait} s: one token comes after 1/perSecond`);
    await new Promise((r) => setTimeout(r, wait * 1000 + 100));
    const again = await send(own('greedy'), greedy);
    assert.equal(again.status, 200, JSON.stringify(again.body));
  });

  void test('the limit is per credential subject: a second token of the same user shares its bucket', async () => {
    await new Promise((r) => setTimeout(r, (BURST / PER_SECOND) * 1000)); // full buckets
    const first = await m.token(u('greedy'));
    const second = await m.token(u('greedy'), { ttlSeconds: 600 });
    const answers = await Promise.all(Array.from({ length: 4 * BURST * m.instances }, (_, i) => send(own('greedy'), i % 2 === 0 ? first : second)));
    assert.ok(count(answers, 429) > 0, 'a new token is no way around the limit');
    assert.ok(count(answers, 200) <= m.instances * (BURST + 2));
  });

  void test('an event stream is one request when opened; a client over its rate cannot open one', async () => {
    const token = await m.token(u('streamer'));
    const ctrl = new AbortController();
    const stream = await fetch(`${base}/mc/v1/events`, { headers: { authorization: `Bearer ${token}` }, signal: ctrl.signal });
    try {
      assert.equal(stream.status, 200);
      // Held open, it takes nothing more: the rest of the burst is still there a while later.
      await new Promise((r) => setTimeout(r, 300));
      const rest = await Promise.all(Array.from({ length: BURST - 1 }, () => send(own('streamer'), token)));
      assert.deepEqual(rest.map((a) => a.status), Array(BURST - 1).fill(200));
    } finally {
      ctrl.abort();
    }
    await Promise.all(Array.from({ length: 4 * BURST * m.instances }, () => send(own('streamer'), token)));
    const refused = await send(`${base}/mc/v1/events`, token, { timeoutMs: 5000 });
    assert.equal(refused.status, 429);
    assert.equal(refused.body.error?.code, 'rate-limited');
    assert.ok(refused.retryAfter);
  });

  void test('requests without a valid credential are not counted against anyone: they get 401', async () => {
    const answers = await Promise.all(Array.from({ length: 20 }, () => send(own('polite'), 'not-a-valid-credential-at-all')));
    assert.deepEqual([...new Set(answers.map((a) => a.status))], [401]);
  });
});

void describe('overload shedding', () => {
  const MAX_IN_FLIGHT = 4;
  const USERS = Array.from({ length: 10 }, (_, i) => u(`load${i}`));
  let m: Muster;
  let base: string;
  let tokens: string[];

  before(async () => {
    m = await Muster.start({
      maxInFlight: MAX_IN_FLIGHT,
      // Rate limits far away: this part is about the in-flight bound only.
      rateLimit: { perSecond: 100_000, burst: 100_000 },
      systems: [
        {
          name: 'police',
          domain: D,
          http: { host: '127.0.0.1', port: await freePort() },
          secret: secret(),
          users: USERS.map((id) => ({ id, services: ['mcptt'], n2: 5, groups: [g('a'), g('b')] })),
          groups: [g('a'), g('b')].map((id) => ({ id, services: ['mcptt'], members: USERS })),
        },
      ],
    });
    base = m.url('police');
    tokens = await Promise.all(USERS.map((id) => m.token(id)));
  });
  after(async () => {
    await m?.stop();
  });

  const affiliate = (i: number, timeoutMs?: number): Promise<Answer> =>
    send(`${base}/mc/v1/${i % 2 === 0 ? 'affiliations' : 'deaffiliations'}`, tokens[i % USERS.length], {
      method: 'POST',
      body: { mcServiceId: USERS[i % USERS.length], service: 'mcptt', groupIds: [i % 3 === 0 ? g('a') : g('b')] },
      ...(timeoutMs ? { timeoutMs } : {}),
    });

  void test('100 concurrent requests over maxInFlight 4: some get 503 + Retry-After at once, none hangs, /healthz is answered', async () => {
    const burst = Array.from({ length: 100 }, (_, i) => affiliate(i));
    const health = send(`${base}/healthz`, undefined);
    const answers = await Promise.all(burst);
    assert.equal((await health).status, 200, '/healthz is exempt');
    assert.equal(count(answers, 200) + count(answers, 503), 100, `only 200 or 503: ${answers.map((a) => a.status).join(' ')}`);
    const shed = answers.filter((a) => a.status === 503);
    assert.ok(shed.length > 0, 'some requests were shed');
    assert.ok(count(answers, 200) > 0, 'some requests were served');
    for (const a of shed) {
      assert.equal(a.retryAfter, '1');
      assert.equal(a.body.error?.code, 'unavailable', JSON.stringify(a.body));
      assert.match(a.body.error?.message ?? '', /overloaded/);
    }
  });

  void test('requests abandoned by their clients free their slots; afterwards the server answers normally', async () => {
    // Clients that give up after 1 ms: their requests end on the server side however far they got.
    await Promise.allSettled(Array.from({ length: 50 }, (_, i) => affiliate(i, 1)));
    await new Promise((r) => setTimeout(r, 300));
    for (let i = 0; i < 3 * MAX_IN_FLIGHT; i++) {
      const a = await affiliate(i);
      assert.equal(a.status, 200, JSON.stringify(a.body));
    }
    // MAX_IN_FLIGHT at once fit exactly.
    const wave = await Promise.all(Array.from({ length: MAX_IN_FLIGHT }, (_, i) => affiliate(i)));
    assert.deepEqual(wave.map((a) => a.status), Array(MAX_IN_FLIGHT).fill(200));
    assert.equal((await send(`${base}/healthz`, undefined)).status, 200);
  });
});

// The fabric's timers run on the injected clock (src/ports/clock.ts, STYLE.md habit 10): the bound on confirmations,
// the back-off of the asks to read the store again (1 s doubling to 15 s, at a peer behind and at the instance
// itself), the heartbeat and the 3.5 s after which a silent peer is gone. The test moves time; nothing waits for it.
// Real NATS: a server of the test's own on loopback. And a fabric closed while NATS is unreachable is closed.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { connect, type NatsConnection } from 'nats';
import pino from 'pino';
import { NatsFabric } from '../../src/adapters/nats-fabric.ts';
import { freePort, stopProcess } from '../support/harness.ts';
import { TestClock } from '../support/test-clock.ts';
import type { Clock } from '../../src/ports/clock.ts';
import { until } from '../support/until.ts';

const silent = pino({ level: 'silent' });



async function natsOnLoopback(): Promise<{ url: string; stop: () => Promise<void> }> {
  const port = await freePort();
  const nats = spawn('/usr/sbin/nats-server', ['-a', '127.0.0.1', '-p', String(port)], { stdio: 'ignore' });
  return { url: `nats://127.0.0.1:${port}`, stop: () => stopProcess(nats) };
}

async function instance(url: string, name: string, store: string, clock?: Clock): Promise<NatsFabric> {
  for (let i = 0; ; i++) {
    try {
      const f = await NatsFabric.connect(url, 'police.example', store, silent, { system: name, ...(clock ? { clock } : {}) });
      f.nameInstance(name);
      return f;
    } catch (e) {
      if (i >= 100) throw e;
      await new Promise((r) => setTimeout(r, 50)); // the server is still starting
    }
  }
}

void test("an instance's own catch-up: read the store again after 1, 2, 4, 8, 15, 15 s of its clock", { timeout: 30_000 }, async () => {
  const nats = await natsOnLoopback();
  const clock = new TestClock(1_900_000_000_000);
  let a: NatsFabric | undefined;
  let b: NatsFabric | undefined;
  try {
    a = await instance(nats.url, 'host-a/127.0.0.1:8080', 'postgres://x/clock-own');
    b = await instance(nats.url, 'host-b/127.0.0.1:8081', 'postgres://x/clock-own', clock);
    let reads = 0;
    b.on('policy', () => {
      throw new Error('store read failed');
    });
    b.onCatchUp(async () => {
      reads++;
      throw new Error('store down');
    });
    await Promise.all([a.ready(), b.ready()]);
    const aFabric = a;
    await until(() => aFabric.livePeers() === 1, 'A knows B');
    await a.publishConfirmed('policy', 'sip:north@police.example', 300);
    await until(() => reads === 1, 'B read the store after its handler failed');
    for (const wait of [1000, 2000, 4000, 8000, 15_000, 15_000]) {
      await until(() => clock.pending().includes(wait), `the next read after ${wait} ms (pending: ${clock.pending().join(', ')})`);
      const before = reads;
      clock.advance(wait - 1);
      await new Promise((r) => setImmediate(r));
      assert.equal(reads, before, 'not before its time');
      clock.advance(1);
      await until(() => reads === before + 1, `B read the store again after ${wait} ms`);
    }
  } finally {
    await a?.close();
    await b?.close();
    await nats.stop();
  }
});

void test("the announcer's clock: the bound on confirmations, the asks to a peer behind (1, 2, 4 s) and a silent peer gone after 3.5 s", { timeout: 30_000 }, async () => {
  const nats = await natsOnLoopback();
  const clock = new TestClock(1_900_000_000_000); // both instances': their heartbeats keep up with each other as time moves
  let a: NatsFabric | undefined;
  let b: NatsFabric | undefined;
  let observer: NatsConnection | undefined;
  try {
    a = await instance(nats.url, 'host-a/127.0.0.1:9080', 'postgres://x/clock-asks', clock);
    b = await instance(nats.url, 'host-b/127.0.0.1:9081', 'postgres://x/clock-asks', clock);
    // B never applies the change and has no store to read (no catch-up listener): it answers every ask "behind".
    let handled = 0;
    b.on('profiles', () => {
      handled++;
      return new Promise<void>(() => undefined);
    });
    let asked = 0;
    observer = await connect({ servers: nats.url });
    observer.subscribe('muster.*.*.catch-up.*', { callback: () => void asked++ });
    await observer.flush();
    await Promise.all([a.ready(), b.ready()]);
    const [aFabric, bFabric] = [a, b];
    await until(() => aFabric.livePeers() === 1, 'A knows B');
    /** Time moves a second at a time, each heartbeat heard before the next second. */
    const pass = async (ms: number): Promise<void> => {
      for (let left = ms; left > 0; left -= 1000) {
        clock.advance(Math.min(1000, left));
        await bFabric.ready(); // flushed: B's heartbeat is at the server
        await aFabric.ready(); // flushed: what the server sent A before is handled
      }
    };

    const started = Date.now();
    const answered = a.publishConfirmed('profiles', { id: 'sip:alice@police.example', profile: null });
    await until(() => handled === 1, 'B got the change');
    await pass(1000); // the bound on confirmations, on A's clock
    assert.deepEqual(await answered, { notConfirmed: ['host-b/127.0.0.1:9081'] });
    assert.ok(Date.now() - started < 900, "the bound is the clock's, not a real second");

    for (const wait of [1000, 2000, 4000]) {
      const before = asked;
      await until(() => clock.pending().includes(wait), `B asked after ${wait} ms (pending: ${clock.pending().join(', ')})`);
      await pass(wait - 1000);
      assert.equal(asked, before, 'not before its time');
      await pass(1000);
      await until(() => asked === before + 1, `B asked after ${wait} ms`);
    }
    assert.deepEqual(aFabric.instancesBehind(), ['host-b/127.0.0.1:9081']);

    b = undefined;
    await bFabric.close();
    clock.advance(4000); // B silent for 3.5 s and more of A's clock: gone, no longer behind
    assert.equal(aFabric.livePeers(), 0);
    assert.deepEqual(aFabric.instancesBehind(), []);
  } finally {
    await observer?.close();
    await a?.close();
    await b?.close();
    await nats.stop();
  }
});

void test('a fabric closed while NATS is unreachable is closed (no reconnecting left behind)', { timeout: 30_000 }, async () => {
  const nats = await natsOnLoopback();
  let a: NatsFabric | undefined;
  try {
    a = await instance(nats.url, 'host-a/127.0.0.1:7080', 'postgres://x/clock-close');
    await a.ready();
    await nats.stop();
    await a.close();
    assert.equal(await a.health(), 'down', 'the connection is closed');
  } finally {
    await a?.close();
    await nats.stop();
  }
});

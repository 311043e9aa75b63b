// A change an instance announces and a live peer does not confirm within the bound (publishConfirmed): the announcer
// names that peer to its caller, lists it as behind (metric too), and asks it to read the store again, with back-off,
// until it confirms or leaves the live instances. A peer that knows its own caches miss a change says so (health
// 'behind'). Real NATS: a server of the test's own on loopback.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import pino from 'pino';
import { NatsFabric } from '../../src/adapters/nats-fabric.ts';
import { metricsRegistry } from '../../src/adapters/metrics.ts';
import { freePort, stopProcess } from '../support/harness.ts';
import { until } from '../support/until.ts';

const silent = pino({ level: 'silent' });


async function natsOnLoopback(): Promise<{ url: string; stop: () => Promise<void> }> {
  const port = await freePort();
  const nats = spawn('/usr/sbin/nats-server', ['-a', '127.0.0.1', '-p', String(port)], { stdio: 'ignore' });
  return { url: `nats://127.0.0.1:${port}`, stop: () => stopProcess(nats) };
}

/** An instance of police.example named `name` (as its HTTP address would name it), once the server is up. */
async function instance(url: string, name: string, store: string): Promise<NatsFabric> {
  for (let i = 0; ; i++) {
    try {
      const f = await NatsFabric.connect(url, 'police.example', store, silent, { system: name });
      f.nameInstance(name);
      return f;
    } catch (e) {
      if (i >= 100) throw e;
      await new Promise((r) => setTimeout(r, 50)); // the server is still starting
    }
  }
}

/** A gauge's value for one system label (undefined when the metric or the label is not there). */
async function gauge(metric: string, system: string): Promise<number | undefined> {
  const m = metricsRegistry.getSingleMetric(metric);
  return (await m?.get())?.values.find((v) => v.labels['system'] === system)?.value;
}

void test('a peer whose handler and store read failed: named to the caller, listed as behind, and asked again until it confirms', { timeout: 60_000 }, async () => {
  const nats = await natsOnLoopback();
  let a: NatsFabric | undefined;
  let b: NatsFabric | undefined;
  try {
    a = await instance(nats.url, 'host-a/127.0.0.1:8080', 'postgres://x/failed');
    b = await instance(nats.url, 'host-b/127.0.0.1:8081', 'postgres://x/failed');
    let storeUp = false;
    let storeReads = 0;
    b.on('policy', () => {
      if (!storeUp) throw new Error('store read failed');
    });
    b.onCatchUp(async () => {
      storeReads++;
      if (!storeUp) throw new Error('store down');
    });
    await Promise.all([a.ready(), b.ready()]);
    const aFabric = a;
    await until(() => aFabric.livePeers() === 1, 'A knows B');

    const { notConfirmed } = await a.publishConfirmed('policy', 'sip:north@police.example', 1000);
    assert.deepEqual(notConfirmed, ['host-b/127.0.0.1:8081'], 'the caller learns which instance the change is not in force at');
    assert.deepEqual(a.instancesBehind(), ['host-b/127.0.0.1:8081']);
    assert.equal(await b.health(), 'behind', 'B knows its caches miss a change');
    assert.equal(await a.health(), 'up', 'A itself is in force');
    assert.equal(await gauge('muster_fabric_instances_behind', 'host-a/127.0.0.1:8080'), 1);
    assert.equal(await gauge('muster_fabric_caches_behind', 'host-b/127.0.0.1:8081'), 1);

    storeUp = true; // B's store answers again: the next catch-up (asked by A, or B's own retry) puts the change in force
    await until(() => aFabric.instancesBehind().length === 0, 'B confirmed a catch-up to A');
    assert.equal(await b.health(), 'up');
    assert.ok(storeReads >= 2, `B read the store again (${storeReads} reads)`);
    assert.equal(await gauge('muster_fabric_instances_behind', 'host-a/127.0.0.1:8080'), 0);
    assert.equal(await gauge('muster_fabric_caches_behind', 'host-b/127.0.0.1:8081'), 0);

    // In force everywhere: nothing not confirmed, nothing behind.
    assert.deepEqual(await a.publishConfirmed('policy', 'sip:south@police.example', 1000), { notConfirmed: [] });
    assert.deepEqual(a.instancesBehind(), []);
  } finally {
    await a?.close();
    await b?.close();
    await nats.stop();
  }
});

void test('a slow peer, which does not know it is behind: the announcer asks it to read the store again, and it confirms', { timeout: 60_000 }, async () => {
  const nats = await natsOnLoopback();
  let a: NatsFabric | undefined;
  let b: NatsFabric | undefined;
  try {
    a = await instance(nats.url, 'host-a/127.0.0.1:9080', 'postgres://x/slow');
    b = await instance(nats.url, 'host-b/127.0.0.1:9081', 'postgres://x/slow');
    let catchUps = 0;
    b.on('profiles', () => new Promise((r) => setTimeout(r, 1500))); // applied, but after the bound
    b.onCatchUp(async () => void catchUps++);
    await Promise.all([a.ready(), b.ready()]);
    const aFabric = a;
    await until(() => aFabric.livePeers() === 1, 'A knows B');

    assert.deepEqual((await a.publishConfirmed('profiles', { id: 'sip:alice@police.example', profile: null }, 500)).notConfirmed, ['host-b/127.0.0.1:9081']);
    assert.deepEqual(a.instancesBehind(), ['host-b/127.0.0.1:9081']);
    assert.equal(await b.health(), 'up', 'B has no failure of its own to report');
    await until(() => aFabric.instancesBehind().length === 0, 'A asked B to catch up and B confirmed');
    assert.equal(catchUps, 1, 'B read the store again once, on A\'s ask');
  } finally {
    await a?.close();
    await b?.close();
    await nats.stop();
  }
});

void test('a peer that leaves the live instances while behind is no longer listed (it reads the store when it is back)', { timeout: 60_000 }, async () => {
  const nats = await natsOnLoopback();
  let a: NatsFabric | undefined;
  let b: NatsFabric | undefined;
  try {
    a = await instance(nats.url, 'host-a/127.0.0.1:7080', 'postgres://x/leaves');
    b = await instance(nats.url, 'host-b/127.0.0.1:7081', 'postgres://x/leaves');
    b.on('policy', () => {
      throw new Error('store read failed');
    });
    b.onCatchUp(() => Promise.reject(new Error('store down')));
    await Promise.all([a.ready(), b.ready()]);
    const aFabric = a;
    await until(() => aFabric.livePeers() === 1, 'A knows B');
    assert.deepEqual((await a.publishConfirmed('policy', 'sip:north@police.example', 500)).notConfirmed, ['host-b/127.0.0.1:7081']);
    await b.close();
    b = undefined;
    await until(() => aFabric.instancesBehind().length === 0 && aFabric.livePeers() === 0, 'B left the live instances', 8000);
    assert.equal(await gauge('muster_fabric_instances_behind', 'host-a/127.0.0.1:7080'), 0);
  } finally {
    await a?.close();
    await b?.close();
    await nats.stop();
  }
});

// The fabric between instances (NATS) carries news, not facts: what is published while an instance's connection is
// down never reaches it. On a NATS server of the test's own (loopback, a free port) with instance B behind a TCP
// relay the test cuts: B misses what A publishes meanwhile, and once B is back its onCatchUp fires (the system
// then reads its profiles and group policies from the store again, system.ts), after which it hears A again.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { tcpRelayTo } from '../support/tcp-relay.ts';
import pino from 'pino';
import { NatsFabric } from '../../src/adapters/nats-fabric.ts';
import { freePort, stopProcess } from '../support/harness.ts';
import { until } from '../support/until.ts';


void test('an instance cut off from NATS misses what is published meanwhile, and is told when it is back', { timeout: 60_000 }, async () => {
  const natsPort = await freePort();
  const nats = spawn('/usr/sbin/nats-server', ['-a', '127.0.0.1', '-p', String(natsPort)], { stdio: 'ignore' });
  // The relay in front of B: while cut, it drops B's connection and refuses new ones.
  const relay = await tcpRelayTo(natsPort);
  const log = pino({ level: 'silent' });
  let a: NatsFabric | undefined;
  let b: NatsFabric | undefined;
  try {
    for (let i = 0; i < 100; i++) {
      try {
        a = await NatsFabric.connect(`nats://127.0.0.1:${natsPort}`, 'police.example', 'sqlite:shared', log);
        break;
      } catch {
        await new Promise((r) => setTimeout(r, 50)); // the server is still starting
      }
    }
    assert.ok(a, 'NATS started');
    b = await NatsFabric.connect(`nats://127.0.0.1:${relay.port}`, 'police.example', 'sqlite:shared', log);
    const heard: unknown[] = [];
    let reconnects = 0;
    b.on('profiles', (d) => void heard.push(d));
    b.onCatchUp(async () => void reconnects++);
    await Promise.all([a.ready(), b.ready()]);

    a.publish('profiles', { n: 1 });
    await until(() => heard.length === 1, 'B hears the first change');

    relay.cut(true);
    await new Promise((r) => setTimeout(r, 300));
    a.publish('profiles', { n: 2 }); // while B is cut off
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(reconnects, 0);
    relay.cut(false);
    await until(() => reconnects === 1, 'B told it is back');
    await new Promise((r) => setTimeout(r, 300));
    assert.deepEqual(heard, [{ n: 1 }], 'the change published while B was cut off never reaches it: hence the reload');

    await b.ready(); // its subscriptions are in place again
    a.publish('profiles', { n: 3 });
    await until(() => heard.length === 2, 'B hears changes again');
    assert.deepEqual(heard, [{ n: 1 }, { n: 3 }]);
  } finally {
    await a?.close();
    await b?.close();
    relay.close();
    await stopProcess(nats);
  }
});

/** A NATS server of the test's own on loopback, and a connect that waits for it to start (bounded). */
async function natsOnLoopback(): Promise<{ url: string; stop: () => Promise<void> }> {
  const port = await freePort();
  const nats = spawn('/usr/sbin/nats-server', ['-a', '127.0.0.1', '-p', String(port)], { stdio: 'ignore' });
  return { url: `nats://127.0.0.1:${port}`, stop: () => stopProcess(nats) };
}

async function connectWhenUp(url: string, log: pino.Logger): Promise<NatsFabric> {
  for (let i = 0; ; i++) {
    try {
      return await NatsFabric.connect(url, 'police.example', 'sqlite:shared', log);
    } catch (e) {
      if (i >= 100) throw e;
      await new Promise((r) => setTimeout(r, 50)); // the server is still starting
    }
  }
}

void test('a handler that fails on a message: the instance reads the store again and confirms only once that worked', { timeout: 60_000 }, async () => {
  const nats = await natsOnLoopback();
  // A's log, to see whether B's confirmation came (publishConfirmed warns of the instances that did not confirm).
  const aLines: string[] = [];
  const aLog = pino({ level: 'warn' }, { write: (line: string) => void aLines.push(line) });
  let a: NatsFabric | undefined;
  let b: NatsFabric | undefined;
  try {
    a = await connectWhenUp(nats.url, aLog);
    b = await connectWhenUp(nats.url, pino({ level: 'silent' }));
    let failures = 1;
    const applied: unknown[] = [];
    b.on('policy', (id) => {
      if (failures-- > 0) throw new Error('store read failed');
      applied.push(id);
    });
    let storeReads = 0;
    let storeUp = true;
    b.onCatchUp(async () => {
      storeReads++;
      if (!storeUp) throw new Error('store down');
    });
    await Promise.all([a.ready(), b.ready()]);
    const aFabric = a;
    await until(() => aFabric.livePeers() === 1, 'A knows B, so it waits for B to confirm');

    // The handler fails: B reads its caches from the store (the news is there), then confirms.
    await a.publishConfirmed('policy', 'sip:north@police.example', 3000);
    assert.equal(storeReads, 1, 'B read the store again after its handler failed');
    assert.deepEqual(aLines.filter((l) => l.includes('not every instance confirmed')), [], 'B confirmed once the store was read');

    // Handled: confirmed without reading the store.
    await a.publishConfirmed('policy', 'sip:south@police.example', 3000);
    assert.deepEqual(applied, ['sip:south@police.example']);
    assert.equal(storeReads, 1);

    // The handler fails and so does the store read: B does not confirm a change that is not in force there.
    failures = 1;
    storeUp = false;
    await a.publishConfirmed('policy', 'sip:east@police.example', 500);
    assert.equal(storeReads, 2);
    assert.equal(aLines.filter((l) => l.includes('not every instance confirmed')).length, 1, 'A heard no confirmation from B');
  } finally {
    await a?.close();
    await b?.close();
    await nats.stop();
  }
});

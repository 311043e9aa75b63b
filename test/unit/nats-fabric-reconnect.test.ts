// The fabric between instances (NATS) carries news, not facts: what is published while an instance's connection is
// down never reaches it. On a NATS server of the test's own (loopback, a free port) with instance B behind a TCP
// relay the test cuts: B misses what A publishes meanwhile, and once B is back its onReconnect fires (the system
// then reads its profiles and group policies from the store again, system.ts), after which it hears A again.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createServer, connect as tcpConnect, type Socket } from 'node:net';
import pino from 'pino';
import { NatsFabric } from '../../src/adapters/nats-fabric.ts';
import { freePort, stopProcess } from '../support/harness.ts';

/** Waits (bounded) until `ok()` holds. */
async function until(ok: () => boolean, what: string, ms = 10_000): Promise<void> {
  for (const end = Date.now() + ms; !ok(); await new Promise((r) => setTimeout(r, 20))) if (Date.now() > end) throw new Error(`not within ${ms} ms: ${what}`);
}

void test('an instance cut off from NATS misses what is published meanwhile, and is told when it is back', { timeout: 60_000 }, async () => {
  const natsPort = await freePort();
  const nats = spawn('/usr/sbin/nats-server', ['-a', '127.0.0.1', '-p', String(natsPort)], { stdio: 'ignore' });
  // The relay in front of B: while cut, it drops B's connection and refuses new ones.
  let cut = false;
  const links = new Set<Socket>();
  const relay = createServer((client) => {
    if (cut) return client.destroy();
    const upstream = tcpConnect(natsPort, '127.0.0.1');
    links.add(client);
    client.pipe(upstream).pipe(client);
    const drop = (): void => {
      links.delete(client);
      client.destroy();
      upstream.destroy();
    };
    client.on('error', drop).on('close', drop);
    upstream.on('error', drop).on('close', drop);
  });
  const relayPort = await freePort();
  await new Promise<void>((r) => relay.listen(relayPort, '127.0.0.1', r));
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
    b = await NatsFabric.connect(`nats://127.0.0.1:${relayPort}`, 'police.example', 'sqlite:shared', log);
    const heard: unknown[] = [];
    let reconnects = 0;
    b.on('profiles', (d) => void heard.push(d));
    b.onReconnect(() => reconnects++);
    await Promise.all([a.ready(), b.ready()]);

    a.publish('profiles', { n: 1 });
    await until(() => heard.length === 1, 'B hears the first change');

    cut = true;
    links.forEach((s) => s.destroy());
    await new Promise((r) => setTimeout(r, 300));
    a.publish('profiles', { n: 2 }); // while B is cut off
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(reconnects, 0);
    cut = false;
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
    links.forEach((s) => s.destroy());
    await stopProcess(nats);
  }
});

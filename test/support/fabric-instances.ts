// Two real instances (McSystem) of the police system on a fresh PostgreSQL database and a NATS server of the test's
// own; instance A reaches NATS through a TCP relay the test can cut, B stays connected. Everything is gone again
// whatever the test does.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { resolveConfig } from '../../src/config/config.ts';
import { McSystem } from '../../src/system.ts';
import { issueToken } from '../../src/faces/http/credentials.ts';
import { freePort, stopProcess } from './harness.ts';
import { createTestDatabase, dropTestDatabases } from './postgres.ts';
import { tcpRelayTo, type TcpRelay } from './tcp-relay.ts';
import { policeId, policeSystem } from './in-process.ts';
import { until } from './until.ts';

export const alice = policeId('alice');
export const patrol = policeId('patrol');
export const north = policeId('north');
const SECRET = 'police-secret';


/** A relay in front of NATS for instance A (test/support/tcp-relay.ts), by its NATS URL. */
async function relayTo(port: number): Promise<TcpRelay & { url: string }> {
  const relay = await tcpRelayTo(port);
  return { ...relay, url: `nats://127.0.0.1:${relay.port}` };
}

export interface Instances {
  a: McSystem;
  b: McSystem;
  aUrl: string;
  bUrl: string;
  bName: string;
  relay: Awaited<ReturnType<typeof relayTo>>;
  op: string;
}

/** A (through the relay) and B on one fresh database and one NATS server; everything gone again whatever `work` does. */
export async function twoInstances(work: (i: Instances) => Promise<void>): Promise<void> {
  const natsPort = await freePort();
  const nats = spawn('/usr/sbin/nats-server', ['-a', '127.0.0.1', '-p', String(natsPort)], { stdio: 'ignore' });
  const relay = await relayTo(natsPort);
  const dir = mkdtempSync(join(tmpdir(), 'muster-fabric-untold-'));
  const db = await createTestDatabase();
  const opened: McSystem[] = [];
  try {
    const system = policeSystem({
      store: db.url,
      secret: SECRET,
      users: [{ id: alice, services: ['mcptt'], n2: 3, groups: [patrol, north] }],
      groups: [patrol, north].map((id) => ({ id, services: ['mcptt'], members: [alice] })),
    });
    const open = async (nats: string): Promise<McSystem> => {
      const [config] = resolveConfig({ dataDir: dir, systems: [{ ...system, nats }] });
      for (let i = 0; ; i++) {
        try {
          const s = await McSystem.open(config!, { log: pino({ level: 'silent' }) });
          opened.push(s);
          return s;
        } catch (e) {
          if (i >= 100) throw e;
          await new Promise((r) => setTimeout(r, 50)); // the NATS server is still starting
        }
      }
    };
    const b = await open(`nats://127.0.0.1:${natsPort}`);
    const a = await open(relay.url);
    const [aUrl, bUrl] = [await a.listen(), await b.listen()];
    const bName = `${hostname()}/${bUrl.replace(/^https?:\/\//, '')}`;
    await until(async () => ((await a.health({ partners: false })).instances ?? []).includes(bName), 'A knows B by its HTTP address');
    const op = await issueToken({ secret: SECRET, domain: 'police.example', subject: 'operator', role: 'operator' });
    await work({ a, b, aUrl, bUrl, bName, relay, op });
  } finally {
    for (const s of opened.reverse()) await s.stop();
    await dropTestDatabases([db.name]);
    relay.close();
    await stopProcess(nats);
    rmSync(dir, { recursive: true, force: true });
  }
}

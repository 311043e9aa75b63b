// Benchmark 3 (issue 6): a system of 1,000,000 users, 100,000 groups and 4,000,000 affiliations: peak memory (RSS)
// of the server, start-up time to serving, and the latency of one affiliation at that size against 1,000 users.
//   node --import tsx bench/scale-size.ts [--users 1000000] [--requests 300] [--warmup 300]
// Each server first answers --warmup requests of other users, not timed: the timed ones then measure the size's cost,
// not the JIT compiling a cold server's code (a cold server spent 1.3-1.5 ms of CPU per request, a warm one ~0.2).
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openSqlite } from '../src/adapters/sqlite-store.ts';
import { Muster, freePort, secret } from '../test/support/harness.ts';
import { arg, percentile, writeResults } from './workload.ts';

const LARGE = arg('--users', 1_000_000);
const REQUESTS = arg('--requests', 300);
const WARMUP = arg('--warmup', 300);
const DOMAIN = 'size.example';
const user = (i: number): string => `sip:u${i}@${DOMAIN}`;
const group = (j: number): string => `sip:g${j}@${DOMAIN}`;

/** Writes a store of `users` users straight through SQLite: each user affiliated to 4 of its 6 subscribed groups. */
function buildStore(file: string, users: number): number {
  const groups = Math.max(10, Math.floor(users / 10));
  const db = openSqlite(file);
  const now = Date.now();
  const subscribed = (i: number): string[] => Array.from({ length: 6 }, (_, k) => group((i * 7 + k * 13) % groups));
  const putProfile = db.prepare('INSERT INTO user_profiles (id, profile) VALUES (?, ?)');
  const putAff = db.prepare("INSERT INTO affiliations (user_id, service, group_id, state, updated_at) VALUES (?, 'mcptt', ?, 'affiliated', ?)");
  const putGroup = db.prepare('INSERT INTO gms_groups (id, document, revision) VALUES (?, ?, 1)');
  const members = new Map<number, string[]>();
  const CHUNK = 50_000;
  for (let start = 0; start < users; start += CHUNK) {
    db.transaction(() => {
      for (let i = start; i < Math.min(users, start + CHUNK); i++) {
        const gs = subscribed(i);
        putProfile.run(user(i), JSON.stringify({ id: user(i), services: ['mcptt'], n2: 8, groups: gs, remoteChange: false }));
        for (const g of gs.slice(0, 4)) {
          putAff.run(user(i), g, now); // the co-located GMS lists its own server's members from these rows
        }
        for (const g of gs) {
          const j = Number(/g(\d+)@/.exec(g)![1]);
          const list = members.get(j);
          if (list) list.push(user(i));
          else members.set(j, [user(i)]);
        }
      }
    })();
  }
  db.transaction(() => {
    for (let j = 0; j < groups; j++) putGroup.run(group(j), JSON.stringify({ id: group(j), services: ['mcptt'], enabled: true, members: members.get(j) ?? [], deaffiliationForbidden: false, revision: 1 }));
  })();
  db.pragma('wal_checkpoint(TRUNCATE)');
  db.close();
  return groups;
}

function rssMiB(pid: number): number {
  const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Math.round(Number(m[1]) / 1024) : NaN;
}

async function measure(users: number): Promise<{ users: number; groups: number; buildS: number; startS: number; peakRssMiB: number; p50: number; p99: number }> {
  const dir = mkdtempSync(join(tmpdir(), 'muster-size-'));
  try {
    const file = join(dir, 'size.db');
    const t0 = performance.now();
    const groups = buildStore(file, users);
    const buildS = (performance.now() - t0) / 1000;
    const key = secret();
    const t1 = performance.now();
    const m = await Muster.start({ systems: [{ name: 'size', domain: DOMAIN, http: { port: await freePort() }, secret: key, store: `sqlite:${file}` }] }, dir, 'sqlite');
    const startS = (performance.now() - t1) / 1000;
    try {
      // One request at a time: a user joins its fifth group and leaves it again, each answer timed after the warm-up.
      const times: number[] = [];
      for (let r = -WARMUP; r < REQUESTS; r++) {
        const i = r >= 0 ? (r * 7919) % users : (-r * 7919 + 1) % users; // the warm-up's users are others
        const token = await m.token(user(i));
        const g = group((i * 7 + 4 * 13) % groups);
        for (const op of ['affiliations', 'deaffiliations']) {
          const t = performance.now();
          const res = await fetch(`${m.url()}/mc/v1/${op}`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` }, body: JSON.stringify({ mcServiceId: user(i), service: 'mcptt', groupIds: [g] }) });
          const body = (await res.json()) as { status?: { status: string }[] };
          if (r >= 0) times.push(performance.now() - t);
          if (res.status !== 200 || body.status?.[0]?.status === 'rejected') throw new Error(`unexpected answer ${res.status} ${JSON.stringify(body)}`);
        }
      }
      times.sort((a, b) => a - b);
      const q = (p: number): number => Math.round(percentile(times, p) * 100) / 100;
      return { users, groups, buildS: Math.round(buildS), startS: Math.round(startS * 10) / 10, peakRssMiB: rssMiB(m.pids[0]!), p50: q(0.5), p99: q(0.99) };
    } finally {
      await m.stop({ keepFiles: true });
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const COMMAND = `node --import tsx bench/scale-size.ts --users ${LARGE} --requests ${REQUESTS} --warmup ${WARMUP}`;
const rows = [await measure(1000), await measure(LARGE)];
console.log(`\nSize: one affiliation at a time (${REQUESTS} users each joining and leaving a group, after ${WARMUP} others not timed)`);
console.log('| users | groups | affiliations | start-up s | peak RSS MiB | p50 ms | p99 ms |\n|---|---|---|---|---|---|---|');
for (const r of rows) console.log(`| ${r.users} | ${r.groups} | ${r.users * 4} | ${r.startS} | ${r.peakRssMiB} | ${r.p50} | ${r.p99} |`);
console.log(`latency ratio (p50) large / small: ${(rows[1]!.p50 / rows[0]!.p50).toFixed(2)}\ncommand: ${COMMAND}`);
writeResults('scale-size', { command: COMMAND, rows });

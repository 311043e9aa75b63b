// What one affiliation change costs the embedded store (issue 6, README "What limits it now"): the main thread's busy
// time and the WAL frames per change, through the real SqliteStore, its group commit (64 changes in flight, each
// answered after its fdatasync) and the co-located GMS (which reads the affiliation rows, so telling it writes
// nothing more), for bench 1's workload of 10,000 users. Each row leaves out one part of the write, so the
// differences show what each part costs.
//   node --import tsx bench/store-write-cost.ts [--users 10000] [--rounds 3] [--in-flight 64] [--repeats 3]
// (each variant measured --repeats times, in turn with the others; the median is printed: about a minute in all)
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { openSqlite, SqliteStore } from '../src/adapters/sqlite-store.ts';
import { SqliteGmsStore } from '../src/adapters/sqlite-gms-store.ts';
import type { McUri } from '../src/domain/ids.ts';
import type { AffiliationWrite } from '../src/ports/store.ts';
import { arg, groupCount, groupsOf, median, user, writeResults } from './workload.ts';

const USERS = arg('--users', 10_000);
const ROUNDS = arg('--rounds', 3);
const IN_FLIGHT = arg('--in-flight', 64);
const REPEATS = arg('--repeats', 3);
const COMMAND = `node --import tsx bench/store-write-cost.ts --users ${USERS} --rounds ${ROUNDS} --in-flight ${IN_FLIGHT} --repeats ${REPEATS}`;

type Part = 'audit' | 'event' | 'all';
const VARIANTS: { what: string; without?: Part }[] = [
  { what: 'the whole write (rows, audit entry, event)' },
  { what: 'without the audit entry', without: 'audit' },
  { what: 'without the event', without: 'event' },
  { what: 'the affiliation rows alone', without: 'all' },
];

/** User i's round-r change: affiliate to 1-4 of its groups on even rounds, leave them again on odd ones. */
function writeOf(i: number, round: number, groups: number, without?: Part): AffiliationWrite<undefined> {
  const userId = user(i) as McUri;
  const gs = groupsOf(i, groups).slice(0, 1 + ((i + (round >> 1)) % 4)) as McUri[];
  const joining = round % 2 === 0;
  const status = joining ? ('affiliated' as const) : ('deaffiliated' as const);
  return {
    put: joining ? gs.map((groupId) => ({ groupId, state: 'affiliated' as const })) : [],
    remove: joining ? [] : gs,
    tellGms: gs.map((groupId) => ({ groupId, status })),
    events: without === 'event' || without === 'all' ? [] : [{ userId, type: 'affiliation-status', data: { service: 'mcptt', status: gs.map((groupId) => ({ groupId, status })) } }],
    audit:
      without === 'audit' || without === 'all'
        ? []
        : [{ at: Date.now(), subject: userId, role: 'user', onBehalfOf: userId, action: joining ? 'affiliation' : 'de-affiliation', service: 'mcptt', groups: gs, httpStatus: 200, errorCode: null, result: { status: gs.map((groupId) => ({ groupId, status })) } }],
    result: undefined,
  };
}

async function measure(without?: Part): Promise<{ microsPerChange: number; framesPerChange: number; changes: number }> {
  const dir = mkdtempSync(join(tmpdir(), 'muster-store-cost-'));
  const db = openSqlite(join(dir, 'muster.db'));
  const store = new SqliteStore(db);
  store.colocateGms('bench.example', new SqliteGmsStore(db));
  // As in the server, no checkpoint inside a commit (the server's run in a worker, sqlite-checkpointer.ts); here none
  // runs while measuring, so the WAL holds exactly the frames the changes wrote.
  db.pragma('wal_autocheckpoint = 0');
  const groups = groupCount(USERS);
  // Every user changes once per round, IN_FLIGHT at a time (the group commit batches them), in a scattered order.
  const run = async (rounds: number, from: number): Promise<number> => {
    let changes = 0;
    for (let r = from; r < from + rounds; r++) {
      for (let b = 0; b < USERS; b += IN_FLIGHT) {
        const batch = Array.from({ length: Math.min(IN_FLIGHT, USERS - b) }, (_, k) => ((b + k) * 7919) % USERS);
        await Promise.all(batch.map((i) => store.changeAffiliations(user(i) as McUri, 'mcptt', () => writeOf(i, r, groups, without))));
        changes += batch.length;
      }
    }
    return changes;
  };
  try {
    await run(2, 0); // warm-up: the JIT, and the tables at their working size
    db.pragma('wal_checkpoint(PASSIVE)'); // all frames copied: the next commit starts the WAL again
    const before = performance.eventLoopUtilization();
    const changes = await run(ROUNDS, 2);
    const busy = performance.eventLoopUtilization(before);
    const { log } = (db.pragma('wal_checkpoint(PASSIVE)') as { log: number }[])[0]!;
    return { microsPerChange: (busy.active * 1000) / changes, framesPerChange: log / changes, changes };
  } finally {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

const runs = VARIANTS.map(() => [] as Awaited<ReturnType<typeof measure>>[]);
for (let k = 0; k < REPEATS; k++) for (const [i, v] of VARIANTS.entries()) runs[i]!.push(await measure(v.without));
const rows = VARIANTS.map((v, i) => ({
  what: v.what,
  microsPerChange: median(runs[i]!.map((r) => r.microsPerChange)),
  microsPerChangeRuns: runs[i]!.map((r) => Math.round(r.microsPerChange * 10) / 10),
  framesPerChange: median(runs[i]!.map((r) => r.framesPerChange)),
}));
console.log(`\nStore write cost, ${USERS} users, ${IN_FLIGHT} changes in flight, ${ROUNDS} rounds measured, median of ${REPEATS} (main thread busy time, WAL frames of 4 KiB)`);
console.log('| write | µs per change (median) | each run | WAL frames per change |\n|---|---|---|---|');
for (const r of rows) console.log(`| ${r.what} | ${r.microsPerChange.toFixed(1)} | ${r.microsPerChangeRuns.join(' / ')} | ${r.framesPerChange.toFixed(2)} |`);
console.log(`command: ${COMMAND}`);
writeResults('store-write-cost', { command: COMMAND, users: USERS, inFlight: IN_FLIGHT, rows });

// Latency at steady rates below the ceiling (issue 6, "p99 at half that load"): benchmark 1's system and workload,
// a full-rate warm-up, then for each rate a paced open-loop load (bench/paced-load.ts: 3 s settle, then measured)
// with the server's CPU per request, which shows how much busier a request makes the server as batches shrink.
//   node --import tsx bench/paced-rates.ts [--rates 3500,4000] [--seconds 10] [--users 10000] [--warmup 5]
import { Muster, freePort } from '../test/support/harness.ts';
import { pacedLoad } from './paced-load.ts';
import { affiliationRequests, affiliationSequence, arg, benchConfig, cpuSecondsOf, load, table, tokensOf, writeResults } from './workload.ts';

const at = process.argv.indexOf('--rates');
const RATES = (at >= 0 ? process.argv[at + 1]! : '3500,4000').split(',').map(Number);
if (RATES.some((r) => !Number.isInteger(r) || r <= 0)) throw new Error('--rates: comma-separated positive integers (requests per second)');
const SECONDS = arg('--seconds', 10);
const USERS = arg('--users', 10_000);
const WARMUP = arg('--warmup', 5);
const SETTLE = 3;
const COMMAND = `node --import tsx bench/paced-rates.ts --rates ${RATES.join(',')} --seconds ${SECONDS} --users ${USERS} --warmup ${WARMUP}`;

const m = await Muster.start(benchConfig(USERS, await freePort()), undefined, 'sqlite');
try {
  const tokens = await tokensOf(m, USERS);
  if (WARMUP > 0) await load(m.url(), affiliationRequests(USERS, tokens), { seconds: WARMUP, connections: 64 });
  const rows = [];
  for (const rate of RATES) {
    const before = cpuSecondsOf(...m.pids);
    const r = await pacedLoad(m.url(), affiliationSequence(USERS, tokens), { rate, seconds: SECONDS, connections: 64, settleSeconds: SETTLE });
    // The settle seconds ran at the same rate: the CPU is over every request sent.
    const cpuMicrosPerRequest = ((cpuSecondsOf(...m.pids) - before) / (rate * (SECONDS + SETTLE))) * 1e6;
    rows.push({ what: `paced at ${rate} req/s${r.late > 0 ? ` (${r.late} never sent: the server fell behind)` : ''}`, ...r, cpuMicrosPerRequest });
  }
  console.log(table(`\nHTTP affiliation at steady rates, ${USERS} users, 64 connections, ${SECONDS} s each after ${SETTLE} s at the rate`, rows));
  console.log(`command: ${COMMAND}`);
  writeResults('paced-rates', { command: COMMAND, users: USERS, rows });
} finally {
  await m.stop();
}

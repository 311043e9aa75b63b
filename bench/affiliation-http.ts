// Benchmark 1 (issue 6): HTTP affiliation throughput and latency of the real server (durable SQLite, credentials
// verified on every request) for 10,000 users each affiliating to and de-affiliating from 1-4 groups, against a
// bare node:http server answering a JSON body of the same size in the same run, in a process of its own as Muster's
// server is (the machine's ceiling for Node).
//   node --import tsx bench/affiliation-http.ts [--seconds 10] [--connections 64] [--users 10000] [--warmup 5] [--runs 1]
// With --runs N the four measurements are repeated N times on the same server (warmed up once) and the medians
// printed after each run's table: the issue's targets are medians of several runs on a machine whose speed drifts.
import { Muster, freePort } from '../test/support/harness.ts';
import { pacedLoad } from './paced-load.ts';
import { affiliationRequests, affiliationSequence, arg, bareCeiling, benchConfig, groupCount, groupsOf, load, median, sampleAnswer, table, tokensOf, user, withBareServer, withServerCpu, writeResults } from './workload.ts';

const SECONDS = arg('--seconds', 10);
const CONNECTIONS = arg('--connections', 64);
const USERS = arg('--users', 10_000);
const WARMUP = arg('--warmup', 5);
const RUNS = arg('--runs', 1);
const COMMAND = `node --import tsx bench/affiliation-http.ts --seconds ${SECONDS} --connections ${CONNECTIONS} --users ${USERS} --warmup ${WARMUP}${RUNS > 1 ? ` --runs ${RUNS}` : ''}`;

const m = await Muster.start(benchConfig(USERS, await freePort()), undefined, 'sqlite');
try {
  const tokens = await tokensOf(m, USERS);
  const groups = groupCount(USERS);
  const sample = await sampleAnswer(m.url(), tokens[2]!, user(2), groupsOf(2, groups).slice(0, 3));
  const opts = { seconds: SECONDS, connections: CONNECTIONS };
  // Warm-up, not measured: the JIT, and each user's first request, whose credential is verified in full (later ones
  // hit the verified-credential cache, as a client's do for the life of its credential).
  if (WARMUP > 0) await load(m.url(), affiliationRequests(USERS, tokens), { ...opts, seconds: WARMUP });
  const runs: { rows: Parameters<typeof table>[1]; ratio: number; bare: number; muster: number; cpu: number; halfP99: number }[] = [];
  for (let run = 1; run <= RUNS; run++) {
    const bareFigures = await bareCeiling(sample, affiliationRequests(USERS, tokens), opts);
    const muster = await withServerCpu(m.pids, SECONDS, () => load(m.url(), affiliationRequests(USERS, tokens), opts));
    // Half the measured rate, evenly spaced (open loop): what a p99 "at half that load" means.
    const paced = { ...opts, rate: Math.max(1, Math.round(muster.requestsPerSecond / 2)), settleSeconds: 3 };
    const half = await pacedLoad(m.url(), affiliationSequence(USERS, tokens), paced);
    // The same paced load on the bare server: the latency the load generator and the machine add by themselves.
    const bareHalf = await withBareServer(sample, (url) => pacedLoad(url, affiliationSequence(USERS, tokens), paced));
    const rows = [
      { what: 'bare node:http, same body size', ...bareFigures },
      { what: 'muster affiliation (SQLite, WAL synced before each answer, JWT, audit)', ...muster },
      { what: 'muster at half that rate, evenly spaced (undici, open loop)', ...half },
      { what: 'bare node:http at that same rate, evenly spaced (the load generator\'s own floor)', ...bareHalf },
    ];
    const ratio = muster.requestsPerSecond / bareFigures.requestsPerSecond;
    const of = RUNS > 1 ? ` (run ${run} of ${RUNS})` : '';
    console.log(table(`\nHTTP affiliation, ${USERS} users, ${groups} groups, ${CONNECTIONS} connections, ${SECONDS} s each${of}`, rows));
    console.log(`ratio muster / bare: ${(ratio * 100).toFixed(1)} %`);
    runs.push({ rows, ratio, bare: bareFigures.requestsPerSecond, muster: muster.requestsPerSecond, cpu: muster.cpuMicrosPerRequest, halfP99: half.p99 });
  }
  const med = {
    ratio: median(runs.map((r) => r.ratio)),
    bare: median(runs.map((r) => r.bare)),
    muster: median(runs.map((r) => r.muster)),
    cpu: median(runs.map((r) => r.cpu)),
    halfP99: median(runs.map((r) => r.halfP99)),
  };
  if (RUNS > 1) {
    const each = (f: (r: (typeof runs)[number]) => number, digits = 0): string => runs.map((r) => f(r).toFixed(digits)).join(' / ');
    console.log(`\nmedians of ${RUNS} runs: bare ${Math.round(med.bare)} req/s (${each((r) => r.bare)}), muster ${Math.round(med.muster)} req/s (${each((r) => r.muster)}) at ${Math.round(med.cpu)} µs/request,`);
    console.log(`ratio ${(med.ratio * 100).toFixed(1)} % (${each((r) => r.ratio * 100, 1)}), half-load p99 ${med.halfP99} ms (${each((r) => r.halfP99, 1)})`);
  }
  console.log(`command: ${COMMAND}`);
  writeResults('affiliation-http', { command: COMMAND, users: USERS, groups, runs, medians: med, rows: runs.at(-1)!.rows, ratio: runs.at(-1)!.ratio });
} finally {
  await m.stop();
}

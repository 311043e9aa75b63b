// Benchmark 1 (issue 6): HTTP affiliation throughput and latency of the real server (durable SQLite, credentials
// verified on every request) for 10,000 users each affiliating to and de-affiliating from 1-4 groups, against a
// bare node:http server answering a JSON body of the same size in the same run, in a process of its own as Muster's
// server is (the machine's ceiling for Node).
//   node --import tsx bench/affiliation-http.ts [--seconds 10] [--connections 64] [--users 10000] [--warmup 5]
import { Muster, freePort } from '../test/support/harness.ts';
import { pacedLoad } from './paced-load.ts';
import { affiliationRequests, affiliationSequence, arg, bareCeiling, benchConfig, groupCount, groupsOf, load, sampleAnswer, table, tokensOf, user, withBareServer, withServerCpu, writeResults } from './workload.ts';

const SECONDS = arg('--seconds', 10);
const CONNECTIONS = arg('--connections', 64);
const USERS = arg('--users', 10_000);
const WARMUP = arg('--warmup', 5);
const COMMAND = `node --import tsx bench/affiliation-http.ts --seconds ${SECONDS} --connections ${CONNECTIONS} --users ${USERS} --warmup ${WARMUP}`;

const m = await Muster.start(benchConfig(USERS, await freePort()), undefined, 'sqlite');
try {
  const tokens = await tokensOf(m, USERS);
  const groups = groupCount(USERS);
  const sample = await sampleAnswer(m.url(), tokens[2]!, user(2), groupsOf(2, groups).slice(0, 3));
  const opts = { seconds: SECONDS, connections: CONNECTIONS };
  const bareFigures = await bareCeiling(sample, affiliationRequests(USERS, tokens), opts);
  // Warm-up, not measured: the JIT, and each user's first request, whose credential is verified in full (later ones
  // hit the verified-credential cache, as a client's do for the life of its credential).
  if (WARMUP > 0) await load(m.url(), affiliationRequests(USERS, tokens), { ...opts, seconds: WARMUP });
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
  console.log(table(`\nHTTP affiliation, ${USERS} users, ${groups} groups, ${CONNECTIONS} connections, ${SECONDS} s each`, rows));
  console.log(`ratio muster / bare: ${(ratio * 100).toFixed(1)} %\ncommand: ${COMMAND}`);
  writeResults('affiliation-http', { command: COMMAND, users: USERS, groups, rows, ratio });
} finally {
  await m.stop();
}

// Benchmark 1 (issue 6): HTTP affiliation throughput and latency of the real server (durable SQLite, credentials
// verified on every request) for 10,000 users each affiliating to and de-affiliating from 1-4 groups, against a
// bare node:http server answering a JSON body of the same size in the same run (the machine's ceiling for Node).
//   node --import tsx bench/affiliation-http.ts [--seconds 10] [--connections 64] [--users 10000]
import { createServer } from 'node:http';
import { writeFileSync, mkdirSync } from 'node:fs';
import { Muster, freePort } from '../test/support/harness.ts';
import { affiliationRequests, arg, benchConfig, groupsOf, load, table, user } from './workload.ts';

const SECONDS = arg('--seconds', 10);
const CONNECTIONS = arg('--connections', 64);
const USERS = arg('--users', 10_000);
const COMMAND = `node --import tsx bench/affiliation-http.ts --seconds ${SECONDS} --connections ${CONNECTIONS} --users ${USERS}`;

const m = await Muster.start(benchConfig(USERS, await freePort()), undefined, 'sqlite');
try {
  const tokens = await Promise.all(Array.from({ length: USERS }, (_, i) => m.token(user(i))));
  const groups = Math.max(4, Math.floor(USERS / 4));
  // A sample answer, so the bare server sends as many bytes as Muster does.
  const post = (op: string) =>
    fetch(`${m.url()}/mc/v1/${op}`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${tokens[2]}` }, body: JSON.stringify({ mcServiceId: user(2), service: 'mcptt', groupIds: groupsOf(2, groups).slice(0, 3) }) }).then((r) => r.text());
  const sample = await post('affiliations');
  await post('deaffiliations');

  const bare = createServer((req, res) => {
    req.resume();
    req.on('end', () => res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(sample) }).end(sample));
  });
  const barePort = await freePort();
  await new Promise<void>((r) => bare.listen(barePort, '127.0.0.1', r));
  const opts = { seconds: SECONDS, connections: CONNECTIONS };
  const bareFigures = await load(`http://127.0.0.1:${barePort}`, affiliationRequests(USERS, tokens), opts);
  bare.close();
  const muster = await load(m.url(), affiliationRequests(USERS, tokens), opts);
  const half = await load(m.url(), affiliationRequests(USERS, tokens), { ...opts, rate: Math.max(1, Math.round(muster.requestsPerSecond / 2)) });

  const rows = [
    { what: 'bare node:http, same body size', ...bareFigures },
    { what: 'muster affiliation (SQLite, synchronous=FULL, JWT)', ...muster },
    { what: 'muster at half that rate', ...half },
  ];
  const ratio = muster.requestsPerSecond / bareFigures.requestsPerSecond;
  console.log(table(`\nHTTP affiliation, ${USERS} users, ${groups} groups, ${CONNECTIONS} connections, ${SECONDS} s each`, rows));
  console.log(`ratio muster / bare: ${(ratio * 100).toFixed(1)} %\ncommand: ${COMMAND}`);
  mkdirSync(new URL('results', import.meta.url), { recursive: true });
  writeFileSync(new URL('results/affiliation-http.json', import.meta.url), JSON.stringify({ command: COMMAND, at: new Date().toISOString(), users: USERS, groups, rows, ratio }, null, 2));
} finally {
  await m.stop();
}

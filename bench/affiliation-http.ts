// Benchmark 1 (issue 6): HTTP affiliation throughput and latency of the real server (durable SQLite, credentials
// verified on every request) for 10,000 users each affiliating to and de-affiliating from 1-4 groups, against a
// bare node:http server answering a JSON body of the same size in the same run (the machine's ceiling for Node).
//   node --import tsx bench/affiliation-http.ts [--seconds 10] [--connections 64]
import autocannon from 'autocannon';
import { createServer } from 'node:http';
import { writeFileSync, mkdirSync } from 'node:fs';
import { Muster, freePort, secret } from '../test/support/harness.ts';

const args = new Map(process.argv.slice(2).map((a, i, all) => [a, all[i + 1]]));
const SECONDS = Number(args.get('--seconds') ?? 10);
const CONNECTIONS = Number(args.get('--connections') ?? 64);
const USERS = Number(args.get('--users') ?? 10_000);
const GROUPS = Math.max(4, Math.floor(USERS / 4));
const DOMAIN = 'bench.example';

const user = (i: number): string => `sip:u${i}@${DOMAIN}`;
const group = (j: number): string => `sip:g${j}@${DOMAIN}`;
/** User i subscribes to 4 groups; each request names 1-4 of them. */
const groupsOf = (i: number): string[] => [0, 1, 2, 3].map((k) => group((i * 4 + k) % GROUPS));

function config(port: number) {
  const members = new Map<number, string[]>();
  for (let i = 0; i < USERS; i++) for (let k = 0; k < 4; k++) {
    const j = (i * 4 + k) % GROUPS;
    members.set(j, [...(members.get(j) ?? []), user(i)]);
  }
  return {
    systems: [
      {
        name: 'bench',
        domain: DOMAIN,
        http: { host: '127.0.0.1', port },
        secret: secret(),
        users: Array.from({ length: USERS }, (_, i) => ({ id: user(i), services: ['mcptt'], n2: 4, groups: groupsOf(i) })),
        groups: Array.from({ length: GROUPS }, (_, j) => ({ id: group(j), services: ['mcptt'], members: members.get(j) ?? [] })),
      },
    ],
  };
}

interface Figures {
  requestsPerSecond: number;
  p50: number;
  p99: number;
  errors: number;
  non2xx: number;
}

async function load(url: string, requests: autocannon.Request[], opts: { rate?: number } = {}): Promise<Figures> {
  const r = await autocannon({ url, connections: CONNECTIONS, duration: SECONDS, requests, ...(opts.rate ? { overallRate: opts.rate } : {}) });
  return { requestsPerSecond: r.requests.average, p50: r.latency.p50, p99: r.latency.p99, errors: r.errors + r.timeouts, non2xx: r.non2xx };
}

async function main(): Promise<void> {
  const port = await freePort();
  const m = await Muster.start(config(port));
  try {
    const tokens = await Promise.all(Array.from({ length: USERS }, (_, i) => m.token(user(i))));
    const affiliated = new Uint8Array(USERS);
    let next = 0;
    const affiliationRequests: autocannon.Request[] = [
      {
        method: 'POST',
        setupRequest: (req) => {
          const i = next++ % USERS;
          const op = affiliated[i] ? 'deaffiliations' : 'affiliations';
          affiliated[i] = affiliated[i] ? 0 : 1;
          const body = JSON.stringify({ mcServiceId: user(i), service: 'mcptt', groupIds: groupsOf(i).slice(0, 1 + (i % 4)) });
          return { ...req, path: `/mc/v1/${op}`, headers: { 'content-type': 'application/json', authorization: `Bearer ${tokens[i]}` }, body };
        },
      },
    ];
    // A sample answer, so the bare server sends the same number of bytes.
    const sample = await fetch(`${m.url()}/mc/v1/affiliations`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${tokens[2]}` },
      body: JSON.stringify({ mcServiceId: user(2), service: 'mcptt', groupIds: groupsOf(2).slice(0, 3) }),
    }).then((r) => r.text());
    await fetch(`${m.url()}/mc/v1/deaffiliations`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${tokens[2]}` }, body: JSON.stringify({ mcServiceId: user(2), service: 'mcptt', groupIds: groupsOf(2).slice(0, 3) }) });

    const bare = createServer((req, res) => {
      req.resume();
      req.on('end', () => res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(sample) }).end(sample));
    });
    const barePort = await freePort();
    await new Promise<void>((r) => bare.listen(barePort, '127.0.0.1', r));
    const bareFigures = await load(`http://127.0.0.1:${barePort}`, affiliationRequests);
    bare.close();

    next = 0;
    const muster = await load(m.url(), affiliationRequests);
    next = 0;
    const half = await load(m.url(), affiliationRequests, { rate: Math.max(1, Math.round(muster.requestsPerSecond / 2)) });

    const rows = [
      { what: 'bare node:http, same body size', ...bareFigures },
      { what: 'muster affiliation (SQLite FULL sync, JWT)', ...muster },
      { what: 'muster at half that load', ...half },
    ];
    const ratio = muster.requestsPerSecond / bareFigures.requestsPerSecond;
    console.log(`\nHTTP affiliation, ${USERS} users, ${GROUPS} groups, ${CONNECTIONS} connections, ${SECONDS} s each`);
    console.log('| run | req/s | p50 ms | p99 ms | errors | non-2xx |\n|---|---|---|---|---|---|');
    for (const r of rows) console.log(`| ${r.what} | ${Math.round(r.requestsPerSecond)} | ${r.p50} | ${r.p99} | ${r.errors} | ${r.non2xx} |`);
    console.log(`ratio muster / bare: ${(ratio * 100).toFixed(1)} %`);
    mkdirSync(new URL('results', import.meta.url), { recursive: true });
    writeFileSync(
      new URL('results/affiliation-http.json', import.meta.url),
      JSON.stringify({ command: `node --import tsx bench/affiliation-http.ts --seconds ${SECONDS} --connections ${CONNECTIONS} --users ${USERS}`, at: new Date().toISOString(), users: USERS, groups: GROUPS, rows, ratio }, null, 2),
    );
  } finally {
    await m.stop();
  }
}

await main();

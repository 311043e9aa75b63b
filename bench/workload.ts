// The affiliation workload of the benchmarks (issue 6): N users of one system, each subscribed to 4 groups,
// each request affiliating to or de-affiliating from 1-4 of them in turn, with the user's own credential; and what
// every benchmark shares: the bare node:http ceiling, answer sampling, results files.
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { writeFileSync, mkdirSync, readdirSync, readFileSync } from 'node:fs';
import autocannon from 'autocannon';
import type { Muster, RawConfig, RawSystem } from '../test/support/harness.ts';
import { freePort, secret } from '../test/support/harness.ts';

export const DOMAIN = 'bench.example';
export const PARTNER_DOMAIN = 'partner.example';
export const user = (i: number): string => `sip:u${i}@${DOMAIN}`;
export const group = (j: number): string => `sip:g${j}@${DOMAIN}`;
export const partnerGroup = (j: number): string => `sip:g${j}@${PARTNER_DOMAIN}`;

export const groupCount = (users: number): number => Math.max(4, Math.floor(users / 4));

/** The members of each group: user i is in groups (4i + k) mod groups, k = 0..3. */
function membersOf(users: number): Map<number, string[]> {
  const members = new Map<number, string[]>();
  for (let i = 0; i < users; i++)
    for (let k = 0; k < 4; k++) {
      const j = (i * 4 + k) % groupCount(users);
      const list = members.get(j);
      if (list) list.push(user(i));
      else members.set(j, [user(i)]);
    }
  return members;
}

/** A partner system's entry on each side: its domain, where it answers, the secret both sides share. */
export interface PartnerLink {
  domain: string;
  url: string;
  secret: string;
}

/**
 * The benchmark system. With `partner`, every user is also subscribed to 4 groups hosted by that partner (N2 8, so
 * own and partner sets never crowd each other out between runs).
 */
export function benchConfig(users: number, port: number, opts: { partner?: PartnerLink; sip?: { port: number; trustedPeers: string[]; transports?: ('udp' | 'tcp')[] } } = {}): RawConfig {
  const groups = groupCount(users);
  const members = membersOf(users);
  const { partner, sip } = opts;
  return {
    systems: [
      {
        name: 'bench',
        domain: DOMAIN,
        http: { host: '127.0.0.1', port },
        secret: secret(),
        ...(partner ? { partners: [partner] } : {}),
        ...(sip ? { sip } : {}),
        users: Array.from({ length: users }, (_, i) => ({ id: user(i), services: ['mcptt'], n2: partner ? 8 : 4, groups: partner ? [...groupsOf(i, groups), ...partnerGroupsOf(i, groups)] : groupsOf(i, groups) })),
        groups: Array.from({ length: groups }, (_, j) => ({ id: group(j), services: ['mcptt'], members: members.get(j) ?? [] })),
      },
    ],
  };
}

/** The partner system hosting the benchmark users' partner groups (same membership as the own groups). */
export function partnerSystem(users: number, port: number, primary: PartnerLink): RawSystem {
  const members = membersOf(users);
  return {
    name: 'partner',
    domain: PARTNER_DOMAIN,
    http: { host: '127.0.0.1', port },
    secret: secret(),
    partners: [primary],
    users: [],
    groups: Array.from({ length: groupCount(users) }, (_, j) => ({ id: partnerGroup(j), services: ['mcptt'], members: members.get(j) ?? [] })),
  };
}

export function groupsOf(i: number, groups: number): string[] {
  return [0, 1, 2, 3].map((k) => group((i * 4 + k) % groups));
}

/** Partner and own groups in turn, so every request of 1-4 groups names at least one partner group. */
export function mixedGroupsOf(i: number, groups: number): string[] {
  return [0, 1, 2, 3].map((k) => (k % 2 === 0 ? partnerGroup : group)((i * 4 + k) % groups));
}

function partnerGroupsOf(i: number, groups: number): string[] {
  return [0, 1, 2, 3].map((k) => partnerGroup((i * 4 + k) % groups));
}

/** Answers counted while a load runs: a 200 can still refuse groups (e.g. partner-unreachable). */
export interface Refusals {
  answers: number;
  refused: number;
}

/** One request of the workload, whichever client sends it. */
export interface WorkloadRequest {
  path: string;
  headers: Record<string, string>;
  body: string;
}

/**
 * The request sequence: it walks through the users in turn, each alternating affiliation and de-affiliation of
 * 1-4 of the groups `pick` gives.
 */
export function affiliationSequence(users: number, tokens: string[], pick: (i: number, groups: number) => string[] = groupsOf): () => WorkloadRequest {
  const groups = groupCount(users);
  const affiliated = new Uint8Array(users);
  let next = 0;
  return () => {
    const i = next++ % users;
    const op = affiliated[i] ? 'deaffiliations' : 'affiliations';
    affiliated[i] = affiliated[i] ? 0 : 1;
    const body = JSON.stringify({ mcServiceId: user(i), service: 'mcptt', groupIds: pick(i, groups).slice(0, 1 + (i % 4)) });
    return { path: `/mc/v1/${op}`, headers: { 'content-type': 'application/json', authorization: `Bearer ${tokens[i]}` }, body };
  };
}

/** The sequence for autocannon; with `refusals`, answers that refuse a group are counted. */
export function affiliationRequests(users: number, tokens: string[], opts: { pick?: (i: number, groups: number) => string[]; refusals?: Refusals } = {}): autocannon.Request[] {
  const nextRequest = affiliationSequence(users, tokens, opts.pick);
  const refusals = opts.refusals;
  return [
    {
      method: 'POST',
      setupRequest: (req) => ({ ...req, ...nextRequest() }),
      ...(refusals
        ? {
            onResponse: (_status: number, body: string) => {
              refusals.answers++;
              if (body.includes('"rejected"')) refusals.refused++;
            },
          }
        : {}),
    },
  ];
}

/** Every benchmark user's credential, issued by the system `m` runs. */
export function tokensOf(m: Muster, users: number): Promise<string[]> {
  return Promise.all(Array.from({ length: users }, (_, i) => m.token(user(i))));
}

/**
 * One affiliation and its de-affiliation through the real server; returns the affiliation's answer, so the bare
 * server can send as many bytes as Muster does.
 */
export async function sampleAnswer(url: string, token: string, who: string, groupIds: string[]): Promise<string> {
  const post = (op: string): Promise<string> =>
    fetch(`${url}/mc/v1/${op}`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` }, body: JSON.stringify({ mcServiceId: who, service: 'mcptt', groupIds }) }).then((r) => r.text());
  const sample = await post('affiliations');
  await post('deaffiliations');
  return sample;
}

/**
 * The machine's ceiling for Node: a bare node:http server answering `sample`, in its own process like Muster's
 * server (bench/bare-server.ts). Run in the load generator's process it shared one thread with it and showed half its
 * real ceiling (22,235 against 47,981 req/s for one fixed request, 2026-11-26).
 */
export async function withBareServer<T>(sample: string, measure: (url: string, pid: number) => Promise<T>): Promise<T> {
  const port = await freePort();
  const bare = spawn(process.execPath, ['--import', 'tsx', fileURLToPath(new URL('bare-server.ts', import.meta.url)), String(port), sample], { stdio: ['ignore', 'pipe', 'inherit'] });
  try {
    await new Promise<void>((resolve, reject) => {
      bare.once('exit', (code) => reject(new Error(`the bare server exited with ${code} before listening`)));
      bare.stdout.once('data', () => resolve());
    });
    return await measure(`http://127.0.0.1:${port}`, bare.pid!);
  } finally {
    bare.kill('SIGTERM');
  }
}

/** The bare ceiling under the same closed load as Muster, with the bare server's CPU per request. */
export function bareCeiling(sample: string, requests: autocannon.Request[], opts: { seconds: number; connections: number }): Promise<Figures & { cpuMicrosPerRequest: number }> {
  return withBareServer(sample, (url, pid) => withServerCpu([pid], opts.seconds, () => load(url, requests, opts)));
}

export interface Figures {
  requestsPerSecond: number;
  p50: number;
  p99: number;
  errors: number;
  non2xx: number;
}

export async function load(url: string, requests: autocannon.Request[], opts: { seconds: number; connections: number; rate?: number }): Promise<Figures> {
  const r = await autocannon({ url, connections: opts.connections, duration: opts.seconds, requests, ...(opts.rate ? { overallRate: opts.rate } : {}) });
  return { requestsPerSecond: r.requests.average, p50: r.latency.p50, p99: r.latency.p99, errors: r.errors + r.timeouts, non2xx: r.non2xx };
}

export function table(title: string, rows: ({ what: string; cpuMicrosPerRequest?: number } & Figures)[]): string {
  // Server CPU per request is steadier than req/s on a shared 2-core machine: what an optimisation saved shows there.
  const cpu = rows.some((r) => r.cpuMicrosPerRequest !== undefined);
  return [
    title,
    `| run | req/s | p50 ms | p99 ms | errors | non-2xx |${cpu ? ' server CPU µs/request |' : ''}`,
    `|---|---|---|---|---|---|${cpu ? '---|' : ''}`,
    ...rows.map((r) => `| ${r.what} | ${Math.round(r.requestsPerSecond)} | ${r.p50} | ${r.p99} | ${r.errors} | ${r.non2xx} |${cpu ? ` ${r.cpuMicrosPerRequest === undefined ? '-' : Math.round(r.cpuMicrosPerRequest)} |` : ''}`),
  ].join('\n');
}

/** Runs a load of `seconds` and adds the CPU the server processes (threads and children too) spent per request. */
export async function withServerCpu(pids: number[], seconds: number, measure: () => Promise<Figures>): Promise<Figures & { cpuMicrosPerRequest: number }> {
  const before = cpuSecondsOf(...pids);
  const figures = await measure();
  return { ...figures, cpuMicrosPerRequest: ((cpuSecondsOf(...pids) - before) / (figures.requestsPerSecond * seconds)) * 1e6 };
}

/** Writes bench/results/<name>.json: the command that made the figures, when, and the figures. */
export function writeResults(name: string, results: { command: string } & Record<string, unknown>): void {
  mkdirSync(new URL('results', import.meta.url), { recursive: true });
  writeFileSync(new URL(`results/${name}.json`, import.meta.url), JSON.stringify({ ...results, at: new Date().toISOString() }, null, 2));
}

/** The value at quantile `q` (0-1) of ascending `sorted`: NaN when there is none. */
export const percentile = (sorted: number[], q: number): number => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? NaN;

/** The middle value (the upper one of an even count): what the benchmarks quote of several runs. */
export const median = (xs: number[]): number => percentile([...xs].sort((a, b) => a - b), 0.5);

export function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(name);
  return i >= 0 ? Number(process.argv[i + 1]) : fallback;
}

/** User + system CPU seconds of processes and their descendants (Linux /proc; clock ticks of 1/100 s). */
export function cpuSecondsOf(...roots: number[]): number {
  const stats = readdirSync('/proc')
    .filter((d) => /^[0-9]+$/.test(d))
    .flatMap((d) => {
      try {
        // Fields after the command name (which may hold spaces): state, ppid, ... utime (14th field), stime (15th).
        const f = readFileSync(`/proc/${d}/stat`, 'utf8').split(') ')[1]!.split(' ');
        return [{ pid: Number(d), ppid: Number(f[1]), ticks: Number(f[11]) + Number(f[12]) }];
      } catch {
        return []; // the process ended meanwhile
      }
    });
  const tree = new Set(roots);
  for (let grew = true; grew; ) {
    grew = false;
    for (const p of stats) {
      if (tree.has(p.pid) || !tree.has(p.ppid)) continue;
      tree.add(p.pid);
      grew = true;
    }
  }
  return stats.filter((p) => tree.has(p.pid)).reduce((n, p) => n + p.ticks, 0) / 100;
}

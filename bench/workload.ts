// The affiliation workload of the benchmarks (issue 6): N users of one system, each subscribed to 4 groups,
// each request affiliating to or de-affiliating from 1-4 of them in turn, with the user's own credential.
import autocannon from 'autocannon';
import type { RawConfig } from '../test/support/harness.ts';
import { secret } from '../test/support/harness.ts';

export const DOMAIN = 'bench.example';
export const user = (i: number): string => `sip:u${i}@${DOMAIN}`;
export const group = (j: number): string => `sip:g${j}@${DOMAIN}`;

export function benchConfig(users: number, port: number): RawConfig {
  const groups = Math.max(4, Math.floor(users / 4));
  const members = new Map<number, string[]>();
  for (let i = 0; i < users; i++)
    for (let k = 0; k < 4; k++) {
      const j = (i * 4 + k) % groups;
      members.set(j, [...(members.get(j) ?? []), user(i)]);
    }
  return {
    systems: [
      {
        name: 'bench',
        domain: DOMAIN,
        http: { host: '127.0.0.1', port },
        secret: secret(),
        users: Array.from({ length: users }, (_, i) => ({ id: user(i), services: ['mcptt'], n2: 4, groups: groupsOf(i, groups) })),
        groups: Array.from({ length: groups }, (_, j) => ({ id: group(j), services: ['mcptt'], members: members.get(j) ?? [] })),
      },
    ],
  };
}

export function groupsOf(i: number, groups: number): string[] {
  return [0, 1, 2, 3].map((k) => group((i * 4 + k) % groups));
}

/** Requests that walk through the users in turn, each alternating affiliation and de-affiliation. */
export function affiliationRequests(users: number, tokens: string[]): autocannon.Request[] {
  const groups = Math.max(4, Math.floor(users / 4));
  const affiliated = new Uint8Array(users);
  let next = 0;
  return [
    {
      method: 'POST',
      setupRequest: (req) => {
        const i = next++ % users;
        const op = affiliated[i] ? 'deaffiliations' : 'affiliations';
        affiliated[i] = affiliated[i] ? 0 : 1;
        const body = JSON.stringify({ mcServiceId: user(i), service: 'mcptt', groupIds: groupsOf(i, groups).slice(0, 1 + (i % 4)) });
        return { ...req, path: `/mc/v1/${op}`, headers: { 'content-type': 'application/json', authorization: `Bearer ${tokens[i]}` }, body };
      },
    },
  ];
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

export function table(title: string, rows: ({ what: string } & Figures)[]): string {
  return [
    title,
    '| run | req/s | p50 ms | p99 ms | errors | non-2xx |',
    '|---|---|---|---|---|---|',
    ...rows.map((r) => `| ${r.what} | ${Math.round(r.requestsPerSecond)} | ${r.p50} | ${r.p99} | ${r.errors} | ${r.non2xx} |`),
  ].join('\n');
}

export function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(name);
  return i >= 0 ? Number(process.argv[i + 1]) : fallback;
}

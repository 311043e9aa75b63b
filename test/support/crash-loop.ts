// The crash loop (issue 7): affiliations and de-affiliations under load, the server killed with SIGKILL at random
// moments, restarted, and every acknowledged change checked in the store and at the GMS. Used by the e2e test
// (a few short rounds) and by `npm run soak` (many rounds over minutes).
import { Muster, call, freePort, secret } from './harness.ts';

export interface CrashLoopReport {
  rounds: number;
  kills: number;
  requests: number;
  acknowledged: number;
  verified: number;
  lost: number;
  gmsDisagreements: number;
  problems: string[];
}

const D = 'crash.example';
const user = (i: number): string => `sip:c${i}@${D}`;
const group = (j: number): string => `sip:k${j}@${D}`;

export async function crashLoop(opts: { rounds: number; users?: number; groups?: number; clientsPerRound?: number; minRunMs?: number; maxRunMs?: number; seed?: number; log?: (line: string) => void }): Promise<CrashLoopReport> {
  const USERS = opts.users ?? 12;
  const GROUPS = opts.groups ?? 6;
  const minRun = opts.minRunMs ?? 200;
  const maxRun = opts.maxRunMs ?? 1200;
  let seed = opts.seed ?? 42;
  const rand = (n: number): number => (seed = (seed * 1103515245 + 12345) % 2 ** 31) % n;
  const groups = Array.from({ length: GROUPS }, (_, j) => group(j));
  const users = Array.from({ length: USERS }, (_, i) => user(i));
  const m = await Muster.start({
    systems: [
      {
        name: 'crash',
        domain: D,
        http: { port: await freePort() },
        secret: secret(),
        users: users.map((id) => ({ id, services: ['mcptt'], n2: GROUPS, groups })),
        groups: groups.map((id) => ({ id, services: ['mcptt'], members: users })),
      },
    ],
  }, undefined, 'sqlite');
  const report: CrashLoopReport = { rounds: 0, kills: 0, requests: 0, acknowledged: 0, verified: 0, lost: 0, gmsDisagreements: 0, problems: [] };
  /** Per user and group: the last acknowledged state, or 'unknown' when a later request got no answer. */
  const expected = new Map<string, 'affiliated' | 'deaffiliated' | 'unknown'>();
  try {
    const tokens = await Promise.all(users.map((u) => m.token(u)));
    for (let round = 0; round < opts.rounds; round++) {
      report.rounds += 1;
      let stop = false;
      // Each client is one user, sending one request at a time, so its order is the order of its changes.
      const clients = Array.from({ length: Math.min(USERS, opts.clientsPerRound ?? USERS) }, async (_, i) => {
        while (!stop) {
          const g = groups[rand(GROUPS)]!;
          const op = rand(2) === 0 ? 'affiliations' : 'deaffiliations';
          const key = `${users[i]} ${g}`;
          report.requests += 1;
          try {
            const res = await call('POST', `${m.url()}/mc/v1/${op}`, tokens[i], { mcServiceId: users[i], service: 'mcptt', groupIds: [g] });
            const s = (res.body as { status?: { status: string }[] }).status?.[0]?.status;
            if (res.status === 200 && (s === 'affiliated' || s === 'deaffiliated')) {
              expected.set(key, s);
              report.acknowledged += 1;
            } else expected.set(key, 'unknown');
          } catch {
            expected.set(key, 'unknown'); // no answer: the change may or may not have happened
            if (stop) return;
            await new Promise((r) => setTimeout(r, 20));
          }
        }
      });
      await new Promise((r) => setTimeout(r, minRun + rand(Math.max(1, maxRun - minRun))));
      await m.kill();
      report.kills += 1;
      stop = true;
      await Promise.all(clients);
      await m.spawn();
      // Every acknowledged change is in the store.
      for (const [i, u] of users.entries()) {
        const res = await call('GET', `${m.url()}/mc/v1/users/${encodeURIComponent(u)}/affiliations?service=mcptt`, tokens[i]);
        const held = new Set(((res.body as { affiliations?: { groupId: string; state: string }[] }).affiliations ?? []).filter((a) => a.state === 'affiliated').map((a) => a.groupId));
        for (const g of groups) {
          const want = expected.get(`${u} ${g}`);
          if (want === undefined || want === 'unknown') {
            // Whatever the store says is now the truth the next round starts from.
            expected.set(`${u} ${g}`, held.has(g) ? 'affiliated' : 'deaffiliated');
            continue;
          }
          report.verified += 1;
          if ((want === 'affiliated') !== held.has(g)) {
            report.lost += 1;
            report.problems.push(`round ${round}: ${u} ${g} acknowledged ${want}, stored ${held.has(g) ? 'affiliated' : 'deaffiliated'}`);
          }
        }
      }
      // The GMS agrees with the server's records once recovery re-sent what the crash interrupted (bounded wait).
      const operator = await m.operatorToken();
      let disagreements = 0;
      for (let attempt = 0; attempt < 50; attempt++) {
        disagreements = 0;
        for (const g of groups) {
          const gms = await call('GET', `${m.url()}/gms/v1/groups/${encodeURIComponent(g)}/affiliations?service=mcptt`, operator);
          const server = await call('GET', `${m.url()}/mc/v1/groups/${encodeURIComponent(g)}/members?service=mcptt`, operator);
          const a = ((gms.body as { members?: { mcServiceId: string }[] }).members ?? []).map((x) => x.mcServiceId).sort().join(',');
          const b = ((server.body as { members?: { mcServiceId: string }[] }).members ?? []).map((x) => x.mcServiceId).sort().join(',');
          if (a !== b) disagreements += 1;
        }
        if (disagreements === 0) break;
        await new Promise((r) => setTimeout(r, 100));
      }
      report.gmsDisagreements += disagreements;
      if (disagreements > 0) report.problems.push(`round ${round}: ${disagreements} groups where the GMS and the server disagree`);
      opts.log?.(`round ${round + 1}: requests ${report.requests}, acknowledged ${report.acknowledged}, verified ${report.verified}, lost ${report.lost}`);
    }
  } finally {
    await m.stop();
  }
  return report;
}

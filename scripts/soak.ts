// `npm run soak`: the crash loop for several minutes (default 10), printing what it checked.
//   node --import tsx scripts/soak.ts [--minutes 10]
import { crashLoop } from '../test/support/crash-loop.ts';

const i = process.argv.indexOf('--minutes');
const minutes = i >= 0 ? Number(process.argv[i + 1]) : 10;
const until = Date.now() + minutes * 60_000;
const total = { rounds: 0, kills: 0, requests: 0, acknowledged: 0, verified: 0, lost: 0, gmsDisagreements: 0 };
const problems: string[] = [];
let seed = 1;
while (Date.now() < until) {
  // Longer runs between kills than the test's, with more users, so the load is mixed and sustained.
  const r = await crashLoop({ rounds: 5, users: 40, groups: 10, minRunMs: 500, maxRunMs: 5000, seed: seed++, log: (l) => console.log(l) });
  for (const k of Object.keys(total) as (keyof typeof total)[]) total[k] += r[k];
  problems.push(...r.problems);
}
console.log(`soak ${minutes} min: rounds ${total.rounds}, kills ${total.kills}, requests ${total.requests}, acknowledged ${total.acknowledged}, changes verified ${total.verified}, GMS disagreements ${total.gmsDisagreements}, lost = ${total.lost}`);
for (const p of problems) console.log(`problem: ${p}`);
process.exit(total.lost === 0 && total.gmsDisagreements === 0 ? 0 : 1);

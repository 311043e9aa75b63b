// Issue 5: one MC system as two instances on PostgreSQL + NATS. N2 and every answer stay exact under a race
// spread over both instances, and an instance killed under load loses nothing acknowledged.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Muster, call, freePort, secret } from '../support/harness.ts';

const D = 'scale.example';
const USERS = 10;
const GROUPS = 12;
const N2 = 5;
const user = (i: number): string => `sip:u${i}@${D}`;
const group = (j: number): string => `sip:g${j}@${D}`;

let m: Muster;
let tokens: string[];

before(async () => {
  const groups = Array.from({ length: GROUPS }, (_, j) => group(j));
  m = await Muster.start(
    {
      systems: [
        {
          name: 'scale',
          domain: D,
          http: { port: await freePort() },
          secret: secret(),
          users: Array.from({ length: USERS }, (_, i) => ({ id: user(i), services: ['mcptt'], n2: N2, groups })),
          groups: groups.map((id) => ({ id, services: ['mcptt'], members: Array.from({ length: USERS }, (_, i) => user(i)) })),
        },
      ],
    },
    undefined,
    'postgres',
  );
  assert.equal(m.instances, 2, 'two instances behind the balancer');
  tokens = await Promise.all(Array.from({ length: USERS }, (_, i) => m.token(user(i))));
});

after(async () => {
  await m?.stop();
});

async function stored(i: number): Promise<string[]> {
  const res = await call('GET', `${m.url()}/mc/v1/users/${encodeURIComponent(user(i))}/affiliations?service=mcptt`, tokens[i]);
  assert.equal(res.status, 200, JSON.stringify(res.body));
  return (res.body as { affiliations: { groupId: string; state: string }[] }).affiliations.filter((a) => a.state === 'affiliated').map((a) => a.groupId).sort();
}

void test('1,000 concurrent affiliation requests over two instances never exceed N2, and every answer agrees with the store', async () => {
  // A fixed pseudo-random mix: each request names 1-3 groups of one user; requests alternate between instances.
  let seed = 7;
  const rand = (n: number): number => (seed = (seed * 1103515245 + 12345) % 2 ** 31) % n;
  const requests = Array.from({ length: 1000 }, () => {
    const i = rand(USERS);
    const start = rand(GROUPS);
    const groupIds = [...new Set(Array.from({ length: 1 + rand(3) }, (_, k) => group((start + k * 5) % GROUPS)))];
    return { i, groupIds };
  });
  const answers = await Promise.all(requests.map((r) => call('POST', `${m.url()}/mc/v1/affiliations`, tokens[r.i], { mcServiceId: user(r.i), service: 'mcptt', groupIds: r.groupIds })));
  const affiliatedAnswers = new Map<number, Set<string>>();
  answers.forEach((a, k) => {
    assert.equal(a.status, 200, JSON.stringify(a.body));
    for (const s of (a.body as { status: { groupId: string; status: string; reason?: string }[] }).status) {
      if (s.status === 'affiliated') affiliatedAnswers.set(requests[k]!.i, (affiliatedAnswers.get(requests[k]!.i) ?? new Set()).add(s.groupId));
      else assert.equal(s.reason, 'n2-limit', `only N2 may refuse here: ${JSON.stringify(s)}`);
    }
  });
  for (let i = 0; i < USERS; i++) {
    const groups = await stored(i);
    assert.ok(groups.length <= N2, `${user(i)} holds ${groups.length} > N2 = ${N2}`);
    assert.deepEqual(groups, [...(affiliatedAnswers.get(i) ?? [])].sort(), `${user(i)}: answered affiliated = stored`);
    if (requests.some((r) => r.i === i)) assert.equal(groups.length, Math.min(N2, new Set(requests.filter((r) => r.i === i).flatMap((r) => r.groupIds)).size));
  }
});

void test('an instance killed under load: clients retry on the other one and nothing acknowledged is lost', async () => {
  // Start clean: every user leaves every group.
  await Promise.all(Array.from({ length: USERS }, (_, i) => call('POST', `${m.url()}/mc/v1/deaffiliations`, tokens[i], { mcServiceId: user(i), service: 'mcptt', groupIds: Array.from({ length: GROUPS }, (_, j) => group(j)) })));
  // Each user's client toggles groups one after another; a failed request is retried (the flows are idempotent).
  const acknowledged = new Map<string, 'affiliated' | 'deaffiliated'>();
  let killed = false;
  const deadline = Date.now() + 30_000;
  const client = async (i: number): Promise<void> => {
    for (let step = 0; step < 24 && Date.now() < deadline; step++) {
      const g = group(step % 4);
      const op = Math.floor(step / 4) % 2 === 0 ? 'affiliations' : 'deaffiliations';
      for (let attempt = 0; attempt < 20; attempt++) {
        let res: { status: number; body: { status?: { status: string }[] } } | undefined;
        try {
          res = await call('POST', `${m.url()}/mc/v1/${op}`, tokens[i], { mcServiceId: user(i), service: 'mcptt', groupIds: [g] });
        } catch {
          res = undefined;
        }
        if (res?.status === 200) {
          acknowledged.set(`${i} ${g}`, res.body.status![0]!.status as 'affiliated' | 'deaffiliated');
          break;
        }
        await new Promise((r) => setTimeout(r, 100));
      }
      if (i === 0 && step === 8 && !killed) {
        killed = true;
        await m.killInstance(0);
      }
    }
  };
  await Promise.all(Array.from({ length: USERS }, (_, i) => client(i)));
  assert.ok(killed, 'an instance was killed during the load');
  assert.ok(acknowledged.size > 0);
  for (let i = 0; i < USERS; i++) {
    const groups = new Set(await stored(i));
    for (let j = 0; j < 4; j++) {
      const last = acknowledged.get(`${i} ${group(j)}`);
      if (last) assert.equal(groups.has(group(j)), last === 'affiliated', `${user(i)} ${group(j)}: last acknowledged ${last}`);
    }
  }
});

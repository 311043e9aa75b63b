// Two instances of one system on PostgreSQL + NATS. An operator's change (user profile, group document) that one
// live instance does not confirm within the bound is stored but not reported as in force: the answer is 202 naming
// that instance, the announcer's /healthz and metrics list it as behind until it confirms (asked again with back-off)
// or leaves the live instances. The slow instance is a real one, stopped with SIGSTOP for under the 3.5 s after
// which a silent instance counts as gone.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { hostname } from 'node:os';
import { Muster, call, cli, freePort, secret } from '../support/harness.ts';
import { until } from '../support/until.ts';

const D = 'police.example';
const u = (name: string): string => `sip:${name}@${D}`;
const enc = encodeURIComponent;

let m: Muster;
let a: string;
let b: string;
let bName: string;
let op: string;

before(async () => {
  m = await Muster.start(
    {
      systems: [
        {
          name: 'police',
          domain: D,
          http: { port: await freePort() },
          secret: secret(),
          users: [{ id: u('alice'), services: ['mcptt'], n2: 3, groups: [u('patrol'), u('north')] }],
          groups: [
            { id: u('patrol'), services: ['mcptt'], members: [u('alice')] },
            { id: u('north'), services: ['mcptt'], members: [u('alice')] },
          ],
        },
      ],
    },
    undefined,
    'postgres',
  );
  assert.equal(m.instances, 2);
  a = m.instanceUrl(0);
  b = m.instanceUrl(1);
  bName = `${hostname()}/${b.slice('http://'.length)}`;
  op = await m.operatorToken();
});

after(async () => {
  for (const pid of m?.pids ?? []) process.kill(pid, 'SIGCONT'); // never leave a stopped instance to the shutdown
  await m?.stop();
});

/** An operator's answer, and an affiliation answer, as far as these tests read them. */
interface Answer {
  id?: string;
  deleted?: boolean;
  notConfirmed?: string[];
  warning?: string;
  groups?: string[];
  n2?: number;
  status?: { groupId: string; status: string; reason?: string }[];
}

async function send(method: string, url: string, token: string | undefined, body?: unknown): Promise<{ status: number; body: Answer }> {
  const r = await call(method, url, token, body);
  return { status: r.status, body: r.body as Answer };
}


async function health(url: string): Promise<{ status: number; body: { instances?: string[]; instancesBehind?: string[]; fabric?: string } }> {
  return call('GET', `${url}/healthz?partners=omit`, undefined);
}

async function behindGauge(url: string): Promise<string | undefined> {
  const r = await call('GET', `${url}/admin/v1/metrics`, op);
  assert.equal(r.status, 200);
  return (r.body as string).split('\n').find((l) => l.startsWith('muster_fabric_instances_behind{'));
}

/** Stops instance B (as a peer too slow to confirm) for the length of `work`, and lets it run again after. */
async function whileBStopped<T>(work: () => Promise<T>): Promise<T> {
  const pid = m.pids[1]!;
  process.kill(pid, 'SIGSTOP');
  try {
    return await work();
  } finally {
    process.kill(pid, 'SIGCONT');
  }
}

void test('a profile change an instance did not confirm: 202 naming it, listed as behind at the announcer until it confirms; then in force there', { timeout: 60_000 }, async () => {
  await until(async () => (await health(a)).body.instances?.includes(bName) === true, 'A knows B as a live instance');
  const before = await send('PUT', `${a}/admin/v1/users/${enc(u('alice'))}`, op, { services: ['mcptt'], n2: 3, groups: [u('patrol'), u('north')] });
  assert.equal(before.status, 200, 'both instances confirmed: in force everywhere');
  assert.equal(before.body.notConfirmed, undefined);

  const { put, healthz, gaugeLine } = await whileBStopped(async () => {
    // North leaves alice's subscription: until B has it, B would still let her affiliate there.
    const put = await send('PUT', `${a}/admin/v1/users/${enc(u('alice'))}`, op, { services: ['mcptt'], n2: 3, groups: [u('patrol')] });
    return { put, healthz: await health(a), gaugeLine: await behindGauge(a) };
  });
  assert.equal(put.status, 202, JSON.stringify(put.body));
  assert.deepEqual(put.body.notConfirmed, [bName]);
  assert.match(put.body.warning ?? '', /stored, not yet in force at instances/);
  assert.ok(put.body.warning?.includes(bName));
  assert.deepEqual(put.body.groups, [u('patrol')], 'the stored profile, as a 200 answer gives it');
  assert.equal(healthz.status, 200, 'the announcer itself is in force');
  assert.deepEqual(healthz.body.instancesBehind, [bName]);
  assert.match(gaugeLine ?? '', / 1$/);

  await until(async () => (await health(a)).body.instancesBehind?.length === 0, 'B confirmed to A once it ran again');
  assert.match((await behindGauge(a)) ?? '', / 0$/);
  const atB = await send('POST', `${b}/mc/v1/affiliations`, await m.token(u('alice')), { mcServiceId: u('alice'), service: 'mcptt', groupIds: [u('north')] });
  assert.equal(atB.status, 200);
  assert.deepEqual(atB.body.status, [{ groupId: u('north'), status: 'rejected', reason: 'not-authorised' }], 'the change is in force at B');
});

void test('a group deleted while an instance is stopped: 202 with notConfirmed; the instance is dropped from the list once it counts as gone', { timeout: 60_000 }, async () => {
  await until(async () => (await health(a)).body.instances?.includes(bName) === true, 'A knows B as a live instance');
  const del = await whileBStopped(async () => {
    const del = await send('DELETE', `${a}/gms/v1/groups/${enc(u('north'))}`, op);
    // Past the 3.5 s without a word after which A counts B as gone: it is no longer listed, not forever behind.
    await until(async () => (await health(a)).body.instances?.length === 0, 'B counted as gone', 8000);
    assert.deepEqual((await health(a)).body.instancesBehind, []);
    return del;
  });
  assert.equal(del.status, 202, JSON.stringify(del.body));
  assert.deepEqual(del.body, { id: u('north'), deleted: true, notConfirmed: [bName], warning: del.body.warning });
  assert.match(del.body.warning ?? '', /stored, not yet in force at instances/);
  // B runs again: it reads what was announced meanwhile, and the group is gone there too.
  await until(async () => (await call('GET', `${b}/gms/v1/groups/${enc(u('north'))}`, op)).status === 404, 'the deletion in force at B');
});

void test('muster user-profile put through an instance, every instance in force: one line, exit 0', { timeout: 60_000 }, async () => {
  await until(async () => (await health(a)).body.instances?.includes(bName) === true, 'A knows B as a live instance');
  const file = `${m.dir}/alice.json`;
  const { writeFileSync } = await import('node:fs');
  writeFileSync(file, JSON.stringify({ id: u('alice'), services: ['mcptt'], n2: 2, groups: [u('patrol')] }));
  const r = await cli(['user-profile', 'put', file, '--server', a, '--token', op]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, `${u('alice')}  stored, in force at every instance\n`);
  assert.equal((await send('GET', `${b}/admin/v1/users/${enc(u('alice'))}`, op)).body.n2, 2);
});

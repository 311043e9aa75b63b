// Issue 7, faults of dependencies: the GMS down. Two real processes on loopback: a GMS-only Muster system (role: gms)
// and the MC service server of the same domain configured with it as its remote GMS (`gms:`). The GMS is killed with
// SIGKILL: cached policies keep serving, an uncached group is refused on its own within a bound, status updates wait
// in the MC server's outbox; after the GMS is back they arrive in order, the member lists agree with the MC server's
// records, and delivering them again does no harm.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import Database from 'better-sqlite3';
import { call, freePort, Muster, secret } from '../support/harness.ts';
import { issueToken } from '../../src/faces/http/credentials.ts';
import { sleep } from '../support/partners.ts';
import pino from 'pino';
import { HttpGroupManagement } from '../../src/adapters/gms-http.ts';
import type { McUri } from '../../src/domain/ids.ts';

const P = 'police.example';
const alice = `sip:alice@${P}`;
const bob = `sip:bob@${P}`;
const patrol = `sip:patrol@${P}`;
const north = `sip:north@${P}`;
const south = `sip:south@${P}`;
const east = `sip:east@${P}`;
const GROUPS = [patrol, north, south, east];
/** Each request to the GMS is bounded by this (the MC server's `gms.timeoutMs`). */
const GMS_TIMEOUT_MS = 1000;
const UNREACHABLE = 'rejected:partner-unreachable';

let gms: Muster;
let mc: Muster;
/** The server credential the GMS's system issued to the MC service server (subject: the source of its updates). */
let credential: string;

before(async () => {
  const gmsSecret = secret();
  credential = await issueToken({ secret: gmsSecret, domain: P, subject: 'police-mc', role: 'server', ttlSeconds: 3600 });
  gms = await Muster.start(
    {
      systems: [
        {
          name: 'police-gms',
          domain: P,
          role: 'gms',
          http: { port: await freePort() },
          secret: gmsSecret,
          groups: GROUPS.map((id) => ({ id, services: ['mcptt'], members: [alice, bob] })),
        },
      ],
    },
    undefined,
    'sqlite',
  );
  mc = await Muster.start(
    {
      systems: [
        {
          name: 'police',
          domain: P,
          http: { port: await freePort() },
          secret: secret(),
          gms: { url: gms.url(), credential, timeoutMs: GMS_TIMEOUT_MS },
          users: [
            { id: alice, services: ['mcptt'], n2: 5, groups: GROUPS },
            { id: bob, services: ['mcptt'], n2: 5, groups: GROUPS },
          ],
        },
      ],
    },
    undefined,
    'sqlite',
  );
});

after(async () => {
  await mc?.stop();
  await gms?.stop();
});

async function request(who: string, path: 'affiliations' | 'deaffiliations', groupIds: string[]): Promise<Record<string, string>> {
  const r = await call('POST', `${mc.url()}/mc/v1/${path}`, await mc.token(who), { mcServiceId: who, service: 'mcptt', groupIds });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  return Object.fromEntries((r.body as { status: { groupId: string; status: string; reason?: string }[] }).status.map((s) => [s.groupId, s.reason ? `${s.status}:${s.reason}` : s.status]));
}

/**
 * groupId -> sorted affiliated users, as the MC server's records say. Read per user: a group's member list would
 * make the MC server fetch that group's policy, and `south` must stay uncached until the GMS is killed.
 */
async function records(): Promise<Record<string, string[]>> {
  const out: Record<string, string[]> = Object.fromEntries(GROUPS.map((g) => [g, []]));
  for (const who of [alice, bob]) {
    const r = await call('GET', `${mc.url()}/mc/v1/users/${encodeURIComponent(who)}/affiliations?service=mcptt`, await mc.operatorToken());
    assert.equal(r.status, 200, JSON.stringify(r.body));
    for (const a of (r.body as { affiliations: { groupId: string; state: string }[] }).affiliations) if (a.state === 'affiliated') out[a.groupId]!.push(who);
  }
  return Object.fromEntries(Object.entries(out).map(([g, users]) => [g, users.sort()]));
}

async function gmsMembers(): Promise<Record<string, string[]>> {
  const out: Record<string, string[]> = {};
  for (const g of GROUPS) {
    const r = await call('GET', `${gms.url()}/gms/v1/groups/${encodeURIComponent(g)}/affiliations?service=mcptt`, await gms.operatorToken());
    assert.equal(r.status, 200, JSON.stringify(r.body));
    out[g] = (r.body as { members: { mcServiceId: string }[] }).members.map((m) => m.mcServiceId).sort();
  }
  return out;
}

/** Waits (bounded) until the GMS's member lists equal the MC server's records; returns them. */
async function assertGmsAgrees(waitMs = 15_000): Promise<Record<string, string[]>> {
  const until = Date.now() + waitMs;
  for (;;) {
    const [atMc, atGms] = [await records(), await gmsMembers()];
    if (JSON.stringify(atMc) === JSON.stringify(atGms)) return atMc;
    if (Date.now() > until) assert.fail(`GMS and MC server disagree: MC ${JSON.stringify(atMc)}, GMS ${JSON.stringify(atGms)}`);
    await sleep(100);
  }
}

async function health(): Promise<{ status: number; gms: string; ms: number }> {
  const t0 = Date.now();
  const r = await call('GET', `${mc.url()}/healthz`, undefined);
  return { status: r.status, gms: (r.body as { gms: string }).gms, ms: Date.now() - t0 };
}

/** The status updates waiting in the MC server's outbox, read from its SQLite file (read-only, beside the server). */
function outbox(): { seq: number; user_id: string; group_id: string; status: string }[] {
  const file = (mc.config.systems[0]!.store as string).slice('sqlite:'.length);
  const db = new Database(file, { readonly: true, fileMustExist: true });
  try {
    return db.prepare('SELECT seq, user_id, group_id, status FROM gms_outbox ORDER BY seq').all() as { seq: number; user_id: string; group_id: string; status: string }[];
  } finally {
    db.close();
  }
}

async function waitFor<T>(what: string, get: () => Promise<T>, ok: (v: T) => boolean, waitMs = 10_000): Promise<T> {
  const until = Date.now() + waitMs;
  for (;;) {
    const v = await get();
    if (ok(v)) return v;
    if (Date.now() > until) assert.fail(`${what}: still ${JSON.stringify(v)} after ${waitMs} ms`);
    await sleep(100);
  }
}

void test('GMS up: policies come from the remote GMS, its policy changes reach the MC server, its member lists follow', async () => {
  assert.equal((await health()).gms, 'up');
  assert.deepEqual(await request(alice, 'affiliations', [patrol, north]), { [patrol]: 'affiliated', [north]: 'affiliated' });
  assert.deepEqual(await request(alice, 'deaffiliations', [north]), { [north]: 'deaffiliated' });
  assert.deepEqual(await request(bob, 'affiliations', [east]), { [east]: 'affiliated' });
  assert.deepEqual(await assertGmsAgrees(), { [patrol]: [alice], [north]: [], [south]: [], [east]: [bob] });
  // The subscription: the operator disables east at the GMS; the MC server refuses it on a following request.
  const put = await call('PUT', `${gms.url()}/gms/v1/groups/${encodeURIComponent(east)}`, await gms.operatorToken(), { services: ['mcptt'], members: [alice, bob], enabled: false });
  assert.equal(put.status, 200, JSON.stringify(put.body));
  await waitFor('east disabled at the MC server', () => request(alice, 'affiliations', [east]), (s) => s[east] === 'rejected:group-disabled');
  const enable = await call('PUT', `${gms.url()}/gms/v1/groups/${encodeURIComponent(east)}`, await gms.operatorToken(), { services: ['mcptt'], members: [alice, bob], enabled: true });
  assert.equal(enable.status, 200);
  await waitFor('east enabled again', () => request(alice, 'affiliations', [east]), (s) => s[east] === 'affiliated');
  assert.deepEqual(await request(alice, 'deaffiliations', [east]), { [east]: 'deaffiliated' });
  // The roles: the GMS-only system serves no MC routes, the MC server no GMS routes (its GMS is elsewhere).
  assert.equal((await call('POST', `${gms.url()}/mc/v1/affiliations`, undefined, {})).status, 404);
  assert.equal((await call('GET', `${mc.url()}/gms/v1/groups/${encodeURIComponent(patrol)}`, await mc.operatorToken())).status, 404);
  // A status update names its source by the credential only: without one, or with the MC server's own secret, refused.
  const update = { updates: [{ seq: 1, userId: alice, groupId: south, service: 'mcptt', status: 'affiliated' }] };
  assert.equal((await call('POST', `${gms.url()}/gms/v1/affiliation-status`, undefined, update)).status, 401);
  assert.equal((await call('POST', `${gms.url()}/gms/v1/affiliation-status`, await mc.operatorToken(), update)).status, 401);
  assert.deepEqual((await gmsMembers())[south], []);
});

void test('GMS killed: cached groups keep serving, an uncached group is refused on its own in bounded time, updates wait in order; back: delivered in order, repeats harmless', async (t) => {
  await gms.kill();
  // /healthz: the GMS down, degraded, answered within the probe's bound.
  const h = await waitFor('health shows the GMS down', health, (x) => x.gms === 'down', 5000);
  assert.equal(h.status, 503);
  assert.ok(h.ms < 3000, `health took ${h.ms} ms`);

  // Cached (patrol, north, east) are decided from the cache; south was never asked for: refused on its own.
  const t0 = Date.now();
  assert.deepEqual(await request(alice, 'affiliations', [north, south]), { [north]: 'affiliated', [south]: UNREACHABLE });
  const took = Date.now() - t0;
  assert.ok(took < GMS_TIMEOUT_MS + 2000, `answered after ${took} ms`);
  // Changes whose order matters: bob joins north and leaves it again; alice leaves patrol and joins it again.
  assert.deepEqual(await request(bob, 'affiliations', [north]), { [north]: 'affiliated' });
  assert.deepEqual(await request(bob, 'deaffiliations', [north]), { [north]: 'deaffiliated' });
  assert.deepEqual(await request(alice, 'deaffiliations', [patrol]), { [patrol]: 'deaffiliated' });
  assert.deepEqual(await request(alice, 'affiliations', [patrol, east]), { [patrol]: 'affiliated', [east]: 'affiliated' });
  // The uncached group again: still refused, still quickly, and leaving it is refused too (its policy may forbid it).
  assert.deepEqual(await request(bob, 'affiliations', [south]), { [south]: UNREACHABLE });
  assert.deepEqual(await request(bob, 'deaffiliations', [south]), { [south]: UNREACHABLE });
  const expected = { [patrol]: [alice], [north]: [alice], [south]: [], [east]: [alice, bob] };
  assert.deepEqual(await records(), expected);

  // The updates wait in the outbox, in the order of the changes.
  const waiting = await waitFor('updates in the outbox', async () => outbox(), (o) => o.length === 6);
  assert.deepEqual(
    waiting.map((o) => `${o.user_id} ${o.group_id} ${o.status}`),
    [`${alice} ${north} affiliated`, `${bob} ${north} affiliated`, `${bob} ${north} deaffiliated`, `${alice} ${patrol} deaffiliated`, `${alice} ${patrol} affiliated`, `${alice} ${east} affiliated`],
  );
  assert.ok(waiting.every((o, i) => i === 0 || o.seq > waiting[i - 1]!.seq));

  // The GMS back: the outbox drains, in order (bob is not in north, alice is in patrol), and empties.
  await gms.spawn();
  const back = Date.now();
  assert.deepEqual(await assertGmsAgrees(), expected);
  // The subscription's reconnection (at most 2 s apart) wakes the outbox sender, whatever its back-off.
  const deliveredMs = Date.now() - back;
  assert.ok(deliveredMs < 4000, `delivered ${deliveredMs} ms after the GMS was back`);
  t.diagnostic(`queued updates delivered ${deliveredMs} ms after the GMS was back`);
  await waitFor('outbox drained', async () => outbox(), (o) => o.length === 0);
  await waitFor('health shows the GMS up', health, (x) => x.gms === 'up' && x.status === 200, 5000);

  // The same updates delivered again (a retry after a lost answer): nothing applied, nothing changes.
  const again = await call('POST', `${gms.url()}/gms/v1/affiliation-status`, credential, {
    updates: waiting.map((o) => ({ seq: o.seq, userId: o.user_id, groupId: o.group_id, service: 'mcptt', status: o.status })),
  });
  assert.equal(again.status, 200, JSON.stringify(again.body));
  assert.equal((again.body as { applied: number }).applied, 0);
  // An old one alone, that would undo a later change if it were applied: still nothing.
  const stale = waiting.find((o) => o.user_id === bob && o.status === 'affiliated')!;
  const old = await call('POST', `${gms.url()}/gms/v1/affiliation-status`, credential, { updates: [{ seq: stale.seq, userId: bob, groupId: north, service: 'mcptt', status: 'affiliated' }] });
  assert.equal((old.body as { applied: number }).applied, 0);
  assert.deepEqual(await gmsMembers(), expected);

  // The group that was refused is fetched now that the GMS answers.
  assert.deepEqual(await request(bob, 'affiliations', [south]), { [south]: 'affiliated' });
  assert.deepEqual(await assertGmsAgrees(), { ...expected, [south]: [bob] });
});

void test('a credential the GMS refuses: its groups are refused as unreachable (never taken as absent), health says down', async () => {
  const forged = await issueToken({ secret: secret(), domain: P, subject: 'police-mc', role: 'server' });
  const port = new HttpGroupManagement({ url: gms.url(), credential: forged, timeoutMs: GMS_TIMEOUT_MS }, pino({ level: 'silent' }));
  try {
    await port.ensurePolicies([patrol as McUri]);
    assert.equal(port.policyOf(patrol as McUri), undefined);
    assert.equal(port.unavailable(patrol as McUri), true);
    assert.equal(await port.health(), 'down');
    await assert.rejects(port.sendStatusUpdates([{ seq: 1, userId: alice as McUri, groupId: patrol as McUri, service: 'mcptt', status: 'deaffiliated' }]), /401/);
  } finally {
    port.close();
  }
  assert.deepEqual((await gmsMembers())[patrol], [alice]);
});

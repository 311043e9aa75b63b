// E2E (issue 2), one MC system: what was answered survives kill -9. Acknowledged affiliations and
// de-affiliations, the GMS outbox after restart, a mandatory change for an offline target, and a negotiated change
// left open by the crash (timed out after the restart; negotiationTimeoutSeconds: 1).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Muster, call, freePort, secret } from '../support/harness.ts';

const D = 'police.example';
const u = (name: string): string => `sip:${name}@${D}`;
const g = (name: string): string => `sip:${name}@${D}`;
const enc = encodeURIComponent;

interface GroupStatus {
  groupId: string;
  status: string;
  reason?: string;
}
interface SseEvent {
  id: number;
  type: string;
  data: { id?: string; mode?: string; deadline?: string; [k: string]: unknown };
}

const CROWD = Array.from({ length: 40 }, (_, i) => u(`unit-${i}`));
const GROUPS = [g('patrol'), g('north'), g('south'), g('east')];

let m: Muster;
let base: string;
let operator: string;

before(async () => {
  m = await Muster.start({
    negotiationTimeoutSeconds: 1,
    systems: [
      {
        name: 'police',
        domain: D,
        http: { host: '127.0.0.1', port: await freePort() },
        secret: secret(),
        users: [
          { id: u('dispatch'), services: ['mcptt'], n2: 10, groups: GROUPS, remoteChange: true },
          { id: u('alice'), services: ['mcptt'], n2: 3, groups: GROUPS },
          { id: u('carol'), services: ['mcptt'], n2: 3, groups: GROUPS },
          { id: u('dave'), services: ['mcptt'], n2: 3, groups: GROUPS },
          ...CROWD.map((id) => ({ id, services: ['mcptt'], n2: 2, groups: GROUPS })),
        ],
        groups: GROUPS.map((id) => ({ id, services: ['mcptt'], members: [u('dispatch'), u('alice'), u('carol'), u('dave'), ...CROWD] })),
      },
    ],
  });
  base = m.url('police');
  operator = await m.operatorToken();
});

after(async () => {
  await m?.stop();
});

async function restart(): Promise<void> {
  await m.kill();
  await m.spawn();
  assert.equal(m.url('police'), base, 'restarted on the same address');
}

async function stored(user: string): Promise<string[]> {
  const r = await call('GET', `${base}/mc/v1/users/${enc(user)}/affiliations?service=mcptt`, operator);
  assert.equal(r.status, 200, JSON.stringify(r.body));
  return (r.body as { affiliations: { groupId: string }[] }).affiliations.map((a) => a.groupId).sort();
}

async function gmsMembers(groupId: string): Promise<string[]> {
  const r = await call('GET', `${base}/gms/v1/groups/${enc(groupId)}/affiliations?service=mcptt`, operator);
  assert.equal(r.status, 200, JSON.stringify(r.body));
  return (r.body as { members: { mcServiceId: string }[] }).members.map((x) => x.mcServiceId).sort();
}

/** The server's affiliated members of a group (its records), via the MC face with an operator credential. */
async function serverMembers(groupId: string): Promise<string[]> {
  const r = await call('GET', `${base}/mc/v1/groups/${enc(groupId)}/members?service=mcptt`, operator);
  assert.equal(r.status, 200, JSON.stringify(r.body));
  return (r.body as { members: { mcServiceId: string }[] }).members.map((x) => x.mcServiceId).sort();
}

/** Polls (bounded: 50 x 100 ms) until the GMS lists exactly the server's members for every group. */
async function assertGmsAgrees(): Promise<void> {
  let diff: string[] = [];
  for (let attempt = 0; attempt < 50; attempt += 1) {
    diff = [];
    for (const gid of GROUPS) {
      const [gms, server] = [await gmsMembers(gid), await serverMembers(gid)];
      if (JSON.stringify(gms) !== JSON.stringify(server)) diff.push(`${gid}: gms [${gms.join(' ')}] server [${server.join(' ')}]`);
    }
    if (diff.length === 0) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.fail(`GMS member lists differ from the server's records:\n${diff.join('\n')}`);
}

/** Reads the user's SSE stream until an event matches (bounded by `ms`), then closes it; returns all events read. */
async function readEvents(user: string, match: (e: SseEvent) => boolean, ms = 5000, lastEventId?: number): Promise<SseEvent[]> {
  const abort = new AbortController();
  const timer = setTimeout(() => abort.abort(), ms);
  const events: SseEvent[] = [];
  try {
    const res = await fetch(`${base}/mc/v1/events`, { headers: { authorization: `Bearer ${await m.token(user)}`, ...(lastEventId ? { 'last-event-id': String(lastEventId) } : {}) }, signal: abort.signal });
    assert.equal(res.status, 200);
    const decoder = new TextDecoder();
    let buf = '';
    for await (const chunk of res.body!) {
      buf += decoder.decode(chunk, { stream: true });
      let cut: number;
      while ((cut = buf.indexOf('\n\n')) >= 0) {
        const block = buf.slice(0, cut);
        buf = buf.slice(cut + 2);
        const field = (name: string): string | undefined => block.split('\n').find((l) => l.startsWith(`${name}: `))?.slice(name.length + 2);
        const id = field('id');
        if (id === undefined) continue;
        const e: SseEvent = { id: Number(id), type: field('event') ?? 'message', data: JSON.parse(field('data') ?? 'null') as SseEvent['data'] };
        events.push(e);
        if (match(e)) return events;
      }
    }
    assert.fail(`stream ended without the event: ${JSON.stringify(events)}`);
  } catch (e) {
    if (abort.signal.aborted) assert.fail(`no such event within ${ms} ms: ${JSON.stringify(events)}`);
    throw e;
  } finally {
    clearTimeout(timer);
    abort.abort();
  }
}

void describe('kill -9 and restart', () => {
  void test('an acknowledged affiliation is there after kill -9, checked right after the 200', async () => {
    const r = await call('POST', `${base}/mc/v1/affiliations`, await m.token(u('alice')), { mcServiceId: u('alice'), service: 'mcptt', groupIds: [g('patrol'), g('north')] });
    assert.equal(r.status, 200);
    assert.deepEqual((r.body as { status: GroupStatus[] }).status.map((s) => s.status), ['affiliated', 'affiliated']);
    await restart();
    assert.deepEqual(await stored(u('alice')), [g('north'), g('patrol')]);
  });

  void test('an acknowledged de-affiliation stays done after kill -9', async () => {
    const r = await call('POST', `${base}/mc/v1/deaffiliations`, await m.token(u('alice')), { mcServiceId: u('alice'), service: 'mcptt', groupIds: [g('north')] });
    assert.equal(r.status, 200);
    assert.equal((r.body as { status: GroupStatus[] }).status[0]!.status, 'deaffiliated');
    await restart();
    assert.deepEqual(await stored(u('alice')), [g('patrol')]);
  });

  void test('killed amid 40 concurrent requests: every answered affiliation survives, and the GMS outbox delivers after restart', async () => {
    const answered: { user: string; groups: string[] }[] = [];
    let resolveEnough: () => void = () => {};
    const enough = new Promise<void>((resolve) => (resolveEnough = resolve));
    const requests = CROWD.map(async (user, i) => {
      const groupIds = [GROUPS[i % 4]!, GROUPS[(i + 1) % 4]!];
      try {
        const r = await call('POST', `${base}/mc/v1/affiliations`, await m.token(user), { mcServiceId: user, service: 'mcptt', groupIds });
        if (r.status === 200) {
          const ok = (r.body as { status: GroupStatus[] }).status.filter((s) => s.status === 'affiliated').map((s) => s.groupId);
          assert.deepEqual(ok, groupIds, JSON.stringify(r.body));
          answered.push({ user, groups: groupIds });
          if (answered.length >= 10) resolveEnough();
        }
      } catch {
        /* cut off by the kill: no answer, no promise made */
      }
    });
    await Promise.race([enough, Promise.all(requests)]);
    await m.kill();
    await Promise.all(requests);
    const acknowledged = [...answered];
    assert.ok(acknowledged.length >= 10, `only ${acknowledged.length} answered`);
    await m.spawn();
    for (const a of acknowledged) assert.deepEqual(await stored(a.user), [...a.groups].sort(), `${a.user} lost an acknowledged affiliation`);
    // No request leaves half a request behind: a user has both groups or none.
    for (const [i, user] of CROWD.entries()) {
      const held = await stored(user);
      assert.ok(held.length === 0 || JSON.stringify(held) === JSON.stringify([GROUPS[i % 4]!, GROUPS[(i + 1) % 4]!].sort()), `${user}: ${held.join(' ')}`);
    }
    await assertGmsAgrees();

    // After the restart the outbox keeps delivering: new changes reach the GMS too.
    const last = CROWD[CROWD.length - 1]!;
    const d = await call('POST', `${base}/mc/v1/deaffiliations`, await m.token(last), { mcServiceId: last, service: 'mcptt', groupIds: GROUPS });
    assert.equal(d.status, 200);
    const a = await call('POST', `${base}/mc/v1/affiliations`, await m.token(last), { mcServiceId: last, service: 'mcptt', groupIds: [g('east')] });
    assert.equal(a.status, 200);
    await assertGmsAgrees();
    assert.ok((await gmsMembers(g('east'))).includes(last));
  });

  void test('a mandatory change for an offline target stands across kill -9 and reaches the target when it connects', async () => {
    const token = await m.token(u('dispatch'));
    const r = await call('POST', `${base}/mc/v1/affiliation-changes`, token, { mcServiceId: u('dispatch'), service: 'mcptt', mode: 'mandatory', targets: [u('carol')], affiliate: [g('south')] });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    const changeId = (r.body as { id: string }).id;
    await restart();
    assert.deepEqual(await stored(u('carol')), [g('south')]);
    const events = await readEvents(u('carol'), (e) => e.type === 'affiliation-change' && e.data.id === changeId);
    assert.equal(events.at(-1)!.data.mode, 'mandatory');
    const ack = await call('POST', `${base}/mc/v1/affiliation-changes/${enc(changeId)}/answer`, await m.token(u('carol')), { accept: true });
    assert.equal(ack.status, 200, JSON.stringify(ack.body));
    assert.equal((ack.body as { state: string }).state, 'acknowledged');
  });

  void test('a negotiated change open at the crash is timed out after the restart: a late answer gets 409, nothing applied', async () => {
    const token = await m.token(u('dispatch'));
    // Client 1's request stays open until the answer or the timeout; the kill cuts it off.
    const pending = call('POST', `${base}/mc/v1/affiliation-changes`, token, { mcServiceId: u('dispatch'), service: 'mcptt', mode: 'negotiated', targets: [u('dave')], affiliate: [g('east')] }).catch((e: unknown) => e);
    const events = await readEvents(u('dave'), (e) => e.type === 'affiliation-change', 3000);
    const change = events.at(-1)!.data;
    assert.equal(change.mode, 'negotiated');
    await restart();
    await pending;
    // Wait out the deadline the change carries (at most the 1 s negotiation time), then answer late.
    const left = Date.parse(change.deadline!) - Date.now();
    assert.ok(left < 1500, `deadline ${change.deadline} is too far`);
    if (left > -200) await new Promise((r) => setTimeout(r, left + 200));
    const late = await call('POST', `${base}/mc/v1/affiliation-changes/${enc(change.id!)}/answer`, await m.token(u('dave')), { accept: true });
    assert.equal(late.status, 409, JSON.stringify(late.body));
    assert.deepEqual(await stored(u('dave')), []);
  });
});

// An operator's change stored while the fabric cannot carry it (this instance cut off from NATS, or its NATS
// connection closed): the change is stored, so the answer is never a failure but 202 naming the live instances it is
// not in force at, with a warning that the fabric could not be told; bounded, without waiting for confirmations that
// cannot come. Cut off, the instances are asked to read the store again once NATS is back. Two real instances
// (McSystem) on a fresh PostgreSQL database and a NATS server of the test's own; instance A reaches NATS through a
// TCP relay the test cuts, B stays connected.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { NatsFabric } from '../../src/adapters/nats-fabric.ts';
import { call } from '../support/harness.ts';
import { alice, north, patrol, twoInstances } from '../support/fabric-instances.ts';
import { until } from '../support/until.ts';

const enc = encodeURIComponent;

/** An operator's answer, as far as these tests read it. */
interface Answer {
  n2?: number;
  notConfirmed?: string[];
  warning?: string;
}

async function send(method: string, url: string, token: string, body?: unknown): Promise<{ status: number; body: Answer }> {
  const r = await call(method, url, token, body);
  return { status: r.status, body: r.body as Answer };
}

const profile = (n2: number): unknown => ({ services: ['mcptt'], n2, groups: [patrol, north] });

void test('A cut off from NATS: its changes are answered 202 naming B, "could not be told", at once; once back, B is asked and reads the store', { timeout: 60_000 }, async () => {
  await twoInstances(async ({ a, aUrl, bUrl, bName, relay, op }) => {
    relay.cut(true);
    await until(() => relay.refused() > 0, 'A noticed the loss and tries to reconnect');
    // Cut off, A does not learn the other instances' changes: its health says so instead of "up", still 200 (NATS
    // down cuts off every instance: none is taken out of a load balancer for it).
    const cutOff = await a.health({ partners: false });
    assert.deepEqual([cutOff.status, cutOff.fabric], ['ok', 'reconnecting']);

    const started = Date.now();
    const put = await send('PUT', `${aUrl}/admin/v1/users/${enc(alice)}`, op, profile(1));
    const took = Date.now() - started;
    assert.equal(put.status, 202, JSON.stringify(put.body));
    assert.equal(put.body.n2, 1, 'the profile is answered as stored');
    assert.deepEqual(put.body.notConfirmed, [bName]);
    assert.match(put.body.warning ?? '', /could not be told/);
    assert.ok(took < 900, `answered without waiting for confirmations that cannot come (${took} ms)`);

    const del = await send('DELETE', `${aUrl}/gms/v1/groups/${enc(north)}`, op);
    assert.equal(del.status, 202, JSON.stringify(del.body));
    assert.deepEqual(del.body, { id: north, deleted: true, notConfirmed: [bName], warning: del.body.warning });
    assert.match(del.body.warning ?? '', /could not be told/);

    assert.equal((await a.server.store.allProfiles()).find((p) => p.id === alice)?.n2, 1, 'stored');
    assert.equal((await send('GET', `${bUrl}/admin/v1/users/${enc(alice)}`, op)).body.n2, 3, 'B was not told: it still serves the old profile');
    assert.deepEqual((await a.health({ partners: false })).instancesBehind, [bName]);

    relay.cut(false); // NATS is back for A: A asks B to read the store again
    await until(async () => (await send('GET', `${bUrl}/admin/v1/users/${enc(alice)}`, op)).body.n2 === 1, 'B read the store again', 20_000);
    // B reads its profiles and its policies side by side: the deletion may land a moment after the profile.
    await until(async () => (await send('GET', `${bUrl}/gms/v1/groups/${enc(north)}`, op)).status === 404, 'B read the deletion too', 20_000);
    await until(async () => (await a.health({ partners: false })).instancesBehind?.length === 0, 'B confirmed to A', 20_000);
    const back = await a.health({ partners: false });
    assert.deepEqual([back.status, back.fabric], ['ok', 'up']);
  });
});

void test("A's NATS connection closed: a change is answered 202 naming B, \"could not be told\", not 500", { timeout: 60_000 }, async () => {
  await twoInstances(async ({ a, aUrl, bName, op }) => {
    // As at shutdown, or once the client gave up: A's fabric connection is closed for good.
    await (a as unknown as { fabric: NatsFabric }).fabric.close();

    const started = Date.now();
    const put = await send('PUT', `${aUrl}/admin/v1/users/${enc(alice)}`, op, profile(2));
    assert.equal(put.status, 202, JSON.stringify(put.body));
    assert.deepEqual(put.body.notConfirmed, [bName]);
    assert.match(put.body.warning ?? '', /could not be told/);
    assert.ok(Date.now() - started < 900, 'bounded');
    assert.equal((await a.server.store.allProfiles()).find((p) => p.id === alice)?.n2, 2, 'stored');

    const del = await send('DELETE', `${aUrl}/admin/v1/users/${enc(alice)}`, op);
    assert.equal(del.status, 202, JSON.stringify(del.body));
    assert.deepEqual(del.body.notConfirmed, [bName]);
    assert.match(del.body.warning ?? '', /could not be told/);
  });
});

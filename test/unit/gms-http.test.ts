// The remote GMS adapter (src/adapters/gms-http.ts) against a stand-in GMS on loopback (node:http) that can answer,
// stay silent, garble, or hold its subscription open without a byte: cache and absence, one fetch per group, the
// subscription's events (never back in time), bounded waits, status updates in order and in chunks, the idle check.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import pino from 'pino';
import { HttpGroupManagement } from '../../src/adapters/gms-http.ts';
import type { GroupPolicy } from '../../src/domain/group-policy.ts';
import { parseMcUri, type McUri } from '../../src/domain/ids.ts';
import type { GmsStatusUpdate } from '../../src/ports/store.ts';

const CREDENTIAL = 'server-credential-for-tests';
/** Generous for a loaded machine: a fetch that merely runs slow must not count as the GMS not answering. */
const TIMEOUT_MS = 1000;
const g = (name: string): McUri => parseMcUri(`sip:${name}@police.example`);
const alice = parseMcUri('sip:alice@police.example');
const doc = (name: string, revision = 1, over: Partial<GroupPolicy> = {}): GroupPolicy => ({ id: g(name), services: ['mcptt'], enabled: true, members: [alice], deaffiliationForbidden: false, revision, ...over });

/** The stand-in GMS: what it holds, how it answers, and what it was asked. */
const gms = {
  groups: new Map<string, GroupPolicy>(),
  mode: 'ok' as 'ok' | 'silent' | 'garbled' | 'fail',
  /** `silent-stream`: the subscription is accepted and then never written to. */
  streamMode: 'ok' as 'ok' | 'silent-stream',
  gets: [] as string[],
  posts: [] as { updates: GmsStatusUpdate[] }[],
  subscriptions: 0,
  streams: [] as ServerResponse[],
};
let server: Server;
let url: string;
const ports: HttpGroupManagement[] = [];

function answer(req: IncomingMessage, res: ServerResponse, body: string): void {
  if (req.headers.authorization !== `Bearer ${CREDENTIAL}`) return void res.writeHead(401).end('{"error":{"code":"unauthenticated","message":"no"}}');
  if (gms.mode === 'silent') return; // never answers
  if (gms.mode === 'garbled') return void res.writeHead(200, { 'content-type': 'application/json' }).end('{"id": 42');
  if (gms.mode === 'fail') return void res.writeHead(500).end('{"error":{"code":"internal","message":"boom"}}');
  const path = decodeURIComponent(req.url ?? '');
  if (req.method === 'GET' && path === '/gms/v1/policy/events') {
    gms.subscriptions += 1;
    res.writeHead(200, { 'content-type': 'text/event-stream' });
    if (gms.streamMode === 'ok') res.write(': subscribed\n\n');
    else res.flushHeaders(); // the answer has begun, and then nothing more comes
    gms.streams.push(res);
    return;
  }
  const group = /^\/gms\/v1\/groups\/(.+)$/.exec(path)?.[1];
  if (req.method === 'GET' && group) {
    gms.gets.push(group);
    const found = gms.groups.get(group);
    return void (found ? res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(found)) : res.writeHead(404).end('{"error":{"code":"not-found","message":"no"}}'));
  }
  if (req.method === 'POST' && path === '/gms/v1/affiliation-status') {
    const parsed = JSON.parse(body) as { updates: GmsStatusUpdate[] };
    gms.posts.push(parsed);
    return void res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ applied: parsed.updates.length }));
  }
  res.writeHead(404).end();
}

before(async () => {
  server = createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => (req.url === '/healthz' ? res.writeHead(200).end('{}') : answer(req, res, body)));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  url = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
});

after(async () => {
  ports.forEach((p) => p.close());
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
});

function fresh(opts: { subscriptionIdleMs?: number } = {}): HttpGroupManagement {
  gms.groups.clear();
  gms.mode = 'ok';
  gms.streamMode = 'ok';
  gms.gets = [];
  gms.posts = [];
  gms.subscriptions = 0;
  gms.streams.forEach((s) => s.destroy());
  gms.streams = [];
  const port = new HttpGroupManagement({ url, credential: CREDENTIAL, timeoutMs: TIMEOUT_MS }, pino({ level: 'silent' }), opts);
  ports.push(port);
  return port;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
async function until(what: string, ok: () => boolean, ms = 3000): Promise<void> {
  const end = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > end) assert.fail(`${what}: not within ${ms} ms`);
    await sleep(10);
  }
}
/** Sends an event on every open subscription; `store` also makes it the GMS's state (as a real change would). */
function event(type: 'group-changed' | 'group-deleted', data: GroupPolicy | { id: string; revision?: number }, store = true): void {
  if (store && type === 'group-changed') gms.groups.set(data.id, data as GroupPolicy);
  if (store && type === 'group-deleted') gms.groups.delete(data.id);
  gms.streams.forEach((s) => s.write(`event: ${type}\ndata: ${JSON.stringify(data)}\n\n`));
}

void test('a fetched policy is cached (one GET for many requests at once); a group the GMS lacks is absent, not unavailable', async () => {
  const port = fresh();
  gms.groups.set(g('patrol'), doc('patrol'));
  await Promise.all([port.ensurePolicies([g('patrol'), g('ghost')]), port.ensurePolicies([g('patrol')]), port.ensurePolicies([g('patrol')])]);
  assert.deepEqual(port.policyOf(g('patrol')), doc('patrol'));
  assert.equal(port.policyOf(g('ghost')), undefined);
  assert.equal(port.unavailable(g('ghost')), false);
  assert.equal(port.unavailable(g('patrol')), false);
  await port.ensurePolicies([g('patrol')]);
  assert.deepEqual(gms.gets.sort(), [g('ghost'), g('patrol')].sort());
});

void test('the subscription: a newer document replaces the cached one and is announced, an older one never does, a deletion removes it', async () => {
  const port = fresh();
  gms.groups.set(g('patrol'), doc('patrol', 3));
  await port.ensurePolicies([g('patrol')]);
  const heard: McUri[] = [];
  port.onPolicyChange((id) => heard.push(id));
  port.start();
  await until('subscribed', () => gms.streams.length === 1);
  event('group-changed', doc('patrol', 4, { enabled: false }));
  await until('newer revision applied', () => port.policyOf(g('patrol'))?.revision === 4);
  assert.equal(port.policyOf(g('patrol'))?.enabled, false);
  event('group-changed', doc('patrol', 2), false); // late, out of order: the GMS itself is at 4
  event('group-changed', { id: 'not a uri', revision: 9 }, false);
  event('group-deleted', { id: g('patrol') });
  await until('deleted', () => port.policyOf(g('patrol')) === undefined);
  assert.deepEqual(heard, [g('patrol'), g('patrol')]);
});

void test('a GMS that does not answer: the group is unavailable within the timeout, then at once while it is known down; the cache serves', async () => {
  const port = fresh();
  gms.groups.set(g('patrol'), doc('patrol'));
  await port.ensurePolicies([g('patrol')]);
  gms.mode = 'silent';
  let t0 = Date.now();
  await port.ensurePolicies([g('patrol'), g('north')]);
  assert.ok(Date.now() - t0 < TIMEOUT_MS + 500, `waited ${Date.now() - t0} ms`);
  assert.equal(port.unavailable(g('north')), true);
  assert.deepEqual(port.policyOf(g('patrol')), doc('patrol'));
  assert.equal(port.unavailable(g('patrol')), false);
  const asked = gms.gets.length;
  t0 = Date.now();
  await port.ensurePolicies([g('south')]);
  assert.ok(Date.now() - t0 < TIMEOUT_MS, `waited ${Date.now() - t0} ms while the GMS was known down`);
  assert.equal(port.unavailable(g('south')), true);
  assert.equal(gms.gets.length, asked, 'no request while the GMS is known down');
  // Back: the next fetch after the hold answers, and the group is no longer unavailable.
  gms.mode = 'ok';
  gms.groups.set(g('north'), doc('north'));
  await sleep(1100);
  await port.ensurePolicies([g('north')]);
  assert.equal(port.unavailable(g('north')), false);
  assert.deepEqual(port.policyOf(g('north')), doc('north'));
});

void test('a garbled or failing answer is unavailable, never cached and never taken as "no such group"', async () => {
  for (const mode of ['garbled', 'fail'] as const) {
    const port = fresh();
    gms.groups.set(g('patrol'), doc('patrol'));
    gms.mode = mode;
    await port.ensurePolicies([g('patrol')]);
    assert.equal(port.policyOf(g('patrol')), undefined, mode);
    assert.equal(port.unavailable(g('patrol')), true, mode);
  }
});

void test('status updates go in order, at most 1,000 per request, and a failed delivery rejects (the outbox keeps them)', async () => {
  const port = fresh();
  const updates: GmsStatusUpdate[] = Array.from({ length: 2500 }, (_, i) => ({ seq: i + 1, userId: alice, groupId: g('patrol'), service: 'mcptt', status: i % 2 ? 'deaffiliated' : 'affiliated' }));
  await port.sendStatusUpdates(updates);
  assert.deepEqual(gms.posts.map((p) => p.updates.length), [1000, 1000, 500]);
  assert.deepEqual(gms.posts.flatMap((p) => p.updates.map((u) => u.seq)), updates.map((u) => u.seq));
  gms.mode = 'fail';
  await assert.rejects(port.sendStatusUpdates(updates.slice(0, 1)), /500/);
  gms.mode = 'silent';
  const t0 = Date.now();
  await assert.rejects(port.sendStatusUpdates(updates.slice(0, 1)));
  assert.ok(Date.now() - t0 < TIMEOUT_MS + 500, `waited ${Date.now() - t0} ms`);
});

void test('a subscription that stays silent is taken as dead and made again; what changed meanwhile is read again', async () => {
  const port = fresh({ subscriptionIdleMs: 300 });
  gms.streamMode = 'silent-stream';
  gms.groups.set(g('patrol'), doc('patrol', 1));
  await port.ensurePolicies([g('patrol')]);
  port.start();
  await until('first subscription', () => gms.subscriptions === 1);
  // Changed at the GMS without an event (as if it was sent on a connection that is gone).
  gms.groups.set(g('patrol'), doc('patrol', 2, { members: [] }));
  await until('subscribed again after the silence', () => gms.subscriptions >= 2);
  await until('the cached group read again', () => port.policyOf(g('patrol'))?.revision === 2);
});

void test('health: up while the GMS answers, down when it is gone (within the probe bound)', async () => {
  const port = fresh();
  assert.equal(await port.health(), 'up');
  const dead = new HttpGroupManagement({ url: 'http://127.0.0.1:1', credential: CREDENTIAL, timeoutMs: TIMEOUT_MS }, pino({ level: 'silent' }));
  const t0 = Date.now();
  assert.equal(await dead.health(), 'down');
  assert.ok(Date.now() - t0 < 2500);
});

// Issue 7: a client event stream that never reads. The server buffers at most about 1 MiB for it, then drops that
// client; it does not grow without bound, and everyone else is served as before.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { Muster, call, freePort, secret } from '../support/harness.ts';

const D = 'slow.example';
const u = (n: string): string => `sip:${n}@${D}`;
const GROUPS = Array.from({ length: 100 }, (_, j) => `sip:g${j}@${D}`);
let m: Muster;

before(async () => {
  m = await Muster.start(
    {
      systems: [
        {
          name: 'slow',
          domain: D,
          http: { port: await freePort() },
          secret: secret(),
          users: [
            { id: u('dispatch'), services: ['mcptt'], n2: 100, groups: GROUPS, remoteChange: true },
            { id: u('sleepy'), services: ['mcptt'], n2: 100, groups: GROUPS },
            { id: u('awake'), services: ['mcptt'], n2: 100, groups: GROUPS },
          ],
          groups: GROUPS.map((id) => ({ id, services: ['mcptt'], members: [u('dispatch'), u('sleepy'), u('awake')] })),
        },
      ],
    },
    undefined,
    'sqlite',
  );
});

after(async () => {
  await m?.stop();
});

void test('an event stream that never reads is dropped once its backlog passes the bound; the server serves others', async () => {
  const url = new URL(m.url());
  const token = await m.token(u('sleepy'));
  // A raw connection that reads nothing after the request: the kernel's buffers fill, then the server's.
  const socket = connect(Number(url.port), url.hostname);
  await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
  socket.write(`GET /mc/v1/events HTTP/1.1\r\nHost: ${url.host}\r\nAuthorization: Bearer ${token}\r\nAccept: text/event-stream\r\n\r\n`);
  socket.pause();

  // Large events for the sleeping user: mandatory changes of 100 groups, joining and leaving in turn.
  const dispatch = await m.token(u('dispatch'));
  const deadline = Date.now() + 40_000;
  let changes = 0;
  for (; changes < 600 && Date.now() < deadline; changes++) {
    const body = { mcServiceId: u('dispatch'), service: 'mcptt', mode: 'mandatory', targets: [u('sleepy')], [changes % 2 === 0 ? 'affiliate' : 'deaffiliate']: GROUPS };
    const res = await call('POST', `${m.url()}/mc/v1/affiliation-changes`, dispatch, body);
    assert.equal(res.status, 200, JSON.stringify(res.body));
  }

  // Now read what was buffered: the stream must end (dropped by the server), and what arrived is bounded.
  let received = 0;
  const ended = await new Promise<boolean>((resolve) => {
    const t = setTimeout(() => resolve(false), 15_000);
    socket.on('data', (c: Buffer) => (received += c.length));
    socket.on('close', () => {
      clearTimeout(t);
      resolve(true);
    });
    socket.on('error', () => undefined);
    socket.resume();
  });
  socket.destroy();
  assert.ok(ended, `the stream was not dropped after ${changes} large changes (${received} bytes read)`);
  assert.ok(received < 64 * 1024 * 1024, `received ${received} bytes: the backlog was not bounded`);

  // Everyone else is served: another user's request and stream work normally.
  const awake = await m.token(u('awake'));
  const res = await call('POST', `${m.url()}/mc/v1/affiliations`, awake, { mcServiceId: u('awake'), service: 'mcptt', groupIds: [GROUPS[0]!] });
  assert.equal(res.status, 200);
  assert.equal((await call('GET', `${m.url()}/healthz`, undefined)).status, 200);
  // The sleeping user's changes stand: the last change (an even count leaves it affiliated to none or all).
  const held = await call('GET', `${m.url()}/mc/v1/users/${encodeURIComponent(u('sleepy'))}/affiliations?service=mcptt`, await m.token(u('sleepy')));
  assert.equal((held.body as { affiliations: unknown[] }).affiliations.length, changes % 2 === 1 ? 100 : 0);
});

void test('a user holds at most 16 event streams at once: the 17th is 429 with Retry-After; closing one makes room', async () => {
  const { request } = await import('node:http');
  const token = await m.token(u('awake'));
  /** Opens a stream and resolves with its status (the response stays open until closed). */
  const open = (as = token): Promise<{ status: number; retryAfter: string | undefined; close: () => void }> =>
    new Promise((resolve, reject) => {
      const req = request(`${m.url()}/mc/v1/events`, { headers: { authorization: `Bearer ${as}` } }, (res) => {
        res.resume();
        resolve({ status: res.statusCode ?? 0, retryAfter: res.headers['retry-after'], close: () => req.destroy() });
      });
      req.on('error', reject);
      req.end();
    });
  const streams = [];
  for (let i = 0; i < 16; i++) streams.push(await open());
  try {
    assert.deepEqual(streams.map((s) => s.status), Array(16).fill(200));
    const over = await open();
    over.close();
    assert.deepEqual([over.status, over.retryAfter], [429, '5']);
    // Another user is not affected.
    const other = await open(await m.token(u('dispatch')));
    other.close();
    assert.equal(other.status, 200);
    streams.shift()!.close();
    let again = { status: 0, retryAfter: undefined as string | undefined, close: () => undefined as void };
    for (let i = 0; i < 50 && again.status !== 200; i++) {
      await new Promise((r) => setTimeout(r, 20));
      again = await open();
      if (again.status !== 200) again.close();
    }
    streams.push(again);
    assert.equal(again.status, 200, 'room again once one closed');
  } finally {
    streams.forEach((s) => s.close());
  }
});

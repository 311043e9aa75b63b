// The SDK's request shapes and error mapping, against a small real HTTP server standing in for the MC system.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type ServerResponse, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { MusterClient, MusterClientError, OperatorClient } from '../../src/client/muster-client.ts';

interface Seen {
  method: string;
  url: string;
  headers: IncomingMessage['headers'];
  body: unknown;
}
type Handler = (req: Seen, res: ServerResponse) => void;

/** A server on 127.0.0.1, port 0, that records each request and answers with the current handler. */
async function fakeServer(): Promise<{ url: string; seen: Seen[]; answer: (h: Handler) => void; close: () => Promise<void> }> {
  const seen: Seen[] = [];
  let handler: Handler = (_req, res) => json(res, 200, {});
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const text = Buffer.concat(chunks).toString('utf8');
      const s: Seen = { method: req.method ?? '', url: req.url ?? '', headers: req.headers, body: text ? (JSON.parse(text) as unknown) : undefined };
      seen.push(s);
      handler(s, res);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    seen,
    answer: (h) => (handler = h),
    close: () => {
      server.closeAllConnections();
      return new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

function json(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
}

const alice = 'sip:alice@police.example';
const patrol = 'sip:patrol@police.example';

void describe('MusterClient requests', { timeout: 10_000 }, () => {
  let srv: Awaited<ReturnType<typeof fakeServer>>;
  let client: MusterClient;
  before(async () => {
    srv = await fakeServer();
    client = new MusterClient({ server: srv.url + '/', token: 'tok-123', timeoutMs: 2000 });
  });
  after(() => srv.close());

  void test('affiliate posts the affiliation request with the bearer credential and returns the response', async () => {
    const response = { mcServiceId: alice, service: 'mcptt', groupIds: [patrol], status: [{ groupId: patrol, status: 'affiliated' }] };
    srv.answer((_req, res) => json(res, 200, response));
    const got = await client.affiliate({ mcServiceId: alice, service: 'mcptt', groupIds: [patrol] });
    assert.deepEqual(got, response);
    const req = srv.seen.at(-1)!;
    assert.equal(req.method, 'POST');
    assert.equal(req.url, '/mc/v1/affiliations');
    assert.equal(req.headers.authorization, 'Bearer tok-123');
    assert.match(req.headers['content-type'] ?? '', /^application\/json/);
    assert.deepEqual(req.body, { mcServiceId: alice, service: 'mcptt', groupIds: [patrol] });
  });

  void test('deaffiliate, change and answerChange use their paths and bodies', async () => {
    await client.deaffiliate({ mcServiceId: alice, service: 'mcdata', groupIds: [patrol] });
    assert.deepEqual([srv.seen.at(-1)!.method, srv.seen.at(-1)!.url], ['POST', '/mc/v1/deaffiliations']);

    const change = { mcServiceId: alice, service: 'mcptt' as const, mode: 'negotiated' as const, targets: ['sip:bob@police.example'], affiliate: [patrol] };
    await client.change(change);
    assert.equal(srv.seen.at(-1)!.url, '/mc/v1/affiliation-changes');
    assert.deepEqual(srv.seen.at(-1)!.body, change);

    srv.answer((_req, res) => json(res, 200, { id: 'c/1', accepted: true }));
    assert.deepEqual(await client.answerChange('c/1', true), { id: 'c/1', accepted: true });
    assert.equal(srv.seen.at(-1)!.url, '/mc/v1/affiliation-changes/c%2F1/answer');
    assert.deepEqual(srv.seen.at(-1)!.body, { accept: true });
  });

  void test('affiliationsOf and membersOf encode the ID and pass the service', async () => {
    await client.affiliationsOf(alice, 'mcvideo');
    assert.equal(srv.seen.at(-1)!.method, 'GET');
    assert.equal(srv.seen.at(-1)!.url, '/mc/v1/users/sip%3Aalice%40police.example/affiliations?service=mcvideo');
    assert.equal(srv.seen.at(-1)!.body, undefined);
    await client.membersOf(patrol);
    assert.equal(srv.seen.at(-1)!.url, '/mc/v1/groups/sip%3Apatrol%40police.example/members');
  });

  void test("a refusal becomes MusterClientError with the server's status, code and message", async () => {
    srv.answer((_req, res) => json(res, 403, { error: { code: 'forbidden', message: "mcServiceId is not the credential's user" } }));
    await assert.rejects(client.affiliate({ mcServiceId: 'sip:bob@police.example', service: 'mcptt', groupIds: [patrol] }), (e: unknown) => {
      assert.ok(e instanceof MusterClientError);
      assert.deepEqual([e.status, e.code, e.message], [403, 'forbidden', "mcServiceId is not the credential's user"]);
      return true;
    });
  });

  void test('an error body of another shape still gives status and a readable message', async () => {
    srv.answer((_req, res) => {
      res.writeHead(502, { 'content-type': 'text/plain' });
      res.end('bad gateway from proxy');
    });
    await assert.rejects(client.membersOf(patrol), { name: 'MusterClientError', status: 502, code: 'http-502', message: 'bad gateway from proxy' });
  });

  void test('a 2xx body that is not JSON is reported, an empty one is undefined', async () => {
    srv.answer((_req, res) => {
      res.writeHead(200);
      res.end('<html>');
    });
    await assert.rejects(client.membersOf(patrol), { status: 200, code: 'bad-response' });
    srv.answer((_req, res) => {
      res.writeHead(204);
      res.end();
    });
    assert.equal(await client.answerChange('x', false), undefined);
  });

  void test('a server that does not answer in time gives status 0, code timeout', async () => {
    srv.answer(() => undefined); // never answers
    const slow = new MusterClient({ server: srv.url, token: 't', timeoutMs: 150 });
    const started = Date.now();
    await assert.rejects(slow.membersOf(patrol), { status: 0, code: 'timeout' });
    assert.ok(Date.now() - started < 2000);
  });

  void test("the caller's own abort is passed on, not turned into a server error", async () => {
    srv.answer(() => undefined);
    const ac = new AbortController();
    setTimeout(() => ac.abort(new Error('stop')), 50);
    await assert.rejects(client.membersOf(patrol, undefined, { signal: ac.signal }), { message: 'stop' });
  });
});

void test('a server that is not there gives status 0, code unreachable, naming the URL', { timeout: 10_000 }, async () => {
  const srv = await fakeServer();
  const url = srv.url;
  await srv.close(); // the port is free now: nothing listens
  const client = new MusterClient({ server: url, token: 't', timeoutMs: 2000 });
  await assert.rejects(client.affiliate({ mcServiceId: alice, service: 'mcptt', groupIds: [patrol] }), (e: unknown) => {
    assert.ok(e instanceof MusterClientError);
    assert.equal(e.status, 0);
    assert.equal(e.code, 'unreachable');
    assert.ok(e.message.includes(url), e.message);
    return true;
  });
});

void test('a server that is not a URL is refused at construction', () => {
  assert.throws(() => new MusterClient({ server: 'localhost:8080', token: 't' }), { code: 'bad-request' });
  assert.throws(() => new MusterClient({ server: 'not a url', token: 't' }), MusterClientError);
});

void test('OperatorClient uses /admin/v1/users and /gms/v1/groups', { timeout: 10_000 }, async () => {
  const srv = await fakeServer();
  try {
    const op = new OperatorClient({ server: srv.url, token: 'op', timeoutMs: 2000 });
    const profile = { id: alice, services: ['mcptt' as const], n2: 3, groups: [patrol], remoteChange: false as const };
    await op.putUser(profile);
    await op.getUser(alice);
    await op.deleteUser(alice);
    const group = { id: patrol, services: ['mcptt' as const], enabled: true, members: [alice], deaffiliationForbidden: false };
    await op.putGroup(group);
    await op.getGroup(patrol);
    const u = '/admin/v1/users/sip%3Aalice%40police.example';
    const g = '/gms/v1/groups/sip%3Apatrol%40police.example';
    assert.deepEqual(
      srv.seen.map((s) => `${s.method} ${s.url}`),
      [`PUT ${u}`, `GET ${u}`, `DELETE ${u}`, `PUT ${g}`, `GET ${g}`],
    );
    assert.deepEqual(srv.seen[0]!.body, profile);
    assert.deepEqual(srv.seen[3]!.body, group);
    assert.equal(srv.seen[0]!.headers.authorization, 'Bearer op');
  } finally {
    await srv.close();
  }
});

void test("OperatorClient reads /healthz (a 503's report is an answer, an error body is not) and pages /admin/v1/audit with its filters", { timeout: 10_000 }, async () => {
  const srv = await fakeServer();
  try {
    const op = new OperatorClient({ server: srv.url, token: 'op', timeoutMs: 2000 });
    const degraded = { status: 'degraded', system: 'police', store: 'sqlite:down', gms: 'up', fabric: 'none', partners: {} };
    srv.answer((_req, res) => json(res, 503, degraded));
    assert.deepEqual(await op.health(), degraded);
    srv.answer((_req, res) => json(res, 503, { error: { code: 'unavailable', message: 'shed' } }));
    await assert.rejects(op.health(), { status: 503, code: 'unavailable', message: 'shed' });
    srv.answer((_req, res) => json(res, 200, { entries: [], next: null }));
    assert.deepEqual(await op.audit({ subject: 'operator', since: '2025-01-31T00:00:00Z', limit: 5, after: 7 }), { entries: [], next: null });
    await op.audit();
    assert.deepEqual(
      srv.seen.map((s) => `${s.method} ${s.url}`),
      ['GET /healthz', 'GET /healthz', 'GET /admin/v1/audit?subject=operator&since=2025-01-31T00%3A00%3A00Z&limit=5&after=7', 'GET /admin/v1/audit'],
    );
  } finally {
    await srv.close();
  }
});

// The partner adapter's side of a re-synchronisation page, against a stand-in partner on loopback: a 429 goes back to
// the procedure with its Retry-After (the procedure reads the page again before it resends); an answer that goes past
// the page, or reports missing a record the page did not list, is refused as malformed (a partner cannot make the
// primary ask for anything it did not hold). A 503 marked `processed: false` (a full intermediate node, a host shedding
// load) is refused for now like a 429, Retry-After and all; a 508 relay loop is told apart, and /healthz says so.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import pino from 'pino';
import type { McUri } from '../../src/domain/ids.ts';
import { HttpPartnerServers } from '../../src/adapters/partner-http.ts';
import type { ResyncPage } from '../../src/ports/partner.ts';
import type { ResyncKey } from '../../src/domain/decisions/partner-resync.ts';

const key = (u: string, g: string) => ({ userId: `sip:${u}@police.example` as McUri, service: 'mcptt' as const, groupId: `sip:${g}@fire.example` as McUri });
const wire = (k: ResyncKey) => ({ mcServiceId: k.userId, service: k.service, groupId: k.groupId });

/** What the stand-in answers next: one queued answer per request. */
let answers: { status: number; body: unknown; headers?: Record<string, string>; raw?: string }[] = [];
const seen: { at: number; body: unknown }[] = [];
let server: Server;
let partners: HttpPartnerServers;

before(async () => {
  server = createServer((req, res) => {
    // A health probe (GET /healthz): answered up, outside the queue of page answers.
    if (req.method === 'GET') return void res.writeHead(200, { 'content-type': 'application/json' }).end('{"status":"ok"}');
    let text = '';
    req.on('data', (c: Buffer) => (text += c.toString()));
    req.on('end', () => {
      seen.push({ at: Date.now(), body: JSON.parse(text) as unknown });
      const a = answers.shift() ?? { status: 500, body: { error: { code: 'internal', message: 'no answer queued' } } };
      res.writeHead(a.status, { 'content-type': a.raw === undefined ? 'application/json' : 'text/html', ...a.headers }).end(a.raw ?? JSON.stringify(a.body));
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
  partners = new HttpPartnerServers('police.example', [{ domain: 'fire.example', url, nextHop: url, secret: 'shared', timeoutMs: 2000 }], pino({ level: 'silent' }), async () => new Map());
});

after(() => new Promise<void>((r) => server.close(() => r())));

const page: ResyncPage = { domain: 'fire.example', through: key('bob', 'rescue'), affiliations: [key('alice', 'engine'), key('bob', 'rescue')] };
const fine = { through: wire(key('bob', 'rescue')), removed: [], spared: [], missing: [wire(key('alice', 'engine'))], graceMs: 5000 };

void test('a 429 is answered rate-limited with its Retry-After as the host said it, whatever its body; the adapter sends each page once', async () => {
  seen.length = 0;
  answers = [{ status: 429, body: { error: { code: 'rate-limited', message: 'slow down' } }, headers: { 'retry-after': '2' } }, { status: 429, body: { error: { code: 'rate-limited', message: 'slow down' } }, headers: { 'retry-after': '60' } }, { status: 200, body: fine }];
  assert.deepEqual(await partners.resync(page), { kind: 'rate-limited', retryAfterMs: 2000 });
  assert.deepEqual(await partners.resync(page), { kind: 'rate-limited', retryAfterMs: 60_000 });
  // A proxy's 429 with an HTML page is a 429 all the same.
  answers.unshift({ status: 429, body: undefined, raw: '<html>Too Many Requests</html>', headers: { 'retry-after': '3' } });
  assert.deepEqual(await partners.resync(page), { kind: 'rate-limited', retryAfterMs: 3000 });
  assert.equal(seen.length, 3, 'the adapter sent each page once');
  assert.deepEqual(seen[0]!.body, { host: 'fire.example', through: wire(key('bob', 'rescue')), affiliations: page.affiliations.map(wire) });
  const r = await partners.resync(page);
  assert.equal(r.kind, 'answered', JSON.stringify(r));
  assert.deepEqual(r.kind === 'answered' ? r.answer.missing : [], [key('alice', 'engine')]);
});

void test('answers that would mislead the primary are refused as malformed', async () => {
  const bad: [string, unknown][] = [
    ['missing names a record the page did not list', { ...fine, missing: [wire(key('carol', 'engine'))] }],
    ['through past the page', { ...fine, through: wire(key('dave', 'engine')) }],
    ['no through for a page that has one', { ...fine, through: undefined }],
    ['no graceMs', { ...fine, graceMs: undefined }],
    ['a record with an unknown service', { ...fine, removed: [{ ...wire(key('alice', 'engine')), service: 'mcfax' }] }],
  ];
  for (const [what, body] of bad) {
    answers = [{ status: 200, body }];
    const r = await partners.resync(page);
    assert.equal(r.kind, 'failed', what);
    assert.match(r.kind === 'failed' ? r.why : '', /^malformed answer/, what);
  }
  answers = [{ status: 403, body: { error: { code: 'forbidden', message: 'no' } } }];
  const refused = await partners.resync(page);
  assert.equal(refused.kind, 'failed');
  assert.match(refused.kind === 'failed' ? refused.why : '', /^status 403/);
});

const refusedForNow = { error: { code: 'unavailable', message: 'next hop http://127.0.0.1:1 has 128 relayed requests in progress (maxRelaysInFlight); retry shortly', processed: false } };

void test('a 503 marked processed: false is refused for now with its Retry-After (1 s without one); an unmarked 503 failed', async () => {
  answers = [
    { status: 503, body: refusedForNow, headers: { 'retry-after': '3' } },
    { status: 503, body: refusedForNow },
    { status: 503, body: { error: { code: 'unavailable', message: 'next hop broke off its answer' } }, headers: { 'retry-after': '3' } },
  ];
  const marked = await partners.resync(page);
  assert.equal(marked.kind, 'unavailable', JSON.stringify(marked));
  assert.equal(marked.kind === 'unavailable' ? marked.retryAfterMs : 0, 3000);
  assert.match(marked.kind === 'unavailable' ? marked.why : '', /maxRelaysInFlight/);
  const noRetryAfter = await partners.resync(page);
  assert.equal(noRetryAfter.kind === 'unavailable' ? noRetryAfter.retryAfterMs : 0, 1000, JSON.stringify(noRetryAfter));
  assert.equal((await partners.resync(page)).kind, 'failed', 'a 503 without the marker may have been applied in part');
});

void test('a 508 relay loop is loop-detected with the chain the node named, and /healthz says so until an answer gets through', async () => {
  const loop = { error: { code: 'loop-detected', message: "relay loop towards fire.example: gateway.example -> coast.example -> gateway.example (Via); the partners' `via` routes to fire.example lead back to gateway.example", processed: false } };
  answers = [{ status: 508, body: loop }];
  const r = await partners.resync(page);
  assert.equal(r.kind, 'loop-detected', JSON.stringify(r));
  assert.match(r.kind === 'loop-detected' ? r.why : '', /gateway\.example -> coast\.example -> gateway\.example/);
  assert.deepEqual(await partners.health(), { 'fire.example': 'loop-detected' });
  answers = [{ status: 200, body: fine }];
  assert.equal((await partners.resync(page)).kind, 'answered');
  assert.deepEqual(await partners.health(), { 'fire.example': 'up' });
});

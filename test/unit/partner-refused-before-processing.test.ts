// The sender's side of a refusal made before any processing (partner-http.ts): an intermediate node that refused
// before it forwarded anything (its maxRelaysInFlight bound, a relay loop) or a host that shed the load says so with
// `processed: false` in the error, so nothing can have been applied and no undo is sent (it would only meet the same
// overloaded node). A 503 without it (a relay whose next hop failed mid-request) still may have been applied: undone.
// A stand-in partner on loopback answers as the test says; `heldNow` is read only when an undo is about to be sent.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import pino from 'pino';
import type { McUri } from '../../src/domain/ids.ts';
import { HttpPartnerServers } from '../../src/adapters/partner-http.ts';

const engine = 'sip:engine@fire.example' as McUri;
const request = { domain: 'fire.example', mcServiceId: 'sip:alice@police.example' as McUri, service: 'mcptt' as const, groupIds: [engine] };
const unreachable = [{ groupId: engine, status: 'rejected', reason: 'partner-unreachable' }];
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** What the stand-in answers to the next requests: a status and an error body. */
let answer: { status: number; error: Record<string, unknown> } = { status: 500, error: {} };
const seen: string[] = [];
let server: Server;
let url: string;

before(async () => {
  server = createServer((req, res) => {
    seen.push(`${req.method} ${req.url}`);
    req.resume();
    req.on('end', () => res.writeHead(answer.status, { 'content-type': 'application/json', 'retry-after': '1' }).end(JSON.stringify({ error: answer.error })));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  url = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
});

after(() => new Promise<void>((r) => server.close(() => r())));

/** Sends one affiliation request answered as `answered`; how many times an undo went as far as reading the store. */
async function affiliateAnswered(answered: typeof answer): Promise<{ undoReads: number; sent: string[] }> {
  answer = answered;
  seen.length = 0;
  let undoReads = 0;
  const heldNow = async (): Promise<ReadonlyMap<McUri, 'affiliated' | 'reserved'>> => {
    undoReads++;
    return new Map([[engine, 'reserved' as const]]);
  };
  const partners = new HttpPartnerServers('police.example', [{ domain: 'fire.example', url, nextHop: url, secret: 'shared', timeoutMs: 2000 }], pino({ level: 'silent' }), heldNow);
  try {
    assert.deepEqual(await partners.affiliate(request), unreachable);
    // An undo starts at once (its first attempt is not delayed); wait for it, or long enough to know it did not start.
    for (let i = 0; i < 20 && seen.length < 2; i++) await sleep(25);
    return { undoReads, sent: [...seen] };
  } finally {
    await partners.close();
  }
}

void test('an intermediate node full (503 unavailable, processed: false): partner-unreachable, no undo', async () => {
  const r = await affiliateAnswered({ status: 503, error: { code: 'unavailable', message: 'next hop http://127.0.0.1:1 has 2 relayed requests in progress (maxRelaysInFlight)', processed: false } });
  assert.equal(r.undoReads, 0, 'an undo was started');
  assert.deepEqual(r.sent, ['POST /federation/v1/affiliations']);
});

void test('a relay loop refused (508 loop-detected, processed: false): partner-unreachable, no undo', async () => {
  const r = await affiliateAnswered({ status: 508, error: { code: 'loop-detected', message: 'relay loop: fire.example -> gateway.example -> fire.example', processed: false } });
  assert.equal(r.undoReads, 0, 'an undo was started');
  assert.deepEqual(r.sent, ['POST /federation/v1/affiliations']);
});

void test('a 503 without processed: false (a relay whose next hop failed mid-request) may have been applied: undone', async () => {
  const r = await affiliateAnswered({ status: 503, error: { code: 'unavailable', message: 'next hop http://127.0.0.1:1/federation/v1/affiliations broke off its answer' } });
  assert.deepEqual(r.sent.slice(0, 2), ['POST /federation/v1/affiliations', 'POST /federation/v1/deaffiliations']);
});

void test("an intermediate node refusing the hop credential (407 Proxy Authentication Required): partner-unreachable, no undo", async () => {
  const r = await affiliateAnswered({ status: 407, error: { code: 'unauthenticated', message: 'Proxy-Authorization: credential of partner police.example not valid' } });
  assert.equal(r.undoReads, 0, 'an undo was started');
  assert.deepEqual(r.sent, ['POST /federation/v1/affiliations']);
});

void test('processed: true or a string is no refusal before processing: undone', async () => {
  for (const processed of [true, 'false']) {
    const r = await affiliateAnswered({ status: 503, error: { code: 'unavailable', message: 'x', processed } });
    assert.deepEqual(r.sent.slice(0, 2), ['POST /federation/v1/affiliations', 'POST /federation/v1/deaffiliations'], JSON.stringify(processed));
  }
});

/** The troubles (partner-recovery.ts: each starts a re-synchronisation) one request answered as `answered` reports. */
async function troublesOf(answered: typeof answer, to = url): Promise<string[]> {
  answer = answered;
  const troubles: string[] = [];
  const partners = new HttpPartnerServers('police.example', [{ domain: 'fire.example', url: to, nextHop: to, secret: 'shared', timeoutMs: 2000 }], pino({ level: 'silent' }), async () => new Map());
  partners.onTrouble((domain, trouble) => troubles.push(`${domain} ${trouble}`));
  try {
    assert.deepEqual(await partners.affiliate(request), unreachable);
    return troubles;
  } finally {
    await partners.close();
  }
}

void test('a refusal that applied nothing (processed: false, or a 4xx) starts no re-synchronisation; a request that may have been applied, or no answer, does', async () => {
  const refusals: [string, typeof answer][] = [
    ['a node full, 503', { status: 503, error: { code: 'unavailable', message: 'next hop full (maxRelaysInFlight)', processed: false } }],
    ['a relay loop, 508', { status: 508, error: { code: 'loop-detected', message: 'relay loop: fire.example -> gateway.example -> fire.example', processed: false } }],
    ['a rate limit, 429', { status: 429, error: { code: 'rate-limited', message: 'slow down', processed: false } }],
    ['a 4xx without the marker', { status: 403, error: { code: 'forbidden', message: 'not a user of police.example' } }],
    ["a node refusing the hop credential, 407", { status: 407, error: { code: 'unauthenticated', message: 'Proxy-Authorization: partner request without a server credential' } }],
  ];
  for (const [what, answered] of refusals) assert.deepEqual(await troublesOf(answered), [], what);
  assert.deepEqual(await troublesOf({ status: 503, error: { code: 'unavailable', message: 'next hop broke off its answer' } }), ['fire.example unreachable'], 'a 503 without the marker');
  assert.deepEqual(await troublesOf(answer, 'http://127.0.0.1:9'), ['fire.example unreachable'], 'no answer at all (connection refused)');
});

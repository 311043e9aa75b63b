// An undo the partner refused (partner-http.ts): the affiliation request got no usable answer (a 500: it may have been
// applied), so the primary sends the de-affiliation that undoes it; a partner (or a node on the way) that refuses that
// de-affiliation as a whole has not undone anything. It is logged as refused with the partner's status and error code,
// never as undone, and reported as a failed undo, so the re-synchronisation settles what the partner may still hold.
// A stand-in partner on loopback answers as the test says; the log lines are read from the adapter's logger.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import pino from 'pino';
import type { McUri } from '../../src/domain/ids.ts';
import { HttpPartnerServers } from '../../src/adapters/partner-http.ts';

const engine = 'sip:engine@fire.example' as McUri;
const request = { domain: 'fire.example', mcServiceId: 'sip:alice@police.example' as McUri, service: 'mcptt' as const, groupIds: [engine] };
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** What the stand-in answers to a de-affiliation (the undo); an affiliation is always answered 500. */
let undoAnswer: { status: number; body: unknown } = { status: 200, body: {} };
const seen: string[] = [];
let server: Server;
let url: string;

before(async () => {
  server = createServer((req, res) => {
    seen.push(`${req.method} ${req.url}`);
    req.resume();
    req.on('end', () => {
      const { status, body } = req.url?.endsWith('/deaffiliations') ? undoAnswer : { status: 500, body: { error: { code: 'internal', message: 'boom' } } };
      res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  url = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
});

after(() => new Promise<void>((r) => server.close(() => r())));

type LogLine = { level: number; msg: string; [k: string]: unknown };

/** One unanswered affiliation whose undo is answered `answered`: the log lines and troubles once the undo ended. */
async function undoAnswered(answered: typeof undoAnswer): Promise<{ lines: LogLine[]; troubles: string[]; sent: string[] }> {
  undoAnswer = answered;
  seen.length = 0;
  const lines: LogLine[] = [];
  const log = pino({ level: 'info' }, { write: (s: string) => void lines.push(JSON.parse(s) as LogLine) });
  const troubles: string[] = [];
  const partners = new HttpPartnerServers('police.example', [{ domain: 'fire.example', url, nextHop: url, secret: 'shared', timeoutMs: 2000 }], log, async () => new Map([[engine, 'reserved' as const]]));
  partners.onTrouble((domain, trouble) => troubles.push(`${domain} ${trouble}`));
  try {
    await partners.affiliate(request);
    const key = { userId: request.mcServiceId, service: 'mcptt' as const, groupId: engine };
    for (let i = 0; i < 80 && (seen.length < 2 || partners.inFlight(key)); i++) await sleep(25);
    assert.equal(partners.inFlight(key), false, 'the undo ended');
    return { lines, troubles, sent: [...seen] };
  } finally {
    await partners.close();
  }
}

/** Lines saying the request was undone ("not undone" is no such line). */
const undone = (lines: LogLine[]): LogLine[] => lines.filter((l) => /(?<!not )undone/.test(l.msg));

void test('control: an undo the partner answered deaffiliated is logged as undone', async () => {
  const r = await undoAnswered({ status: 200, body: { ...request, status: [{ groupId: engine, status: 'deaffiliated' }] } });
  assert.deepEqual(r.sent, ['POST /federation/v1/affiliations', 'POST /federation/v1/deaffiliations']);
  assert.equal(undone(r.lines).length, 1, JSON.stringify(r.lines));
  assert.deepEqual(r.troubles, ['fire.example unreachable'], 'only the unanswered request itself');
});

void test('an undo the partner refused (403, 407, 429): logged as refused with its status and code, not undone, a failed undo', async () => {
  const refusals: [string, number, string][] = [
    ['the host refused it', 403, 'forbidden'],
    ["a node refused the sender's hop credential", 407, 'unauthenticated'],
    ['a rate limit, refused before processing', 429, 'rate-limited'],
  ];
  for (const [what, status, code] of refusals) {
    const r = await undoAnswered({ status, body: { error: { code, message: `${what} (stand-in)`, ...(status === 429 ? { processed: false } : {}) } } });
    assert.deepEqual(r.sent, ['POST /federation/v1/affiliations', 'POST /federation/v1/deaffiliations'], what);
    assert.deepEqual(undone(r.lines), [], `${what}: logged as undone`);
    const refused = r.lines.find((l) => /undo/.test(l.msg) && /refused/.test(l.msg));
    assert.ok(refused, `${what}: no refusal logged: ${JSON.stringify(r.lines)}`);
    assert.equal(refused['status'], status, what);
    assert.equal(refused['code'], code, what);
    assert.ok(refused.level >= 40, `${what}: a warning at least`);
    assert.deepEqual(r.troubles, ['fire.example unreachable', 'fire.example undo-failed'], what);
  }
});

void test('an undo answered 200 with the group rejected: logged as refused for that group with its reason, not undone, a failed undo', async () => {
  const r = await undoAnswered({ status: 200, body: { ...request, status: [{ groupId: engine, status: 'rejected', reason: 'not-authorised' }] } });
  assert.deepEqual(r.sent, ['POST /federation/v1/affiliations', 'POST /federation/v1/deaffiliations']);
  assert.deepEqual(undone(r.lines), [], 'logged as undone');
  const refused = r.lines.find((l) => /undo/.test(l.msg) && /refused/.test(l.msg));
  assert.ok(refused, `no refusal logged: ${JSON.stringify(r.lines)}`);
  assert.deepEqual(refused['refused'], [{ groupId: engine, status: 'rejected', reason: 'not-authorised' }]);
  assert.ok(refused.level >= 40, 'a warning at least');
  assert.deepEqual(r.troubles, ['fire.example unreachable', 'fire.example undo-failed']);
});

// The partner adapter on stop, against a stand-in partner on loopback that answers every request with a server
// error (so the outcome is unknown and the request is undone in the background): once closed, an undo retry that
// was waiting sends nothing, and a new request is refused as partner-unreachable without a connection being opened.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import pino from 'pino';
import type { McUri } from '../../src/domain/ids.ts';
import { HttpPartnerServers } from '../../src/adapters/partner-http.ts';

const seen: string[] = [];
let connections = 0;
let server: Server;
let partners: HttpPartnerServers;
const request = { domain: 'fire.example', mcServiceId: 'sip:alice@police.example' as McUri, service: 'mcptt' as const, groupIds: ['sip:engine@fire.example' as McUri] };

before(async () => {
  server = createServer((req, res) => {
    seen.push(`${req.method} ${req.url}`);
    req.resume();
    req.on('end', () => res.writeHead(500, { 'content-type': 'application/json' }).end('{"error":{"code":"internal","message":"boom"}}'));
  });
  server.on('connection', () => connections++);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
  partners = new HttpPartnerServers('police.example', [{ domain: 'fire.example', url, nextHop: url, secret: 'shared', timeoutMs: 2000 }], pino({ level: 'silent' }), async () => new Map());
});

after(() => new Promise<void>((r) => server.close(() => r())));

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

void test('after close, a waiting undo retry sends nothing and a new request is refused without a connection', async () => {
  const status = await partners.affiliate(request);
  assert.deepEqual(status, [{ groupId: request.groupIds[0], status: 'rejected', reason: 'partner-unreachable' }]);
  // The request, then the undo's first attempt (answered 500 too: its next attempt waits 500 ms).
  for (let i = 0; i < 40 && seen.length < 2; i++) await sleep(50);
  assert.deepEqual(seen, ['POST /federation/v1/affiliations', 'POST /federation/v1/deaffiliations']);
  await partners.close();
  const opened = connections;
  await sleep(1200); // past the retry's moment
  assert.equal(seen.length, 2, `sent after close: ${seen.slice(2).join(', ')}`);
  const later = await partners.affiliate(request);
  assert.deepEqual(later, [{ groupId: request.groupIds[0], status: 'rejected', reason: 'partner-unreachable' }]);
  assert.equal(seen.length, 2);
  assert.equal(connections, opened, 'no connection opened after close');
});

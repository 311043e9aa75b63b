// The undo of an unanswered partner request against what the primary's store holds now (partner-http.ts): with
// several instances on one store, another instance may have completed a later request for the same group, which
// this instance's own bookkeeping cannot see. A stand-in partner on loopback answers every request 500 (outcome
// unknown: the adapter undoes in the background); the store's view is the test's.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import pino from 'pino';
import type { McUri } from '../../src/domain/ids.ts';
import { HttpPartnerServers } from '../../src/adapters/partner-http.ts';

const engine = 'sip:engine@fire.example' as McUri;
const request = { domain: 'fire.example', mcServiceId: 'sip:alice@police.example' as McUri, service: 'mcptt' as const, groupIds: [engine] };
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

type Held = ReadonlyMap<McUri, 'affiliated' | 'reserved'>;

/** `held`: the store's view, or a function giving it (it may act while the store is read). */
async function withPartner(held: Held | ((partners: HttpPartnerServers) => Promise<Held>), run: (partners: HttpPartnerServers, seen: string[]) => Promise<void>): Promise<void> {
  const seen: string[] = [];
  const server = createServer((req, res) => {
    seen.push(`${req.method} ${req.url}`);
    req.resume();
    req.on('end', () => res.writeHead(500, { 'content-type': 'application/json' }).end('{"error":{"code":"internal","message":"boom"}}'));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
  const heldNow = (): Promise<Held> => (typeof held === 'function' ? held(partners) : Promise.resolve(held));
  const partners: HttpPartnerServers = new HttpPartnerServers('police.example', [{ domain: 'fire.example', url, nextHop: url, secret: 'shared', timeoutMs: 2000 }], pino({ level: 'silent' }), heldNow);
  try {
    await run(partners, seen);
  } finally {
    await partners.close();
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
  }
}

void test('an unanswered affiliation is undone while the primary does not hold the group affiliated', async () => {
  await withPartner(new Map([[engine, 'reserved']]), async (partners, seen) => {
    await partners.affiliate(request);
    for (let i = 0; i < 40 && seen.length < 2; i++) await sleep(25);
    assert.deepEqual(seen.slice(0, 2), ['POST /federation/v1/affiliations', 'POST /federation/v1/deaffiliations']);
  });
});

void test('an unanswered affiliation is not undone once the store holds the group affiliated (another instance completed it)', async () => {
  await withPartner(new Map([[engine, 'affiliated']]), async (partners, seen) => {
    await partners.affiliate(request);
    await sleep(600);
    assert.deepEqual(seen, ['POST /federation/v1/affiliations']);
    assert.equal(partners.inFlight({ userId: request.mcServiceId, service: 'mcptt', groupId: engine }), false, 'nothing left in flight for it');
  });
});

void test('an unanswered de-affiliation is undone only while the store still holds the group affiliated', async () => {
  await withPartner(new Map(), async (partners, seen) => {
    await partners.deaffiliate(request);
    await sleep(600);
    assert.deepEqual(seen, ['POST /federation/v1/deaffiliations'], 'dropped meanwhile: not put back at the host');
  });
  await withPartner(new Map([[engine, 'affiliated']]), async (partners, seen) => {
    await partners.deaffiliate(request);
    for (let i = 0; i < 40 && seen.length < 2; i++) await sleep(25);
    assert.deepEqual(seen.slice(0, 2), ['POST /federation/v1/deaffiliations', 'POST /federation/v1/affiliations']);
  });
});

void test('a request the user sends again while the undo reads the store is not overtaken by that undo', async () => {
  let retried = false;
  // The store read is slow; meanwhile the user's client asks again (a later request decides the group).
  const slowRead = async (partners: HttpPartnerServers): Promise<Held> => {
    if (!retried) {
      retried = true;
      void partners.affiliate(request);
      await sleep(100);
    }
    return new Map([[engine, 'reserved' as const]]);
  };
  await withPartner(slowRead, async (partners, seen) => {
    await partners.affiliate(request);
    await sleep(300); // past the first undo's store read (100 ms), before the later undo's retry (500 ms: the stand-in answers 500)
    assert.deepEqual(seen.filter((s) => s.startsWith('POST /federation/v1/affiliations')).length, 2, 'both requests sent');
    // Only the later request's undo goes; the first one's, decided before the retry, is not sent after it.
    assert.deepEqual(seen.filter((s) => s.endsWith('/deaffiliations')), ['POST /federation/v1/deaffiliations']);
  });
});

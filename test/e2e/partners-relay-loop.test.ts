// E2E: a relay loop between two intermediate signalling nodes, one `muster serve` process running fire and gateway,
// each of which reaches ambulance via the other (a misconfiguration). Each adds itself to Via (RFC 9110 7.6.3) when it
// relays, so the request comes back to fire with fire in Via and is refused there with 508 loop-detected naming the
// chain, passed back unchanged; it does not bounce until the relay bounds stop it. The sending server (police, the
// test's HttpPartnerServers) reads `processed: false` in that refusal: partner-unreachable, and no undo into the loop.
// Fire's own re-synchronisation with ambulance meets the loop too: an error in its log naming the chain, `loop-detected`
// for ambulance in its /healthz, and `muster resync` saying it is a configuration error.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import pino from 'pino';
import { join } from 'node:path';
import { call, cli, freePort, Muster, secret } from '../support/harness.ts';
import { HttpPartnerServers } from '../../src/adapters/partner-http.ts';
import { PartnerGate } from '../../src/adapters/partner-gate.ts';
import type { McUri } from '../../src/domain/ids.ts';

const P = 'police.example';
const F = 'fire.example';
const G = 'gateway.example';
const A = 'ambulance.example';
const medic = `sip:medic@${A}` as McUri;
/** Bounds the bouncing of the code before loop detection (each visit holds a relay slot until the loop unwinds). */
const MAX_RELAYS = 4;
/** Nothing listens there: ambulance itself is never reached. */
const NOWHERE = 'http://127.0.0.1:9';

const keys = { policeFire: secret(), fireGateway: secret() };
let systems: Muster;
let fireUrl: string;

before(async () => {
  fireUrl = `http://127.0.0.1:${await freePort()}`;
  const gatewayUrl = `http://127.0.0.1:${await freePort()}`;
  const port = (url: string): number => Number(new URL(url).port);
  systems = await Muster.start(
    {
      maxRelaysInFlight: MAX_RELAYS,
      systems: [
        {
          name: 'fire',
          domain: F,
          http: { port: port(fireUrl) },
          secret: secret(),
          partners: [
            { domain: P, url: NOWHERE, secret: keys.policeFire },
            { domain: G, url: gatewayUrl, secret: keys.fireGateway },
            { domain: A, url: NOWHERE, via: gatewayUrl, secret: secret() },
          ],
        },
        {
          name: 'gateway',
          domain: G,
          http: { port: port(gatewayUrl) },
          secret: secret(),
          partners: [
            { domain: F, url: fireUrl, secret: keys.fireGateway },
            { domain: A, url: NOWHERE, via: fireUrl, secret: secret() },
          ],
        },
      ],
    },
    undefined,
    'sqlite',
  );
});

after(async () => {
  await systems?.stop();
});

void test('a request for ambulance bounces fire -> gateway -> fire once: 508 loop-detected naming the chain; police sends no undo', async () => {
  let undoReads = 0;
  const police = new HttpPartnerServers(
    P,
    [
      { domain: F, url: fireUrl, nextHop: fireUrl, secret: keys.policeFire, timeoutMs: 10_000 },
      { domain: A, url: NOWHERE, nextHop: fireUrl, viaPartner: F, secret: secret(), timeoutMs: 10_000 },
    ],
    pino({ level: 'silent' }),
    async () => {
      undoReads++; // read only when an undo is about to be sent
      return new Map();
    },
  );
  try {
    // What fire answers police, on the wire.
    const hop = await PartnerGate.sign(P, { domain: F, url: fireUrl, nextHop: fireUrl, secret: keys.policeFire, timeoutMs: 1000 });
    const e2e = await PartnerGate.sign(P, { domain: A, url: NOWHERE, nextHop: NOWHERE, secret: secret(), timeoutMs: 1000 });
    const res = await fetch(`${fireUrl}/federation/v1/affiliations`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${e2e}`, 'proxy-authorization': `Bearer ${hop}` },
      body: JSON.stringify({ mcServiceId: `sip:alice@${P}`, service: 'mcptt', groupIds: [medic] }),
      signal: AbortSignal.timeout(20_000),
    });
    const body = (await res.json()) as { error?: { code?: string; message?: string; processed?: unknown } };
    assert.equal(res.status, 508, JSON.stringify(body));
    assert.equal(body.error?.code, 'loop-detected');
    assert.match(body.error?.message ?? '', /fire\.example -> gateway\.example -> fire\.example/);
    assert.equal(body.error?.processed, false);

    // The sending server's adapter: partner-unreachable for ambulance's group, and no undo started.
    const status = await police.affiliate({ domain: A, mcServiceId: `sip:alice@${P}` as McUri, service: 'mcptt', groupIds: [medic] });
    assert.deepEqual(status, [{ groupId: medic, status: 'rejected', reason: 'partner-unreachable' }]);
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(undoReads, 0, 'an undo was started into the loop');
  } finally {
    await police.close();
  }
});

void test("fire's re-synchronisation with ambulance meets the loop: error log with the chain, /healthz loop-detected, muster resync says why", async () => {
  const chain = /gateway\.example -> fire\.example -> gateway\.example/;
  // Fire's start-up run for ambulance goes through the gateway as soon as the gateway answers its /healthz.
  let health: { partners?: Record<string, string> } = {};
  for (let i = 0; i < 100 && health.partners?.[A] !== 'loop-detected'; i++) {
    await new Promise((r) => setTimeout(r, 100));
    health = (await (await fetch(`${fireUrl}/healthz`, { signal: AbortSignal.timeout(5000) })).json()) as typeof health;
  }
  assert.equal(health.partners?.[A], 'loop-detected', JSON.stringify(health));
  assert.equal(health.partners?.[G], 'up', 'the node itself answers');
  const errors = systems.output.split('\n').filter((l) => l.startsWith('{"level":50,'));
  assert.ok(errors.some((l) => chain.test(l) && /relay loop/.test(l) && l.includes(A)), `no error naming the chain:\n${systems.output.slice(-3000)}`);

  const r = await cli(['resync', '--config', join(systems.dir, 'config.json'), '--system', 'fire', '--partner', A]);
  assert.equal(r.code, 3, r.stderr);
  const [first, second] = r.stdout.split('\n');
  assert.match(first ?? '', new RegExp(`^${A.replace('.', '\\.')}  incomplete \\(508 loop-detected: relay loop`));
  assert.match(first ?? '', chain);
  assert.match(second ?? '', /configuration error/, r.stdout);
  // The operator's API says the same, as a field.
  const api = await call('POST', `${fireUrl}/admin/v1/partner-resyncs`, await systems.operatorToken(F), { partner: A });
  const [report] = (api.body as { resyncs: { complete: boolean; fault?: string; error?: string }[] }).resyncs;
  assert.deepEqual([api.status, report?.complete, report?.fault], [200, false, 'loop-detected'], JSON.stringify(api.body));
  assert.match(report?.error ?? '', chain);
});

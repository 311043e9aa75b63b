// The primary's side of the hop credential: a partner entry whose `via` is another partner's URL goes through that
// partner as an intermediate Muster node, so each request carries a hop credential (Proxy-Authorization) signed with
// the secret of that pair beside the end-to-end one; through a plain HTTP relay it carries none. Also the
// configuration keys: `via` resolved to that partner, and maxRelaysInFlight (default, given, refused naming the path).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import pino from 'pino';
import type { McUri } from '../../src/domain/ids.ts';
import { HttpPartnerServers } from '../../src/adapters/partner-http.ts';
import { PartnerGate } from '../../src/adapters/partner-gate.ts';
import { ConfigError, DEFAULT_MAX_RELAYS_IN_FLIGHT, resolveConfig, type PartnerConfig } from '../../src/config/config.ts';

const seen: { path: string; authorization?: string; proxyAuthorization?: string }[] = [];
let server: Server;
let url: string;

before(async () => {
  server = createServer((req, res) => {
    const one = (v: string | string[] | undefined): string | undefined => (Array.isArray(v) ? v[0] : v);
    seen.push({ path: req.url ?? '', authorization: one(req.headers.authorization), proxyAuthorization: one(req.headers['proxy-authorization']) });
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const flow = JSON.parse(Buffer.concat(chunks).toString()) as { groupIds: string[] };
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ ...flow, status: flow.groupIds.map((groupId) => ({ groupId, status: 'affiliated' })) }));
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  url = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
});

after(() => new Promise<void>((r) => server.close(() => r())));

const police = (partners: unknown[]): Record<string, unknown> => ({ name: 'police', domain: 'police.example', http: { port: 0 }, secret: 's', partners });
const config = (partners: unknown[], top: Record<string, unknown> = {}) => resolveConfig({ ...top, dataDir: '/tmp/muster-unused', systems: [police(partners)] })[0]!;
const request = (domain: string, group: string) => ({ domain, mcServiceId: 'sip:alice@police.example' as McUri, service: 'mcptt' as const, groupIds: [group as McUri] });

void test('config: a `via` that is another partner\'s URL names that partner as the intermediate node; a plain relay names none', () => {
  const c = config([
    { domain: 'fire.example', url: 'http://127.0.0.1:8081/', secret: 'pf' },
    { domain: 'ambulance.example', url: 'http://127.0.0.1:8082', via: 'http://127.0.0.1:8081', secret: 'pa' },
    { domain: 'coast.example', url: 'http://127.0.0.1:8083', via: 'http://127.0.0.1:9999', secret: 'pc' },
    { domain: 'harbour.example', url: 'http://127.0.0.1:8084', via: 'http://127.0.0.1:8084', secret: 'ph' },
  ]);
  const by = (d: string): PartnerConfig => c.partners.find((p) => p.domain === d)!;
  assert.equal(by('ambulance.example').viaPartner, 'fire.example');
  assert.equal(by('ambulance.example').nextHop, 'http://127.0.0.1:8081');
  assert.equal(by('coast.example').viaPartner, undefined, 'a plain HTTP relay');
  assert.equal(by('harbour.example').viaPartner, undefined, 'via its own URL is no intermediate node');
  assert.equal(by('fire.example').viaPartner, undefined);
});

void test('config: maxRelaysInFlight defaults, is read, and a bad value is refused naming maxRelaysInFlight', () => {
  assert.equal(config([]).maxRelaysInFlight, DEFAULT_MAX_RELAYS_IN_FLIGHT);
  assert.equal(config([], { maxRelaysInFlight: 3 }).maxRelaysInFlight, 3);
  for (const bad of [0, -1, 1.5, 'many']) {
    assert.throws(
      () => config([], { maxRelaysInFlight: bad }),
      (e: unknown) => e instanceof ConfigError && e.path === 'maxRelaysInFlight',
      JSON.stringify(bad),
    );
  }
});

void test('through an intermediate Muster node: the end-to-end credential for the host and a hop credential for the node', async () => {
  const c = config([
    { domain: 'fire.example', url, secret: 'police-fire' },
    { domain: 'ambulance.example', url: 'http://127.0.0.1:9', via: url, secret: 'police-ambulance' },
  ]);
  const partners = new HttpPartnerServers('police.example', c.partners, pino({ level: 'silent' }), async () => new Map());
  try {
    const status = await partners.affiliate(request('ambulance.example', 'sip:medic@ambulance.example'));
    assert.deepEqual(status, [{ groupId: 'sip:medic@ambulance.example', status: 'affiliated' }]);
    const got = seen.at(-1)!;
    assert.equal(got.path, '/federation/v1/affiliations');
    const host = new PartnerGate('ambulance.example', [{ domain: 'police.example', url, nextHop: url, secret: 'police-ambulance', timeoutMs: 1000 }]);
    assert.equal(await host.verify(got.authorization), 'police.example', 'the end-to-end credential is for the group host');
    const node = new PartnerGate('fire.example', [{ domain: 'police.example', url, nextHop: url, secret: 'police-fire', timeoutMs: 1000 }]);
    assert.equal(await node.verify(got.proxyAuthorization), 'police.example', 'the hop credential is for the intermediate node');
    // Directly to fire: no hop credential.
    await partners.affiliate(request('fire.example', 'sip:engine@fire.example'));
    assert.equal(seen.at(-1)!.proxyAuthorization, undefined);
  } finally {
    await partners.close();
  }
});

void test('through a plain HTTP relay: no hop credential', async () => {
  const c = config([{ domain: 'ambulance.example', url: 'http://127.0.0.1:9', via: url, secret: 'police-ambulance' }]);
  const partners = new HttpPartnerServers('police.example', c.partners, pino({ level: 'silent' }), async () => new Map());
  try {
    await partners.affiliate(request('ambulance.example', 'sip:medic@ambulance.example'));
    assert.equal(seen.at(-1)!.proxyAuthorization, undefined);
    assert.ok(seen.at(-1)!.authorization);
  } finally {
    await partners.close();
  }
});

// E2E: fire as an intermediate signalling node (10.X.3.2 step 3), one `muster serve` process, between senders (the
// test, signing as police, coast and harbour) and a stand-in next hop on loopback that records what reaches it.
// Fire relays only for a partner it identifies at this hop (its hop credential, Proxy-Authorization), counts relayed
// requests against that partner's rate budget (429 with Retry-After), and holds at most maxRelaysInFlight relays per
// next hop (503 with Retry-After). The end-to-end credential passes unchanged; the hop credential stays at fire.
// Fire adds itself to Via (RFC 9110 7.6.3) and refuses a request that already names it there, or that already passed
// maxIntermediateNodes, with 508 loop-detected; its refusals before forwarding say `processed: false`, so a sending
// server does not send undos through it.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { freePort, Muster, secret } from '../support/harness.ts';
import pino from 'pino';
import { request } from 'undici';
import { PartnerGate } from '../../src/adapters/partner-gate.ts';
import { HttpPartnerServers } from '../../src/adapters/partner-http.ts';
import type { PartnerConfig } from '../../src/config/config.ts';
import type { McUri } from '../../src/domain/ids.ts';

const P = 'police.example';
const F = 'fire.example';
const A = 'ambulance.example';
/** Another group host, reached through a further Muster node (gateway.example). */
const M = 'medevac.example';
const G = 'gateway.example';
const COAST = 'coast.example';
const HARBOUR = 'harbour.example';
/** The sender of the Via tests. */
const REEF = 'reef.example';
/** The sender of the tests of the answers passed back. */
const ISLE = 'isle.example';
/** The sender of the tests of a host fire has no route to (its own rate budget). */
const SHOAL = 'shoal.example';
const BURST = 8;
const MAX_RELAYS = 2;
const MAX_NODES = 3;

const alice = `sip:alice@${P}`;
const medic = `sip:medic@${A}`;
const lift = `sip:lift@${M}`;
/** A group whose request the next hop takes in full and then breaks off, without an answer. */
const crash = `sip:crash@${A}`;
/** A group whose host sheds load: 503 with Retry-After, its own Via, and hop-by-hop fields fire must not pass back. */
const busy = `sip:busy@${A}`;
/** A group whose host refuses the end-to-end credential: 401 with its challenge (WWW-Authenticate). */
const denied = `sip:denied@${A}`;
/** A group behind the further node (gateway.example), which refuses fire's own hop credential for it: 407. */
const gated = `sip:gated@${M}`;

/** Secrets of each pair; `police-ambulance` is the end-to-end pair, which fire does not have. */
const keys = { policeFire: secret(), coastFire: secret(), harbourFire: secret(), reefFire: secret(), isleFire: secret(), shoalFire: secret(), fireAmbulance: secret(), fireGateway: secret(), fireMedevac: secret(), policeAmbulance: secret(), policeMedevac: secret() };

const partner = (domain: string, key: string): PartnerConfig => ({ domain, url: 'http://x', nextHop: 'http://x', secret: key, timeoutMs: 1000 });
/** A server credential as system `from` signs it for system `to` with `key`. */
const serverToken = (from: string, to: string, key: string): Promise<string> => PartnerGate.sign(from, partner(to, key));

type Seen = { path: string; authorization: string | undefined; proxyAuthorization: string | undefined; via: string | undefined; body: string };

/** The next hop of fire: answers every affiliation request affiliated; holds answers to paths under `holdPath` while set. */
class NextHop {
  readonly seen: Seen[] = [];
  holdPath: string | undefined;
  private readonly waiting: (() => void)[] = [];
  private constructor(
    private readonly server: Server,
    readonly url: string,
  ) {}

  static async start(): Promise<NextHop> {
    const port = await freePort();
    const holder: { hop?: NextHop } = {};
    const server = createServer((req, res) => void holder.hop!.handle(req, res));
    await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
    holder.hop = new NextHop(server, `http://127.0.0.1:${port}`);
    return holder.hop;
  }

  /** Relayed affiliation requests seen so far (fire's own re-synchronisation pages and probes are not counted). */
  relayed(): Seen[] {
    return this.seen.filter((s) => s.path.endsWith('/federation/v1/affiliations'));
  }

  release(): void {
    this.holdPath = undefined;
    this.waiting.splice(0).forEach((go) => go());
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const body = Buffer.concat(chunks).toString();
    const path = req.url ?? '';
    const header = (v: string | string[] | undefined): string | undefined => (Array.isArray(v) ? v[0] : v);
    this.seen.push({ path, authorization: header(req.headers.authorization), proxyAuthorization: header(req.headers['proxy-authorization']), via: header(req.headers.via), body });
    if (path.endsWith('/affiliation-resyncs')) {
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ removed: [], spared: [], missing: [], graceMs: 0 }));
      return;
    }
    if (!path.endsWith('/federation/v1/affiliations')) {
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
      return;
    }
    if (this.holdPath !== undefined && path.startsWith(this.holdPath)) await new Promise<void>((go) => this.waiting.push(go));
    const flow = JSON.parse(body) as { mcServiceId: string; service: string; groupIds: string[] };
    if (flow.groupIds.includes(crash)) {
      res.socket?.destroy();
      return;
    }
    if (flow.groupIds.includes(busy)) {
      res
        .writeHead(503, {
          'content-type': 'application/json; charset=utf-8',
          'retry-after': '7',
          via: '1.1 edge.ambulance.example',
          // Hop-by-hop: the connection between fire and this next hop only (RFC 9110 7.6.1), and one it names.
          connection: 'keep-alive, x-edge-hop',
          'keep-alive': 'timeout=42',
          'x-edge-hop': 'for fire only',
          'proxy-authenticate': 'Bearer realm="edge.ambulance.example"',
        })
        .end(JSON.stringify({ error: { code: 'unavailable', message: 'overloaded: 900 requests in progress; retry shortly', processed: false } }));
      return;
    }
    if (flow.groupIds.includes(gated)) {
      res
        .writeHead(407, { 'content-type': 'application/json', 'proxy-authenticate': 'Bearer realm="gateway.example"' })
        .end(JSON.stringify({ error: { code: 'unauthenticated', message: 'no hop credential of a partner of gateway.example' } }));
      return;
    }
    if (flow.groupIds.includes(denied)) {
      res
        .writeHead(401, { 'content-type': 'application/json', 'www-authenticate': 'Bearer realm="ambulance.example", error="invalid_token"' })
        .end(JSON.stringify({ error: { code: 'unauthenticated', message: 'credential expired' } }));
      return;
    }
    const answer = { ...flow, status: flow.groupIds.map((groupId) => ({ groupId, status: 'affiliated' })) };
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(answer));
  }

  async stop(): Promise<void> {
    this.release();
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

let hop: NextHop;
let fire: Muster;

before(async () => {
  hop = await NextHop.start();
  const gateway = `${hop.url}/gw`;
  // Per-instance bounds, so one instance (not two behind a balancer, as the PostgreSQL e2e run would start).
  fire = await Muster.start(
    {
      rateLimit: { perSecond: 0.1, burst: BURST },
      maxRelaysInFlight: MAX_RELAYS,
      maxIntermediateNodes: MAX_NODES,
      systems: [
        {
          name: 'fire',
          domain: F,
          http: { port: await freePort() },
          secret: secret(),
          partners: [
            { domain: P, url: hop.url, secret: keys.policeFire },
            { domain: COAST, url: hop.url, secret: keys.coastFire },
            { domain: HARBOUR, url: hop.url, secret: keys.harbourFire },
            { domain: REEF, url: hop.url, secret: keys.reefFire },
            { domain: ISLE, url: hop.url, secret: keys.isleFire },
            { domain: SHOAL, url: hop.url, secret: keys.shoalFire },
            { domain: A, url: hop.url, secret: keys.fireAmbulance },
            { domain: G, url: gateway, secret: keys.fireGateway },
            // Medevac is reached through the gateway, another Muster node: fire signs its own hop credential for it.
            { domain: M, url: 'http://127.0.0.1:9', via: gateway, secret: keys.fireMedevac },
          ],
        },
      ],
    },
    undefined,
    'sqlite',
  );
});

after(async () => {
  await fire?.stop();
  await hop?.stop();
});

type ErrorAnswer = { error?: { code?: string; message?: string; field?: string; processed?: unknown } };

/** A federation request to fire for `groupIds`, with the end-to-end credential and, when given, a hop credential and a Via. */
async function toFire(opts: { e2e?: string; hop?: string; via?: string; groupIds?: string[]; path?: string; body?: unknown }): Promise<{ status: number; retryAfter: string | null; proxyAuthenticate: string | null; body: ErrorAnswer }> {
  // undici's request, not fetch: the Fetch standard turns a 407 into a network error where there is no window (Node).
  const res = await request(`${fire.url()}/federation/v1/${opts.path ?? 'affiliations'}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(opts.e2e ? { authorization: `Bearer ${opts.e2e}` } : {}), ...(opts.hop ? { 'proxy-authorization': opts.hop } : {}), ...(opts.via !== undefined ? { via: opts.via } : {}) },
    body: JSON.stringify(opts.body ?? { mcServiceId: alice, service: 'mcptt', groupIds: opts.groupIds ?? [medic] }),
    signal: AbortSignal.timeout(20_000),
  });
  const field = (name: string): string | null => [res.headers[name]].flat()[0] ?? null;
  return { status: res.statusCode, retryAfter: field('retry-after'), proxyAuthenticate: field('proxy-authenticate'), body: (await res.body.json()) as ErrorAnswer };
}

const policeToAmbulance = (): Promise<string> => serverToken(P, A, keys.policeAmbulance);
const hopOf = async (from: string, key: string): Promise<string> => `Bearer ${await serverToken(from, F, key)}`;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

void describe('fire as an intermediate signalling node', () => {
  void test('a request for another partner\'s groups without a hop credential fire can verify: 407 with Proxy-Authenticate, nothing forwarded', async () => {
    const e2e = await policeToAmbulance();
    const before = hop.relayed().length;
    const cases: [string, string | undefined][] = [
      ['no Proxy-Authorization', undefined],
      ['a hop credential signed with a wrong secret', await hopOf(P, secret())],
      ['a hop credential of a system fire has no partner entry for', await hopOf('evil.example', keys.policeFire)],
      ["the end-to-end credential (for ambulance) replayed as the hop credential", `Bearer ${e2e}`],
      ['not a bearer credential', 'Basic cG9saWNlOnNlY3JldA=='],
    ];
    for (const [what, hopCredential] of cases) {
      const r = await toFire({ e2e, ...(hopCredential ? { hop: hopCredential } : {}) });
      // RFC 9110 15.5.8: the proxy's own authentication failed, with its challenge; the code stays the catalogue's.
      assert.equal(r.status, 407, `${what}: ${JSON.stringify(r.body)}`);
      assert.equal(r.proxyAuthenticate, 'Bearer', what);
      assert.equal(r.body.error?.code, 'unauthenticated', what);
      assert.match(r.body.error?.message ?? '', /Proxy-Authorization/, what);
    }
    // A re-synchronisation page for another host is relayed on the same terms.
    const page = await toFire({ e2e, path: 'affiliation-resyncs', body: { host: A, affiliations: [] } });
    assert.equal(page.status, 407, JSON.stringify(page.body));
    assert.equal(page.proxyAuthenticate, 'Bearer');
    assert.equal(hop.relayed().length, before, 'fire forwarded a request it could not verify');
    assert.equal(hop.seen.filter((s) => s.authorization === `Bearer ${e2e}`).length, 0);
  });

  void test('groups of a system fire has no route to: without a valid hop credential 407 (fire shows none of its routes), with one 403', async () => {
    const nowhere = 'sip:x@nowhere.example';
    const e2e = await serverToken(SHOAL, 'nowhere.example', secret());
    const requests: [string, string, unknown][] = [
      ['affiliations', 'groupIds', { mcServiceId: alice, service: 'mcptt', groupIds: [nowhere] }],
      ['deaffiliations', 'groupIds', { mcServiceId: alice, service: 'mcptt', groupIds: [nowhere] }],
      ['affiliation-changes', 'affiliate', { mcServiceId: alice, service: 'mcptt', mode: 'mandatory', targets: [`sip:bob@${P}`], affiliate: [nowhere], deaffiliate: [] }],
      ['affiliation-resyncs', 'host', { host: 'nowhere.example', affiliations: [] }],
    ];
    for (const [path, field, body] of requests) {
      for (const [what, hopCredential] of [['no Proxy-Authorization', undefined], ['a hop credential signed with a wrong secret', await hopOf(SHOAL, secret())]] as const) {
        const r = await toFire({ e2e, path, body, ...(hopCredential ? { hop: hopCredential } : {}) });
        assert.equal(r.status, 407, `${path}, ${what}: ${JSON.stringify(r.body)}`);
        assert.equal(r.proxyAuthenticate, 'Bearer', `${path}, ${what}`);
        assert.equal(r.body.error?.code, 'unauthenticated', `${path}, ${what}`);
        assert.doesNotMatch(r.body.error?.message ?? '', /route|nowhere/, `${path}, ${what}: says nothing of fire's routes`);
      }
      const identified = await toFire({ e2e, path, body, hop: await hopOf(SHOAL, keys.shoalFire) });
      assert.equal(identified.status, 403, `${path}: ${JSON.stringify(identified.body)}`);
      assert.equal(identified.body.error?.code, 'forbidden', path);
      assert.equal(identified.body.error?.field, field, path);
      assert.match(identified.body.error?.message ?? '', /no route/, path);
    }
    assert.equal(hop.seen.filter((s) => s.authorization === `Bearer ${e2e}`).length, 0, 'nothing forwarded');
  });

  void test('a valid hop credential but no end-to-end credential: 401, nothing forwarded', async () => {
    const before = hop.seen.length;
    const r = await toFire({ hop: await hopOf(P, keys.policeFire) });
    assert.equal(r.status, 401, JSON.stringify(r.body));
    assert.equal(r.body.error?.code, 'unauthenticated');
    assert.equal(hop.seen.length, before);
  });

  void test('with police\'s hop credential: relayed with the end-to-end credential unchanged, the hop credential stays at fire', async () => {
    const e2e = await policeToAmbulance();
    const r = await toFire({ e2e, hop: await hopOf(P, keys.policeFire) });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.deepEqual((r.body as unknown as { status: unknown[] }).status, [{ groupId: medic, status: 'affiliated' }]);
    const seen = hop.relayed().at(-1)!;
    assert.equal(seen.path, '/federation/v1/affiliations');
    assert.equal(seen.authorization, `Bearer ${e2e}`);
    assert.equal(seen.proxyAuthorization, undefined, 'the next hop is the group host itself: no hop credential');
    assert.deepEqual(JSON.parse(seen.body), { mcServiceId: alice, service: 'mcptt', groupIds: [medic] });
  });

  void test('through a further Muster node: fire signs its own hop credential for it, the end-to-end one passes unchanged', async () => {
    const e2e = await serverToken(P, M, keys.policeMedevac);
    const r = await toFire({ e2e, hop: await hopOf(P, keys.policeFire), groupIds: [lift] });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    const seen = hop.relayed().at(-1)!;
    assert.equal(seen.path, '/gw/federation/v1/affiliations');
    assert.equal(seen.authorization, `Bearer ${e2e}`);
    const atGateway = new PartnerGate(G, [partner(F, keys.fireGateway)]);
    assert.equal(await atGateway.verify(seen.proxyAuthorization), F, 'the gateway identifies fire at its hop');
  });

  void test('relayed requests count against the sending partner\'s rate budget: 429 with Retry-After, other partners unaffected', async () => {
    const e2e = await serverToken(COAST, A, secret());
    const coast = await hopOf(COAST, keys.coastFire);
    const before = hop.relayed().length;
    for (let i = 0; i < BURST; i++) {
      const r = await toFire({ e2e, hop: coast });
      assert.equal(r.status, 200, `request ${i + 1}: ${JSON.stringify(r.body)}`);
    }
    const over = await toFire({ e2e, hop: coast });
    assert.equal(over.status, 429, JSON.stringify(over.body));
    assert.equal(over.body.error?.code, 'rate-limited');
    assert.equal(over.body.error?.processed, false, 'refused before anything was forwarded');
    assert.ok(Number(over.retryAfter) >= 1, `Retry-After ${over.retryAfter}`);
    assert.equal(hop.relayed().length, before + BURST, 'the refused request was not forwarded');
    // Police keeps its own budget.
    const police = await toFire({ e2e: await policeToAmbulance(), hop: await hopOf(P, keys.policeFire) });
    assert.equal(police.status, 200, JSON.stringify(police.body));
  });

  void test('at most maxRelaysInFlight relays per next hop: one more is 503 with Retry-After; other next hops still relay', async () => {
    const e2e = await serverToken(HARBOUR, A, secret());
    const harbour = await hopOf(HARBOUR, keys.harbourFire);
    hop.holdPath = '/federation/v1/affiliations';
    const before = hop.relayed().length;
    const held = Array.from({ length: MAX_RELAYS }, () => toFire({ e2e, hop: harbour }));
    for (let i = 0; i < 100 && hop.relayed().length < before + MAX_RELAYS; i++) await sleep(50);
    assert.equal(hop.relayed().length, before + MAX_RELAYS, 'the held relays reached the next hop');
    try {
      const over = await toFire({ e2e, hop: harbour });
      assert.equal(over.status, 503, JSON.stringify(over.body));
      assert.equal(over.body.error?.code, 'unavailable');
      assert.match(over.body.error?.message ?? '', /next hop/);
      assert.equal(over.body.error?.processed, false, 'refused before anything was forwarded');
      assert.equal(over.retryAfter, '1');
      assert.equal(hop.relayed().length, before + MAX_RELAYS, 'the refused relay was not forwarded');
      // A sending server (partner-http.ts) through the full node: partner-unreachable, and no undo sent through it.
      let undoReads = 0;
      const sender = new HttpPartnerServers(
        HARBOUR,
        [
          { domain: F, url: fire.url(), nextHop: fire.url(), secret: keys.harbourFire, timeoutMs: 5000 },
          { domain: A, url: 'http://127.0.0.1:9', nextHop: fire.url(), viaPartner: F, secret: secret(), timeoutMs: 5000 },
        ],
        pino({ level: 'silent' }),
        async () => {
          undoReads++; // read only when an undo is about to be sent
          return new Map();
        },
      );
      try {
        const status = await sender.affiliate({ domain: A, mcServiceId: `sip:skipper@${HARBOUR}` as McUri, service: 'mcptt', groupIds: [medic as McUri] });
        assert.deepEqual(status, [{ groupId: medic, status: 'rejected', reason: 'partner-unreachable' }]);
        await sleep(100);
        assert.equal(undoReads, 0, 'an undo was started through the node that refused before forwarding');
      } finally {
        await sender.close();
      }
      assert.equal(hop.relayed().length, before + MAX_RELAYS, 'nothing more forwarded');
      // Medevac's next hop (the gateway) is another one: not bound by the full one.
      const other = await toFire({ e2e: await serverToken(P, M, keys.policeMedevac), hop: await hopOf(P, keys.policeFire), groupIds: [lift] });
      assert.equal(other.status, 200, JSON.stringify(other.body));
    } finally {
      // Also when an assertion above failed: held relays would fill the next hop for the tests after this one.
      hop.release();
    }
    for (const r of await Promise.all(held)) assert.equal(r.status, 200, JSON.stringify(r.body));
    // The slots are free again.
    const again = await toFire({ e2e, hop: harbour });
    assert.equal(again.status, 200, JSON.stringify(again.body));
  });

  void test('a next hop that fails mid-request: 503 unavailable without processed: false (it may have applied it)', async () => {
    const before = hop.relayed().length;
    const r = await toFire({ e2e: await policeToAmbulance(), hop: await hopOf(P, keys.policeFire), groupIds: [crash] });
    assert.equal(r.status, 503, JSON.stringify(r.body));
    assert.equal(r.body.error?.code, 'unavailable');
    assert.equal(r.body.error?.processed, undefined, 'forwarded: the next hop may have applied it');
    assert.equal(hop.relayed().length, before + 1);
  });
});

void describe('fire in Via (RFC 9110 7.6.3): loops and long chains', () => {
  const reef = (): Promise<string> => hopOf(REEF, keys.reefFire);
  const toAmbulance = (): Promise<string> => serverToken(REEF, A, secret());

  void test('fire adds `1.1 fire.example` to the Via it relays, after the intermediaries already there', async () => {
    const e2e = await toAmbulance();
    const first = await toFire({ e2e, hop: await reef() });
    assert.equal(first.status, 200, JSON.stringify(first.body));
    assert.equal(hop.relayed().at(-1)!.via, `1.1 ${F}`);
    const second = await toFire({ e2e, hop: await reef(), via: 'HTTP/1.1 relay.reef.example:8080 (squid/6.6, a comment)' });
    assert.equal(second.status, 200, JSON.stringify(second.body));
    assert.equal(hop.relayed().at(-1)!.via, `HTTP/1.1 relay.reef.example:8080 (squid/6.6, a comment), 1.1 ${F}`);
  });

  void test('a request that already passed fire: 508 loop-detected naming the chain, processed: false, nothing forwarded', async () => {
    const before = hop.seen.length;
    const r = await toFire({ e2e: await toAmbulance(), hop: await reef(), via: `1.1 gateway.example, 1.1 FIRE.example` });
    assert.equal(r.status, 508, JSON.stringify(r.body));
    assert.equal(r.body.error?.code, 'loop-detected');
    assert.match(r.body.error?.message ?? '', /gateway\.example -> FIRE\.example -> fire\.example/);
    assert.match(r.body.error?.message ?? '', /ambulance\.example/, 'names the host whose route loops');
    assert.equal(r.body.error?.processed, false);
    assert.equal(hop.seen.length, before, 'nothing forwarded');
  });

  void test(`a request that already passed maxIntermediateNodes (${MAX_NODES}): 508 naming the chain and the key; one fewer is relayed`, async () => {
    const before = hop.seen.length;
    const chain = ['1.1 a.example', '1.1 b.example', '1.1 c.example'];
    const over = await toFire({ e2e: await toAmbulance(), hop: await reef(), via: chain.slice(0, MAX_NODES).join(', ') });
    assert.equal(over.status, 508, JSON.stringify(over.body));
    assert.equal(over.body.error?.code, 'loop-detected');
    assert.match(over.body.error?.message ?? '', /a\.example -> b\.example -> c\.example -> fire\.example/);
    assert.match(over.body.error?.message ?? '', /maxIntermediateNodes/);
    assert.equal(over.body.error?.processed, false);
    assert.equal(hop.seen.length, before, 'nothing forwarded');
    const under = await toFire({ e2e: await toAmbulance(), hop: await reef(), via: chain.slice(0, MAX_NODES - 1).join(', ') });
    assert.equal(under.status, 200, JSON.stringify(under.body));
    assert.equal(hop.relayed().at(-1)!.via, `1.1 a.example, 1.1 b.example, 1.1 ${F}`);
  });

  void test('a malformed Via: 400 bad-request naming Via, nothing forwarded', async () => {
    const before = hop.seen.length;
    const r = await toFire({ e2e: await toAmbulance(), hop: await reef(), via: 'fire.example' });
    assert.equal(r.status, 400, JSON.stringify(r.body));
    assert.equal(r.body.error?.code, 'bad-request');
    assert.equal(r.body.error?.field, 'Via');
    assert.equal(hop.seen.length, before, 'nothing forwarded');
  });
});

void describe("the next hop's answer passed back (RFC 9110 7.6)", () => {
  /** A relayed request from isle for `group`: the answer fire gives, headers and all. */
  async function relayed(group: string): Promise<{ res: Response; body: ErrorAnswer }> {
    const res = await fetch(`${fire.url()}/federation/v1/affiliations`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${await serverToken(ISLE, A, secret())}`, 'proxy-authorization': await hopOf(ISLE, keys.isleFire) },
      body: JSON.stringify({ mcServiceId: `sip:ferry@${ISLE}`, service: 'mcptt', groupIds: [group] }),
      signal: AbortSignal.timeout(20_000),
    });
    return { res, body: (await res.json()) as ErrorAnswer };
  }

  void test("a host's 503: its Retry-After and Via come back, fire added to Via; hop-by-hop fields stay between fire and its next hop", async () => {
    const { res, body } = await relayed(busy);
    assert.equal(res.status, 503, JSON.stringify(body));
    assert.deepEqual(body.error, { code: 'unavailable', message: 'overloaded: 900 requests in progress; retry shortly', processed: false }, 'the body unchanged');
    assert.equal(res.headers.get('retry-after'), '7');
    assert.equal(res.headers.get('via'), `1.1 edge.ambulance.example, 1.1 ${F}`);
    assert.equal(res.headers.get('content-type'), 'application/json; charset=utf-8');
    assert.equal(res.headers.get('x-edge-hop'), null, 'a field the next hop named in Connection');
    assert.equal(res.headers.get('proxy-authenticate'), null, "the next hop's challenge is for fire, not for the sender");
    assert.notEqual(res.headers.get('keep-alive'), 'timeout=42', "the next hop's Keep-Alive is for its connection to fire");
  });

  void test("a further node's 407 refuses fire's own hop credential, not the sender's: 503 processed: false naming the hop, no challenge passed back", async () => {
    const res = await fetch(`${fire.url()}/federation/v1/affiliations`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${await serverToken(ISLE, M, secret())}`, 'proxy-authorization': await hopOf(ISLE, keys.isleFire) },
      body: JSON.stringify({ mcServiceId: `sip:ferry@${ISLE}`, service: 'mcptt', groupIds: [gated] }),
      signal: AbortSignal.timeout(20_000),
    });
    const body = (await res.json()) as ErrorAnswer;
    assert.equal(res.status, 503, JSON.stringify(body));
    assert.equal(body.error?.code, 'unavailable');
    assert.equal(body.error?.processed, false, 'the further node refused it before anything was done');
    assert.match(body.error?.message ?? '', /gateway\.example refused fire\.example's hop credential/);
    assert.equal(res.headers.get('proxy-authenticate'), null, "the further node's challenge is for fire, not for the sender");
  });

  void test("a host's 401: its challenge (WWW-Authenticate) comes back; a 200 says Via fire too", async () => {
    const refused = await relayed(denied);
    assert.equal(refused.res.status, 401, JSON.stringify(refused.body));
    assert.equal(refused.res.headers.get('www-authenticate'), 'Bearer realm="ambulance.example", error="invalid_token"');
    assert.equal(refused.res.headers.get('via'), `1.1 ${F}`);
    const fine = await relayed(medic);
    assert.equal(fine.res.status, 200, JSON.stringify(fine.body));
    assert.equal(fine.res.headers.get('via'), `1.1 ${F}`);
    assert.match(fine.res.headers.get('content-type') ?? '', /^application\/json/);
  });
});

void test('the OpenAPI document describes the federation routes as a node serves them: Proxy-Authorization, Via, 508, processed', async () => {
  type Op = { parameters?: { in: string; name: string; description?: string }[]; responses?: Record<string, { description?: string; headers?: Record<string, unknown>; content?: Record<string, { schema?: { properties?: { error?: { properties?: Record<string, unknown> } } } }> }> };
  const doc = (await (await fetch(`${fire.url()}/openapi.json`, { signal: AbortSignal.timeout(10_000) })).json()) as { paths: Record<string, { post?: Op }> };
  for (const path of ['affiliations', 'deaffiliations', 'affiliation-changes', 'affiliation-resyncs']) {
    const op = doc.paths[`/federation/v1/${path}`]?.post;
    assert.ok(op, path);
    const headers = (op.parameters ?? []).filter((p) => p.in === 'header').map((p) => p.name.toLowerCase()).sort();
    assert.deepEqual(headers, ['proxy-authorization', 'via'], path);
    const responses = op.responses ?? {};
    for (const status of ['400', '401', '403', '407', '429', '503', '508']) {
      const error = responses[status]?.content?.['application/json']?.schema?.properties?.error?.properties;
      assert.ok(error?.['code'] && error['message'], `${path} ${status}: ${JSON.stringify(responses[status])}`);
      assert.ok(error['processed'], `${path} ${status}: processed`);
    }
    assert.ok(responses['508']?.description?.includes('loop'), `${path} 508: ${responses['508']?.description}`);
    assert.match(responses['407']?.description ?? '', /Proxy-Authorization/, `${path} 407: the hop credential`);
    assert.ok(responses['407']?.headers?.['proxy-authenticate'], `${path} 407: Proxy-Authenticate`);
    assert.doesNotMatch(responses['401']?.description ?? '', /Proxy-Authorization/, `${path} 401: the end-to-end credential only`);
    for (const status of ['429', '503']) assert.ok(responses[status]?.headers?.['retry-after'], `${path} ${status}: Retry-After`);
    assert.ok(responses['503']?.headers?.['via'], `${path} 503: Via on a relayed answer`);
    assert.ok(responses['200']?.headers?.['via'], `${path} 200: described, Via on a relayed answer`);
  }
});

// E2E: the operator's Prometheus metrics (GET /admin/v1/metrics) from the real server process: request durations
// by route pattern, the SQLite group commit's WAL syncs and batch sizes, and Node's own; operator credential only.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { Muster, call, freePort, secret } from '../support/harness.ts';
import { UdpClient } from '../support/sip-udp.ts';

const D = 'police.example';
const u = (name: string): string => `sip:${name}@${D}`;

let m: Muster;
let base: string;
let sipPort: number;

before(async () => {
  m = await Muster.start({
    systems: [
      {
        name: 'police',
        domain: D,
        http: { host: '127.0.0.1', port: await freePort() },
        sip: { port: (sipPort = await freePort()), transports: ['udp'], trustedPeers: ['127.0.0.1'] },
        secret: secret(),
        users: [{ id: u('alice'), services: ['mcptt'], n2: 2, groups: [u('patrol')] }],
        groups: [{ id: u('patrol'), services: ['mcptt'], members: [u('alice')] }],
      },
    ],
  });
  base = m.url('police');
});

after(() => m?.stop());

/** The value of the sample `name{labels}` in the exposition text, or undefined when there is none. */
function sample(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  for (const line of text.split('\n')) {
    const match = /^([a-z_:][a-z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!match || match[1] !== name) continue;
    const got = Object.fromEntries([...(match[2] ?? '').matchAll(/([a-z_]+)="([^"]*)"/g)].map((l) => [l[1]!, l[2]!]));
    if (Object.entries(labels).every(([k, v]) => got[k] === v)) return Number(match[3]);
  }
  return undefined;
}

void test('after two affiliation requests, the operator sees them, the WAL syncs that answered them, and the process', async () => {
  const alice = await m.token(u('alice'));
  for (const path of ['affiliations', 'deaffiliations']) {
    const r = await call('POST', `${base}/mc/v1/${path}`, alice, { mcServiceId: u('alice'), service: 'mcptt', groupIds: [u('patrol')] });
    assert.equal(r.status, 200);
  }
  const r = await call('GET', `${base}/admin/v1/metrics`, await m.operatorToken());
  assert.equal(r.status, 200);
  const text = r.body as string;
  const route = { system: 'police', method: 'POST', route: '/mc/v1/affiliations', status: '2xx' };
  assert.equal(sample(text, 'muster_http_request_duration_seconds_count', route), 1, 'one affiliation request, counted under its route pattern');
  assert.equal(sample(text, 'muster_http_request_duration_seconds_count', { ...route, route: '/mc/v1/deaffiliations' }), 1);
  assert.ok((sample(text, 'muster_sqlite_wal_sync_seconds_count') ?? 0) >= 2, 'each acknowledged change waited for a WAL sync');
  assert.ok((sample(text, 'muster_sqlite_commit_writes_sum') ?? 0) >= 2, 'the changes went through the group commit');
  assert.ok((sample(text, 'muster_process_resident_memory_bytes') ?? 0) > 0, "Node's process metrics are there");
  assert.ok(sample(text, 'muster_nodejs_eventloop_lag_p99_seconds') !== undefined, 'event-loop delay is there');
  assert.ok(!text.includes('alice'), 'no user ID in any label');
});

void test('metrics need an operator credential: none is 401, a user is 403', async () => {
  assert.equal((await call('GET', `${base}/admin/v1/metrics`, undefined)).status, 401);
  assert.equal((await call('GET', `${base}/admin/v1/metrics`, await m.token(u('alice')))).status, 403);
});

void test('a SIP request shows under its method and status class; an unknown method under other', async () => {
  const c = await UdpClient.open(sipPort);
  try {
    for (const [i, method] of ['OPTIONS', 'FROBNICATE'].entries()) {
      c.send([`${method} sip:mc-server@${D} SIP/2.0`, `Via: SIP/2.0/UDP 127.0.0.1:${c.port};branch=z9hG4bK-metrics-${i}`, `From: <${u('alice')}>;tag=m${i}`, `To: <sip:mc-server@${D}>`, `Call-ID: metrics-${i}`, `CSeq: 1 ${method}`, 'Max-Forwards: 70']);
      assert.equal((await c.response(method)).status, method === 'OPTIONS' ? 200 : 405);
    }
  } finally {
    c.close();
  }
  const text = (await call('GET', `${base}/admin/v1/metrics`, await m.operatorToken())).body as string;
  assert.equal(sample(text, 'muster_sip_request_duration_seconds_count', { method: 'OPTIONS', status: '2xx' }), 1);
  assert.equal(sample(text, 'muster_sip_request_duration_seconds_count', { method: 'other', status: '4xx' }), 1);
  assert.ok(!text.includes('FROBNICATE'), "a sender's method never becomes a label");
});

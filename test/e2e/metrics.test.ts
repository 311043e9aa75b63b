// E2E: the operator's Prometheus metrics (GET /admin/v1/metrics) from the real server process: request durations
// by route pattern, the SQLite group commit's WAL syncs and batch sizes, and Node's own; operator credential only.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { Muster, call, freePort, secret } from '../support/harness.ts';

const D = 'police.example';
const u = (name: string): string => `sip:${name}@${D}`;

let m: Muster;
let base: string;

before(async () => {
  m = await Muster.start({
    systems: [
      {
        name: 'police',
        domain: D,
        http: { host: '127.0.0.1', port: await freePort() },
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

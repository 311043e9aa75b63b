// E2E (issue 7): the audit log against the real server process: every state-changing request leaves one entry
// (who, on whose behalf, what, result), refusals included, queryable by the operator at GET /admin/v1/audit with
// filters and paging; a user credential may not read it. Runs on SQLite, and with MUSTER_E2E_BACKEND=postgres on
// two instances over PostgreSQL (an entry written by one instance is read through the other).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Muster, call, freePort, secret } from '../support/harness.ts';

const D = 'police.example';
const u = (name: string): string => `sip:${name}@${D}`;
const g = (name: string): string => `sip:${name}@${D}`;
const enc = encodeURIComponent;

interface Entry {
  id: number;
  at: string;
  subject: string;
  role: string;
  onBehalfOf: string | null;
  action: string;
  service: string | null;
  groups: string[];
  httpStatus: number;
  errorCode: string | null;
  result: { status?: { groupId: string; status: string; reason?: string }[]; outcome?: string; error?: { code: string } } | null;
}

type Statuses = { status: { status: string }[] };

let m: Muster;
let base: string;
let op: string;
const started = Date.now();

before(async () => {
  m = await Muster.start({
    systems: [
      {
        name: 'police',
        domain: D,
        http: { host: '127.0.0.1', port: await freePort() },
        secret: secret(),
        users: [
          { id: u('dispatch'), services: ['mcptt'], n2: 10, groups: [g('patrol'), g('north')], remoteChange: true },
          { id: u('alice'), services: ['mcptt'], n2: 1, groups: [g('patrol'), g('north')] },
          { id: u('bob'), services: ['mcptt'], n2: 3, groups: [g('patrol'), g('north')] },
        ],
        groups: [
          { id: g('patrol'), services: ['mcptt'], members: [u('dispatch'), u('alice'), u('bob')] },
          { id: g('north'), services: ['mcptt'], members: [u('dispatch'), u('alice'), u('bob')] },
        ],
      },
    ],
  });
  base = m.url('police');
  op = await m.operatorToken();
});

after(() => m?.stop());

async function audit(query: Record<string, string | number> = {}, token = op): Promise<{ status: number; body: { entries: Entry[]; next: number | null; error?: { code: string; field?: string } } }> {
  const qs = new URLSearchParams(Object.entries(query).map(([k, v]) => [k, String(v)])).toString();
  return call('GET', `${base}/admin/v1/audit${qs ? `?${qs}` : ''}`, token);
}

void describe('audit log', () => {
  void test('each change and each refusal is on record, with who, on whose behalf, what and the result', async () => {
    const alice = await m.token(u('alice'));
    const dispatch = await m.token(u('dispatch'));

    // An affiliation (patrol), then a refused one (north: N2 is 1).
    let r = await call('POST', `${base}/mc/v1/affiliations`, alice, { mcServiceId: u('alice'), service: 'mcptt', groupIds: [g('patrol')] });
    assert.equal(r.status, 200);
    r = await call('POST', `${base}/mc/v1/affiliations`, alice, { mcServiceId: u('alice'), service: 'mcptt', groupIds: [g('north')] });
    assert.equal((r.body as Statuses).status[0]?.status, 'rejected');
    // A de-affiliation.
    r = await call('POST', `${base}/mc/v1/deaffiliations`, alice, { mcServiceId: u('alice'), service: 'mcptt', groupIds: [g('patrol')] });
    assert.equal((r.body as Statuses).status[0]?.status, 'deaffiliated');
    // A mandatory change by the dispatcher for bob.
    r = await call('POST', `${base}/mc/v1/affiliation-changes`, dispatch, { mcServiceId: u('dispatch'), service: 'mcptt', mode: 'mandatory', targets: [u('bob')], affiliate: [g('north')] });
    assert.equal(r.status, 200);
    assert.equal((r.body as { results: { outcome: string }[] }).results[0]?.outcome, 'applied');
    // An operator's profile put.
    r = await call('PUT', `${base}/admin/v1/users/${enc(u('carol'))}`, op, { services: ['mcptt'], n2: 2, groups: [g('patrol')] });
    assert.equal(r.status, 200);
    // Alice acting as bob: 403.
    r = await call('POST', `${base}/mc/v1/affiliations`, alice, { mcServiceId: u('bob'), service: 'mcptt', groupIds: [g('patrol')] });
    assert.equal(r.status, 403);

    const { status, body } = await audit();
    assert.equal(status, 200);
    const rows = body.entries.map((e) => [e.action, e.subject, e.role, e.onBehalfOf, e.httpStatus, e.errorCode]);
    assert.deepEqual(rows, [
      ['affiliation', u('alice'), 'user', u('alice'), 200, null],
      ['affiliation', u('alice'), 'user', u('alice'), 200, null],
      ['de-affiliation', u('alice'), 'user', u('alice'), 200, null],
      ['change-mandatory', u('dispatch'), 'user', u('bob'), 200, null],
      ['profile-put', 'operator', 'operator', u('carol'), 200, null],
      ['affiliation', u('alice'), 'user', u('bob'), 403, 'forbidden'],
    ]);
    const [affiliated, refused, left, change, profile, forbidden] = body.entries as [Entry, Entry, Entry, Entry, Entry, Entry];
    assert.deepEqual(affiliated.groups, [g('patrol')]);
    assert.equal(affiliated.service, 'mcptt');
    assert.deepEqual(affiliated.result?.status, [{ groupId: g('patrol'), status: 'affiliated' }]);
    assert.deepEqual(refused.result?.status, [{ groupId: g('north'), status: 'rejected', reason: 'n2-limit' }]);
    assert.deepEqual(left.result?.status, [{ groupId: g('patrol'), status: 'deaffiliated' }]);
    assert.deepEqual(change.groups, [g('north')]);
    assert.equal(change.result?.outcome, 'applied');
    assert.deepEqual(change.result?.status, [{ groupId: g('north'), status: 'affiliated' }]);
    assert.deepEqual(profile.groups, []);
    assert.equal(forbidden.result?.error?.code, 'forbidden');
    const ids = body.entries.map((e) => e.id);
    assert.deepEqual(ids, [...ids].sort((a, b) => a - b));
    for (const e of body.entries) assert.ok(Date.parse(e.at) >= started - 1000 && Date.parse(e.at) <= Date.now() + 1000, e.at);
    // Reading is not a change: the query itself left no entry.
    assert.equal((await audit()).body.entries.length, 6);
  });

  void test('filters: subject, onBehalfOf, since/until (ISO or epoch ms), limit and after', async () => {
    const bySubject = await audit({ subject: u('dispatch') });
    assert.deepEqual(bySubject.body.entries.map((e) => e.action), ['change-mandatory']);
    const forBob = await audit({ onBehalfOf: u('bob') });
    assert.deepEqual(forBob.body.entries.map((e) => [e.action, e.subject]), [
      ['change-mandatory', u('dispatch')],
      ['affiliation', u('alice')],
    ]);
    assert.deepEqual((await audit({ subject: u('alice'), onBehalfOf: u('alice') })).body.entries.length, 3);

    const all = (await audit()).body.entries;
    const fourth = Date.parse(all[3]!.at);
    assert.ok((await audit({ since: new Date(fourth).toISOString() })).body.entries.every((e) => Date.parse(e.at) >= fourth));
    assert.ok((await audit({ until: fourth })).body.entries.every((e) => Date.parse(e.at) < fourth));
    assert.equal((await audit({ since: Date.now() + 60_000 })).body.entries.length, 0);
    assert.equal((await audit({ since: 0, until: Date.now() + 60_000 })).body.entries.length, all.length);

    // Paging: two at a time, resuming after `next`.
    const seen: number[] = [];
    let after: number | null = 0;
    while (after !== null) {
      const page = await audit({ limit: 2, after });
      assert.equal(page.status, 200);
      assert.ok(page.body.entries.length <= 2);
      seen.push(...page.body.entries.map((e) => e.id));
      after = page.body.next;
    }
    assert.deepEqual(seen, all.map((e) => e.id));
  });

  void test('bad queries are 400s naming the field', async () => {
    for (const [query, field] of [
      [{ limit: 0 }, 'limit'],
      [{ limit: 1001 }, 'limit'],
      [{ limit: 'ten' }, 'limit'],
      [{ since: 'yesterday' }, 'since'],
      [{ until: '2025-01-31' }, 'until'],
      [{ since: 2000, until: 1000 }, 'until'],
      [{ after: -1 }, 'after'],
      [{ colour: 'red' }, 'colour'],
    ] as [Record<string, string | number>, string][]) {
      const r = await audit(query);
      assert.equal(r.status, 400, JSON.stringify(query));
      assert.equal(r.body.error?.field, field, JSON.stringify(r.body));
    }
  });

  void test('only an operator credential reads the audit log', async () => {
    const r = await audit({}, await m.token(u('alice')));
    assert.equal(r.status, 403);
    assert.equal((await call('GET', `${base}/admin/v1/audit`, undefined)).status, 401);
  });

  void test('the audit query is described in the OpenAPI document', async () => {
    const doc = (await call('GET', `${base}/openapi.json`, undefined)).body as { paths: Record<string, { get?: { parameters?: { name: string }[] } }> };
    const names = (doc.paths['/admin/v1/audit']?.get?.parameters ?? []).map((p) => p.name).sort();
    assert.deepEqual(names, ['after', 'limit', 'onBehalfOf', 'since', 'subject', 'until']);
  });
});

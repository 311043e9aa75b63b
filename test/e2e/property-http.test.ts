// E2E property and fuzz tests (issue 7) against the real server process: bodies shaped near the real flows but
// each with a defect (wrong types, huge strings, deep nesting, unicode, extra and prototype-pollution fields),
// arbitrary header values and arbitrary path IDs. Every answer is a 4xx in the error body of CONTRACT.md (400s name
// a field), within a time bound; afterwards the server is healthy and nothing was stored. Two spellings of one group
// URI are one affiliation.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { Muster, call, freePort, secret } from '../support/harness.ts';
import { issueToken } from '../../src/faces/http/credentials.ts';
import { InvalidId, parseMcUri } from '../../src/domain/ids.ts';

const D = 'police.example';
const u = (name: string): string => `sip:${name}@${D}`;
const FUZZ = u('fuzz');
const BOB = u('bob');
const SPELL = u('spell');
const PATROL = u('patrol');
const NORTH = u('north');
/** A group whose user part has capitals: its spellings differ in scheme and host case only. */
const ALICE_GROUP = 'sip:Alice@police.example';
const KNOWN = new Set([FUZZ, BOB, SPELL, PATROL, NORTH, ALICE_GROUP]);
const enc = encodeURIComponent;

/** Each property stops after this long even if its runs are not done (the suite stays well under 40 s). */
const BOUND = { numRuns: 200, interruptAfterTimeLimit: 8_000, markInterruptAsFailure: false } as const;
const REQUEST_TIMEOUT_MS = 5_000;

let m: Muster;
let base: string;
let fuzzToken: string;

before(async () => {
  m = await Muster.start({
    // Far from this suite's request rate: a refusal here must come from the input, not the rate limit.
    rateLimit: { perSecond: 100_000, burst: 100_000 },
    systems: [
      {
        name: 'police',
        domain: D,
        http: { host: '127.0.0.1', port: await freePort() },
        secret: secret(),
        users: [
          { id: FUZZ, services: ['mcptt', 'mcdata'], n2: 5, groups: [PATROL, NORTH] },
          { id: BOB, services: ['mcptt'], n2: 5, groups: [PATROL, NORTH], remoteChange: true },
          { id: SPELL, services: ['mcptt'], n2: 5, groups: [ALICE_GROUP] },
        ],
        groups: [
          { id: PATROL, services: ['mcptt', 'mcdata'], members: [FUZZ, BOB] },
          { id: NORTH, services: ['mcptt'], members: [FUZZ, BOB] },
          { id: ALICE_GROUP, services: ['mcptt'], members: [SPELL] },
        ],
      },
    ],
  });
  base = m.url('police');
  fuzzToken = await m.token(FUZZ);
});

after(async () => {
  await m?.stop();
});

interface Answer {
  status: number;
  text: string;
}

/** One request bounded in time: a hang is a failure, not a stalled suite. */
async function send(method: string, path: string, headers: Record<string, string>, body?: string): Promise<Answer> {
  const res = await fetch(`${base}${path}`, { method, headers, ...(body !== undefined ? { body } : {}), signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS) });
  return { status: res.status, text: await res.text() };
}

/** A 4xx with { error: { code, message } }, and for a 400 the field at fault. */
function assertRefusal(a: Answer, what: string): void {
  const show = `${what} -> ${a.status} ${a.text.slice(0, 300)}`;
  assert.ok(a.status >= 400 && a.status < 500, show);
  let body: { error?: { code?: unknown; message?: unknown; field?: unknown } };
  try {
    body = JSON.parse(a.text) as typeof body;
  } catch {
    assert.fail(`not JSON: ${show}`);
  }
  assert.equal(typeof body.error?.code, 'string', show);
  assert.equal(typeof body.error?.message, 'string', show);
  if (a.status === 400) assert.equal(typeof body.error?.field, 'string', `a 400 names its field: ${show}`);
}

const isKnownId = (raw: string): boolean => {
  try {
    return KNOWN.has(parseMcUri(raw));
  } catch (e) {
    if (e instanceof InvalidId) return false;
    throw e;
  }
};

const decodesToKnownId = (segment: string): boolean => {
  try {
    return isKnownId(decodeURIComponent(segment));
  } catch {
    return false; // a malformed escape: not an ID at all
  }
};

// ---- generators ---------------------------------------------------------------------------------------------

/** A JSON value spelled out as text, so that keys such as __proto__ and deep nesting reach the server verbatim. */
type Raw = { raw: string };
type Value = Raw | { json: unknown };
const text = (v: Value): string => ('raw' in v ? v.raw : JSON.stringify(v.json));
const objectText = (entries: [string, Value][]): string => `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${text(v)}`).join(',')}}`;

const unicode = fc.string({ unit: 'grapheme', maxLength: 60 });
const anyString = fc.oneof(fc.string({ maxLength: 40 }), unicode, fc.string({ minLength: 257, maxLength: 600 }));
const jsonish = fc.oneof({ weight: 4, arbitrary: fc.jsonValue({ maxDepth: 3 }) }, anyString, fc.constant(null), fc.integer(), fc.double({ noNaN: true, noDefaultInfinity: true }));
const deep = fc.tuple(fc.integer({ min: 50, max: 6_000 }), fc.constantFrom('[', '{"a":')).map(([n, open]): Raw => ({ raw: `${open.repeat(n)}${open === '[' ? '' : '1'}${(open === '[' ? ']' : '}').repeat(n)}` }));
const huge = fc.integer({ min: 65_000, max: 80_000 }).map((n): Value => ({ json: 'x'.repeat(n) }));
/** Strings parseMcUri refuses: near-misses of URIs and anything else. */
const notAnId = fc
  .oneof(anyString, fc.constantFrom('patrol', 'sip:', 'sip:@police.example', 'sip:a@', 'sip:a@.x', 'sip:a@x..y', 'tel:', 'tel:abc', 'mailto:a@b', 'sip:a b@x', `${PATROL} `, ' '))
  .filter((s) => {
    try {
      parseMcUri(s);
      return false;
    } catch {
      return true;
    }
  });
/** A valid ID in a random case of scheme and host: a spelling the server must fold. */
const recase = (id: string, mask: readonly boolean[]): string => {
  const at = id.indexOf('@');
  const colon = id.indexOf(':');
  return [...id].map((c, i) => (i > colon && i < at ? c : mask[i % mask.length] ? c.toUpperCase() : c.toLowerCase())).join('');
};
const spelling = (id: string): fc.Arbitrary<string> => fc.array(fc.boolean(), { minLength: 1, maxLength: 7 }).map((mask) => recase(id, mask));
const validGroup = fc.oneof(spelling(PATROL), spelling(NORTH));
const wrongTypeFor = (kind: 'string' | 'array' | 'boolean'): fc.Arbitrary<Value> =>
  fc.oneof(
    { weight: 5, arbitrary: jsonish.filter((v) => (kind === 'string' ? typeof v !== 'string' : kind === 'array' ? !Array.isArray(v) : typeof v !== 'boolean')).map((json) => ({ json })) },
    { weight: 1, arbitrary: deep.filter((d) => kind !== 'array' || d.raw.startsWith('{')) },
  );
const PROTO_KEYS = ['__proto__', 'constructor', 'prototype', 'toString', 'hasOwnProperty', '__defineGetter__', 'valueOf'];

interface FlowShape {
  path: fc.Arbitrary<string>;
  base: Record<string, fc.Arbitrary<Value>>;
  required: string[];
  kinds: Record<string, 'string' | 'array' | 'boolean'>;
  ids: string[];
  idLists: string[];
  enums: string[];
}

const affiliationShape: FlowShape = {
  path: fc.constantFrom('/mc/v1/affiliations', '/mc/v1/deaffiliations'),
  base: {
    mcServiceId: fc.constant({ json: FUZZ }),
    service: fc.constantFrom('mcptt', 'mcdata').map((json) => ({ json })),
    groupIds: fc.uniqueArray(validGroup, { minLength: 1, maxLength: 3, selector: (s) => s.toLowerCase() }).map((json) => ({ json })),
  },
  required: ['mcServiceId', 'service', 'groupIds'],
  kinds: { mcServiceId: 'string', service: 'string', groupIds: 'array' },
  ids: ['mcServiceId'],
  idLists: ['groupIds'],
  enums: ['service'],
};
const changeShape: FlowShape = {
  path: fc.constant('/mc/v1/affiliation-changes'),
  base: {
    mcServiceId: fc.constant({ json: FUZZ }),
    service: fc.constant({ json: 'mcptt' }),
    mode: fc.constantFrom('mandatory', 'negotiated').map((json) => ({ json })),
    targets: fc.constant({ json: [BOB] }),
    affiliate: fc.constant({ json: [PATROL] }),
    deaffiliate: fc.constant({ json: [NORTH] }),
  },
  required: ['mcServiceId', 'service', 'mode', 'targets'],
  kinds: { mcServiceId: 'string', service: 'string', mode: 'string', targets: 'array', affiliate: 'array', deaffiliate: 'array' },
  ids: ['mcServiceId'],
  idLists: ['targets', 'affiliate', 'deaffiliate'],
  enums: ['service', 'mode'],
};
const answerShape: FlowShape = {
  path: fc.string({ unit: 'grapheme', minLength: 1, maxLength: 40 }).map((id) => `/mc/v1/affiliation-changes/${enc(id)}/answer`),
  base: { accept: fc.boolean().map((json) => ({ json })) },
  required: ['accept'],
  kinds: { accept: 'boolean' },
  ids: [],
  idLists: [],
  enums: [],
};

type Defect = (entries: [string, Value][]) => fc.Arbitrary<[string, Value][]>;
const replace = (entries: [string, Value][], key: string, v: Value): [string, Value][] => entries.map(([k, old]) => [k, k === key ? v : old]);

/** Defects that each make the request one the server must refuse, whatever else the body holds. */
function defects(shape: FlowShape): Defect[] {
  const keys = Object.keys(shape.base);
  const list: Defect[] = [
    (e) => fc.constantFrom(...keys).chain((k) => wrongTypeFor(shape.kinds[k]!).map((v) => replace(e, k, v))),
    (e) => fc.constantFrom(...shape.required).map((k) => e.filter(([x]) => x !== k)),
    (e) => fc.tuple(fc.oneof(fc.constantFrom(...PROTO_KEYS), anyString.filter((k) => !keys.includes(k))), fc.oneof(jsonish.map((json) => ({ json })), deep), fc.nat()).map(([k, v, at]): [string, Value][] => {
      const copy = [...e];
      copy.splice(at % (copy.length + 1), 0, [k, v]);
      return copy;
    }),
    (e) => fc.tuple(fc.constantFrom(...keys), huge).map(([k, v]) => replace(e, k, v)),
  ];
  if (shape.ids.length > 0) {
    list.push((e) => fc.tuple(fc.constantFrom(...shape.ids), notAnId).map(([k, id]) => replace(e, k, { json: id })));
    // Someone else's ID, in any spelling: 403.
    list.push((e) => spelling(BOB).map((id) => replace(e, 'mcServiceId', { json: id })));
  }
  for (const k of shape.idLists) {
    list.push((e) => fc.tuple(fc.array(validGroup, { maxLength: 3 }), notAnId, fc.nat()).map(([ok, bad, at]) => replace(e, k, { json: [...ok.slice(0, at % (ok.length + 1)), bad, ...ok.slice(at % (ok.length + 1))] })));
    list.push((e) => fc.tuple(spelling(PATROL), spelling(PATROL)).map(([a, b]) => replace(e, k, { json: [a, b] })));
  }
  for (const k of shape.required.filter((x) => shape.kinds[x] === 'array')) list.push((e) => fc.constant(replace(e, k, { json: [] })));
  for (const k of shape.enums) list.push((e) => anyString.filter((s) => !['mcptt', 'mcdata', 'mcvideo', 'mandatory', 'negotiated'].includes(s)).map((s) => replace(e, k, { json: s })));
  return list;
}

function badBody(shape: FlowShape): fc.Arbitrary<{ path: string; body: string }> {
  const baseEntries = fc.record(shape.base).map((r): [string, Value][] => Object.entries(r));
  const mutated = fc.tuple(baseEntries, fc.nat(), fc.nat({ max: 2 })).chain(([entries, pick, more]) => {
    const all = defects(shape);
    // One defect at least, up to three on top of each other.
    let arb: fc.Arbitrary<[string, Value][]> = all[pick % all.length]!(entries);
    for (let i = 0; i < more; i++) arb = arb.chain((e) => fc.nat().chain((p) => all[p % all.length]!(e)));
    return arb.map(objectText);
  });
  // Not an object at all, or not JSON.
  const notObject = fc.oneof(fc.jsonValue({ maxDepth: 2 }).filter((v) => typeof v !== 'object' || v === null || Array.isArray(v)).map((v) => JSON.stringify(v)), anyString, deep.map((d) => d.raw));
  return fc.tuple(shape.path, fc.oneof({ weight: 6, arbitrary: mutated }, { weight: 1, arbitrary: notObject })).map(([path, body]) => ({ path, body }));
}

// ---- properties ---------------------------------------------------------------------------------------------

async function assertNothingStored(): Promise<void> {
  const operator = await m.operatorToken();
  for (const user of [FUZZ, BOB]) {
    const r = await call('GET', `${base}/mc/v1/users/${enc(user)}/affiliations`, operator);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.deepEqual((r.body as { affiliations: unknown[] }).affiliations, [], `${user} has affiliations`);
  }
  for (const gid of [PATROL, NORTH]) {
    const r = await call('GET', `${base}/gms/v1/groups/${enc(gid)}/affiliations`, operator);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.deepEqual((r.body as { members: unknown[] }).members, [], `${gid} has members at the GMS`);
  }
}

async function assertHealthy(): Promise<void> {
  const h = await call('GET', `${base}/healthz`, undefined);
  assert.equal(h.status, 200, JSON.stringify(h.body));
  // A well-formed request of the fuzzing user is still served (and taken back).
  const ok = await call('POST', `${base}/mc/v1/affiliations`, fuzzToken, { mcServiceId: FUZZ, service: 'mcptt', groupIds: [PATROL] });
  assert.equal(ok.status, 200, JSON.stringify(ok.body));
  const back = await call('POST', `${base}/mc/v1/deaffiliations`, fuzzToken, { mcServiceId: FUZZ, service: 'mcptt', groupIds: [PATROL] });
  assert.equal(back.status, 200, JSON.stringify(back.body));
}

void describe('fuzzed input: always a 4xx in the error shape, never a 5xx or a hang', () => {
  after(async () => {
    await assertNothingStored();
    await assertHealthy();
  });

  for (const [name, shape] of [
    ['affiliation and de-affiliation requests', affiliationShape],
    ['affiliation change requests', changeShape],
    ['change answers', answerShape],
  ] as const) {
    void test(`bodies near ${name}`, async () => {
      await fc.assert(
        fc.asyncProperty(badBody(shape), async ({ path, body }) => {
          assertRefusal(await send('POST', path, { authorization: `Bearer ${fuzzToken}`, 'content-type': 'application/json' }, body), `POST ${path} ${body.slice(0, 200)}`);
        }),
        BOUND,
      );
    });
  }

  void test('arbitrary header values with a credential that is not valid', async () => {
    const headerValue = fc.string({ unit: fc.oneof(fc.integer({ min: 0x20, max: 0x7e }), fc.integer({ min: 0xa0, max: 0xff })).map((c) => String.fromCharCode(c)), maxLength: 300 });
    const headerName = fc.stringMatching(/^[a-z][a-z0-9-]{0,20}$/).filter((n) => !['content-length', 'host', 'connection', 'transfer-encoding', 'expect', 'upgrade', 'keep-alive', 'te', 'trailer'].includes(n));
    const foreign = await issueToken({ secret: secret(), domain: D, subject: FUZZ, role: 'user' });
    const authorization = fc.oneof(headerValue, headerValue.map((v) => `Bearer ${v}`), fc.stringMatching(/^Bearer [A-Za-z0-9_.-]{10,200}$/), fc.constant(`Bearer ${foreign}`), fc.constant(`Basic ${Buffer.from(`${FUZZ}:x`).toString('base64')}`));
    const contentType = fc.oneof(fc.constantFrom('application/json', 'application/json; charset=utf-8', 'text/plain', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x', 'application/json, text/plain', ''), headerValue);
    const extra = fc.dictionary(headerName, headerValue, { maxKeys: 6 });
    const request = fc.record({
      path: fc.constantFrom('/mc/v1/affiliations', '/mc/v1/deaffiliations', '/mc/v1/affiliation-changes', '/admin/v1/users/' + enc(FUZZ), '/gms/v1/groups/' + enc(PATROL)),
      authorization,
      contentType,
      extra,
      lastEventId: fc.option(headerValue, { nil: undefined }),
    });
    const body = JSON.stringify({ mcServiceId: FUZZ, service: 'mcptt', groupIds: [PATROL] });
    await fc.assert(
      fc.asyncProperty(request, async (r) => {
        const method = r.path.startsWith('/mc/') ? 'POST' : 'PUT';
        const headers: Record<string, string> = { ...r.extra, authorization: r.authorization, 'content-type': r.contentType, ...(r.lastEventId !== undefined ? { 'last-event-id': r.lastEventId } : {}) };
        assertRefusal(await send(method, r.path, headers, body), `${method} ${r.path} ${JSON.stringify(headers)}`);
      }),
      BOUND,
    );
  });

  void test('arbitrary path IDs', async () => {
    const idish = fc.oneof(anyString, fc.string({ minLength: 1000, maxLength: 1100 }), spelling(u('nobody')), fc.stringMatching(/^(sip|SIP|tel):[^@]{0,20}@?[a-zA-Z0-9.-]{0,20}$/));
    // Percent signs left unencoded: malformed escapes reach the router as they are.
    const raw = fc.stringMatching(/^[A-Za-z0-9%.:@_-]{1,60}$/);
    const segment = fc.oneof(idish.filter((s) => !isKnownId(s)).map(enc), raw.filter((s) => !isKnownId(s) && !decodesToKnownId(s)));
    const route = fc.constantFrom(
      ['GET', '/mc/v1/users/:id/affiliations'],
      ['GET', '/mc/v1/groups/:id/members'],
      ['GET', '/gms/v1/groups/:id'],
      ['GET', '/gms/v1/groups/:id/affiliations'],
      ['GET', '/admin/v1/users/:id'],
      ['PUT', '/admin/v1/users/:id'],
      ['DELETE', '/gms/v1/groups/:id'],
      ['POST', '/mc/v1/affiliation-changes/:id/answer'],
    );
    const query = fc.oneof(fc.constant(''), fc.constantFrom('?service=mcptt', '?service=fax', '?service=', '?x=1', '?service=mcptt&service=mcdata'));
    await fc.assert(
      fc.asyncProperty(route, segment, query, async ([method, pattern], id, q) => {
        const path = pattern.replace(':id', id) + (method === 'GET' ? q : '');
        const body = method === 'PUT' ? JSON.stringify({ services: ['mcptt'], n2: 1, groups: [] }) : method === 'POST' ? '{"accept":true}' : undefined;
        const headers: Record<string, string> = { authorization: `Bearer ${fuzzToken}`, ...(body ? { 'content-type': 'application/json' } : {}) };
        assertRefusal(await send(method, path, headers, body), `${method} ${path}`);
      }),
      BOUND,
    );
  });

  void test('headers larger than the server accepts: 431 in the error shape', async (t) => {
    // Node's HTTP parser refuses these before any route; the answer still has the error body.
    if (m.instances > 1) return t.skip('the test balancer in front of the instances refuses such headers itself');
    const { request } = await import('node:http');
    const answer = await new Promise<Answer>((resolve, reject) => {
      const req = request(`${base}/mc/v1/affiliations`, { method: 'POST', headers: { authorization: `Bearer ${fuzzToken}`, 'x-pad': 'x'.repeat(20_000) }, signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS) }, (res) => {
        let t = '';
        res.on('data', (c: Buffer) => (t += c.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text: t }));
      });
      req.on('error', reject);
      req.end('{}');
    });
    assertRefusal(answer, 'headers of 20 kB');
    assert.equal(answer.status, 431);
  });
});

void describe('two spellings of one group URI', () => {
  void test('SIP:Alice@POLICE.example and sip:Alice@police.example, sent at once, are one affiliation', async () => {
    const token = await m.token(SPELL);
    const operator = await m.operatorToken();
    const spellings = ['SIP:Alice@POLICE.example', 'sip:Alice@police.example', 'sips:Alice@Police.Example', 'Sip:Alice@police.EXAMPLE'];
    const answers = await Promise.all(spellings.map((gid) => call('POST', `${base}/mc/v1/affiliations`, token, { mcServiceId: SPELL, service: 'mcptt', groupIds: [gid] })));
    for (const a of answers) {
      assert.equal(a.status, 200, JSON.stringify(a.body));
      assert.deepEqual((a.body as { status: { groupId: string; status: string }[] }).status, [{ groupId: ALICE_GROUP, status: 'affiliated' }]);
    }
    const mine = await call('GET', `${base}/mc/v1/users/${enc(SPELL)}/affiliations`, operator);
    assert.deepEqual((mine.body as { affiliations: { groupId: string }[] }).affiliations.map((a) => a.groupId), [ALICE_GROUP]);
    const members = await call('GET', `${base}/mc/v1/groups/${enc('SIP:Alice@POLICE.EXAMPLE')}/members`, operator);
    assert.deepEqual((members.body as { members: { mcServiceId: string }[] }).members.map((x) => x.mcServiceId), [SPELL]);
    // The user part is case-sensitive (RFC 3261 19.1.4): sip:alice@... is another group, unknown here.
    const other = await call('POST', `${base}/mc/v1/affiliations`, token, { mcServiceId: SPELL, service: 'mcptt', groupIds: ['sip:alice@police.example'] });
    assert.deepEqual((other.body as { status: { status: string; reason?: string }[] }).status[0], { groupId: 'sip:alice@police.example', status: 'rejected', reason: 'unknown-group' });
    const gone = await call('POST', `${base}/mc/v1/deaffiliations`, token, { mcServiceId: SPELL, service: 'mcptt', groupIds: ['sip:Alice@POLICE.EXAMPLE'] });
    assert.equal(gone.status, 200);
    const none = await call('GET', `${base}/mc/v1/users/${enc(SPELL)}/affiliations`, operator);
    assert.deepEqual((none.body as { affiliations: unknown[] }).affiliations, []);
  });

  void test('any mix of spellings, at once: one affiliation; any other spelling removes it', async () => {
    const token = await m.token(SPELL);
    const operator = await m.operatorToken();
    await fc.assert(
      fc.asyncProperty(fc.array(spelling(ALICE_GROUP), { minLength: 1, maxLength: 6 }), spelling(ALICE_GROUP), async (joins, leave) => {
        const answers = await Promise.all(joins.map((gid) => call('POST', `${base}/mc/v1/affiliations`, token, { mcServiceId: SPELL, service: 'mcptt', groupIds: [gid] })));
        for (const a of answers) assert.equal(a.status, 200, JSON.stringify(a.body));
        const held = await call('GET', `${base}/mc/v1/users/${enc(SPELL)}/affiliations`, operator);
        assert.deepEqual((held.body as { affiliations: { groupId: string }[] }).affiliations.map((a) => a.groupId), [ALICE_GROUP], `after ${joins.join(' ')}`);
        assert.equal((await call('POST', `${base}/mc/v1/deaffiliations`, token, { mcServiceId: SPELL, service: 'mcptt', groupIds: [leave] })).status, 200);
        const after = await call('GET', `${base}/mc/v1/users/${enc(SPELL)}/affiliations`, operator);
        assert.deepEqual((after.body as { affiliations: unknown[] }).affiliations, [], `${leave} did not remove it`);
      }),
      { numRuns: 25, interruptAfterTimeLimit: 8_000, markInterruptAsFailure: false },
    );
  });
});

// E2E (issue 2), one MC system: who may call (401 / 403) and what input is refused (400 naming the field, 413),
// against the real server process; after every refused request nothing is stored.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { SignJWT } from 'jose';
import { Muster, call, freePort, secret } from '../support/harness.ts';
import { issueToken } from '../../src/faces/http/credentials.ts';

const D = 'police.example';
const u = (name: string): string => `sip:${name}@${D}`;
const g = (name: string): string => `sip:${name}@${D}`;
const enc = encodeURIComponent;

interface ErrorBody {
  error: { code: string; message: string; field?: string };
}

const GROUPS = Array.from({ length: 101 }, (_, i) => g(`g${i}`));
let m: Muster;
let base: string;
let systemSecret: string;

before(async () => {
  systemSecret = secret();
  m = await Muster.start({
    systems: [
      {
        name: 'police',
        domain: D,
        http: { host: '127.0.0.1', port: await freePort() },
        secret: systemSecret,
        users: [
          { id: u('alice'), services: ['mcptt'], n2: 200, groups: GROUPS },
          { id: u('bob'), services: ['mcptt'], n2: 200, groups: GROUPS },
          { id: u('carl'), services: ['mcptt'], n2: 1, groups: [] },
        ],
        groups: GROUPS.map((id) => ({ id, services: ['mcptt'], members: [u('alice'), u('bob')] })),
      },
    ],
  });
  base = m.url('police');
});

after(async () => {
  await m?.stop();
});

const affiliationsUrl = (): string => `${base}/mc/v1/affiliations`;
const body = (groupIds: unknown, extra: Record<string, unknown> = {}): Record<string, unknown> => ({ mcServiceId: u('alice'), service: 'mcptt', groupIds, ...extra });

/** Nothing stored for alice or bob, in any service. */
async function assertNothingStored(): Promise<void> {
  for (const user of [u('alice'), u('bob')]) {
    const r = await call('GET', `${base}/mc/v1/users/${enc(user)}/affiliations`, await m.operatorToken());
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.deepEqual((r.body as { affiliations: unknown[] }).affiliations, [], `${user} has affiliations`);
  }
}

function assertError(r: { status: number; body: unknown }, status: number, code: string): ErrorBody['error'] {
  assert.equal(r.status, status, JSON.stringify(r.body));
  const e = (r.body as ErrorBody).error;
  assert.equal(typeof e?.message, 'string', JSON.stringify(r.body));
  assert.equal(e.code, code, JSON.stringify(r.body));
  return e;
}

/** 400 whose message or field names `field`. */
function assertBadField(r: { status: number; body: unknown }, field: string): void {
  const e = assertError(r, 400, 'bad-request');
  assert.ok(e.field === field || e.message.startsWith(`${field}:`), `field ${field} not named in ${JSON.stringify(e)}`);
}

void describe('credentials', () => {
  void test('401 without a credential, for every client flow', async () => {
    assertError(await call('POST', affiliationsUrl(), undefined, body([g('g1')])), 401, 'unauthenticated');
    assertError(await call('POST', `${base}/mc/v1/deaffiliations`, undefined, body([g('g1')])), 401, 'unauthenticated');
    assertError(await call('GET', `${base}/mc/v1/users/${enc(u('alice'))}/affiliations`, undefined), 401, 'unauthenticated');
    assertError(await call('GET', `${base}/mc/v1/events`, undefined), 401, 'unauthenticated');
    await assertNothingStored();
  });

  void test('401 for a malformed credential and for one signed with another secret or for another system', async () => {
    assertError(await call('POST', affiliationsUrl(), 'not-a-jwt-at-all-but-long-enough', body([g('g1')])), 401, 'unauthenticated');
    const res = await fetch(affiliationsUrl(), { method: 'POST', headers: { authorization: 'Basic YWxpY2U6eA==', 'content-type': 'application/json' }, body: JSON.stringify(body([g('g1')])) });
    assert.equal(res.status, 401);
    const forged = await issueToken({ secret: secret(), domain: D, subject: u('alice'), role: 'user' });
    assertError(await call('POST', affiliationsUrl(), forged, body([g('g1')])), 401, 'unauthenticated');
    const otherSystem = await issueToken({ secret: systemSecret, domain: 'fire.example', subject: u('alice'), role: 'user' });
    assertError(await call('POST', affiliationsUrl(), otherSystem, body([g('g1')])), 401, 'unauthenticated');
    await assertNothingStored();
  });

  void test('401 for an expired credential', async () => {
    // Signed with the right secret and audience, but it expired a minute ago.
    const aud = `muster:${D}`;
    const now = Math.floor(Date.now() / 1000);
    const expired = await new SignJWT({ role: 'user' })
      .setProtectedHeader({ alg: 'HS256' })
      .setSubject(u('alice'))
      .setIssuer(aud)
      .setAudience(aud)
      .setIssuedAt(now - 120)
      .setExpirationTime(now - 60)
      .sign(new TextEncoder().encode(systemSecret));
    const e = assertError(await call('POST', affiliationsUrl(), expired, body([g('g1')])), 401, 'unauthenticated');
    assert.match(e.message, /expired/);
    // A credential that worked (and that the server therefore remembers) stops working when it expires.
    const short = await m.token(u('alice'), { ttlSeconds: 1 });
    assert.equal((await call('GET', `${base}/mc/v1/users/${enc(u('alice'))}/affiliations`, short)).status, 200);
    const exp = (JSON.parse(Buffer.from(short.split('.')[1]!, 'base64url').toString()) as { exp: number }).exp * 1000;
    assert.ok(exp - Date.now() <= 1000, 'ttl of at most 1 s');
    await new Promise((r) => setTimeout(r, Math.max(0, exp - Date.now()) + 50));
    const late = assertError(await call('GET', `${base}/mc/v1/users/${enc(u('alice'))}/affiliations`, short), 401, 'unauthenticated');
    assert.match(late.message, /expired/);
    assertError(await call('POST', affiliationsUrl(), short, body([g('g1')])), 401, 'unauthenticated');
    // The same claims, not expired, are accepted: the refusal was the expiry.
    const fresh = await m.token(u('alice'));
    assert.equal((await call('GET', `${base}/mc/v1/users/${enc(u('alice'))}/affiliations`, fresh)).status, 200);
    await assertNothingStored();
  });

  void test('403 for acting as someone else, for reading another user\'s affiliations, and for an operator on client flows', async () => {
    const alice = await m.token(u('alice'));
    const e = assertError(await call('POST', affiliationsUrl(), alice, body([g('g1')], { mcServiceId: u('bob') })), 403, 'forbidden');
    assert.match(e.message, /mcServiceId/);
    assertError(await call('POST', `${base}/mc/v1/deaffiliations`, alice, body([g('g1')], { mcServiceId: u('bob') })), 403, 'forbidden');
    assertError(await call('GET', `${base}/mc/v1/users/${enc(u('bob'))}/affiliations`, alice), 403, 'forbidden');
    assertError(await call('GET', `${base}/mc/v1/groups/${enc(g('g1'))}/members`, await m.token(u('carl'))), 403, 'forbidden');
    // The group document lists the members too: not for carl, nor does he learn which groups exist.
    assertError(await call('GET', `${base}/gms/v1/groups/${enc(g('g1'))}`, await m.token(u('carl'))), 403, 'forbidden');
    assertError(await call('GET', `${base}/gms/v1/groups/${enc(g('nowhere'))}`, await m.token(u('carl'))), 403, 'forbidden');
    const doc = await call('GET', `${base}/gms/v1/groups/${enc(g('g1'))}`, alice);
    assert.equal(doc.status, 200, 'a member reads it');
    assert.deepEqual((doc.body as { members: string[] }).members, [u('alice'), u('bob')]);
    assertError(await call('POST', affiliationsUrl(), await m.operatorToken(), body([g('g1')])), 403, 'forbidden');
    // A user may not use the operator's faces either.
    assertError(await call('PUT', `${base}/admin/v1/users/${enc(u('alice'))}`, alice, { services: ['mcptt'], n2: 1000, groups: [] }), 403, 'forbidden');
    assertError(await call('PUT', `${base}/gms/v1/groups/${enc(g('g1'))}`, alice, { services: ['mcptt'], members: [u('alice')], enabled: false }), 403, 'forbidden');
    // The same request for herself passes.
    const ok = await call('GET', `${base}/mc/v1/users/${enc(u('alice'))}/affiliations`, alice);
    assert.equal(ok.status, 200);
    await assertNothingStored();
  });
});

void describe('input', () => {
  let alice: string;
  before(async () => {
    alice = await m.token(u('alice'));
  });

  void test('malformed JSON: 400 naming the body', async () => {
    assertBadField(await call('POST', affiliationsUrl(), alice, '{"mcServiceId": "sip:alice@police.example", "service": "mcptt", "groupIds": ['), 'body');
    assertBadField(await call('POST', affiliationsUrl(), alice, '{"mcServiceId": '), 'body');
    await assertNothingStored();
  });

  void test('unknown field: 400 naming it', async () => {
    assertBadField(await call('POST', affiliationsUrl(), alice, body([g('g1')], { priority: 'high' })), 'priority');
    await assertNothingStored();
  });

  void test('missing field and wrong service: 400 naming them', async () => {
    assertBadField(await call('POST', affiliationsUrl(), alice, { mcServiceId: u('alice'), service: 'mcptt' }), 'groupIds');
    assertBadField(await call('POST', affiliationsUrl(), alice, body([g('g1')], { service: 'mcfax' })), 'service');
    await assertNothingStored();
  });

  void test('empty and oversized (101) group lists: 400 naming groupIds', async () => {
    assertBadField(await call('POST', affiliationsUrl(), alice, body([])), 'groupIds');
    assertBadField(await call('POST', affiliationsUrl(), alice, body(GROUPS)), 'groupIds');
    assertBadField(await call('POST', `${base}/mc/v1/deaffiliations`, alice, body(GROUPS)), 'groupIds');
    // 100 is the limit, and it is accepted whole.
    const hundred = await call('POST', affiliationsUrl(), alice, body(GROUPS.slice(0, 100)));
    assert.equal(hundred.status, 200, JSON.stringify(hundred.body));
    assert.equal((hundred.body as { status: { status: string }[] }).status.filter((s) => s.status === 'affiliated').length, 100);
    const gone = await call('POST', `${base}/mc/v1/deaffiliations`, alice, body(GROUPS.slice(0, 100)));
    assert.equal(gone.status, 200);
    await assertNothingStored();
  });

  void test('repeated group IDs, also in another spelling: 400 naming the repeat', async () => {
    assertBadField(await call('POST', affiliationsUrl(), alice, body([g('g1'), g('g2'), g('g1')])), 'groupIds[2]');
    assertBadField(await call('POST', affiliationsUrl(), alice, body([g('g1'), 'SIP:g1@POLICE.EXAMPLE'])), 'groupIds[1]');
    await assertNothingStored();
  });

  void test('IDs that are not URIs: 400 naming the field; nothing of the request is applied', async () => {
    assertBadField(await call('POST', affiliationsUrl(), alice, body([g('g1'), 'patrol'])), 'groupIds[1]');
    assertBadField(await call('POST', affiliationsUrl(), alice, body([g('g1'), 'sip:no-domain'])), 'groupIds[1]');
    assertBadField(await call('POST', affiliationsUrl(), alice, body([g('g1'), 42])), 'groupIds[1]');
    assertBadField(await call('POST', affiliationsUrl(), alice, body([g('g1')], { mcServiceId: 'alice' })), 'mcServiceId');
    assertBadField(await call('POST', `${base}/mc/v1/affiliation-changes`, alice, { mcServiceId: u('alice'), service: 'mcptt', mode: 'mandatory', targets: ['bob'], affiliate: [g('g1')] }), 'targets[0]');
    assertBadField(await call('GET', `${base}/mc/v1/users/not-a-uri/affiliations`, alice), 'id');
    await assertNothingStored();
  });

  void test('a body over 64 KiB: 413', async () => {
    const big = JSON.stringify(body([g('g1')], { padding: 'x'.repeat(70 * 1024) }));
    const e = assertError(await call('POST', affiliationsUrl(), alice, big), 413, 'too-large');
    assert.ok(e.message.length > 0);
    await assertNothingStored();
  });

  void test('change requests: no group, a group both joined and left, repeated targets: 400 naming the field', async () => {
    const url = `${base}/mc/v1/affiliation-changes`;
    const change = (extra: Record<string, unknown>): Record<string, unknown> => ({ mcServiceId: u('alice'), service: 'mcptt', mode: 'mandatory', targets: [u('alice')], ...extra });
    assertBadField(await call('POST', url, alice, change({})), 'affiliate');
    assertBadField(await call('POST', url, alice, change({ affiliate: [g('g1')], deaffiliate: [g('g1')] })), 'deaffiliate');
    assertBadField(await call('POST', url, alice, change({ targets: [u('alice'), u('alice')], affiliate: [g('g1')] })), 'targets[1]');
    assertBadField(await call('POST', url, alice, change({ mode: 'polite', affiliate: [g('g1')] })), 'mode');
    assertBadField(await call('POST', url, alice, change({ targets: [], affiliate: [g('g1')] })), 'targets');
    await assertNothingStored();
  });
});

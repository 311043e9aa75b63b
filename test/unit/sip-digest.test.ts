// Server-side digest (RFC 7616 with qop=auth, MD5 and SHA-256): the RFC's own example, derived passwords, signed
// nonces that expire (stale=true), nc replay refused (also on another instance), wrong password, wrong realm/uri,
// and the parameter parser.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DigestAuthenticator, digestResponse, parseDigestParams, sipDigestPassword, type DigestAlgorithm } from '../../src/faces/sip/digest.ts';

// RFC 7616 §3.9.1: the same request answered with MD5 and with SHA-256.
const rfc = { username: 'Mufasa', realm: 'http-auth@example.org', password: 'Circle of Life', method: 'GET', uri: '/dir/index.html', nonce: '7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v', nc: '00000001', cnonce: 'f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ' };

void test('RFC 7616 §3.9.1 example: MD5 and SHA-256 responses', () => {
  assert.equal(digestResponse({ ...rfc, algorithm: 'MD5' }), '8ca523f5e9506fed4657c9700eebdbec');
  assert.equal(digestResponse({ ...rfc, algorithm: 'SHA-256' }), '753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1');
});

void test('the SIP password is HMAC-SHA-256(secret, "sip-digest:" + id) in base64url, so a new secret changes it', () => {
  assert.equal(sipDigestPassword('s3cret', 'sip:alice@police.example'), '574awTqVlVGs6w6zGz4Crx8JYRMYj7fsOwowLfxRY2g'); // openssl dgst -sha256 -hmac s3cret, base64url
  assert.notEqual(sipDigestPassword('other', 'sip:alice@police.example'), sipDigestPassword('s3cret', 'sip:alice@police.example'));
  assert.notEqual(sipDigestPassword('s3cret', 'sip:bob@police.example'), sipDigestPassword('s3cret', 'sip:alice@police.example'));
});

void test('the parser reads quoted and token values, and refuses what is not an auth-param list', () => {
  const p = parseDigestParams('Digest username="sip:alice@police.example", realm="police.example", nc=00000001, qop=auth, response="ab\\"c"');
  assert.equal(p?.get('username'), 'sip:alice@police.example');
  assert.equal(p?.get('nc'), '00000001');
  assert.equal(p?.get('response'), 'ab"c');
  assert.equal(parseDigestParams('Bearer abc'), undefined);
  assert.equal(parseDigestParams('Digest username="a" garbage'), undefined);
  assert.equal(parseDigestParams('Digest nc=1, nc=2'), undefined, 'a directive twice');
});

const SECRET = 'test-secret-0123456789';
const REALM = 'police.example';
const PSI = 'sip:mc-server@police.example';
const alice = 'sip:alice@police.example';

function setup(): { auth: DigestAuthenticator; clock: { t: number } } {
  const clock = { t: 1_700_000_000_000 };
  return { auth: new DigestAuthenticator({ secret: SECRET, realm: REALM, now: () => clock.t, nonceLifetimeMs: 60_000 }), clock };
}

function nonceOf(auth: DigestAuthenticator, algorithm: DigestAlgorithm): string {
  const challenge = auth.challenges().find(([, v]) => v.includes(`algorithm=${algorithm}`))![1];
  return /nonce="([^"]+)"/.exec(challenge)![1]!;
}

function authorization(o: { algorithm: DigestAlgorithm; nonce: string; nc?: string; password?: string; username?: string; uri?: string; realm?: string; method?: string }): string {
  const input = { algorithm: o.algorithm, username: o.username ?? alice, realm: o.realm ?? REALM, password: o.password ?? sipDigestPassword(SECRET, o.username ?? alice), method: o.method ?? 'PUBLISH', uri: o.uri ?? PSI, nonce: o.nonce, nc: o.nc ?? '00000001', cnonce: 'c0ffee' };
  return `Digest username="${input.username}", realm="${input.realm}", nonce="${o.nonce}", uri="${input.uri}", response="${digestResponse(input)}", algorithm=${o.algorithm}, cnonce="c0ffee", qop=auth, nc=${input.nc}`;
}

void test('challenges: SHA-256 first, then MD5, each with qop="auth" and its own nonce', () => {
  const { auth } = setup();
  const c = auth.challenges();
  assert.equal(c.length, 2);
  assert.match(c[0]![1], /^Digest realm="police\.example", nonce="[^"]+", algorithm=SHA-256, qop="auth"$/);
  assert.match(c[1]![1], /algorithm=MD5/);
  assert.notEqual(/nonce="([^"]+)"/.exec(c[0]![1])![1], /nonce="([^"]+)"/.exec(c[1]![1])![1]);
  assert.match(auth.challenges(true)[0]![1], /, stale=true$/);
});

for (const algorithm of ['SHA-256', 'MD5'] as const) {
  void test(`${algorithm}: the right password passes and names the user`, () => {
    const { auth } = setup();
    assert.deepEqual(auth.verify(authorization({ algorithm, nonce: nonceOf(auth, algorithm) }), 'PUBLISH', PSI), { ok: true, username: alice });
  });
}

void test('a wrong password is refused (not stale)', () => {
  const { auth } = setup();
  const v = auth.verify(authorization({ algorithm: 'SHA-256', nonce: nonceOf(auth, 'SHA-256'), password: 'guess' }), 'PUBLISH', PSI);
  assert.equal(v.ok, false);
  assert.equal(!v.ok && v.stale, false);
});

void test('a replayed nc with the same nonce is refused; a higher nc passes', () => {
  const { auth } = setup();
  const nonce = nonceOf(auth, 'SHA-256');
  assert.equal(auth.verify(authorization({ algorithm: 'SHA-256', nonce, nc: '00000001' }), 'PUBLISH', PSI).ok, true);
  const replay = auth.verify(authorization({ algorithm: 'SHA-256', nonce, nc: '00000001' }), 'PUBLISH', PSI);
  assert.equal(replay.ok, false);
  assert.match(!replay.ok ? replay.why : '', /nc 00000001 was already used/);
  assert.equal(auth.verify(authorization({ algorithm: 'SHA-256', nonce, nc: '00000002' }), 'PUBLISH', PSI).ok, true);
  assert.equal(auth.verify(authorization({ algorithm: 'SHA-256', nonce, nc: '00000002' }), 'PUBLISH', PSI).ok, false);
});

void test("another instance's nonce (same secret) is stale there, so a replay on another instance or after a restart gets nowhere", () => {
  const clock = { t: 1_700_000_000_000 };
  const open = (): DigestAuthenticator => new DigestAuthenticator({ secret: SECRET, realm: REALM, now: () => clock.t, nonceLifetimeMs: 60_000 });
  const [one, two] = [open(), open()];
  const nonce = nonceOf(one, 'SHA-256');
  const header = authorization({ algorithm: 'SHA-256', nonce });
  assert.equal(one.verify(header, 'PUBLISH', PSI).ok, true);
  // The same Authorization replayed to the other instance, which never saw its nc: stale, not accepted.
  assert.deepEqual(two.verify(header, 'PUBLISH', PSI), { ok: false, stale: true, why: 'Digest nonce of another instance (or from before a restart)' });
  // A wrong digest on a foreign nonce is plainly wrong, not stale (stale says only "your password was right").
  assert.deepEqual(two.verify(authorization({ algorithm: 'SHA-256', nonce, password: 'wrong' }), 'PUBLISH', PSI), { ok: false, stale: false, why: `Digest response does not match the password of ${alice}` });
  // The client authenticates again with the other instance's own nonce, which passes there.
  assert.equal(two.verify(authorization({ algorithm: 'SHA-256', nonce: nonceOf(two, 'SHA-256') }), 'PUBLISH', PSI).ok, true);
  // A restarted instance is a new epoch: what the old process issued is stale.
  assert.deepEqual(open().verify(authorization({ algorithm: 'SHA-256', nonce, nc: '00000002' }), 'PUBLISH', PSI), { ok: false, stale: true, why: 'Digest nonce of another instance (or from before a restart)' });
});

void test('an expired nonce with a right digest is stale (re-challenge with stale=true)', () => {
  const { auth, clock } = setup();
  const nonce = nonceOf(auth, 'MD5');
  clock.t += 60_001;
  const v = auth.verify(authorization({ algorithm: 'MD5', nonce }), 'PUBLISH', PSI);
  assert.deepEqual(v, { ok: false, stale: true, why: 'Digest nonce expired' });
});

void test('a nonce not issued with this secret, another realm, another Request-URI or method are refused', () => {
  const { auth } = setup();
  const foreign = new DigestAuthenticator({ secret: 'another-secret', realm: REALM, now: () => 1_700_000_000_000 });
  assert.equal(auth.verify(authorization({ algorithm: 'SHA-256', nonce: nonceOf(foreign, 'SHA-256') }), 'PUBLISH', PSI).ok, false);
  assert.equal(auth.verify(authorization({ algorithm: 'SHA-256', nonce: 'made-up' }), 'PUBLISH', PSI).ok, false);
  assert.equal(auth.verify(authorization({ algorithm: 'SHA-256', nonce: nonceOf(auth, 'SHA-256'), realm: 'fire.example' }), 'PUBLISH', PSI).ok, false);
  assert.equal(auth.verify(authorization({ algorithm: 'SHA-256', nonce: nonceOf(auth, 'SHA-256'), uri: 'sip:other@police.example' }), 'PUBLISH', PSI).ok, false);
  assert.equal(auth.verify(authorization({ algorithm: 'SHA-256', nonce: nonceOf(auth, 'SHA-256'), method: 'SUBSCRIBE' }), 'PUBLISH', PSI).ok, false);
});

void test("another user's password does not pass for alice", () => {
  const { auth } = setup();
  const v = auth.verify(authorization({ algorithm: 'SHA-256', nonce: nonceOf(auth, 'SHA-256'), password: sipDigestPassword(SECRET, 'sip:bob@police.example') }), 'PUBLISH', PSI);
  assert.equal(v.ok, false);
});

void test('the remembered nonces are bounded', () => {
  const clock = { t: 1_700_000_000_000 };
  const auth = new DigestAuthenticator({ secret: SECRET, realm: REALM, now: () => clock.t, maxNonces: 3 });
  const nonces = Array.from({ length: 5 }, () => nonceOf(auth, 'MD5'));
  for (const nonce of nonces) assert.equal(auth.verify(authorization({ algorithm: 'MD5', nonce }), 'PUBLISH', PSI).ok, true);
  assert.equal((auth as unknown as { seen: Map<string, unknown> }).seen.size, 3);
});

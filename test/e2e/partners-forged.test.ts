// E2E (issue 3), three systems in three processes: the group host accepts server-to-server requests only from
// configured partner systems, authenticated with the secret of that pair, only for its own groups and only for
// users of the requesting system. Forged requests are refused and leave nothing behind; the primary and the
// partner GMSs still agree afterwards.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'undici';
import { call, secret } from '../support/harness.ts';
import { PartnerGate } from '../../src/adapters/partner-gate.ts';
import type { PartnerConfig } from '../../src/config/config.ts';
import { A, F, P, affiliate, alice, assertAgreement, bob, engine, medic, patrol, partnerGmsGroups, rescue, startThreeSystems, statusMap, user, type ThreeSystems } from '../support/partners.ts';

let sys: ThreeSystems;

before(async () => {
  sys = await startThreeSystems();
  // Bob is affiliated to a fire group through his primary (police).
  assert.deepEqual(statusMap(await affiliate(sys, bob, [engine, medic])), { [engine]: 'affiliated', [medic]: 'affiliated' });
});

after(async () => {
  await sys?.stop();
});

/** A server credential as system `from` signs it for system `to` with `key`. */
const serverToken = (from: string, to: string, key: string): Promise<string> => PartnerGate.sign(from, { domain: to, url: 'http://x', nextHop: 'http://x', secret: key, timeoutMs: 1000 } satisfies PartnerConfig);

async function toFire(path: 'affiliations' | 'deaffiliations', token: string | undefined, mcServiceId: string, groupIds: string[]): Promise<{ status: number; body: unknown }> {
  // undici's request, not fetch (call): the Fetch standard turns fire's 407 for a missing hop credential into a network error.
  const res = await request(`${sys.urls.fire}/federation/v1/${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: JSON.stringify({ mcServiceId, service: 'mcptt', groupIds }),
    signal: AbortSignal.timeout(30_000),
  });
  return { status: res.statusCode, body: await res.body.json() };
}

const errorCode = (body: unknown): string | undefined => (body as { error?: { code?: string } }).error?.code;

void describe('forged server-to-server requests are refused', () => {
  void test('no credential, a user credential, a wrong secret, another pair\'s secret, an unknown system: 401', async () => {
    const cases: [string, string | undefined][] = [
      ['no credential', undefined],
      ['a user credential of fire itself', await sys.fire.token(user('fred', F))],
      ['police signing with a wrong secret', await serverToken(P, F, secret())],
      ["police signing with the police-ambulance secret", await serverToken(P, F, sys.secrets.policeAmbulance)],
      ['a police->ambulance credential replayed to fire', await serverToken(P, A, sys.secrets.policeAmbulance)],
      ['a system fire has no partner entry for', await serverToken('evil.example', F, sys.secrets.policeFire)],
      ['not a JWT', 'hello-this-is-not-a-jwt'],
    ];
    for (const [what, token] of cases) {
      const r = await toFire('affiliations', token, alice, [rescue]);
      assert.equal(r.status, 401, `${what}: ${JSON.stringify(r.body)}`);
      assert.equal(errorCode(r.body), 'unauthenticated', what);
    }
    assert.deepEqual(await partnerGmsGroups(sys, alice), []);
  });

  void test('a valid partner credential, but for a user of another system: 403', async () => {
    const police = await serverToken(P, F, sys.secrets.policeFire);
    for (const who of [user('amy', A), user('fred', F)]) {
      const r = await toFire('affiliations', police, who, [rescue]);
      assert.equal(r.status, 403, `${who}: ${JSON.stringify(r.body)}`);
    }
    // Ambulance is fire's partner too, but may not de-affiliate police's bob.
    const ambulance = await serverToken(A, F, sys.secrets.fireAmbulance);
    const r = await toFire('deaffiliations', ambulance, bob, [engine]);
    assert.equal(r.status, 403, JSON.stringify(r.body));
    const members = await call('GET', `${sys.urls.fire}/gms/v1/groups/${encodeURIComponent(engine)}/affiliations?service=mcptt`, await sys.fire.operatorToken(F));
    assert.ok((members.body as { members: { mcServiceId: string }[] }).members.some((m) => m.mcServiceId === bob), 'bob is still affiliated at fire');
  });

  void test('a valid partner credential, but for groups fire does not host: refused, nothing stored anywhere', async () => {
    const police = await serverToken(P, F, sys.secrets.policeFire);
    // Police's own group through fire: fire can only pass it back to police, which trusts no server for its own groups.
    const own = await toFire('affiliations', police, alice, [patrol]);
    assert.equal(own.status, 407, JSON.stringify(own.body));
    // A group of a system fire has no route to: without a hop credential the same 407, so fire shows none of its routes.
    const unknown = await toFire('affiliations', police, alice, ['sip:x@nowhere.example']);
    assert.equal(unknown.status, 407, JSON.stringify(unknown.body));
    // Ambulance's group with police's fire credential but no hop credential: fire, as intermediate node, relays nothing.
    const foreign = await toFire('affiliations', police, alice, [medic]);
    assert.equal(foreign.status, 407, JSON.stringify(foreign.body));
    // Groups of two systems in one server-to-server request.
    const mixed = await toFire('affiliations', police, alice, [rescue, medic]);
    assert.equal(mixed.status, 400, JSON.stringify(mixed.body));
    assert.deepEqual(await partnerGmsGroups(sys, alice), []);
  });

  void test('a forged de-affiliation with a wrong secret leaves the affiliation; the real primary still agrees', async () => {
    const r = await toFire('deaffiliations', await serverToken(P, F, secret()), bob, [engine]);
    assert.equal(r.status, 401);
    await assertAgreement(sys, bob, [engine, medic]);
    await assertAgreement(sys, alice, []);
  });

  void test('control: the same request with the right credential is accepted', async () => {
    const police = await serverToken(P, F, sys.secrets.policeFire);
    const r = await toFire('affiliations', police, bob, [engine, rescue]);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.deepEqual(statusMap(r.body as { status: { groupId: string; status: string }[] }), { [engine]: 'affiliated', [rescue]: 'affiliated' });
    // Undo what the police server did not ask for, so the systems agree again.
    const d = await toFire('deaffiliations', police, bob, [rescue]);
    assert.equal(d.status, 200);
    await assertAgreement(sys, bob, [engine, medic]);
  });
});

// E2E (issue 3): the server-to-server affiliation change request of 10.X.5.2.1 (POST /federation/v1/affiliation-changes).
// The group host applies a change for its own groups, for users of the requesting partner only, and its GMS agrees.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { call } from '../support/harness.ts';
import { PartnerGate } from '../../src/adapters/partner-gate.ts';
import type { PartnerConfig } from '../../src/config/config.ts';
import { A, F, P, alice, assertAgreement, bob, dispatch, engine, medic, rescue, startThreeSystems, user, type ThreeSystems } from '../support/partners.ts';

let sys: ThreeSystems;
before(async () => {
  sys = await startThreeSystems();
});
after(async () => {
  await sys?.stop();
});

const serverToken = (from: string, to: string, key: string): Promise<string> => PartnerGate.sign(from, { domain: to, url: 'http://x', nextHop: 'http://x', secret: key, timeoutMs: 1000 } satisfies PartnerConfig);

interface ChangeAnswer {
  results: { target: string; outcome: string; status: { groupId: string; status: string; reason?: string }[] }[];
}

void test('fire applies a change request from police for its groups and police users; its GMS lists them', async () => {
  const token = await serverToken(P, F, sys.secrets.policeFire);
  const r = await call('POST', `${sys.urls.fire}/federation/v1/affiliation-changes`, token, { mcServiceId: dispatch, service: 'mcptt', mode: 'mandatory', targets: [alice, bob], affiliate: [engine, rescue] });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  const body = r.body as ChangeAnswer;
  assert.deepEqual(
    body.results.map((t) => [t.target, t.outcome, t.status.map((s) => `${s.groupId}=${s.status}`)]),
    [
      [alice, 'applied', [`${engine}=affiliated`, `${rescue}=affiliated`]],
      [bob, 'applied', [`${engine}=affiliated`, `${rescue}=affiliated`]],
    ],
  );
  const fireOp = await sys.fire.operatorToken(F);
  const members = await call('GET', `${sys.urls.fire}/gms/v1/groups/${encodeURIComponent(engine)}/affiliations?service=mcptt`, fireOp);
  assert.deepEqual(
    ((members.body as { members: { mcServiceId: string }[] }).members ?? []).map((m) => m.mcServiceId).sort(),
    [alice, bob].sort(),
  );
  // Leaving through the same flow.
  const left = await call('POST', `${sys.urls.fire}/federation/v1/affiliation-changes`, token, { mcServiceId: dispatch, service: 'mcptt', mode: 'mandatory', targets: [alice, bob], deaffiliate: [engine, rescue] });
  assert.equal(left.status, 200, JSON.stringify(left.body));
  assert.ok((left.body as ChangeAnswer).results.every((t) => t.status.every((s) => s.status === 'deaffiliated')));
  await assertAgreement(sys, alice, []);
});

void test('a change for another system\'s user, or for groups fire does not host, is refused and changes nothing', async () => {
  const token = await serverToken(P, F, sys.secrets.policeFire);
  const foreignTarget = await call('POST', `${sys.urls.fire}/federation/v1/affiliation-changes`, token, { mcServiceId: dispatch, service: 'mcptt', mode: 'mandatory', targets: [user('amy', A)], affiliate: [engine] });
  assert.equal(foreignTarget.status, 403, JSON.stringify(foreignTarget.body));
  assert.equal((foreignTarget.body as { error: { field?: string } }).error.field, 'targets[0]');
  const mixed = await call('POST', `${sys.urls.fire}/federation/v1/affiliation-changes`, token, { mcServiceId: dispatch, service: 'mcptt', mode: 'mandatory', targets: [alice], affiliate: [engine, medic] });
  assert.equal(mixed.status, 400, JSON.stringify(mixed.body));
  // Negotiated mode never comes as a change request to the host (it would be applied without the target's answer).
  const negotiated = await call('POST', `${sys.urls.fire}/federation/v1/affiliation-changes`, token, { mcServiceId: dispatch, service: 'mcptt', mode: 'negotiated', targets: [alice], affiliate: [engine] });
  assert.equal(negotiated.status, 400, JSON.stringify(negotiated.body));
  assert.equal((negotiated.body as { error: { field?: string } }).error.field, 'mode');
  const noCredential = await call('POST', `${sys.urls.fire}/federation/v1/affiliation-changes`, undefined, { mcServiceId: dispatch, service: 'mcptt', mode: 'mandatory', targets: [alice], affiliate: [engine] });
  assert.equal(noCredential.status, 401, JSON.stringify(noCredential.body));
  const fireOp = await sys.fire.operatorToken(F);
  const members = await call('GET', `${sys.urls.fire}/gms/v1/groups/${encodeURIComponent(engine)}/affiliations?service=mcptt`, fireOp);
  assert.deepEqual((members.body as { members: unknown[] }).members, []);
});

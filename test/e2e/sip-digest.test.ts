// SIP digest authentication (RFC 3261 §22, RFC 7616) against the real server, driven by sipp from an address outside
// trustedPeers: 401 with Digest challenges, then 200 with the password `muster token --sip-password` prints; a wrong
// password or another user's password is refused with 401; a digest user publishing for another user without the
// remote-change right gets 403. Nothing is stored for the refused ones.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { Muster, cli } from '../support/harness.ts';
import { sipp } from '../support/sipp.ts';
import { startPoliceWithSip } from '../support/sip-system.ts';

const D = 'police.example';
const PSI = `sip:mc-server@${D}`;
const alice = `sip:alice@${D}`;
const bob = `sip:bob@${D}`;
const patrol = `sip:patrol@${D}`;

let m: Muster;
let sipPort: number;

before(async () => {
  ({ m, sipPort } = await startPoliceWithSip({
    // sipp's packets come from 127.0.0.1, which is not trusted here. sipp 3.6 answers only the topmost Digest
    // challenge and speaks MD5 only (RFC 8760 says a client takes the topmost it supports), so MD5 is offered first.
    sip: { trustedPeers: ['192.0.2.1'], digestAlgorithms: ['MD5', 'SHA-256'] },
    users: [alice, bob].map((id) => ({ id, services: ['mcptt'], n2: 2, groups: [patrol] })),
    groups: [{ id: patrol, services: ['mcptt'], members: [alice, bob] }],
  }));
});

after(async () => {
  await m?.stop();
});

async function sipPassword(user: string): Promise<string> {
  const r = await cli(['token', '--config', join(m.dir, 'config.json'), '--user', user, '--sip-password']);
  assert.equal(r.code, 0, r.stderr);
  return r.stdout.trim();
}


/** The status lines of the answers sipp received, in order. */
function answers(messages: string): string[] {
  return [...messages.matchAll(/^SIP\/2\.0 (\d{3})/gm)].map((x) => x[1]!);
}

async function publish(sender: string, entity: string, password: string): Promise<{ code: number; output: string; statuses: string[]; messages: string }> {
  const run = await sipp('publish-digest.xml', { port: sipPort }, { psi: PSI, user: sender, entity, group: patrol }, { auth: { username: sender, password, uri: PSI } });
  return { ...run, statuses: answers(run.messages) };
}

void test('401 with Digest challenges, then 200 with the password the CLI prints; visible over HTTP', async () => {
  const run = await publish(alice, alice, await sipPassword(alice));
  assert.equal(run.code, 0, run.output);
  assert.deepEqual(run.statuses, ['401', '200']);
  assert.match(run.messages, /WWW-Authenticate: Digest realm="police\.example", nonce="[^"]+", algorithm=SHA-256, qop="auth"/);
  assert.match(run.messages, /Authorization: Digest username="sip:alice@police\.example"/);
  assert.deepEqual(await m.affiliatedGroups(alice), [patrol]);
});

void test('a wrong password is refused with 401 again, and nothing is stored', async () => {
  const run = await publish(bob, bob, 'not-the-password');
  assert.equal(run.code, 0, run.output);
  assert.deepEqual(run.statuses, ['401', '401']);
  assert.match(run.messages, /401 Unauthorized \(Digest response does not match/);
  assert.deepEqual(await m.affiliatedGroups(bob), []);
});

void test("another user's password does not pass as bob", async () => {
  const run = await publish(bob, bob, await sipPassword(alice));
  assert.deepEqual(run.statuses, ['401', '401']);
  assert.deepEqual(await m.affiliatedGroups(bob), []);
});

void test('digest identity binds: alice, authenticated, may not publish for bob without the remote-change right (403)', async () => {
  const run = await publish(alice, bob, await sipPassword(alice));
  assert.equal(run.code, 0, run.output);
  assert.deepEqual(run.statuses, ['401', '403']);
  assert.deepEqual(await m.affiliatedGroups(bob), []);
});

// E2E (issue 2), one MC system: the `muster` CLI, run as a process, driving the client flows against the real
// server: affiliate (text and --json), deaffiliate, change, status. (watch and errors: one-system-cli-watch.test.ts)
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { Muster, call, cli, freePort, secret } from '../support/harness.ts';

const D = 'police.example';
const u = (name: string): string => `sip:${name}@${D}`;
const g = (name: string): string => `sip:${name}@${D}`;
const enc = encodeURIComponent;

interface GroupStatus {
  groupId: string;
  status: string;
  reason?: string;
}

let m: Muster;
let base: string;
let operator: string;

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
          { id: u('alice'), services: ['mcptt'], n2: 2, groups: [g('patrol'), g('north'), g('closed'), g('south')] },
          { id: u('bob'), services: ['mcptt'], n2: 2, groups: [g('patrol'), g('north')] },
          { id: u('erin'), services: ['mcptt'], n2: 2, groups: [g('patrol'), g('north')] },
        ],
        groups: [
          { id: g('patrol'), services: ['mcptt'], members: [u('dispatch'), u('alice'), u('bob'), u('erin')] },
          { id: g('north'), services: ['mcptt'], members: [u('dispatch'), u('alice'), u('bob'), u('erin')] },
          { id: g('south'), services: ['mcptt'], members: [u('alice')] },
          { id: g('closed'), services: ['mcptt'], members: [u('dispatch')] },
        ],
      },
    ],
  });
  base = m.url('police');
  operator = await m.operatorToken();
});

after(async () => {
  await m?.stop();
});

async function stored(user: string): Promise<string[]> {
  const r = await call('GET', `${base}/mc/v1/users/${enc(user)}/affiliations?service=mcptt`, operator);
  assert.equal(r.status, 200, JSON.stringify(r.body));
  return (r.body as { affiliations: { groupId: string }[] }).affiliations.map((a) => a.groupId).sort();
}

const lines = (text: string): string[] => text.split('\n').filter((l) => l.length > 0);
const esc = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

void describe('muster CLI against the server', () => {
  void test('affiliate prints one line per group; exit 0, or 3 when a group is rejected; the server stored it', async () => {
    // The credential comes from `muster token` reading the server's own configuration file.
    const issued = await cli(['token', '--config', join(m.dir, 'config.json'), '--user', u('alice')]);
    assert.equal(issued.code, 0, issued.stderr);
    const token = issued.stdout.trim();
    assert.match(token, /^[\w-]+\.[\w-]+\.[\w-]+$/);
    const ok = await cli(['affiliate', '--server', base, '--token', token, g('patrol')]);
    assert.equal(ok.code, 0, ok.stderr);
    assert.match(ok.stdout, new RegExp(`^${esc(g('patrol'))}\\s+affiliated$`, 'm'));
    assert.deepEqual(await stored(u('alice')), [g('patrol')]);

    // alice: n2 = 2, holds patrol; closed is not open to her; north fits; south is over.
    const mixed = await cli(['affiliate', '--server', base, '--token', token, g('closed'), g('north'), g('south')]);
    assert.equal(mixed.code, 3, mixed.stderr);
    const out = lines(mixed.stdout);
    assert.equal(out.length, 3, mixed.stdout);
    assert.match(out[0]!, new RegExp(`^${esc(g('closed'))}\\s+rejected \\(not-member: `));
    assert.match(out[1]!, new RegExp(`^${esc(g('north'))}\\s+affiliated$`));
    assert.match(out[2]!, new RegExp(`^${esc(g('south'))}\\s+rejected \\(n2-limit: `));
    assert.deepEqual(await stored(u('alice')), [g('north'), g('patrol')]);
  });

  void test('affiliate --json and deaffiliate --json print the server\'s answer', async () => {
    const token = await m.token(u('bob'));
    const a = await cli(['affiliate', '--server', base, '--token', token, '--json', g('north'), g('patrol')]);
    assert.equal(a.code, 0, a.stderr);
    const answer = JSON.parse(a.stdout) as { mcServiceId: string; service: string; status: GroupStatus[] };
    assert.equal(answer.mcServiceId, u('bob'));
    assert.equal(answer.service, 'mcptt');
    assert.deepEqual(answer.status, [
      { groupId: g('north'), status: 'affiliated' },
      { groupId: g('patrol'), status: 'affiliated' },
    ]);
    assert.deepEqual(await stored(u('bob')), [g('north'), g('patrol')]);

    // Two independent de-affiliations side by side: one --json, one text.
    const [d, dText] = await Promise.all([
      cli(['deaffiliate', '--server', base, '--token', token, '--json', g('north')]),
      cli(['deaffiliate', '--server', base, '--token', token, g('patrol')]),
    ]);
    assert.equal(d.code, 0, d.stderr);
    assert.deepEqual((JSON.parse(d.stdout) as { status: GroupStatus[] }).status, [{ groupId: g('north'), status: 'deaffiliated' }]);
    assert.equal(dText.code, 0, dText.stderr);
    assert.match(dText.stdout, new RegExp(`^${esc(g('patrol'))}\\s+deaffiliated$`, 'm'));
    assert.deepEqual(await stored(u('bob')), []);
  });

  void test('change --mode mandatory applies the change; status shows the user\'s and the group\'s view', async () => {
    const token = await m.token(u('dispatch'));
    const c = await cli(['change', '--server', base, '--token', token, '--mode', 'mandatory', '--target', u('bob'), '--affiliate', g('patrol'), '--affiliate', g('north')]);
    assert.equal(c.code, 0, c.stderr);
    const out = lines(c.stdout);
    assert.match(out[0]!, new RegExp(`^${esc(u('bob'))}\\s+applied$`));
    assert.match(c.stdout, new RegExp(`^\\s+${esc(g('patrol'))}\\s+affiliated$`, 'm'));
    assert.match(c.stdout, new RegExp(`^\\s+${esc(g('north'))}\\s+affiliated$`, 'm'));
    assert.deepEqual(await stored(u('bob')), [g('north'), g('patrol')]);

    // Three independent reads, run side by side.
    const [user, group, groupText] = await Promise.all([
      cli(['status', '--server', base, '--token', await m.token(u('bob')), '--user', u('bob')]),
      cli(['status', '--server', base, '--token', token, '--group', g('north'), '--json']),
      // Without --group: not a user the caller may see, so it is looked up as a group (bob is a member).
      cli(['status', '--server', base, '--token', await m.token(u('bob')), g('north')]),
    ]);
    assert.equal(user.code, 0, user.stderr);
    assert.deepEqual(lines(user.stdout).map((l) => l.split(/\s+/).slice(0, 2).join(' ')).sort(), [`${g('north')} affiliated`, `${g('patrol')} affiliated`]);
    assert.equal(group.code, 0, group.stderr);
    const members = (JSON.parse(group.stdout) as { members: { mcServiceId: string }[] }).members.map((x) => x.mcServiceId).sort();
    assert.deepEqual(members, [u('alice'), u('bob')]);
    assert.equal(groupText.code, 0, groupText.stderr);
    assert.deepEqual(lines(groupText.stdout).map((l) => l.trim()).sort(), [u('alice'), u('bob')]);

    // A change by a user without the right: the target is not-authorised, exit 3.
    const refused = await cli(['change', '--server', base, '--token', await m.token(u('alice')), '--json', '--mode', 'mandatory', '--target', u('erin'), '--affiliate', g('patrol')]);
    assert.equal(refused.code, 3, refused.stderr);
    assert.equal((JSON.parse(refused.stdout) as { results: { outcome: string }[] }).results[0]!.outcome, 'not-authorised');
    assert.deepEqual(await stored(u('erin')), []);
  });
});

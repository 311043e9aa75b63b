// E2E (issue 2), one MC system: affiliation and de-affiliation (TS 23.280 10.X.3.1, 10.X.4.2) against the real
// server process over HTTP: every status and refusal reason one system produces, N2 (request order, per service,
// no double count, under 200 concurrent requests), idempotency, and GMS policy / profile changes while running.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Muster, call, freePort, secret } from '../support/harness.ts';

const D = 'police.example';
const u = (name: string): string => `sip:${name}@${D}`;
const g = (name: string): string => `sip:${name}@${D}`;
const enc = encodeURIComponent;

interface GroupStatus {
  groupId: string;
  status: 'affiliated' | 'deaffiliated' | 'rejected';
  reason?: string;
}
interface AffiliationResponse {
  mcServiceId: string;
  service: string;
  groupIds: string[];
  status: GroupStatus[];
}
interface UserAffiliations {
  mcServiceId: string;
  affiliations: { groupId: string; service: string; state: string; group: string }[];
}
interface GmsMembers {
  groupId: string;
  members: { mcServiceId: string; service: string }[];
}

// 20 groups for the concurrency test, every one open to `crowd`.
const CROWD_GROUPS = Array.from({ length: 20 }, (_, i) => g(`crowd-${i}`));
const CHURN = Array.from({ length: 10 }, (_, i) => u(`churn-${i}`));

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
          { id: u('alice'), services: ['mcptt'], n2: 10, groups: [g('patrol'), g('north'), g('night'), g('data-ops'), g('members-only'), g('all-units'), g('video')] },
          { id: u('vic'), services: ['mcptt', 'mcvideo'], n2: 10, groups: [g('patrol'), g('video')] },
          { id: u('nora'), services: ['mcptt'], n2: 3, groups: [g('a'), g('b'), g('c'), g('d'), g('closed')] },
          { id: u('otto'), services: ['mcptt'], n2: 3, groups: [g('a'), g('b'), g('c'), g('d')] },
          { id: u('pia'), services: ['mcptt', 'mcdata'], n2: { mcptt: 2, mcdata: 1 }, groups: [g('a'), g('b'), g('c'), g('data-ops'), g('data-2')] },
          { id: u('quinn'), services: ['mcptt'], n2: 2, groups: [g('a'), g('b'), g('c')] },
          { id: u('crowd'), services: ['mcptt'], n2: 5, groups: CROWD_GROUPS },
          { id: u('rita'), services: ['mcptt'], n2: 10, groups: [g('toggle')] },
          { id: u('sam'), services: ['mcptt'], n2: 10, groups: [g('toggle')] },
          { id: u('tess'), services: ['mcptt'], n2: 10, groups: [g('roster')] },
          { id: u('uma'), services: ['mcptt'], n2: 1, groups: [g('a'), g('b'), g('c')] },
          ...CHURN.map((id) => ({ id, services: ['mcptt'], n2: 4, groups: [g('a'), g('b'), g('c'), g('d')] })),
          { id: u('walt'), services: ['mcptt'], n2: 10, groups: [g('doomed')] },
          { id: u('xena'), services: ['mcptt'], n2: 10, groups: [g('doomed')] },
        ],
        groups: [
          { id: g('patrol'), services: ['mcptt'], members: [u('alice'), u('vic')] },
          { id: g('north'), services: ['mcptt'], members: [u('alice')] },
          { id: g('night'), services: ['mcptt'], enabled: false, members: [u('alice')] },
          { id: g('data-ops'), services: ['mcdata'], members: [u('alice'), u('pia')] },
          { id: g('data-2'), services: ['mcdata'], members: [u('pia')] },
          { id: g('members-only'), services: ['mcptt'], members: [u('vic')] },
          { id: g('all-units'), services: ['mcptt'], members: [u('alice')], deaffiliationForbidden: true },
          { id: g('video'), services: ['mcvideo'], members: [u('vic'), u('alice')] },
          { id: g('unsubscribed'), services: ['mcptt'], members: [u('alice')] },
          { id: g('closed'), services: ['mcptt'], members: [u('alice')] },
          ...['a', 'b', 'c', 'd'].map((x) => ({ id: g(x), services: ['mcptt'], members: [u('nora'), u('otto'), u('pia'), u('quinn'), u('uma'), ...CHURN] })),
          ...CROWD_GROUPS.map((id) => ({ id, services: ['mcptt'], members: [u('crowd')] })),
          { id: g('toggle'), services: ['mcptt'], members: [u('rita'), u('sam')] },
          { id: g('roster'), services: ['mcptt'], members: [u('tess')] },
          { id: g('doomed'), services: ['mcptt'], members: [u('walt'), u('xena')] },
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

async function affiliate(user: string, groupIds: string[], service = 'mcptt'): Promise<AffiliationResponse> {
  const r = await call('POST', `${base}/mc/v1/affiliations`, await m.token(user), { mcServiceId: user, service, groupIds });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  return r.body as AffiliationResponse;
}

async function deaffiliate(user: string, groupIds: string[], service = 'mcptt'): Promise<AffiliationResponse> {
  const r = await call('POST', `${base}/mc/v1/deaffiliations`, await m.token(user), { mcServiceId: user, service, groupIds });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  return r.body as AffiliationResponse;
}

/** The user's stored affiliations of one service, as the server reports them: group ID -> group condition. */
async function stored(user: string, service = 'mcptt'): Promise<Map<string, string>> {
  const r = await call('GET', `${base}/mc/v1/users/${enc(user)}/affiliations?service=${service}`, await m.token(user));
  assert.equal(r.status, 200, JSON.stringify(r.body));
  const body = r.body as UserAffiliations;
  for (const a of body.affiliations) assert.equal(a.state, 'affiliated', `${a.groupId} is ${a.state}`);
  return new Map(body.affiliations.map((a) => [a.groupId, a.group]));
}

/** Status per group as "group=status[:reason]" in response order, so one assertion shows the whole answer. */
const summary = (r: AffiliationResponse): string[] => r.status.map((s) => `${s.groupId}=${s.status}${s.reason ? `:${s.reason}` : ''}`);

async function gmsMembers(groupId: string): Promise<string[]> {
  const r = await call('GET', `${base}/gms/v1/groups/${enc(groupId)}/affiliations?service=mcptt`, operator);
  assert.equal(r.status, 200, JSON.stringify(r.body));
  return (r.body as GmsMembers).members.map((x) => x.mcServiceId);
}

void describe('statuses and refusal reasons of one system', () => {
  void test('affiliated, then deaffiliated: statuses in request order, stored and removed', async () => {
    const a = await affiliate(u('alice'), [g('north'), g('patrol')]);
    assert.equal(a.mcServiceId, u('alice'));
    assert.deepEqual(a.groupIds, [g('north'), g('patrol')]);
    assert.deepEqual(summary(a), [`${g('north')}=affiliated`, `${g('patrol')}=affiliated`]);
    assert.deepEqual([...(await stored(u('alice'))).keys()].sort(), [g('north'), g('patrol')]);

    const d = await deaffiliate(u('alice'), [g('patrol'), g('north')]);
    assert.deepEqual(summary(d), [`${g('patrol')}=deaffiliated`, `${g('north')}=deaffiliated`]);
    assert.equal((await stored(u('alice'))).size, 0);
  });

  void test('unknown-group for a missing group, a group not offering the service, and a domain of no system', async () => {
    const r = await affiliate(u('alice'), [g('ghost'), g('data-ops'), 'sip:far@nowhere.example']);
    assert.deepEqual(summary(r), [`${g('ghost')}=rejected:unknown-group`, `${g('data-ops')}=rejected:unknown-group`, 'sip:far@nowhere.example=rejected:unknown-group']);
    assert.equal((await stored(u('alice'))).size, 0);
  });

  void test('group-disabled for a group configured disabled', async () => {
    const r = await affiliate(u('alice'), [g('night')]);
    assert.deepEqual(summary(r), [`${g('night')}=rejected:group-disabled`]);
    assert.equal((await stored(u('alice'))).size, 0);
  });

  void test('not-authorised when the service is not in the profile and when the group is not in the subscription', async () => {
    // alice's profile has mcptt only; video offers mcvideo, is in her subscription and admits her.
    const noService = await affiliate(u('alice'), [g('video')], 'mcvideo');
    assert.deepEqual(summary(noService), [`${g('video')}=rejected:not-authorised`]);
    const noSubscription = await affiliate(u('alice'), [g('unsubscribed')]);
    assert.deepEqual(summary(noSubscription), [`${g('unsubscribed')}=rejected:not-authorised`]);
    // The same service is fine for a user whose profile has it.
    assert.deepEqual(summary(await affiliate(u('vic'), [g('video')], 'mcvideo')), [`${g('video')}=affiliated`]);
    assert.equal((await stored(u('alice'))).size, 0);
    assert.equal((await stored(u('alice'), 'mcvideo')).size, 0);
  });

  void test('not-member when the group policy does not admit the user', async () => {
    const r = await affiliate(u('alice'), [g('members-only')]);
    assert.deepEqual(summary(r), [`${g('members-only')}=rejected:not-member`]);
    assert.equal((await stored(u('alice'))).size, 0);
  });

  void test('deaffiliation-forbidden keeps the affiliation; a mixed request still removes the others', async () => {
    assert.deepEqual(summary(await affiliate(u('alice'), [g('all-units'), g('north')])), [`${g('all-units')}=affiliated`, `${g('north')}=affiliated`]);
    const r = await deaffiliate(u('alice'), [g('all-units'), g('north')]);
    assert.deepEqual(summary(r), [`${g('all-units')}=rejected:deaffiliation-forbidden`, `${g('north')}=deaffiliated`]);
    assert.deepEqual([...(await stored(u('alice'))).keys()], [g('all-units')]);
  });

  void test('one request mixes statuses; refused groups are not stored', async () => {
    const r = await affiliate(u('nora'), [g('a'), g('closed'), g('b')]);
    assert.deepEqual(summary(r), [`${g('a')}=affiliated`, `${g('closed')}=rejected:not-member`, `${g('b')}=affiliated`]);
    assert.deepEqual([...(await stored(u('nora'))).keys()].sort(), [g('a'), g('b')]);
    await deaffiliate(u('nora'), [g('a'), g('b')]);
  });
});

void describe('idempotent repeats', () => {
  void test('affiliating twice answers affiliated and changes nothing; de-affiliating twice answers deaffiliated', async () => {
    const first = await affiliate(u('vic'), [g('patrol')]);
    assert.deepEqual(summary(first), [`${g('patrol')}=affiliated`]);
    const before = await call('GET', `${base}/mc/v1/users/${enc(u('vic'))}/affiliations?service=mcptt`, await m.token(u('vic')));
    const again = await affiliate(u('vic'), [g('patrol')]);
    assert.deepEqual(summary(again), [`${g('patrol')}=affiliated`]);
    const afterRepeat = await call('GET', `${base}/mc/v1/users/${enc(u('vic'))}/affiliations?service=mcptt`, await m.token(u('vic')));
    // Nothing changed: same record, same "since".
    assert.deepEqual(afterRepeat.body, before.body);

    assert.deepEqual(summary(await deaffiliate(u('vic'), [g('patrol')])), [`${g('patrol')}=deaffiliated`]);
    assert.deepEqual(summary(await deaffiliate(u('vic'), [g('patrol')])), [`${g('patrol')}=deaffiliated`]);
    assert.equal((await stored(u('vic'))).size, 0);
  });
});

void describe('N2', () => {
  void test('exactly at the limit is accepted; one over is n2-limit, the excess taken in request order', async () => {
    // nora: n2 = 3. Exactly three at once is fine.
    assert.deepEqual(summary(await affiliate(u('nora'), [g('a'), g('b'), g('c')])), [`${g('a')}=affiliated`, `${g('b')}=affiliated`, `${g('c')}=affiliated`]);
    // The fourth is one over.
    assert.deepEqual(summary(await affiliate(u('nora'), [g('d')])), [`${g('d')}=rejected:n2-limit`]);
    assert.deepEqual([...(await stored(u('nora'))).keys()].sort(), [g('a'), g('b'), g('c')]);
    await deaffiliate(u('nora'), [g('a'), g('b'), g('c')]);

    // otto: n2 = 3, four asked at once: the last in request order is refused, whatever its name.
    assert.deepEqual(summary(await affiliate(u('otto'), [g('d'), g('c'), g('b'), g('a')])), [`${g('d')}=affiliated`, `${g('c')}=affiliated`, `${g('b')}=affiliated`, `${g('a')}=rejected:n2-limit`]);
    assert.deepEqual([...(await stored(u('otto'))).keys()].sort(), [g('b'), g('c'), g('d')]);
  });

  void test('a group refused for another reason takes no N2 slot', async () => {
    // nora (n2 = 3) is not a member of closed: it is refused before N2 and the next group still fits.
    const r = await affiliate(u('nora'), [g('a'), g('closed'), g('b'), g('c'), g('d')]);
    assert.deepEqual(summary(r), [`${g('a')}=affiliated`, `${g('closed')}=rejected:not-member`, `${g('b')}=affiliated`, `${g('c')}=affiliated`, `${g('d')}=rejected:n2-limit`]);
    await deaffiliate(u('nora'), [g('a'), g('b'), g('c')]);
  });

  void test('N2 is per service: a full mcptt budget leaves mcdata alone, and mcdata has its own limit', async () => {
    // pia: n2 { mcptt: 2, mcdata: 1 }
    assert.deepEqual(summary(await affiliate(u('pia'), [g('a'), g('b'), g('c')])), [`${g('a')}=affiliated`, `${g('b')}=affiliated`, `${g('c')}=rejected:n2-limit`]);
    assert.deepEqual(summary(await affiliate(u('pia'), [g('data-ops'), g('data-2')], 'mcdata')), [`${g('data-ops')}=affiliated`, `${g('data-2')}=rejected:n2-limit`]);
    assert.deepEqual([...(await stored(u('pia'))).keys()].sort(), [g('a'), g('b')]);
    assert.deepEqual([...(await stored(u('pia'), 'mcdata')).keys()], [g('data-ops')]);
    // Leaving an mcdata group frees an mcdata slot, not an mcptt one.
    await deaffiliate(u('pia'), [g('data-ops')], 'mcdata');
    assert.deepEqual(summary(await affiliate(u('pia'), [g('c')])), [`${g('c')}=rejected:n2-limit`]);
    assert.deepEqual(summary(await affiliate(u('pia'), [g('data-2')], 'mcdata')), [`${g('data-2')}=affiliated`]);
  });

  void test('groups already affiliated are not counted twice', async () => {
    // quinn: n2 = 2, holds a.
    assert.deepEqual(summary(await affiliate(u('quinn'), [g('a')])), [`${g('a')}=affiliated`]);
    // a again plus b: a is held already, so a and b make 2, at the limit.
    assert.deepEqual(summary(await affiliate(u('quinn'), [g('a'), g('b')])), [`${g('a')}=affiliated`, `${g('b')}=affiliated`]);
    // Now both held: repeating both is fine, a third is over.
    assert.deepEqual(summary(await affiliate(u('quinn'), [g('b'), g('a'), g('c')])), [`${g('b')}=affiliated`, `${g('a')}=affiliated`, `${g('c')}=rejected:n2-limit`]);
    assert.deepEqual([...(await stored(u('quinn'))).keys()].sort(), [g('a'), g('b')]);
  });

  void test('N2 holds under 200 concurrent affiliation requests of one user over 20 groups; the GMS agrees', async () => {
    const token = await m.token(u('crowd'));
    const N = 200;
    const LIMIT = 5;
    // Request i asks for one group, or two for every third request, spread over all 20 groups in a scrambled order.
    const requests = Array.from({ length: N }, (_, i) => {
      const first = CROWD_GROUPS[(i * 7) % 20]!;
      const second = CROWD_GROUPS[(i * 13 + 5) % 20]!;
      return i % 3 === 0 && first !== second ? [first, second] : [first];
    });
    const answers = await Promise.all(
      requests.map(async (groupIds) => {
        const r = await call('POST', `${base}/mc/v1/affiliations`, token, { mcServiceId: u('crowd'), service: 'mcptt', groupIds });
        assert.equal(r.status, 200, JSON.stringify(r.body));
        return r.body as AffiliationResponse;
      }),
    );
    const affiliatedGroups = new Set<string>();
    for (const [i, a] of answers.entries()) {
      assert.deepEqual(a.status.map((s) => s.groupId), requests[i], 'one status per requested group, in order');
      for (const s of a.status) {
        if (s.status === 'affiliated') affiliatedGroups.add(s.groupId);
        else assert.deepEqual({ status: s.status, reason: s.reason }, { status: 'rejected', reason: 'n2-limit' }, `request ${i}: ${JSON.stringify(s)}`);
      }
    }
    const storedGroups = await stored(u('crowd'));
    assert.equal(affiliatedGroups.size, Math.min(LIMIT, CROWD_GROUPS.length), `distinct groups answered affiliated: ${[...affiliatedGroups].join(' ')}`);
    assert.deepEqual([...storedGroups.keys()].sort(), [...affiliatedGroups].sort(), 'stored == answered affiliated');
    // A group once answered affiliated is never refused afterwards... by any answer: every answer for a stored group says affiliated.
    for (const a of answers) for (const s of a.status) if (storedGroups.has(s.groupId)) assert.equal(s.status, 'affiliated', `${s.groupId} held but answered ${s.status}`);

    // The GMS's member lists agree with the server's records once the outbox drained (bounded poll).
    const expected = (gid: string): boolean => storedGroups.has(gid);
    let mismatch: string[] = [];
    for (let attempt = 0; attempt < 50; attempt += 1) {
      const lists = await Promise.all(CROWD_GROUPS.map(async (gid) => [gid, await gmsMembers(gid)] as const));
      mismatch = lists.filter(([gid, members]) => members.includes(u('crowd')) !== expected(gid) || members.length > 1).map(([gid, members]) => `${gid}: ${members.join(',')}`);
      if (mismatch.length === 0) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.deepEqual(mismatch, [], 'GMS member lists differ from the server records');
  });
  void test('concurrent affiliations and de-affiliations of many users: the GMS ends up with the server\'s records', async () => {
    // churn-0..9 each join and leave groups of a..d concurrently; the last word per user and group must reach the GMS.
    const users = CHURN;
    const groups = [g('a'), g('b'), g('c'), g('d')];
    const ops: { user: string; path: string; groupIds: string[] }[] = [];
    for (let round = 0; round < 6; round += 1) {
      for (const [i, user] of users.entries()) {
        const groupIds = [groups[(i + round) % 4]!, groups[(i + round + 1) % 4]!];
        ops.push({ user, path: (i + round) % 3 === 0 ? 'deaffiliations' : 'affiliations', groupIds });
      }
    }
    // 60 requests, 20 at a time.
    for (let i = 0; i < ops.length; i += 20) {
      await Promise.all(
        ops.slice(i, i + 20).map(async (op) => {
          const r = await call('POST', `${base}/mc/v1/${op.path}`, await m.token(op.user), { mcServiceId: op.user, service: 'mcptt', groupIds: op.groupIds });
          assert.equal(r.status, 200, JSON.stringify(r.body));
        }),
      );
    }
    const held = new Map<string, Set<string>>();
    for (const user of users) held.set(user, new Set((await stored(user)).keys()));
    let mismatch: string[] = [];
    for (let attempt = 0; attempt < 50; attempt += 1) {
      mismatch = [];
      for (const gid of groups) {
        const atGms = new Set((await gmsMembers(gid)).filter((x) => users.includes(x)));
        const expected = new Set(users.filter((x) => held.get(x)!.has(gid)));
        if ([...atGms].sort().join() !== [...expected].sort().join()) mismatch.push(`${gid}: gms [${[...atGms].join(' ')}] server [${[...expected].join(' ')}]`);
      }
      if (mismatch.length === 0) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.deepEqual(mismatch, [], 'GMS member lists differ from the server records');
  });
});

void describe('GMS and profile changes while the server runs', () => {
  void test('a group disabled at the GMS: new affiliations get group-disabled; an existing one is listed as disabled', async () => {
    assert.deepEqual(summary(await affiliate(u('rita'), [g('toggle')])), [`${g('toggle')}=affiliated`]);
    assert.equal((await stored(u('rita'))).get(g('toggle')), 'enabled');
    const put = await call('PUT', `${base}/gms/v1/groups/${enc(g('toggle'))}`, operator, { services: ['mcptt'], enabled: false, members: [u('rita'), u('sam')] });
    assert.equal(put.status, 200, JSON.stringify(put.body));

    assert.deepEqual(summary(await affiliate(u('sam'), [g('toggle')])), [`${g('toggle')}=rejected:group-disabled`]);
    assert.equal((await stored(u('sam'))).size, 0);
    // rita's affiliation stays, marked as affiliated to a disabled group.
    assert.equal((await stored(u('rita'))).get(g('toggle')), 'disabled');

    // Enabled again: sam gets in.
    const put2 = await call('PUT', `${base}/gms/v1/groups/${enc(g('toggle'))}`, operator, { services: ['mcptt'], enabled: true, members: [u('rita'), u('sam')] });
    assert.equal(put2.status, 200);
    assert.deepEqual(summary(await affiliate(u('sam'), [g('toggle')])), [`${g('toggle')}=affiliated`]);
    assert.equal((await stored(u('rita'))).get(g('toggle')), 'enabled');
  });

  void test('a member removed at the GMS gets not-member on the next request', async () => {
    assert.deepEqual(summary(await affiliate(u('tess'), [g('roster')])), [`${g('roster')}=affiliated`]);
    await deaffiliate(u('tess'), [g('roster')]);
    const put = await call('PUT', `${base}/gms/v1/groups/${enc(g('roster'))}`, operator, { services: ['mcptt'], members: [u('alice')] });
    assert.equal(put.status, 200, JSON.stringify(put.body));
    assert.deepEqual(summary(await affiliate(u('tess'), [g('roster')])), [`${g('roster')}=rejected:not-member`]);
    assert.equal((await stored(u('tess'))).size, 0);
  });

  void test('an admin profile change of N2 takes effect on the next request', async () => {
    // uma: n2 = 1
    assert.deepEqual(summary(await affiliate(u('uma'), [g('a'), g('b')])), [`${g('a')}=affiliated`, `${g('b')}=rejected:n2-limit`]);
    const raise = await call('PUT', `${base}/admin/v1/users/${enc(u('uma'))}`, operator, { services: ['mcptt'], n2: 2, groups: [g('a'), g('b'), g('c')] });
    assert.equal(raise.status, 200, JSON.stringify(raise.body));
    assert.deepEqual(summary(await affiliate(u('uma'), [g('b'), g('c')])), [`${g('b')}=affiliated`, `${g('c')}=rejected:n2-limit`]);
    const lower = await call('PUT', `${base}/admin/v1/users/${enc(u('uma'))}`, operator, { services: ['mcptt'], n2: 1, groups: [g('a'), g('b'), g('c')] });
    assert.equal(lower.status, 200);
    await deaffiliate(u('uma'), [g('a')]);
    // Holding b only, at the lowered limit of 1: c is over.
    assert.deepEqual(summary(await affiliate(u('uma'), [g('c')])), [`${g('c')}=rejected:n2-limit`]);
    assert.deepEqual([...(await stored(u('uma'))).keys()], [g('b')]);
  });

  void test('a group deleted at the GMS: unknown-group next; an existing affiliation is listed as deleted and can still be left', async () => {
    assert.deepEqual(summary(await affiliate(u('walt'), [g('doomed')])), [`${g('doomed')}=affiliated`]);
    const del = await call('DELETE', `${base}/gms/v1/groups/${enc(g('doomed'))}`, operator);
    assert.equal(del.status, 204, JSON.stringify(del.body));
    assert.deepEqual(summary(await affiliate(u('xena'), [g('doomed')])), [`${g('doomed')}=rejected:unknown-group`]);
    assert.equal((await stored(u('xena'))).size, 0);
    assert.equal((await stored(u('walt'))).get(g('doomed')), 'deleted');
    assert.deepEqual(summary(await deaffiliate(u('walt'), [g('doomed')])), [`${g('doomed')}=deaffiliated`]);
    assert.equal((await stored(u('walt'))).size, 0);
  });
});

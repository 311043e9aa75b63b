// Unit tables for decideAffiliation (TS 23.280 10.X.3.1 step 3, 10.X.3.2 steps 2 and 5; SPEC.md N2 and reasons).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { decideAffiliation, type AffiliationFacts, type AffiliationVerdict } from '../../src/domain/decisions/affiliation.ts';
import type { GroupHome, HeldState } from '../../src/domain/decisions/group-home.ts';
import type { GroupPolicy } from '../../src/domain/group-policy.ts';
import { domainOf, parseMcUri, type McUri } from '../../src/domain/ids.ts';
import type { UserProfile } from '../../src/domain/profile.ts';

const id = (raw: string): McUri => parseMcUri(raw);
const OWN = 'police.example';
const PARTNERS = ['fire.example', 'ambulance.example'];

const ALICE = id('sip:alice@police.example');
const CAROL = id('sip:carol@fire.example'); // a partner system's user, seen by the group host
const g = (name: string, domain = OWN): McUri => id(`sip:${name}@${domain}`);

const policy = (name: string, over: Partial<GroupPolicy> = {}): GroupPolicy => ({
  id: g(name),
  services: ['mcptt'],
  enabled: true,
  members: [ALICE, CAROL],
  deaffiliationForbidden: false,
  revision: 1,
  ...over,
});

const POLICIES: GroupPolicy[] = [
  policy('patrol'),
  policy('g1'),
  policy('g2'),
  policy('g3'),
  policy('g4'),
  policy('video', { services: ['mcvideo'] }),
  policy('data1', { services: ['mcptt', 'mcdata'] }),
  policy('data2', { services: ['mcptt', 'mcdata'] }),
  policy('closed', { enabled: false }),
  policy('club', { members: [id('sip:bob@police.example')] }),
  policy('unsubscribed'),
];
const byId = new Map(POLICIES.map((p) => [p.id, p]));
/** An own group whose policy the GMS could not be asked for (down), none cached. */
const UNASKED = g('unasked');

/** The world as the server sees it: own groups by policy (ghost has none), partner domains, the rest unroutable. */
function homeOf(groupId: McUri): GroupHome {
  const d = domainOf(groupId);
  if (groupId === UNASKED) return { home: 'own-gms-unavailable' };
  if (d === OWN) return { home: 'own', policy: byId.get(groupId) };
  if (d && PARTNERS.includes(d)) return { home: 'partner', domain: d };
  return { home: 'unroutable' };
}

const ALL_SUBSCRIBED = [...POLICIES.map((p) => p.id).filter((x) => x !== g('unsubscribed')), g('ghost'), UNASKED, g('fire-ops', 'fire.example'), g('medic', 'ambulance.example'), g('x', 'nowhere.example')];

const alice = (over: Partial<UserProfile> = {}): UserProfile => ({
  id: ALICE,
  services: ['mcptt', 'mcdata'],
  n2: 3,
  groups: ALL_SUBSCRIBED,
  remoteChange: false,
  ...over,
});

interface Case {
  name: string;
  requested: McUri[];
  expected: AffiliationVerdict[];
  service?: AffiliationFacts['service'];
  profile?: UserProfile | undefined;
  userId?: McUri;
  held?: [McUri, HeldState][];
}

const ok = (groupId: McUri): AffiliationVerdict => ({ groupId, verdict: 'affiliate' });
const already = (groupId: McUri): AffiliationVerdict => ({ groupId, verdict: 'already-affiliated' });
const no = (groupId: McUri, reason: Extract<AffiliationVerdict, { verdict: 'reject' }>['reason']): AffiliationVerdict => ({ groupId, verdict: 'reject', reason });
const ask = (groupId: McUri, reserve: boolean): AffiliationVerdict => ({ groupId, verdict: 'ask-partner', domain: domainOf(groupId) ?? '', reserve });

const FIRE_OPS = g('fire-ops', 'fire.example');
const MEDIC = g('medic', 'ambulance.example');

const asPrimary: Case[] = [
  { name: 'an enabled own group the user may join is affiliated', requested: [g('patrol')], expected: [ok(g('patrol'))] },
  // unknown-group
  { name: 'a group of the own domain that does not exist is unknown-group', requested: [g('ghost')], expected: [no(g('ghost'), 'unknown-group')] },
  { name: 'a group not offering the requested service is unknown-group', requested: [g('video')], expected: [no(g('video'), 'unknown-group')] },
  { name: 'a group of a domain no partner serves is unknown-group', requested: [g('x', 'nowhere.example')], expected: [no(g('x', 'nowhere.example'), 'unknown-group')] },
  // not-authorised
  { name: 'a service not in the profile is not-authorised', service: 'mcvideo', requested: [g('video')], expected: [no(g('video'), 'not-authorised')] },
  { name: 'an own group not in the subscription is not-authorised', requested: [g('unsubscribed')], expected: [no(g('unsubscribed'), 'not-authorised')] },
  { name: 'a partner group not in the subscription is not-authorised', requested: [g('other', 'fire.example')], expected: [no(g('other', 'fire.example'), 'not-authorised')] },
  // policy
  { name: 'a disabled group is group-disabled', requested: [g('closed')], expected: [no(g('closed'), 'group-disabled')] },
  { name: 'a group whose policy does not admit the user is not-member', requested: [g('club')], expected: [no(g('club'), 'not-member')] },
  // idempotency
  {
    name: 'an affiliated group is answered already-affiliated and not counted twice',
    profile: alice({ n2: 2 }),
    held: [[g('patrol'), 'affiliated']],
    requested: [g('patrol'), g('g1'), g('g2')],
    expected: [already(g('patrol')), ok(g('g1')), no(g('g2'), 'n2-limit')],
  },
  {
    name: 'an affiliated group is already-affiliated even when the user is at N2',
    profile: alice({ n2: 1 }),
    held: [[g('patrol'), 'affiliated']],
    requested: [g('patrol')],
    expected: [already(g('patrol'))],
  },
  {
    name: 'a group affiliated before it was disabled is still answered already-affiliated',
    held: [[g('closed'), 'affiliated']],
    requested: [g('closed')],
    expected: [already(g('closed'))],
  },
  // N2
  { name: 'N2 exactly at the limit: all groups are affiliated', requested: [g('g1'), g('g2'), g('g3')], expected: [ok(g('g1')), ok(g('g2')), ok(g('g3'))] },
  {
    name: 'N2 one over: the last group in request order gets n2-limit',
    requested: [g('g1'), g('g2'), g('g3'), g('g4')],
    expected: [ok(g('g1')), ok(g('g2')), ok(g('g3')), no(g('g4'), 'n2-limit')],
  },
  {
    name: 'N2 one over in reverse order: request order decides, so g1 gets n2-limit',
    requested: [g('g4'), g('g3'), g('g2'), g('g1')],
    expected: [ok(g('g4')), ok(g('g3')), ok(g('g2')), no(g('g1'), 'n2-limit')],
  },
  {
    name: 'N2 counts the groups already held',
    held: [[g('patrol'), 'affiliated'], [g('g4'), 'affiliated']],
    requested: [g('g1'), g('g2')],
    expected: [ok(g('g1')), no(g('g2'), 'n2-limit')],
  },
  {
    name: 'groups refused for another reason take no N2 slot',
    profile: alice({ n2: 2 }),
    requested: [g('closed'), g('g1'), g('club'), g('g2')],
    expected: [no(g('closed'), 'group-disabled'), ok(g('g1')), no(g('club'), 'not-member'), ok(g('g2'))],
  },
  { name: 'N2 of 0 admits no group', profile: alice({ n2: 0 }), requested: [g('g1')], expected: [no(g('g1'), 'n2-limit')] },
  {
    name: 'a reserved row (partner request in flight) counts towards N2',
    profile: alice({ n2: 2 }),
    held: [[FIRE_OPS, 'reserved']],
    requested: [g('g1'), g('g2')],
    expected: [ok(g('g1')), no(g('g2'), 'n2-limit')],
  },
  // N2 per service
  {
    name: 'one N2 number applies to every service (mcdata)',
    service: 'mcdata',
    profile: alice({ n2: 1 }),
    requested: [g('data1'), g('data2')],
    expected: [ok(g('data1')), no(g('data2'), 'n2-limit')],
  },
  {
    name: 'a per-service N2 map: mcdata uses its own limit',
    service: 'mcdata',
    profile: alice({ n2: { mcptt: 1, mcdata: 2 } }),
    requested: [g('data1'), g('data2')],
    expected: [ok(g('data1')), ok(g('data2'))],
  },
  {
    name: 'a per-service N2 map: mcptt uses its own limit',
    service: 'mcptt',
    profile: alice({ n2: { mcptt: 1, mcdata: 2 } }),
    requested: [g('data1'), g('data2')],
    expected: [ok(g('data1')), no(g('data2'), 'n2-limit')],
  },
  {
    name: 'a service missing from the per-service N2 map has N2 0',
    service: 'mcdata',
    profile: alice({ n2: { mcptt: 5 } }),
    requested: [g('data1')],
    expected: [no(g('data1'), 'n2-limit')],
  },
  // partner groups
  { name: 'a partner group passing the primary checks is ask-partner with a new reservation', requested: [FIRE_OPS], expected: [ask(FIRE_OPS, true)] },
  {
    name: 'own and partner groups of several systems mix in one request, in order',
    requested: [MEDIC, g('patrol'), FIRE_OPS],
    expected: [ask(MEDIC, true), ok(g('patrol')), ask(FIRE_OPS, true)],
  },
  {
    name: 'a partner group takes an N2 slot like an own group',
    profile: alice({ n2: 1 }),
    requested: [FIRE_OPS, g('patrol')],
    expected: [ask(FIRE_OPS, true), no(g('patrol'), 'n2-limit')],
  },
  {
    name: 'a partner group beyond N2 is n2-limit, not asked',
    profile: alice({ n2: 1 }),
    requested: [g('patrol'), FIRE_OPS],
    expected: [ok(g('patrol')), no(FIRE_OPS, 'n2-limit')],
  },
  {
    name: 'a partner group already reserved is asked again without a second slot',
    profile: alice({ n2: 2 }),
    held: [[FIRE_OPS, 'reserved'], [g('patrol'), 'affiliated']],
    requested: [FIRE_OPS],
    expected: [ask(FIRE_OPS, false)],
  },
  { name: 'an affiliated partner group is already-affiliated', held: [[FIRE_OPS, 'affiliated']], requested: [FIRE_OPS], expected: [already(FIRE_OPS)] },
  {
    name: 'GMS down: a group without a cached policy is refused on its own, the cached ones are decided and take the slots',
    requested: [UNASKED, g('g1'), g('g2'), g('g3')],
    expected: [no(UNASKED, 'partner-unreachable'), ok(g('g1')), ok(g('g2')), ok(g('g3'))],
  },
  {
    name: 'GMS down: the subscription, known without the GMS, still refuses first',
    profile: alice({ groups: [g('g1')] }),
    requested: [UNASKED],
    expected: [no(UNASKED, 'not-authorised')],
  },
  { name: 'GMS down: an affiliation already held is not confirmed without the policy', held: [[UNASKED, 'affiliated']], requested: [UNASKED], expected: [no(UNASKED, 'partner-unreachable')] },
];

const asGroupHost: Case[] = [
  { name: 'a partner user is affiliated without any subscription check', requested: [g('patrol'), g('unsubscribed')], expected: [ok(g('patrol')), ok(g('unsubscribed'))] },
  {
    name: 'no N2 check: many held and requested groups are all affiliated',
    held: [[g('g1'), 'affiliated'], [g('g2'), 'affiliated'], [g('g3'), 'affiliated'], [g('g4'), 'affiliated']],
    requested: [g('patrol'), g('data1'), g('data2'), g('unsubscribed')],
    expected: [ok(g('patrol')), ok(g('data1')), ok(g('data2')), ok(g('unsubscribed'))],
  },
  { name: 'no service check against a profile: mcvideo on a video group is affiliated', service: 'mcvideo', requested: [g('video')], expected: [ok(g('video'))] },
  { name: 'policy: a disabled group is group-disabled', requested: [g('closed')], expected: [no(g('closed'), 'group-disabled')] },
  { name: 'policy: a non-member is not-member', requested: [g('club')], expected: [no(g('club'), 'not-member')] },
  { name: 'policy: a missing group is unknown-group', requested: [g('ghost')], expected: [no(g('ghost'), 'unknown-group')] },
  { name: 'policy: a group not offering the service is unknown-group', requested: [g('video')], expected: [no(g('video'), 'unknown-group')] },
  {
    name: 'groups of other systems are refused (a partner is trusted only for its own groups)',
    requested: [FIRE_OPS, MEDIC, g('x', 'nowhere.example')],
    expected: [no(FIRE_OPS, 'unknown-group'), no(MEDIC, 'unknown-group'), no(g('x', 'nowhere.example'), 'unknown-group')],
  },
  { name: 'an affiliated group is already-affiliated', held: [[g('patrol'), 'affiliated']], requested: [g('patrol')], expected: [already(g('patrol'))] },
  { name: 'GMS down: a group without a cached policy is refused as unreachable, not as unknown', requested: [UNASKED, g('patrol')], expected: [no(UNASKED, 'partner-unreachable'), ok(g('patrol'))] },
];

for (const c of asPrimary) {
  void test(`decideAffiliation as primary: ${c.name}`, () => {
    const verdicts = decideAffiliation({
      service: c.service ?? 'mcptt',
      userId: c.userId ?? ALICE,
      profile: 'profile' in c ? c.profile : alice(),
      requested: c.requested,
      held: new Map(c.held ?? []),
      homeOf,
    });
    assert.deepEqual(verdicts, c.expected);
  });
}

for (const c of asGroupHost) {
  void test(`decideAffiliation as group host (no profile): ${c.name}`, () => {
    const verdicts = decideAffiliation({
      service: c.service ?? 'mcptt',
      userId: c.userId ?? CAROL,
      profile: undefined,
      requested: c.requested,
      held: new Map(c.held ?? []),
      homeOf,
    });
    assert.deepEqual(verdicts, c.expected);
  });
}

void test('decideAffiliation does not change the held map it is given', () => {
  const held = new Map<McUri, HeldState>([[g('patrol'), 'affiliated']]);
  decideAffiliation({ service: 'mcptt', userId: ALICE, profile: alice(), requested: [g('g1'), FIRE_OPS], held, homeOf });
  assert.deepEqual([...held], [[g('patrol'), 'affiliated']]);
});

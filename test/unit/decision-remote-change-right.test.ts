// Unit tables for decideChangeRight and mayView (TS 23.280 10.X.5.1.1 step 2, 10.X.5.1.2 step 2; SPEC.md "Who may act").
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { decideChangeRight, mayView } from '../../src/domain/decisions/remote-change-right.ts';
import { parseMcUri, type McUri } from '../../src/domain/ids.ts';
import type { RemoteChangeRight, UserProfile } from '../../src/domain/profile.ts';

const id = (raw: string): McUri => parseMcUri(raw);
const OWN = 'police.example';
const DISPATCH = id('sip:dispatch@police.example');
const BOB = id('sip:bob@police.example');
const CAROL = id('sip:carol@police.example');
const DAVE_FIRE = id('sip:dave@fire.example');
const TEL = id('tel:+15550100');
const PATROL = id('sip:patrol@police.example');
const NORTH = id('sip:north@police.example');
const FIRE_OPS = id('sip:fire-ops@fire.example');

const actor = (remoteChange: RemoteChangeRight, who = DISPATCH): UserProfile => ({ id: who, services: ['mcptt'], n2: 5, groups: [PATROL, NORTH], remoteChange });

interface Case {
  name: string;
  actor: UserProfile | undefined;
  target: McUri;
  /** undefined: not allowed; otherwise the groups probed and whether each is allowed. */
  groups: [McUri, boolean][] | undefined;
}

const cases: Case[] = [
  { name: 'a user may change itself without the right, every group', actor: actor(false), target: DISPATCH, groups: [[PATROL, true], [FIRE_OPS, true]] },
  { name: 'a user may change itself even with a right limited to other users', actor: actor({ users: [BOB], groups: [NORTH] }), target: DISPATCH, groups: [[PATROL, true]] },
  { name: 'without the right, another user may not be changed', actor: actor(false), target: BOB, groups: undefined },
  { name: 'the right `true` allows any own user and every group', actor: actor(true), target: BOB, groups: [[PATROL, true], [NORTH, true], [FIRE_OPS, true]] },
  { name: 'a users list allows a listed user', actor: actor({ users: [BOB] }), target: BOB, groups: [[PATROL, true], [NORTH, true]] },
  { name: 'a users list refuses an unlisted user', actor: actor({ users: [BOB] }), target: CAROL, groups: undefined },
  { name: 'an empty users list allows nobody else', actor: actor({ users: [] }), target: BOB, groups: undefined },
  { name: 'a groups list allows the target but only the listed groups', actor: actor({ groups: [PATROL] }), target: CAROL, groups: [[PATROL, true], [NORTH, false], [FIRE_OPS, false]] },
  { name: 'users and groups lists together: listed user, listed groups only', actor: actor({ users: [BOB], groups: [NORTH] }), target: BOB, groups: [[NORTH, true], [PATROL, false]] },
  { name: 'users and groups lists together: an unlisted user is refused', actor: actor({ users: [BOB], groups: [NORTH] }), target: CAROL, groups: undefined },
  { name: 'a target of a foreign domain is refused even with the right `true`', actor: actor(true), target: DAVE_FIRE, groups: undefined },
  { name: 'a listed target of a foreign domain is refused', actor: actor({ users: [DAVE_FIRE] }), target: DAVE_FIRE, groups: undefined },
  { name: 'a tel: target (no domain) is refused', actor: actor(true), target: TEL, groups: undefined },
  { name: 'an actor without a profile may not change another user', actor: undefined, target: BOB, groups: undefined },
  // Leaving is always allowed: a user whose profile was removed still sends its own (empty) set over SIP; the
  // procedures refuse the affiliations a missing profile does not allow.
  { name: 'an actor without a profile may still change itself', actor: undefined, target: DISPATCH, groups: [[PATROL, true]] },
];

for (const c of cases) {
  void test(`decideChangeRight: ${c.name}`, () => {
    const right = decideChangeRight(c.actor?.id ?? DISPATCH, c.actor, c.target, OWN);
    if (c.groups === undefined) {
      assert.equal(right.allowed, false);
      return;
    }
    assert.equal(right.allowed, true);
    if (!right.allowed) return;
    for (const [group, allowed] of c.groups) assert.equal(right.groupAllowed(group), allowed, `group ${group}`);
  });
}

const views: [name: string, actor: UserProfile | undefined, actorId: McUri, target: McUri, expected: boolean][] = [
  ['a user may view itself', actor(false), DISPATCH, DISPATCH, true],
  ['a user without a profile may still view itself', undefined, DISPATCH, DISPATCH, true],
  ['a user without a profile may not view another', undefined, DISPATCH, BOB, false],
  ['without the right, another user may not be viewed', actor(false), DISPATCH, BOB, false],
  ['with the right `true`, another own user may be viewed', actor(true), DISPATCH, BOB, true],
  ['a users list allows viewing a listed user', actor({ users: [BOB] }), DISPATCH, BOB, true],
  ['a users list refuses viewing an unlisted user', actor({ users: [BOB] }), DISPATCH, CAROL, false],
  ['a groups-only right allows viewing an own user', actor({ groups: [PATROL] }), DISPATCH, CAROL, true],
  ['a user of a foreign domain may not be viewed', actor(true), DISPATCH, DAVE_FIRE, false],
];
for (const [name, a, actorId, target, expected] of views) {
  void test(`mayView: ${name}`, () => {
    assert.equal(mayView(a, actorId, target, OWN), expected);
  });
}

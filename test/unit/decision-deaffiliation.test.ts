// Unit tables for decideDeaffiliation (TS 23.280 10.X.4.2 step 2, 10.X.4.3 steps 2 and 4; SPEC.md idempotency).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { decideDeaffiliation, type DeaffiliationVerdict } from '../../src/domain/decisions/deaffiliation.ts';
import type { GroupHome, HeldState } from '../../src/domain/decisions/group-home.ts';
import type { GroupPolicy } from '../../src/domain/group-policy.ts';
import { domainOf, parseMcUri, type McUri } from '../../src/domain/ids.ts';

const id = (raw: string): McUri => parseMcUri(raw);
const OWN = 'police.example';
const PARTNERS = ['fire.example', 'ambulance.example'];
const ALICE = id('sip:alice@police.example');
const CAROL = id('sip:carol@fire.example');
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
const POLICIES = [
  policy('patrol'),
  policy('north'),
  policy('closed', { enabled: false }),
  policy('allcall', { deaffiliationForbidden: true }),
  policy('closed-allcall', { enabled: false, deaffiliationForbidden: true }),
  policy('former', { deaffiliationForbidden: true, members: [] }),
];
const byId = new Map(POLICIES.map((p) => [p.id, p]));
/** An own group whose policy the GMS could not be asked for (down), none cached. */
const UNASKED = g('unasked');

/** Own groups by policy (`deleted` has none any more), partner domains, the rest unroutable. */
function homeOf(groupId: McUri): GroupHome {
  const d = domainOf(groupId);
  if (groupId === UNASKED) return { home: 'own-gms-unavailable' };
  if (d === OWN) return { home: 'own', policy: byId.get(groupId) };
  if (d && PARTNERS.includes(d)) return { home: 'partner', domain: d };
  return { home: 'unroutable' };
}

const FIRE_OPS = g('fire-ops', 'fire.example');
const MEDIC = g('medic', 'ambulance.example');
const NOWHERE = g('x', 'nowhere.example');

const leave = (groupId: McUri): DeaffiliationVerdict => ({ groupId, verdict: 'deaffiliate' });
const already = (groupId: McUri): DeaffiliationVerdict => ({ groupId, verdict: 'already-deaffiliated' });
const ask = (groupId: McUri): DeaffiliationVerdict => ({ groupId, verdict: 'ask-partner', domain: domainOf(groupId) ?? '' });
const no = (groupId: McUri, reason: Extract<DeaffiliationVerdict, { verdict: 'reject' }>['reason']): DeaffiliationVerdict => ({ groupId, verdict: 'reject', reason });

interface Case {
  name: string;
  asGroupHost?: boolean;
  undo?: boolean;
  userId?: McUri;
  held?: [McUri, HeldState][];
  requested: McUri[];
  expected: DeaffiliationVerdict[];
}

const cases: Case[] = [
  { name: 'an affiliated own group is de-affiliated', held: [[g('patrol'), 'affiliated']], requested: [g('patrol')], expected: [leave(g('patrol'))] },
  { name: 'idempotent: an own group the user is not affiliated to is already-deaffiliated', requested: [g('patrol')], expected: [already(g('patrol'))] },
  {
    name: 'idempotent: a forbidden-to-leave group the user is not affiliated to is already-deaffiliated',
    requested: [g('allcall')],
    expected: [already(g('allcall'))],
  },
  {
    name: 'a member may not leave a group whose policy forbids it: deaffiliation-forbidden',
    held: [[g('allcall'), 'affiliated']],
    requested: [g('allcall')],
    expected: [no(g('allcall'), 'deaffiliation-forbidden')],
  },
  {
    name: 'deaffiliation-forbidden still holds for a disabled group',
    held: [[g('closed-allcall'), 'affiliated']],
    requested: [g('closed-allcall')],
    expected: [no(g('closed-allcall'), 'deaffiliation-forbidden')],
  },
  {
    name: 'a user no longer a member may leave a forbidden-to-leave group',
    held: [[g('former'), 'affiliated']],
    requested: [g('former')],
    expected: [leave(g('former'))],
  },
  { name: 'a disabled group is still leavable', held: [[g('closed'), 'affiliated']], requested: [g('closed')], expected: [leave(g('closed'))] },
  { name: 'a deleted group (no policy) is still leavable', held: [[g('deleted'), 'affiliated']], requested: [g('deleted')], expected: [leave(g('deleted'))] },
  { name: 'a group of an unroutable domain that is held is still leavable', held: [[NOWHERE, 'affiliated']], requested: [NOWHERE], expected: [leave(NOWHERE)] },
  { name: 'a deleted group the user does not hold is unknown-group', requested: [g('deleted')], expected: [no(g('deleted'), 'unknown-group')] },
  { name: 'an unroutable group the user does not hold is unknown-group', requested: [NOWHERE], expected: [no(NOWHERE, 'unknown-group')] },
  { name: 'a held partner group is ask-partner with its domain', held: [[FIRE_OPS, 'affiliated']], requested: [FIRE_OPS], expected: [ask(FIRE_OPS)] },
  { name: 'a partner group not held is already-deaffiliated, the partner is not asked', requested: [FIRE_OPS], expected: [already(FIRE_OPS)] },
  {
    name: 'a mixed request is answered per group in request order',
    held: [[MEDIC, 'affiliated'], [g('north'), 'affiliated'], [g('allcall'), 'affiliated']],
    requested: [MEDIC, g('patrol'), g('north'), g('allcall'), FIRE_OPS],
    expected: [ask(MEDIC), already(g('patrol')), leave(g('north')), no(g('allcall'), 'deaffiliation-forbidden'), already(FIRE_OPS)],
  },
  // As group host for a partner system's user.
  {
    name: 'as group host: a held own group is de-affiliated',
    asGroupHost: true,
    userId: CAROL,
    held: [[g('patrol'), 'affiliated']],
    requested: [g('patrol')],
    expected: [leave(g('patrol'))],
  },
  { name: 'as group host: an own group not held is already-deaffiliated', asGroupHost: true, userId: CAROL, requested: [g('patrol')], expected: [already(g('patrol'))] },
  { name: 'as group host: a deleted group not held is already-deaffiliated', asGroupHost: true, userId: CAROL, requested: [g('deleted')], expected: [already(g('deleted'))] },
  {
    name: 'as group host: deaffiliation-forbidden applies to the partner user too',
    asGroupHost: true,
    userId: CAROL,
    held: [[g('allcall'), 'affiliated']],
    requested: [g('allcall')],
    expected: [no(g('allcall'), 'deaffiliation-forbidden')],
  },
  {
    name: "as group host: the primary's undo of an unanswered affiliation is not blocked by deaffiliation-forbidden",
    asGroupHost: true,
    undo: true,
    userId: CAROL,
    held: [[g('allcall'), 'affiliated'], [g('north'), 'affiliated']],
    requested: [g('allcall'), g('north'), g('patrol')],
    expected: [leave(g('allcall')), leave(g('north')), already(g('patrol'))],
  },
  {
    name: 'as group host: groups of other systems are refused, even when held',
    asGroupHost: true,
    userId: CAROL,
    held: [[FIRE_OPS, 'affiliated']],
    requested: [FIRE_OPS, MEDIC],
    expected: [no(FIRE_OPS, 'unknown-group'), no(MEDIC, 'unknown-group')],
  },
  {
    name: 'GMS down: a held group without a cached policy stays (it might forbid leaving); the others are decided',
    held: [[UNASKED, 'affiliated'], [g('patrol'), 'affiliated']],
    requested: [UNASKED, g('patrol')],
    expected: [no(UNASKED, 'partner-unreachable'), leave(g('patrol'))],
  },
  { name: 'GMS down: a group not held is refused too (it may not even exist)', requested: [UNASKED], expected: [no(UNASKED, 'partner-unreachable')] },
  { name: 'GMS down: as group host, an undo needs no policy', asGroupHost: true, undo: true, userId: CAROL, held: [[UNASKED, 'affiliated']], requested: [UNASKED], expected: [leave(UNASKED)] },
  { name: 'GMS down: as group host, a group not held is already left', asGroupHost: true, userId: CAROL, requested: [UNASKED], expected: [already(UNASKED)] },
  { name: 'GMS down: as group host, a held group without policy stays', asGroupHost: true, userId: CAROL, held: [[UNASKED, 'affiliated']], requested: [UNASKED], expected: [no(UNASKED, 'partner-unreachable')] },
];

for (const c of cases) {
  void test(`decideDeaffiliation: ${c.name}`, () => {
    const verdicts = decideDeaffiliation({
      userId: c.userId ?? ALICE,
      requested: c.requested,
      held: new Map(c.held ?? []),
      homeOf,
      asGroupHost: c.asGroupHost ?? false,
      ...(c.undo ? { undo: true } : {}),
    });
    assert.deepEqual(verdicts, c.expected);
  });
}

// Tables for the rules moved out of the HTTP face: what a partner may ask, and who may read a group's members.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { McUri } from '../../src/domain/ids.ts';
import { MusterError } from '../../src/domain/errors.ts';
import { hostOfPartnerRequest, requireUsersOfPartner } from '../../src/domain/decisions/partner-trust.ts';
import { mayViewMembers } from '../../src/domain/decisions/remote-change-right.ts';
import type { UserProfile } from '../../src/domain/profile.ts';
import type { GroupPolicy } from '../../src/domain/group-policy.ts';

const id = (s: string): McUri => s as McUri;

void test('hostOfPartnerRequest: the one hosting system, or a 400 naming the list that brings a second system', () => {
  const fire = [id('sip:a@fire.example'), id('sip:b@fire.example')];
  assert.equal(hostOfPartnerRequest([{ field: 'groupIds', groupIds: fire }]), 'fire.example');
  assert.equal(hostOfPartnerRequest([{ field: 'affiliate', groupIds: [] }, { field: 'deaffiliate', groupIds: fire }]), 'fire.example');
  const refusedFor = (lists: { field: string; groupIds: McUri[] }[], field: string): void =>
    assert.throws(() => hostOfPartnerRequest(lists), (e: unknown) => e instanceof MusterError && e.code === 'bad-request' && e.field === field);
  refusedFor([{ field: 'affiliate', groupIds: [id('sip:a@fire.example'), id('sip:m@ambulance.example')] }], 'affiliate');
  // Both lists of one system each, but not the same one; and a mixed deaffiliate list after a clean affiliate list.
  refusedFor([{ field: 'affiliate', groupIds: fire }, { field: 'deaffiliate', groupIds: [id('sip:m@ambulance.example')] }], 'deaffiliate');
  refusedFor([{ field: 'affiliate', groupIds: [] }, { field: 'deaffiliate', groupIds: [id('sip:a@fire.example'), id('sip:m@ambulance.example')] }], 'deaffiliate');
});

void test('requireUsersOfPartner: users of the requesting system pass; the first foreign one is a 403 naming its field', () => {
  requireUsersOfPartner('police.example', [{ id: id('sip:alice@police.example'), field: 'mcServiceId' }]);
  assert.throws(
    () => requireUsersOfPartner('police.example', [
      { id: id('sip:dispatch@police.example'), field: 'mcServiceId' },
      { id: id('sip:amy@ambulance.example'), field: 'targets[0]' },
    ]),
    (e: unknown) => e instanceof MusterError && e.code === 'forbidden' && e.field === 'targets[0]',
  );
});

void test('mayViewMembers: members, and a remote-change right that covers the group; nobody else', () => {
  const g = id('sip:patrol@police.example');
  const policy: GroupPolicy = { id: g, services: ['mcptt'], enabled: true, members: [id('sip:alice@police.example')], deaffiliationForbidden: false, revision: 1 };
  const profile = (remoteChange: UserProfile['remoteChange'], who = 'sip:bob@police.example'): UserProfile => ({ id: id(who), services: ['mcptt'], n2: 1, groups: [], remoteChange });
  const rows: [string, UserProfile | undefined, string, GroupPolicy | undefined, boolean][] = [
    ['a member', profile(false, 'sip:alice@police.example'), 'sip:alice@police.example', policy, true],
    ['a stranger', profile(false), 'sip:bob@police.example', policy, false],
    ['full right', profile(true), 'sip:bob@police.example', policy, true],
    ['right limited to this group', profile({ groups: [g] }), 'sip:bob@police.example', policy, true],
    ['right limited to another group', profile({ groups: [id('sip:north@police.example')] }), 'sip:bob@police.example', policy, false],
    ['right limited to users only', profile({ users: [] }), 'sip:bob@police.example', policy, true],
    ['no profile, unknown group', undefined, 'sip:bob@police.example', undefined, false],
  ];
  for (const [what, caller, callerId, pol, expected] of rows) assert.equal(mayViewMembers(caller, id(callerId), pol, g), expected, what);
});

// Watching a group's affiliated members over SIP (issue 4): the domain rule naming the groups a status change
// touches, the group channel of the local notifier, and the PIDF a group's watcher gets.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { McUri } from '../../src/domain/ids.ts';
import type { GroupStatus } from '../../src/domain/flows.ts';
import type { ClientEvent } from '../../src/ports/store.ts';
import { groupsTouchedBy } from '../../src/domain/decisions/group-watch.ts';
import { LocalNotifier } from '../../src/adapters/local-notifier.ts';
import { renderGroupAffiliation } from '../../src/faces/sip/pidf-render.ts';
import { PIDF_NS, PRES_INFO_NS } from '../../src/faces/sip/affiliation-document.ts';
import { childrenNamed, parseXmlDocument } from '../../src/faces/sip/xml-document.ts';

const u = (s: string): McUri => s as McUri;
const PATROL = u('sip:patrol@police.example');
const NORTH = u('sip:north@police.example');
const ALICE = u('sip:alice@police.example');
const BOB = u('sip:bob@police.example');

const cases: { name: string; status: GroupStatus[]; groups: McUri[] }[] = [
  { name: 'nothing changed: no group', status: [], groups: [] },
  { name: 'joined two groups: both', status: [{ groupId: PATROL, status: 'affiliated' }, { groupId: NORTH, status: 'affiliated' }], groups: [PATROL, NORTH] },
  { name: 'left one: that one', status: [{ groupId: NORTH, status: 'deaffiliated' }], groups: [NORTH] },
  { name: 'dropped after a partner refused: that one', status: [{ groupId: PATROL, status: 'rejected', reason: 'partner-unreachable' }], groups: [PATROL] },
  { name: 'a group named twice is named once', status: [{ groupId: PATROL, status: 'deaffiliated' }, { groupId: PATROL, status: 'affiliated' }], groups: [PATROL] },
];

for (const c of cases) {
  void test(`groupsTouchedBy: ${c.name}`, () => {
    assert.deepEqual(groupsTouchedBy(c.status), c.groups);
  });
}

void test("the local notifier's group channel gets the status events naming the group, of any user, and nothing else", () => {
  const notifier = new LocalNotifier();
  const got: number[] = [];
  const off = notifier.subscribeGroup(PATROL, (e) => got.push(e.id));
  const event = (id: number, userId: McUri, type: ClientEvent['type'], status: GroupStatus[]): ClientEvent => ({ id, userId, type, data: { service: 'mcptt', status }, at: 0 });
  notifier.publish([
    event(1, ALICE, 'affiliation-status', [{ groupId: PATROL, status: 'affiliated' }]),
    event(2, BOB, 'affiliation-status', [{ groupId: NORTH, status: 'affiliated' }]),
    event(3, BOB, 'affiliation-status', [{ groupId: NORTH, status: 'affiliated' }, { groupId: PATROL, status: 'deaffiliated' }]),
    event(4, BOB, 'affiliation-change', [{ groupId: PATROL, status: 'affiliated' }]),
  ]);
  assert.deepEqual(got, [1, 3]);
  // A group's URI is not a user's channel: a user listener on the same URI hears none of it.
  const asUser: number[] = [];
  notifier.subscribe(PATROL, (e) => asUser.push(e.id));
  notifier.publish([event(5, ALICE, 'affiliation-status', [{ groupId: PATROL, status: 'deaffiliated' }])]);
  assert.deepEqual([got, asUser], [[1, 3, 5], []]);
  off();
  notifier.publish([event(6, ALICE, 'affiliation-status', [{ groupId: PATROL, status: 'affiliated' }])]);
  assert.deepEqual(got, [1, 3, 5]);
});

void test('group PIDF: entity the group, one tuple per member with its affiliation to the group and the member as contact', () => {
  const text = renderGroupAffiliation({ group: PATROL, service: 'mcptt', members: [{ userId: ALICE, state: 'affiliated' }, { userId: BOB, state: 'reserved' }] });
  const root = parseXmlDocument(text);
  assert.equal(root.ns, PIDF_NS);
  assert.equal(root.attrs.get('entity'), PATROL);
  const tuples = childrenNamed(root, PIDF_NS, 'tuple');
  const read = tuples.map((t) => {
    const [status] = childrenNamed(t, PIDF_NS, 'status');
    const aff = childrenNamed(status!, PRES_INFO_NS.mcptt, 'affiliation');
    return { id: t.attrs.get('id'), contact: childrenNamed(t, PIDF_NS, 'contact')[0]?.text, aff: aff.map((a) => [a.attrs.get('group'), a.attrs.get('status')]) };
  });
  assert.deepEqual(read, [
    { id: 'member-1', contact: ALICE, aff: [[PATROL, 'affiliated']] },
    { id: 'member-2', contact: BOB, aff: [[PATROL, 'affiliating']] },
  ]);
  // RFC 3863 §4.1.2: <status> before <contact> inside a tuple.
  assert.match(text, /<tuple id="member-1"><status><mcpttPI10:affiliation group="sip:patrol@police.example" status="affiliated"\/><\/status><contact>sip:alice@police.example<\/contact><\/tuple>/);
});

void test('group PIDF for MCVideo uses its own namespace; no member: no tuple', () => {
  const text = renderGroupAffiliation({ group: PATROL, service: 'mcvideo', members: [] });
  const root = parseXmlDocument(text);
  assert.equal(childrenNamed(root, PIDF_NS, 'tuple').length, 0);
  assert.match(text, new RegExp(`xmlns:\\w+="${PRES_INFO_NS.mcvideo}"`));
});

// TS 24.379 §4.4 Warning headers for refused groups: every Muster reason has an MCPTT 3-digit code, the header has the
// 399 <agent> "<code> <text> (<reason>: <group>)" shape, and a client can read code, reason and group back out.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MC_WARNING, readRefusalWarning, refusalWarnings, warningText } from '../../src/faces/sip/warning.ts';
import { REFUSAL_REASONS } from '../../src/domain/reasons.ts';
import type { McUri } from '../../src/domain/ids.ts';

// The codes and texts as TS 24.379 Table 4.4.2-2 words them (MCPTT); literals here, not the module's constants.
const expected: [string, number, string][] = [
  ['unknown-group', 113, 'group document does not exist'],
  ['group-disabled', 115, 'group is disabled'],
  ['not-authorised', 100, 'function not allowed due to user authorisation'],
  ['not-member', 116, 'user is not part of the MCPTT group'],
  ['n2-limit', 102, 'too many simultaneous affiliations'],
  ['not-affiliated', 120, 'user is not affiliated to this group'],
  ['deaffiliation-forbidden', 100, 'function not allowed due to group definition'],
  ['partner-unreachable', 100, "function not allowed due to group's home system not reachable"],
  ['timeout', 100, 'function not allowed due to no answer from the target user'],
  ['rejected-by-user', 100, 'function not allowed due to the target user declining'],
];

void test('every Muster refusal reason has its MCPTT warning code and text', () => {
  assert.deepEqual(expected.map(([r]) => r).sort(), [...REFUSAL_REASONS].sort(), 'the table covers every reason');
  for (const [reason, code, text] of expected) {
    assert.deepEqual(MC_WARNING[reason as keyof typeof MC_WARNING]('mcptt'), { code, text }, reason);
  }
});

void test('116 names the service of the request (TS 24.281 and TS 24.282 word it per service)', () => {
  assert.equal(MC_WARNING['not-member']('mcvideo').text, 'user is not part of the MCVideo group');
  assert.equal(MC_WARNING['not-member']('mcdata').text, 'user is not part of the MCData group');
});

void test('one Warning per refused group, 399 with the agent, readable back into code, reason and group', () => {
  const north = 'sip:north@police.example' as McUri;
  const patrol = 'sip:patrol@police.example' as McUri;
  const headers = refusalWarnings('police.example', 'mcptt', [
    { groupId: patrol, status: 'affiliated' },
    { groupId: north, status: 'rejected', reason: 'n2-limit' },
  ]);
  assert.deepEqual(headers, [['Warning', '399 police.example "102 too many simultaneous affiliations (n2-limit: sip:north@police.example)"']]);
  assert.deepEqual(readRefusalWarning(headers[0]![1]), { agent: 'police.example', code: 102, text: 'too many simultaneous affiliations', reason: 'n2-limit', groupId: north });
});

void test('the warn-text stays one quoted string: quotes and backslashes in a group ID are replaced', () => {
  const text = warningText('mcptt', 'sip:a"b\\c@x.example', 'unknown-group');
  assert.equal(text, "113 group document does not exist (unknown-group: sip:a'b'c@x.example)");
});

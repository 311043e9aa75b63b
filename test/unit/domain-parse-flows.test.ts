// Unit tables for the flow parsers (src/domain/parse-flows.ts): normalised IDs, refusals naming the field at fault.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MusterError } from '../../src/domain/errors.ts';
import { parseAffiliationRequest, parseChangeRequest, parseId, parseIdList } from '../../src/domain/parse-flows.ts';
import type { ChangeRequestBody } from '../../src/domain/flows.ts';

const ALICE = 'sip:alice@police.example';
const BOB = 'sip:bob@police.example';
const PATROL = 'sip:patrol@police.example';
const NORTH = 'sip:north@police.example';
const FIRE_OPS = 'sip:fire-ops@fire.example';

/** Asserts that `fn` is refused as bad input naming `field`, with a message matching `why`. */
function assertBadInput(fn: () => unknown, field: string, why?: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof MusterError, 'throws MusterError');
    assert.equal(e.code, 'bad-request');
    assert.equal(e.httpStatus, 400);
    assert.equal(e.field, field);
    if (why) assert.match(e.message, why);
    return true;
  });
}

void test('parseId normalises scheme and host', () => {
  assert.equal(parseId('SIP:alice@Police.Example', 'mcServiceId'), ALICE);
});

void test('parseId refuses an invalid ID naming the field and the reason', () => {
  assertBadInput(() => parseId('sip:alice', 'mcServiceId'), 'mcServiceId', /must be a sip: URI/);
});

const idLists: [name: string, raw: string[], field: string, why: RegExp][] = [
  ['the same ID twice', [PATROL, NORTH, PATROL], 'groupIds[2]', /repeats groupIds\[0\]/],
  ['two spellings of one ID', [PATROL, 'SIP:patrol@POLICE.example'], 'groupIds[1]', /repeats groupIds\[0\]/],
  ['sips and sip spellings of one ID', [NORTH, PATROL, 'sips:patrol@police.example'], 'groupIds[2]', /repeats groupIds\[1\]/],
  ['an invalid ID in the list', [PATROL, 'sip:north@police.example;x=1'], 'groupIds[1]', /must be a sip: URI/],
];
for (const [name, raw, field, why] of idLists) {
  void test(`parseIdList refuses ${name}, naming ${field}`, () => {
    assertBadInput(() => parseIdList(raw, 'groupIds'), field, why);
  });
}

void test('parseIdList keeps distinct IDs in order, normalised', () => {
  assert.deepEqual(parseIdList(['SIP:north@Police.Example', PATROL], 'groupIds'), [NORTH, PATROL]);
});

void test('parseAffiliationRequest normalises every ID and keeps request order', () => {
  const req = parseAffiliationRequest({ mcServiceId: 'SIP:alice@POLICE.EXAMPLE', service: 'mcptt', groupIds: [FIRE_OPS, 'sip:patrol@Police.example'] });
  assert.deepEqual(req, { mcServiceId: ALICE, service: 'mcptt', groupIds: [FIRE_OPS, PATROL] });
});

const affiliationRefusals: [name: string, body: { mcServiceId: string; groupIds: string[] }, field: string, why: RegExp][] = [
  ['an empty group list', { mcServiceId: ALICE, groupIds: [] }, 'groupIds', /at least one group/],
  ['a repeated group', { mcServiceId: ALICE, groupIds: [PATROL, NORTH, PATROL] }, 'groupIds[2]', /repeats groupIds\[0\]/],
  ['a repeated group spelt differently', { mcServiceId: ALICE, groupIds: [PATROL, NORTH, 'sip:north@POLICE.example'] }, 'groupIds[2]', /repeats groupIds\[1\]/],
  ['an invalid group ID', { mcServiceId: ALICE, groupIds: [PATROL, 'patrol'] }, 'groupIds[1]', /must be a sip: URI/],
  ['an invalid originator ID', { mcServiceId: 'alice', groupIds: [PATROL] }, 'mcServiceId', /must be a sip: URI/],
];
for (const [name, body, field, why] of affiliationRefusals) {
  void test(`parseAffiliationRequest refuses ${name}, naming ${field}`, () => {
    assertBadInput(() => parseAffiliationRequest({ ...body, service: 'mcptt' }), field, why);
  });
}

const change = (over: Partial<ChangeRequestBody>): ChangeRequestBody => ({ mcServiceId: ALICE, service: 'mcptt', mode: 'mandatory', targets: [BOB], ...over });

void test('parseChangeRequest normalises targets and both group lists', () => {
  const req = parseChangeRequest(change({ mode: 'negotiated', targets: ['SIP:bob@Police.Example'], affiliate: ['sip:patrol@POLICE.example'], deaffiliate: [NORTH] }));
  assert.deepEqual(req, { mcServiceId: ALICE, service: 'mcptt', mode: 'negotiated', targets: [BOB], affiliate: [PATROL], deaffiliate: [NORTH] });
});

void test('parseChangeRequest fills a missing list with an empty one', () => {
  const req = parseChangeRequest(change({ deaffiliate: [NORTH] }));
  assert.deepEqual(req.affiliate, []);
  assert.deepEqual(req.deaffiliate, [NORTH]);
});

const changeRefusals: [name: string, body: ChangeRequestBody, field: string, why: RegExp][] = [
  ['a change with no group lists (nothing to do)', change({}), 'affiliate', /at least one group/],
  ['a change with two empty group lists (nothing to do)', change({ affiliate: [], deaffiliate: [] }), 'affiliate', /at least one group/],
  ['a group both in affiliate and deaffiliate', change({ affiliate: [PATROL], deaffiliate: [NORTH, PATROL] }), 'deaffiliate', /is also in affiliate/],
  ['a group in both lists spelt differently', change({ affiliate: ['SIP:patrol@POLICE.EXAMPLE'], deaffiliate: [PATROL] }), 'deaffiliate', /is also in affiliate/],
  ['a repeated group in affiliate', change({ affiliate: [PATROL, NORTH, PATROL] }), 'affiliate[2]', /repeats affiliate\[0\]/],
  ['a repeated group in deaffiliate', change({ deaffiliate: [NORTH, 'sip:north@Police.Example'] }), 'deaffiliate[1]', /repeats deaffiliate\[0\]/],
  ['a repeated target', change({ targets: [BOB, ALICE, 'SIP:bob@police.example'], affiliate: [PATROL] }), 'targets[2]', /repeats targets\[0\]/],
  ['an invalid target', change({ targets: ['bob'], affiliate: [PATROL] }), 'targets[0]', /must be a sip: URI/],
  ['an invalid originator', change({ mcServiceId: 'sip:dispatch', affiliate: [PATROL] }), 'mcServiceId', /must be a sip: URI/],
];
for (const [name, body, field, why] of changeRefusals) {
  void test(`parseChangeRequest refuses ${name}, naming ${field}`, () => {
    assertBadInput(() => parseChangeRequest(body), field, why);
  });
}

// Table for 10.X.3.2 step 8 at the primary (decidePartnerAnswers): a request releases only its own reservations,
// and a confirmation whose reservation is gone takes a slot only if N2 leaves one.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { McUri } from '../../src/domain/ids.ts';
import type { GroupStatus } from '../../src/domain/flows.ts';
import type { HeldState } from '../../src/domain/decisions/group-home.ts';
import { decidePartnerAnswers, groupsToUndo } from '../../src/domain/decisions/partner-answers.ts';

const g = (n: string): McUri => `sip:${n}@fire.example` as McUri;
const ok = (n: string): GroupStatus => ({ groupId: g(n), status: 'affiliated' });
const no = (n: string): GroupStatus => ({ groupId: g(n), status: 'rejected', reason: 'partner-unreachable' });
const held = (entries: [string, HeldState][]): Map<McUri, HeldState> => new Map(entries.map(([n, s]) => [g(n), s]));

void test('its own reservation confirmed is stored; refused, it is released', () => {
  assert.deepEqual(decidePartnerAnswers({ answers: [ok('a'), no('b')], held: held([['a', 'reserved'], ['b', 'reserved']]), limit: 2, reservedHere: new Set([g('a'), g('b')]) }), {
    affiliate: [g('a')],
    release: [g('b')],
    noRoom: [],
  });
});

void test("another request's reservation is not released by this one's refusal, nor is an affiliation", () => {
  // This request asked for b without a slot (another request of the user holds b's reservation) and got no answer.
  assert.deepEqual(decidePartnerAnswers({ answers: [no('b'), no('c')], held: held([['b', 'reserved'], ['c', 'affiliated']]), limit: 2, reservedHere: new Set([g('c')]) }), {
    affiliate: [],
    release: [],
    noRoom: [],
  });
});

void test('a confirmation whose reservation is gone takes a free slot, and is refused when there is none', () => {
  const gone = { answers: [ok('a'), ok('b')], reservedHere: new Set([g('a'), g('b')]) };
  assert.deepEqual(decidePartnerAnswers({ ...gone, held: held([['q', 'affiliated']]), limit: 3 }), { affiliate: [g('a'), g('b')], release: [], noRoom: [] });
  assert.deepEqual(decidePartnerAnswers({ ...gone, held: held([['q', 'affiliated']]), limit: 2 }), { affiliate: [g('a')], release: [], noRoom: [g('b')] });
  assert.deepEqual(decidePartnerAnswers({ ...gone, held: held([['q', 'affiliated']]), limit: 1 }), { affiliate: [], release: [], noRoom: [g('a'), g('b')] });
});

void test('a slot this request releases is free for its own confirmation that lost its reservation', () => {
  assert.deepEqual(decidePartnerAnswers({ answers: [ok('a'), no('b')], held: held([['b', 'reserved']]), limit: 1, reservedHere: new Set([g('a'), g('b')]) }), {
    affiliate: [g('a')],
    release: [g('b')],
    noRoom: [],
  });
});

void test('already affiliated (another request stored it first) is stored again: no slot taken, none refused', () => {
  assert.deepEqual(decidePartnerAnswers({ answers: [ok('a')], held: held([['a', 'affiliated']]), limit: 1, reservedHere: new Set([g('a')]) }), { affiliate: [g('a')], release: [], noRoom: [] });
});

void test('groupsToUndo: an unanswered affiliation while the group is not held affiliated, a de-affiliation while it is', () => {
  const h = held([['a', 'affiliated'], ['r', 'reserved']]);
  assert.deepEqual(groupsToUndo('affiliate', [g('a'), g('r'), g('n')], h), [g('r'), g('n')]);
  assert.deepEqual(groupsToUndo('deaffiliate', [g('a'), g('r'), g('n')], h), [g('a')]);
});

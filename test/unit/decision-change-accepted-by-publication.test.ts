// Unit table for changesAcceptedByPublication (TS 24.379 §9.2.1.5: the target accepts a negotiated change by
// publishing the set it asks for).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { changesAcceptedByPublication, type WaitingChange } from '../../src/domain/decisions/change-accepted-by-publication.ts';
import { parseMcUri, type McUri } from '../../src/domain/ids.ts';

const id = (raw: string): McUri => parseMcUri(raw);
const PATROL = id('sip:patrol@police.example');
const NORTH = id('sip:north@police.example');
const SOUTH = id('sip:south@police.example');
const join = (...g: McUri[]): WaitingChange => ({ id: `join ${g.join(',')}`, affiliate: g, deaffiliate: [] });
const leave = (...g: McUri[]): WaitingChange => ({ id: `leave ${g.join(',')}`, affiliate: [], deaffiliate: g });
const swap: WaitingChange = { id: 'swap', affiliate: [SOUTH], deaffiliate: [PATROL] };

const cases: { name: string; waiting: WaitingChange[]; published: McUri[]; accepted: string[] }[] = [
  { name: 'a set holding the asked group accepts the change', waiting: [join(SOUTH)], published: [PATROL, SOUTH], accepted: ['join ' + SOUTH] },
  { name: 'a set missing one asked group accepts nothing', waiting: [join(SOUTH, NORTH)], published: [SOUTH], accepted: [] },
  { name: 'a set without the group to leave accepts a de-affiliation', waiting: [leave(PATROL)], published: [NORTH], accepted: ['leave ' + PATROL] },
  { name: 'a set still holding the group to leave accepts nothing', waiting: [leave(PATROL)], published: [PATROL], accepted: [] },
  { name: 'a swap needs both halves', waiting: [swap], published: [PATROL, SOUTH], accepted: [] },
  { name: 'a swap done in full is accepted', waiting: [swap], published: [SOUTH], accepted: ['swap'] },
  { name: 'an empty set accepts a de-affiliation and no affiliation', waiting: [leave(PATROL), join(NORTH)], published: [], accepted: ['leave ' + PATROL] },
  { name: 'several waiting changes are answered each on its own', waiting: [join(SOUTH), join(NORTH), leave(PATROL)], published: [SOUTH, PATROL], accepted: ['join ' + SOUTH] },
  { name: 'nothing waiting, nothing accepted', waiting: [], published: [SOUTH], accepted: [] },
];

for (const c of cases) {
  void test(c.name, () => {
    assert.deepEqual(changesAcceptedByPublication(c.waiting, c.published), c.accepted);
  });
}

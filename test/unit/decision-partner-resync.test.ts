// Tables for partner re-synchronisation: the group host's comparison (sets in, actions out), the primary's choice of
// what to ask again, and what it does with the answer.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { McUri } from '../../src/domain/ids.ts';
import type { GroupStatus } from '../../src/domain/flows.ts';
import { byUserAndService, compareAsGroupHost, compareResyncKeys, decideReask, decideReaskOutcome, resyncKeyOf, type ResyncKey } from '../../src/domain/decisions/partner-resync.ts';

const k = (user: string, group: string, service: 'mcptt' | 'mcdata' = 'mcptt'): ResyncKey => ({ userId: `sip:${user}@police.example` as McUri, service, groupId: `sip:${group}@fire.example` as McUri });
const NOW = 1_000_000;
const GRACE = 5000;
const old = (key: ResyncKey) => ({ ...key, updatedAt: NOW - GRACE - 1 });
const recent = (key: ResyncKey) => ({ ...key, updatedAt: NOW - GRACE + 1 });
const names = (keys: ResyncKey[]): string[] => keys.map(resyncKeyOf).sort();

void test('compareAsGroupHost: remove what only the host holds (unless recent), report what only the primary holds', () => {
  const rows: [string, ResyncKey[], ReturnType<typeof old>[], { remove: ResyncKey[]; spared: ResyncKey[]; missing: ResyncKey[] }][] = [
    ['both empty', [], [], { remove: [], spared: [], missing: [] }],
    ['both agree', [k('alice', 'engine')], [old(k('alice', 'engine'))], { remove: [], spared: [], missing: [] }],
    ['host holds an extra one', [], [old(k('alice', 'engine'))], { remove: [k('alice', 'engine')], spared: [], missing: [] }],
    ['host holds an extra one changed within the grace', [], [recent(k('alice', 'engine'))], { remove: [], spared: [k('alice', 'engine')], missing: [] }],
    ['exactly at the grace is old enough', [], [{ ...k('bob', 'rescue'), updatedAt: NOW - GRACE }], { remove: [k('bob', 'rescue')], spared: [], missing: [] }],
    ['primary holds one the host lost', [k('alice', 'engine')], [], { remove: [], spared: [], missing: [k('alice', 'engine')] }],
    ['the service is part of the key', [k('alice', 'engine', 'mcdata')], [old(k('alice', 'engine'))], { remove: [k('alice', 'engine')], spared: [], missing: [k('alice', 'engine', 'mcdata')] }],
    [
      'mixed',
      [k('alice', 'engine'), k('bob', 'engine'), k('carol', 'rescue')],
      [old(k('alice', 'engine')), old(k('bob', 'rescue')), recent(k('dave', 'engine'))],
      { remove: [k('bob', 'rescue')], spared: [k('dave', 'engine')], missing: [k('bob', 'engine'), k('carol', 'rescue')] },
    ],
  ];
  for (const [name, primaryHolds, hostHolds, want] of rows) {
    const got = compareAsGroupHost({ primaryHolds, hostHolds, now: NOW, graceMs: GRACE });
    assert.deepEqual({ remove: names(got.remove), spared: names(got.spared), missing: names(got.missing) }, { remove: names(want.remove), spared: names(want.spared), missing: names(want.missing) }, name);
    // Keys come out bare, without the host's timestamps.
    for (const x of [...got.remove, ...got.spared, ...got.missing]) assert.deepEqual(Object.keys(x).sort(), ['groupId', 'service', 'userId'], name);
  }
});

void test('decideReask: ask again only what is still affiliated at the primary with nothing on its way', () => {
  const rows: [string, Parameters<typeof decideReask>[0], ReturnType<typeof decideReask>][] = [
    ['affiliated, idle', { heldNow: 'affiliated', inFlight: false }, { verdict: 'reask' }],
    ['affiliated, a request in flight', { heldNow: 'affiliated', inFlight: true }, { verdict: 'skip', why: 'in-flight' }],
    ['reserved (a partner decides)', { heldNow: 'reserved', inFlight: false }, { verdict: 'skip', why: 'in-flight' }],
    ['no longer held', { heldNow: undefined, inFlight: false }, { verdict: 'skip', why: 'gone' }],
    ['no longer held, in flight', { heldNow: undefined, inFlight: true }, { verdict: 'skip', why: 'gone' }],
  ];
  for (const [name, facts, want] of rows) assert.deepEqual(decideReask(facts), want, name);
});

void test('decideReaskOutcome: affiliated agrees, unreachable waits, any other refusal drops the record', () => {
  const g = 'sip:engine@fire.example' as McUri;
  const rows: [GroupStatus, ReturnType<typeof decideReaskOutcome>][] = [
    [{ groupId: g, status: 'affiliated' }, { outcome: 'agreed' }],
    [{ groupId: g, status: 'rejected', reason: 'partner-unreachable' }, { outcome: 'retry-later' }],
    [{ groupId: g, status: 'rejected', reason: 'not-member' }, { outcome: 'drop', reason: 'not-member' }],
    [{ groupId: g, status: 'rejected', reason: 'group-disabled' }, { outcome: 'drop', reason: 'group-disabled' }],
    [{ groupId: g, status: 'rejected', reason: 'unknown-group' }, { outcome: 'drop', reason: 'unknown-group' }],
    [{ groupId: g, status: 'deaffiliated' }, { outcome: 'retry-later' }],
  ];
  for (const [status, want] of rows) assert.deepEqual(decideReaskOutcome(status), want, JSON.stringify(status));
});

void test('compareResyncKeys: user, then service, then group, in code point order (as the stores sort UTF-8 bytes)', () => {
  const rows: [ResyncKey, ResyncKey, number][] = [
    [k('alice', 'engine'), k('alice', 'engine'), 0],
    [k('alice', 'rescue'), k('bob', 'engine'), -1],
    [k('alice', 'engine', 'mcptt'), k('alice', 'engine', 'mcdata'), 1],
    [k('alice', 'engine'), k('alice', 'engines'), -1],
    // U+FF5E sorts below U+1F600 as code points (and UTF-8 bytes), though not as UTF-16 code units.
    [k('\uFF5E', 'engine'), k('\u{1F600}', 'engine'), -1],
  ];
  for (const [a, b, sign] of rows) assert.equal(Math.sign(compareResyncKeys(a, b)), sign, `${resyncKeyOf(a)} vs ${resyncKeyOf(b)}`);
});

void test('byUserAndService: one entry per user and service, groups in order', () => {
  assert.deepEqual(byUserAndService([k('alice', 'engine'), k('bob', 'engine'), k('alice', 'rescue'), k('alice', 'engine', 'mcdata')]), [
    { userId: 'sip:alice@police.example', service: 'mcptt', groupIds: ['sip:engine@fire.example', 'sip:rescue@fire.example'] },
    { userId: 'sip:bob@police.example', service: 'mcptt', groupIds: ['sip:engine@fire.example'] },
    { userId: 'sip:alice@police.example', service: 'mcdata', groupIds: ['sip:engine@fire.example'] },
  ]);
  assert.deepEqual(byUserAndService([]), []);
});

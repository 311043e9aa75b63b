// The set a SIP client publishes replaces the user's set (TS 24.379 9.2.2.2.3): the delta as a table, and the
// procedure on a real system (SQLite), where omissions are left before additions join so a full N2 still swaps.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import type { McUri } from '../../src/domain/ids.ts';
import type { HeldState } from '../../src/domain/decisions/group-home.ts';
import { publicationDelta } from '../../src/domain/decisions/publication-set.ts';
import { resolveConfig } from '../../src/config/config.ts';
import { McSystem } from '../../src/system.ts';
import { replaceAffiliationSet } from '../../src/procedures/replace-affiliation-set.ts';

const g = (n: string): McUri => `sip:${n}@police.example` as McUri;

void test('publicationDelta: additions, omissions of affiliated groups; reservations are not withdrawn by omission', () => {
  const held = new Map<McUri, HeldState>([
    [g('a'), 'affiliated'],
    [g('b'), 'affiliated'],
    [g('r'), 'reserved'],
  ]);
  assert.deepEqual(publicationDelta([g('b'), g('c')], held), { affiliate: [g('c')], deaffiliate: [g('a')] });
  assert.deepEqual(publicationDelta([], held), { affiliate: [], deaffiliate: [g('a'), g('b')] });
  assert.deepEqual(publicationDelta([g('a'), g('b')], held), { affiliate: [], deaffiliate: [] });
});

void test('replacing a full set (N2 = 2) with two other groups leaves the old ones first, so the new ones join', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'muster-replace-'));
  const groups = ['a', 'b', 'c', 'd'].map(g);
  const [config] = resolveConfig({
    dataDir: dir,
    systems: [
      {
        name: 'police',
        domain: 'police.example',
        http: { port: 0 },
        secret: 'replace-test-secret',
        users: [{ id: 'sip:alice@police.example', services: ['mcptt'], n2: 2, groups }],
        groups: groups.map((id) => ({ id, services: ['mcptt'], members: ['sip:alice@police.example'] })),
      },
    ],
  });
  const system = await McSystem.open(config!, { log: pino({ level: 'silent' }) });
  try {
    const alice = 'sip:alice@police.example' as McUri;
    const first = await replaceAffiliationSet(system.server, alice, 'mcptt', [g('a'), g('b')], () => true);
    assert.deepEqual(first.map((s) => s.status), ['affiliated', 'affiliated']);
    const swapped = await replaceAffiliationSet(system.server, alice, 'mcptt', [g('c'), g('d')], () => true);
    assert.deepEqual(
      swapped.map((s) => `${s.groupId}=${s.status}`),
      [`${g('c')}=affiliated`, `${g('d')}=affiliated`, `${g('a')}=deaffiliated`, `${g('b')}=deaffiliated`],
    );
    assert.deepEqual((await system.server.store.affiliationsOfUser(alice, 'mcptt')).map((r) => r.groupId).sort(), [g('c'), g('d')]);
  } finally {
    await system.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});

// Retention on the embedded store (issue 6, p99): a prune removes old events and audit entries a chunk per
// transaction, so a request that arrives while it runs shares the first chunk's commit instead of waiting for all of
// it. The chunks' results are in the store contract (store-contract.test.ts); this holds the interleaving.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { McUri } from '../../src/domain/ids.ts';
import type { NewAuditEntry } from '../../src/ports/store.ts';
import { openSqlite, SqliteStore } from '../../src/adapters/sqlite-store.ts';
import { PRUNE_CHUNK } from '../../src/adapters/retention.ts';

const alice = 'sip:alice@police.example' as McUri;
const OLD = 3 * PRUNE_CHUNK + 1;

async function withStore(run: (store: SqliteStore, clock: { t: number }) => Promise<void>): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'muster-retention-'));
  const clock = { t: 1_000_000 };
  const store = new SqliteStore(openSqlite(join(dir, 'muster.db')), () => clock.t);
  try {
    await run(store, clock);
  } finally {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

void test('a write that arrives as an event prune starts is answered after its first chunk, not after the whole prune', async () => {
  await withStore(async (store, clock) => {
    await store.appendEvents(Array.from({ length: OLD }, () => ({ userId: alice, type: 'affiliation-status' as const, data: null })));
    clock.t += 10_000;
    const pruning = store.pruneEvents(clock.t - 1);
    const [written] = await store.appendEvents([{ userId: alice, type: 'affiliation-status', data: null }]);
    const left = await store.eventsAfter(alice, 0, OLD + 1);
    assert.equal(left.length, OLD - PRUNE_CHUNK + 1, 'one chunk gone when the write is answered: the old rest and the new one');
    assert.equal(left.at(-1)?.id, written!.id);
    assert.equal(await pruning, OLD);
    assert.deepEqual((await store.eventsAfter(alice, 0, 10)).map((e) => e.id), [written!.id]);
  });
});

void test('a write that arrives as an audit prune starts is answered after its first chunk, not after the whole prune', async () => {
  await withStore(async (store) => {
    const entry = (at: number): NewAuditEntry => ({ at, subject: alice, role: 'user', onBehalfOf: alice, action: 'affiliation', service: 'mcptt', groups: [], httpStatus: 200, errorCode: null, result: null });
    await store.appendAudit(Array.from({ length: OLD }, () => entry(1000)));
    const pruning = store.pruneAudit(2000);
    await store.appendAudit([entry(3000)]);
    const left = await store.queryAudit({ limit: OLD + 1 });
    assert.equal(left.length, OLD - PRUNE_CHUNK + 1);
    assert.equal(await pruning, OLD);
    assert.deepEqual((await store.queryAudit({ limit: 10 })).map((e) => e.at), [3000]);
  });
});

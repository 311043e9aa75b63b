// The WAL is checkpointed by the worker thread, not by the writer's commits (src/adapters/sqlite-checkpointer.ts),
// and the group commit answers only after its fdatasync (src/adapters/sqlite-group-commit.ts).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, statSync, unlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type Database from 'better-sqlite3';
import { openSqlite, SqliteStore } from '../../src/adapters/sqlite-store.ts';
import { groupCommitOf } from '../../src/adapters/sqlite-group-commit.ts';
import { checkpointInWorker, stopCheckpointing } from '../../src/adapters/sqlite-checkpointer.ts';
import { MusterError } from '../../src/domain/errors.ts';
import { walRestartHoldSeconds } from '../../src/adapters/metrics.ts';

const holdsSoFar = async (): Promise<number> => (await walRestartHoldSeconds.get()).values.find((v) => v.metricName === 'muster_sqlite_wal_restart_hold_seconds_count')?.value ?? 0;

/** A store file with one table `t` of text rows, in a directory of its own removed afterwards. */
interface Table {
  file: string;
  db: Database.Database;
  insert: Database.Statement<[string | null]>;
}

async function withTable(work: (t: Table) => Promise<void>): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'muster-ckpt-'));
  try {
    const file = join(dir, 'store.db');
    const db = openSqlite(file);
    db.exec('CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT NOT NULL)');
    await work({ file, db, insert: db.prepare<[string | null]>('INSERT INTO t (v) VALUES (?)') });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const rowsIn = (db: Database.Database): number => (db.prepare('SELECT count(*) AS n FROM t').get() as { n: number }).n;

/** The rows a fresh connection finds: what was made durable, not what one connection's memory holds. */
function rowsAfterReopening(file: string): number {
  const again = openSqlite(file);
  try {
    return rowsIn(again);
  } finally {
    again.close();
  }
}

async function writeRows(withWorker: boolean): Promise<{ before: number; after: number; rows: number }> {
  let result = { before: 0, after: 0, rows: 0 };
  await withTable(async ({ file, db, insert }) => {
    if (withWorker) checkpointInWorker(db);
    else db.pragma('wal_autocheckpoint = 0');
    const before = statSync(file).size;
    // 40 group commits of 100 rows each, all acknowledged.
    for (let i = 0; i < 40; i++) await Promise.all(Array.from({ length: 100 }, (_, j) => groupCommitOf(db).write(() => insert.run(`row ${i}-${j} ${'x'.repeat(200)}`))));
    const deadline = Date.now() + 5000;
    while (withWorker && statSync(file).size <= before && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    const after = statSync(file).size;
    await stopCheckpointing(db);
    groupCommitOf(db).flush();
    db.close();
    result = { before, after, rows: rowsAfterReopening(file) };
  });
  return result;
}

void test('the worker copies the WAL into the database file while the writer never checkpoints', async () => {
  const without = await writeRows(false);
  assert.equal(without.after, without.before, 'with neither automatic checkpoints nor the worker, the database file does not grow');
  const withWorker = await writeRows(true);
  assert.ok(withWorker.after > withWorker.before, `the worker checkpointed: ${withWorker.before} -> ${withWorker.after} bytes`);
  assert.equal(withWorker.rows, 4000, 'every acknowledged row is there after reopening');
});

void test('a group-commit write is answered after its commit, and a failed write alone is refused', () =>
  withTable(async ({ db, insert }) => {
    const results = await Promise.allSettled([
      groupCommitOf(db).write(() => insert.run('a')),
      groupCommitOf(db).write(() => insert.run(null)), // v is NOT NULL: this one fails
      groupCommitOf(db).write(() => insert.run('c')),
    ]);
    assert.deepEqual(results.map((r) => r.status), ['fulfilled', 'rejected', 'fulfilled']);
    assert.equal(rowsIn(db), 2);
    groupCommitOf(db).flush();
    db.close();
  }));

void test('a write whose WAL cannot be synced is refused as unavailable, never answered as done', () =>
  withTable(async ({ file, db, insert }) => {
    // The WAL's directory entry goes (as on a disk taken away): SQLite keeps its open file, the sync cannot open one.
    unlinkSync(`${file}-wal`);
    await assert.rejects(
      groupCommitOf(db).write(() => insert.run('x')),
      (e) => e instanceof MusterError && e.code === 'unavailable',
    );
    db.close();
  }));

void test('a hold stops commits until it is released; the writes that waited then commit, none lost', () =>
  withTable(async ({ db, insert }) => {
    const release = groupCommitOf(db).hold();
    let settled = 0;
    const writes = ['a', 'b', 'c'].map((v) => groupCommitOf(db).write(() => insert.run(v)).then(() => settled++));
    for (let i = 0; i < 20; i++) await new Promise((r) => setImmediate(r));
    assert.equal(rowsIn(db), 0, 'nothing committed while held');
    assert.equal(settled, 0, 'no writer answered while held');
    release();
    await Promise.all(writes);
    assert.equal(rowsIn(db), 3);
    groupCommitOf(db).flush();
    db.close();
  }));

void test('under a writer that never pauses, the WAL is started again instead of growing without end', () =>
  withTable(async ({ file, db, insert }) => {
    const restartBytes = 1024 * 1024;
    checkpointInWorker(db, undefined, { restartBytes, everyMs: 5 });
    const holdsBefore = await holdsSoFar();
    // About 24 MB of rows, one group commit after another with no quiet moment for a checkpoint to catch up in.
    let largestWal = 0;
    const rounds = 600;
    for (let i = 0; i < rounds; i++) {
      await Promise.all(Array.from({ length: 10 }, (_, j) => groupCommitOf(db).write(() => insert.run(`${i}-${j} ${'x'.repeat(4000)}`))));
      largestWal = Math.max(largestWal, statSync(`${file}-wal`).size);
    }
    const written = rounds * 10 * 4000;
    assert.ok(written > 20 * restartBytes, 'the writer wrote many WALs worth');
    assert.ok(largestWal < 8 * restartBytes, `the WAL stayed short: at most ${largestWal} bytes for ${written} bytes written`);
    assert.ok((await holdsSoFar()) > holdsBefore, 'the holds that restarted it show in the metrics');
    await stopCheckpointing(db);
    groupCommitOf(db).flush();
    db.close();
    assert.equal(rowsAfterReopening(file), rounds * 10, 'every acknowledged row is there after reopening');
  }));

void test('writes held when the store closes are committed and synced by the close, not lost', () =>
  withTable(async ({ file, db, insert }) => {
    const store = new SqliteStore(db);
    checkpointInWorker(db);
    groupCommitOf(db).hold(); // never released: the close must commit what waits anyway
    const writes = ['a', 'b'].map((v) => groupCommitOf(db).write(() => insert.run(v)));
    await store.close();
    await Promise.all(writes);
    assert.equal(rowsAfterReopening(file), 2);
  }));

// The WAL is checkpointed by the worker thread, not by the writer's commits (src/adapters/sqlite-checkpointer.ts),
// and the group commit answers only after its fdatasync (src/adapters/sqlite-group-commit.ts).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, statSync, unlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openSqlite } from '../../src/adapters/sqlite-store.ts';
import { groupCommitOf } from '../../src/adapters/sqlite-group-commit.ts';
import { checkpointInWorker, stopCheckpointing } from '../../src/adapters/sqlite-checkpointer.ts';
import { MusterError } from '../../src/domain/errors.ts';

async function writeRows(file: string, withWorker: boolean): Promise<{ before: number; after: number; rows: number }> {
  const db = openSqlite(file);
  db.exec('CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)');
  if (withWorker) checkpointInWorker(db);
  else db.pragma('wal_autocheckpoint = 0');
  const before = statSync(file).size;
  const insert = db.prepare('INSERT INTO t (v) VALUES (?)');
  // 40 group commits of 100 rows each, all acknowledged.
  for (let i = 0; i < 40; i++) await Promise.all(Array.from({ length: 100 }, (_, j) => groupCommitOf(db).write(() => insert.run(`row ${i}-${j} ${'x'.repeat(200)}`))));
  const deadline = Date.now() + 5000;
  while (withWorker && statSync(file).size <= before && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  const after = statSync(file).size;
  await stopCheckpointing(db);
  groupCommitOf(db).flush();
  db.close();
  const again = openSqlite(file);
  const rows = (again.prepare('SELECT count(*) AS n FROM t').get() as { n: number }).n;
  again.close();
  return { before, after, rows };
}

void test('the worker copies the WAL into the database file while the writer never checkpoints', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'muster-ckpt-'));
  try {
    const without = await writeRows(join(dir, 'a.db'), false);
    assert.equal(without.after, without.before, 'with neither automatic checkpoints nor the worker, the database file does not grow');
    const withWorker = await writeRows(join(dir, 'b.db'), true);
    assert.ok(withWorker.after > withWorker.before, `the worker checkpointed: ${withWorker.before} -> ${withWorker.after} bytes`);
    assert.equal(withWorker.rows, 4000, 'every acknowledged row is there after reopening');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

void test('a group-commit write is answered after its commit, and a failed write alone is refused', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'muster-gc-'));
  try {
    const db = openSqlite(join(dir, 'c.db'));
    db.exec('CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT NOT NULL)');
    const insert = db.prepare('INSERT INTO t (v) VALUES (?)');
    const results = await Promise.allSettled([
      groupCommitOf(db).write(() => insert.run('a')),
      groupCommitOf(db).write(() => insert.run(null)),
      groupCommitOf(db).write(() => insert.run('c')),
    ]);
    assert.deepEqual(results.map((r) => r.status), ['fulfilled', 'rejected', 'fulfilled']);
    assert.equal((db.prepare('SELECT count(*) AS n FROM t').get() as { n: number }).n, 2);
    groupCommitOf(db).flush();
    db.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

void test('a write whose WAL cannot be synced is refused as unavailable, never answered as done', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'muster-gc-'));
  try {
    const db = openSqlite(join(dir, 'd.db'));
    db.exec('CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT NOT NULL)');
    // The WAL's directory entry goes (as on a disk taken away): SQLite keeps its open file, the sync cannot open one.
    unlinkSync(join(dir, 'd.db-wal'));
    await assert.rejects(
      groupCommitOf(db).write(() => db.prepare('INSERT INTO t (v) VALUES (?)').run('x')),
      (e) => e instanceof MusterError && e.code === 'unavailable',
    );
    db.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

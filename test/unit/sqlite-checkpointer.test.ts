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
import { walRestartHoldSeconds } from '../../src/adapters/metrics.ts';

const holdsSoFar = async (): Promise<number> => (await walRestartHoldSeconds.get()).values.find((v) => v.metricName === 'muster_sqlite_wal_restart_hold_seconds_count')?.value ?? 0;

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

void test('a hold stops commits until it is released; the writes that waited then commit, none lost', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'muster-gc-'));
  try {
    const db = openSqlite(join(dir, 'e.db'));
    db.exec('CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT NOT NULL)');
    const insert = db.prepare('INSERT INTO t (v) VALUES (?)');
    const count = (): number => (db.prepare('SELECT count(*) AS n FROM t').get() as { n: number }).n;
    const release = groupCommitOf(db).hold();
    let settled = 0;
    const writes = ['a', 'b', 'c'].map((v) => groupCommitOf(db).write(() => insert.run(v)).then(() => settled++));
    for (let i = 0; i < 20; i++) await new Promise((r) => setImmediate(r));
    assert.equal(count(), 0, 'nothing committed while held');
    assert.equal(settled, 0, 'no writer answered while held');
    release();
    await Promise.all(writes);
    assert.equal(count(), 3);
    groupCommitOf(db).flush();
    db.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

void test('under a writer that never pauses, the WAL is started again instead of growing without end', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'muster-ckpt-'));
  try {
    const file = join(dir, 'f.db');
    const db = openSqlite(file);
    db.exec('CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT NOT NULL)');
    const restartBytes = 1024 * 1024;
    checkpointInWorker(db, undefined, { restartBytes, everyMs: 5 });
    const holdsBefore = await holdsSoFar();
    const insert = db.prepare('INSERT INTO t (v) VALUES (?)');
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
    const again = openSqlite(file);
    assert.equal((again.prepare('SELECT count(*) AS n FROM t').get() as { n: number }).n, rounds * 10, 'every acknowledged row is there after reopening');
    again.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

void test('writes held when the store closes are committed and synced by the close, not lost', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'muster-gc-'));
  try {
    const file = join(dir, 'g.db');
    const db = openSqlite(file);
    db.exec('CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT NOT NULL)');
    checkpointInWorker(db);
    const insert = db.prepare('INSERT INTO t (v) VALUES (?)');
    groupCommitOf(db).hold(); // never released: the close must commit what waits anyway
    const writes = ['a', 'b'].map((v) => groupCommitOf(db).write(() => insert.run(v)));
    await stopCheckpointing(db);
    groupCommitOf(db).flush();
    await Promise.all(writes);
    db.close();
    const again = openSqlite(file);
    assert.equal((again.prepare('SELECT count(*) AS n FROM t').get() as { n: number }).n, 2);
    again.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

// WAL checkpoints off the event loop (issue 6): SQLite's automatic checkpoint runs inside a commit on the writer's
// thread, copying up to 1,000 pages into the database file and fsyncing it: a stall of milliseconds in the middle
// of answering requests, every few hundred commits under load. Here the writer's connection never checkpoints
// (wal_autocheckpoint = 0); a second connection in a worker thread runs PASSIVE checkpoints, which never block the
// writer, and with synchronous=NORMAL syncs the WAL before copying and the database after, as SQLite's own would.
//
// A PASSIVE checkpoint never catches up with a writer that commits every millisecond, and SQLite starts the WAL
// again from its first frame only when a write begins with every frame copied: under a steady load the WAL grew
// without end (2 GB after 40 s of bench 1, and every page read searched a larger WAL index). So once the WAL is
// past WAL_RESTART_BYTES and a checkpoint has nearly caught up, the worker asks the group commit to hold new
// commits, copies the last frames, and lets them go; the next commit then restarts the WAL at its first frame.
// That last checkpoint syncs by hand (fdatasync of the WAL, copy, fdatasync of the database): with no commit
// possible meanwhile it copies only frames the WAL sync covered, the order SQLite's own syncs keep, and commits are
// held 2-7 ms instead of the 12-30 ms SQLite's syncs took there (bench 1). Muster's connection is its file's only
// writer. A restarted WAL is written over, not appended to, so its fdatasyncs need no journal commit either.
import { Worker } from 'node:worker_threads';
import { createRequire } from 'node:module';
import type Database from 'better-sqlite3';
import { groupCommitOf } from './sqlite-group-commit.ts';
import { checkpointFailures, walRestartHoldSeconds } from './metrics.ts';

const CHECKPOINT_EVERY_MS = 200;
/** A WAL longer than this is started again at the next chance. */
export const WAL_RESTART_BYTES = 64 * 1024 * 1024;
/** Commits are held for the last frames only when a checkpoint has left at most this many to copy. */
const CAUGHT_UP_FRAMES = 4096;

// Plain CommonJS, evaluated in the worker: the worker does not go through tsx. After each checkpoint the database
// file is fdatasynced here too: SQLite left the copied pages to the kernel's writeback, which then flushed tens of
// megabytes at once, in the middle of the WAL syncs that answers wait for (sync stalls of 20-250 ms, bench 1).
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const { openSync, fdatasyncSync, closeSync } = require('node:fs');
const Database = require(workerData.driver);
const db = new Database(workerData.file);
db.pragma('busy_timeout = 5000');
db.pragma('synchronous = NORMAL');
const pageSize = db.pragma('page_size', { simple: true });
const walFd = openSync(workerData.file + '-wal', 'r');
const dbFd = openSync(workerData.file, 'r');
let awaitingHold = false;
const failed = (e) => parentPort.postMessage({ type: 'error', message: String((e && e.message) || e) });
const tick = () => {
  if (awaitingHold) return;
  try {
    const [r] = db.pragma('wal_checkpoint(PASSIVE)');
    fdatasyncSync(dbFd);
    if (r.log * pageSize >= workerData.restartBytes && r.log - r.checkpointed <= workerData.caughtUpFrames) {
      awaitingHold = true;
      parentPort.postMessage({ type: 'hold' });
    }
  } catch (e) { failed(e); }
};
// Commits are held: no frame can be added, so syncing the WAL first covers every frame this checkpoint copies.
const lastFrames = () => {
  try {
    db.pragma('synchronous = OFF');
    fdatasyncSync(walFd);
    db.pragma('wal_checkpoint(PASSIVE)');
    fdatasyncSync(dbFd);
  } catch (e) { failed(e); } finally {
    db.pragma('synchronous = NORMAL');
    awaitingHold = false;
    parentPort.postMessage({ type: 'release' });
  }
};
const timer = setInterval(tick, workerData.everyMs);
parentPort.on('message', (m) => {
  if (m === 'held') return lastFrames();
  if (m !== 'stop') return;
  clearInterval(timer);
  try { db.pragma('wal_checkpoint(PASSIVE)'); } finally { db.close(); closeSync(walFd); closeSync(dbFd); }
  parentPort.postMessage({ type: 'stopped' });
  parentPort.close();
});
`;

type WorkerMessage = { type: 'hold' | 'release' | 'stopped' } | { type: 'error'; message: string };

const running = new WeakMap<Database.Database, Worker>();

/**
 * Moves `db`'s checkpoints to a worker thread; `onError` hears a failed checkpoint (the next one retries).
 * `tuning` is for tests that want a short WAL quickly.
 */
export function checkpointInWorker(
  db: Database.Database,
  onError: (message: string) => void = () => undefined,
  { restartBytes = WAL_RESTART_BYTES, everyMs = CHECKPOINT_EVERY_MS }: { restartBytes?: number; everyMs?: number } = {},
): void {
  if (db.memory || running.has(db)) return;
  db.pragma('wal_autocheckpoint = 0');
  // A restarted WAL keeps its length (rewritten, not regrown) unless a burst made it much longer than usual.
  db.pragma(`journal_size_limit = ${4 * restartBytes}`);
  const driver = createRequire(import.meta.url).resolve('better-sqlite3');
  const workerData = { driver, file: db.name, everyMs, restartBytes, caughtUpFrames: CAUGHT_UP_FRAMES };
  const worker = new Worker(WORKER_SOURCE, { eval: true, workerData });
  let release: (() => void) | undefined;
  const letGo = (): void => {
    release?.();
    release = undefined;
    worker.unref();
  };
  worker.on('message', (m: WorkerMessage) => {
    if (m.type === 'error') {
      checkpointFailures.inc();
      return onError(m.message);
    }
    if (m.type === 'release') return letGo();
    if (m.type !== 'hold' || release) return;
    // Between two commits (they run synchronously here): from now on none starts until the worker lets go.
    const held = groupCommitOf(db).hold();
    const timer = walRestartHoldSeconds.startTimer();
    release = () => {
      timer();
      held();
    };
    worker.ref(); // held writes wait for its answer, so the process must too
    worker.postMessage('held');
  });
  // A worker that dies holds nothing: its checkpoint is over, whatever it did.
  worker.on('error', (e) => {
    onError(e.message);
    letGo();
  });
  worker.on('exit', letGo);
  worker.unref();
  running.set(db, worker);
}

/** Stops the worker after a last checkpoint; resolves when its connection is closed. */
export async function stopCheckpointing(db: Database.Database): Promise<void> {
  const worker = running.get(db);
  if (!worker) return;
  running.delete(db);
  await new Promise<void>((resolve) => {
    const done = (): void => {
      clearTimeout(timer);
      resolve();
    };
    const timer = setTimeout(() => void worker.terminate().then(done, done), 5000);
    worker.once('exit', done);
    worker.on('message', (m: WorkerMessage) => m.type === 'stopped' && void worker.terminate().then(done, done));
    worker.postMessage('stop');
  });
}

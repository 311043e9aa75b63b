// WAL checkpoints off the event loop (issue 6): SQLite's automatic checkpoint runs inside a commit on the writer's
// thread, copying up to 1,000 pages into the database file and fsyncing it: a stall of milliseconds in the middle
// of answering requests, every few hundred commits under load. Here the writer's connection never checkpoints
// (wal_autocheckpoint = 0); a second connection in a worker thread runs PASSIVE checkpoints, which never block the
// writer, and with synchronous=NORMAL syncs the WAL before copying and the database after, as SQLite's own would.
import { Worker } from 'node:worker_threads';
import { createRequire } from 'node:module';
import type Database from 'better-sqlite3';

const CHECKPOINT_EVERY_MS = 200;

// Plain CommonJS, evaluated in the worker: the worker does not go through tsx.
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const Database = require(workerData.driver);
const db = new Database(workerData.file);
db.pragma('busy_timeout = 5000');
db.pragma('synchronous = NORMAL');
const timer = setInterval(() => {
  try { db.pragma('wal_checkpoint(PASSIVE)'); } catch (e) { parentPort.postMessage(String(e && e.message || e)); }
}, workerData.everyMs);
parentPort.on('message', (m) => {
  if (m !== 'stop') return;
  clearInterval(timer);
  try { db.pragma('wal_checkpoint(PASSIVE)'); } finally { db.close(); }
  parentPort.postMessage('stopped');
  parentPort.close();
});
`;

const running = new WeakMap<Database.Database, Worker>();

/** Moves `db`'s checkpoints to a worker thread; `onError` hears a failed checkpoint (the next one retries). */
export function checkpointInWorker(db: Database.Database, onError: (message: string) => void = () => undefined): void {
  if (db.memory || running.has(db)) return;
  db.pragma('wal_autocheckpoint = 0');
  const driver = createRequire(import.meta.url).resolve('better-sqlite3');
  const worker = new Worker(WORKER_SOURCE, { eval: true, workerData: { driver, file: db.name, everyMs: CHECKPOINT_EVERY_MS } });
  worker.on('message', (m: unknown) => m !== 'stopped' && onError(String(m)));
  worker.on('error', (e) => onError(e.message));
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
    worker.once('message', (m) => m === 'stopped' && void worker.terminate().then(done, done));
    worker.postMessage('stop');
  });
}

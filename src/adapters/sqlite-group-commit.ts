// Group commit for one SQLite file: writes that arrive in the same turn of the event loop share one transaction,
// and so one fsync, whichever store (MC service server or GMS) they come from. If one fails, the batch is run again
// one write per transaction, so only that one fails; every promise settles after the commit is durable.
//
// The fsync runs off the event loop: SQLite commits with synchronous=NORMAL (no fsync of its own at commit, still
// syncing around checkpoints), then one fdatasync of the WAL file on libuv's thread pool makes every transaction
// committed before it durable, and only then are their writers answered. The profile showed COMMIT's fsync as the
// largest block of main-thread time (issue 6); the answer still never leaves before the data is on disk.
import { closeSync, fdatasync, fdatasyncSync, openSync } from 'node:fs';
import type Database from 'better-sqlite3';
import { MusterError } from '../domain/errors.ts';
import { commitWrites, walSyncSeconds } from './metrics.ts';

interface PendingWrite {
  work: () => unknown;
  resolve: (v: unknown) => void;
  reject: (e: unknown) => void;
}

/**
 * How many fdatasyncs of the WAL may run at once. A commit's sync starts as soon as it is committed instead of
 * waiting for the one under way, so an answer waits for one sync, not for up to two (the p99 at half load, issue 6);
 * the cap keeps libuv's pool (4 threads, shared with crypto and DNS) from filling with syncs.
 */
const MAX_SYNCS_IN_FLIGHT = 2;

interface SyncBatch {
  answers: (() => void)[];
  failures: ((e: unknown) => void)[];
}

export class SqliteGroupCommit {
  private readonly pending: PendingWrite[] = [];
  /** Answers of committed transactions that wait for a sync to start (all MAX_SYNCS_IN_FLIGHT are under way). */
  private awaiting: SyncBatch = { answers: [], failures: [] };
  /** The fdatasyncs under way, oldest first; each batch's transactions were committed before its sync started. */
  private inFlight: SyncBatch[] = [];
  private walFd: number | undefined;
  private holds = 0;
  /** The store-unavailable error of the last write, until a later one commits: a store that reads but cannot write. */
  lastFault: MusterError | undefined;

  /** One transaction function for every batch: better-sqlite3 builds a wrapper per db.transaction() call. */
  private readonly runBatch: (batch: PendingWrite[]) => unknown[];
  private readonly runOne: (work: () => unknown) => unknown;

  constructor(private readonly db: Database.Database) {
    this.runBatch = db.transaction((batch: PendingWrite[]) => batch.map((item) => item.work()));
    this.runOne = db.transaction((work: () => unknown) => work());
  }

  write<T>(work: () => T): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.pending.push({ work, resolve: resolve as (v: unknown) => void, reject });
      if (this.pending.length === 1 && this.holds === 0) setImmediate(() => this.commit());
    });
  }

  /**
   * Holds commits (writes queue up, nothing is lost) until the returned function is called: the checkpointer's
   * window for the WAL's last frames to be copied, so the next commit starts the WAL again (sqlite-checkpointer.ts).
   */
  hold(): () => void {
    this.holds += 1;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.holds -= 1;
      if (this.holds === 0 && this.pending.length > 0) setImmediate(() => this.commit());
    };
  }

  /** Makes what was committed outside the group commit (a restore) durable too. */
  durable(): Promise<void> {
    return new Promise((resolve, reject) => this.afterSync(resolve, reject));
  }

  /** Commits and syncs what waits now, synchronously (on close, so nothing accepted is left behind). */
  flush(): void {
    if (this.pending.length > 0 && this.db.open) this.commit(true);
    const batches = [...this.inFlight.splice(0), this.awaiting]; // their callbacks, when they come, find them answered
    this.awaiting = { answers: [], failures: [] };
    if (batches.some((b) => b.answers.length > 0)) {
      const fd = this.wal();
      if (fd !== undefined) fdatasyncSync(fd);
      batches.forEach((b) => b.answers.forEach((answer) => answer()));
    }
    if (this.walFd !== undefined) closeSync(this.walFd);
    this.walFd = undefined;
  }

  /** `whatever`: on close, held or not. */
  private commit(whatever = false): void {
    if (this.holds > 0 && !whatever) return; // hold()'s release commits what waits
    const batch = this.pending.splice(0);
    if (batch.length === 0) return;
    let values: unknown[];
    try {
      values = this.runBatch(batch);
    } catch (e) {
      const error = storeError(e);
      if (error instanceof MusterError) {
        this.lastFault = error;
        return batch.forEach((item) => item.reject(error));
      }
      // One write failed and took the batch with it: run each alone, so only that one fails.
      const outcomes = batch.map((item) => {
        try {
          return { ok: true as const, value: this.runOne(item.work) };
        } catch (err) {
          return { ok: false as const, error: storeError(err) };
        }
      });
      // A refusal changed nothing, so it may be told at once; a success waits for the sync like any other.
      outcomes.forEach((o, i) => !o.ok && batch[i]!.reject(o.error));
      if (outcomes.some((o) => o.ok)) this.lastFault = undefined;
      return this.afterSync(
        () => outcomes.forEach((o, i) => o.ok && batch[i]!.resolve(o.value)),
        (err) => outcomes.forEach((o, i) => o.ok && batch[i]!.reject(err)),
      );
    }
    this.lastFault = undefined;
    commitWrites.observe(batch.length);
    this.afterSync(
      () => batch.forEach((item, i) => item.resolve(values[i])),
      (err) => batch.forEach((item) => item.reject(err)),
    );
  }

  /** Runs `answer` once an fdatasync that started after this call has finished. */
  private afterSync(answer: () => void, fail: (e: unknown) => void): void {
    this.awaiting.answers.push(answer);
    this.awaiting.failures.push(fail);
    if (this.inFlight.length < MAX_SYNCS_IN_FLIGHT) this.sync();
  }

  private sync(): void {
    const batch = this.awaiting;
    this.awaiting = { answers: [], failures: [] };
    let fd: number | undefined;
    try {
      fd = this.wal();
    } catch (e) {
      // The WAL cannot be opened (gone, no permission): nothing is known durable, so no writer hears "done".
      const error = new MusterError('unavailable', `store unavailable: ${(e as { code?: string }).code ?? (e as Error).message}`);
      return batch.failures.forEach((f) => f(error));
    }
    if (fd === undefined) return batch.answers.forEach((answer) => answer());
    this.inFlight.push(batch);
    const timer = walSyncSeconds.startTimer();
    fdatasync(fd, (err) => {
      timer();
      const at = this.inFlight.indexOf(batch);
      if (at < 0) return; // answered already (flush, or a later sync that finished first)
      if (err) {
        // Committed but not known to be on disk: the writers hear "unavailable", never a false "done".
        this.inFlight.splice(at, 1);
        const error = new MusterError('unavailable', `store unavailable: ${err.code ?? err.message}`);
        batch.failures.forEach((f) => f(error));
      } else {
        // Every batch that started its sync before this one was committed before this sync began: durable too.
        this.inFlight.splice(0, at + 1).forEach((done) => done.answers.forEach((answer) => answer()));
      }
      if (this.awaiting.answers.length > 0 && this.inFlight.length < MAX_SYNCS_IN_FLIGHT) this.sync();
    });
  }

  /** The WAL file, opened once; undefined for an in-memory database, which has nothing to sync. */
  private wal(): number | undefined {
    if (this.walFd === undefined && !this.db.memory && this.db.open) this.walFd = openSync(`${this.db.name}-wal`, 'r');
    return this.walFd;
  }
}

const byDatabase = new WeakMap<Database.Database, SqliteGroupCommit>();

/** The one group-commit queue of a database connection, shared by every store on it. */
export function groupCommitOf(db: Database.Database): SqliteGroupCommit {
  let gc = byDatabase.get(db);
  if (!gc) {
    gc = new SqliteGroupCommit(db);
    byDatabase.set(db, gc);
  }
  return gc;
}

/** A full or read-only disk becomes a clear 503 instead of a crash. */
export function storeError(e: unknown): unknown {
  const code = (e as { code?: string }).code ?? '';
  if (/^SQLITE_(FULL|READONLY|IOERR|BUSY|LOCKED|CANTOPEN)/.test(code)) return new MusterError('unavailable', `store unavailable: ${code}`);
  return e;
}

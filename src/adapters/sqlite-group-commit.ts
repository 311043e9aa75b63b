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

interface PendingWrite {
  work: () => unknown;
  resolve: (v: unknown) => void;
  reject: (e: unknown) => void;
}

export class SqliteGroupCommit {
  private readonly pending: PendingWrite[] = [];
  /** Answers of committed transactions that wait for the next fdatasync to start. */
  private awaitingSync: (() => void)[] = [];
  private failuresAwaitingSync: ((e: unknown) => void)[] = [];
  /** The answers of the fdatasync under way, if one is. */
  private inFlight: { answers: (() => void)[]; failures: ((e: unknown) => void)[] } | undefined;
  private walFd: number | undefined;
  /** The store-unavailable error of the last write, until a later one commits: a store that reads but cannot write. */
  lastFault: MusterError | undefined;

  constructor(private readonly db: Database.Database) {}

  write<T>(work: () => T): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.pending.push({ work, resolve: resolve as (v: unknown) => void, reject });
      if (this.pending.length === 1) setImmediate(() => this.commit());
    });
  }

  /** Makes what was committed outside the group commit (a restore) durable too. */
  durable(): Promise<void> {
    return new Promise((resolve, reject) => this.afterSync(resolve, reject));
  }

  /** Commits and syncs what waits now, synchronously (on close, so nothing accepted is left behind). */
  flush(): void {
    if (this.pending.length > 0 && this.db.open) this.commit();
    if (this.awaitingSync.length > 0 || this.inFlight) {
      const fd = this.wal();
      if (fd !== undefined) fdatasyncSync(fd);
      const answers = [...(this.inFlight?.answers ?? []), ...this.awaitingSync.splice(0)];
      this.inFlight = undefined; // its callback, when it comes, finds itself answered already
      this.failuresAwaitingSync = [];
      answers.forEach((answer) => answer());
    }
    if (this.walFd !== undefined) closeSync(this.walFd);
    this.walFd = undefined;
  }

  private commit(): void {
    const batch = this.pending.splice(0);
    if (batch.length === 0) return;
    let values: unknown[];
    try {
      values = this.db.transaction(() => batch.map((item) => item.work()))();
    } catch (e) {
      const error = storeError(e);
      if (error instanceof MusterError) {
        this.lastFault = error;
        return batch.forEach((item) => item.reject(error));
      }
      // One write failed and took the batch with it: run each alone, so only that one fails.
      const outcomes = batch.map((item) => {
        try {
          return { ok: true as const, value: this.db.transaction(item.work)() };
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
    this.afterSync(
      () => batch.forEach((item, i) => item.resolve(values[i])),
      (err) => batch.forEach((item) => item.reject(err)),
    );
  }

  /** Runs `answer` once an fdatasync that started after this call has finished. */
  private afterSync(answer: () => void, fail: (e: unknown) => void): void {
    this.awaitingSync.push(answer);
    this.failuresAwaitingSync.push(fail);
    if (!this.inFlight) this.sync();
  }

  private sync(): void {
    const answers = this.awaitingSync.splice(0);
    const failures = this.failuresAwaitingSync.splice(0);
    let fd: number | undefined;
    try {
      fd = this.wal();
    } catch (e) {
      // The WAL cannot be opened (gone, no permission): nothing is known durable, so no writer hears "done".
      const error = new MusterError('unavailable', `store unavailable: ${(e as { code?: string }).code ?? (e as Error).message}`);
      return failures.forEach((f) => f(error));
    }
    if (fd === undefined) return answers.forEach((answer) => answer());
    const batch = { answers, failures };
    this.inFlight = batch;
    fdatasync(fd, (err) => {
      if (this.inFlight !== batch) return;
      this.inFlight = undefined;
      if (err) {
        // Committed but not known to be on disk: the writers hear "unavailable", never a false "done".
        const error = new MusterError('unavailable', `store unavailable: ${err.code ?? err.message}`);
        failures.forEach((f) => f(error));
      } else {
        answers.forEach((answer) => answer());
      }
      if (this.awaitingSync.length > 0) this.sync();
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

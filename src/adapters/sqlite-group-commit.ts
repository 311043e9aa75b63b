// Group commit for one SQLite file: writes that arrive in the same turn of the event loop share one transaction,
// and so one fsync, whichever store (MC service server or GMS) they come from. If one fails, the batch is run again
// one write per transaction, so only that one fails; every promise settles after the commit is durable.
import type Database from 'better-sqlite3';
import { MusterError } from '../domain/errors.ts';

interface PendingWrite {
  work: () => unknown;
  resolve: (v: unknown) => void;
  reject: (e: unknown) => void;
}

export class SqliteGroupCommit {
  private readonly pending: PendingWrite[] = [];

  constructor(private readonly db: Database.Database) {}

  write<T>(work: () => T): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.pending.push({ work, resolve: resolve as (v: unknown) => void, reject });
      if (this.pending.length === 1) setImmediate(() => this.commit());
    });
  }

  /** Commits what waits now (on close, so nothing accepted is left behind). */
  flush(): void {
    if (this.pending.length > 0 && this.db.open) this.commit();
  }

  private commit(): void {
    const batch = this.pending.splice(0);
    if (batch.length === 0) return;
    let values: unknown[];
    try {
      values = this.db.transaction(() => batch.map((item) => item.work()))();
    } catch (e) {
      const error = storeError(e);
      if (error instanceof MusterError) return batch.forEach((item) => item.reject(error));
      // One write failed and took the batch with it: run each alone, so only that one fails.
      return batch.forEach((item) => {
        try {
          item.resolve(this.db.transaction(item.work)());
        } catch (err) {
          item.reject(storeError(err));
        }
      });
    }
    batch.forEach((item, i) => item.resolve(values[i]));
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

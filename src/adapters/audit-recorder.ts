// The audit log's writing side, shared by the faces (docs/audit.md): entries are gathered per turn of the event
// loop into one appendAudit call (one statement batch, riding on the group commit), and a failed write is logged
// with the entries, never made the user's failure.
import type { NewAuditEntry, Store } from '../ports/store.ts';

/** Gathers the entries of one turn of the event loop into one appendAudit call (one statement, one commit). */
export class AuditRecorder {
  private pending: { entries: NewAuditEntry[]; done: () => void }[] = [];

  constructor(
    private readonly store: Store,
    private readonly log: { error(obj: object, msg: string): void },
  ) {}

  /** Settles once the entries are stored, or once their failure is logged: it never rejects. */
  record(entries: NewAuditEntry[]): Promise<void> {
    if (entries.length === 0) return Promise.resolve();
    return new Promise<void>((done) => {
      this.pending.push({ entries, done });
      if (this.pending.length === 1) setImmediate(() => void this.flush());
    });
  }

  private async flush(): Promise<void> {
    const batch = this.pending.splice(0);
    const entries = batch.flatMap((b) => b.entries);
    try {
      await this.store.appendAudit(entries);
    } catch (err) {
      // The entries go to the log instead, so what was acknowledged is still on record somewhere.
      this.log.error({ err, audit: entries }, 'audit write failed');
    } finally {
      for (const b of batch) b.done();
    }
  }
}


// Test-only (issue 7, store faults): a running server's SQLite store made full or read-only from outside, so the tests
// can check the 503 and the recovery end to end. Armed only when MUSTER_TEST_STORE_FAULTS names a file; SIGUSR2 then
// applies what the file says: `full`, `read-only` or `none`. Nothing reaches it over the network.
//
// Why a hook: the server keeps its database file open, so chmod (and, as root, any permission) changes nothing for
// it, and a tiny filesystem needs root. The hook sets SQLite's own limits on the server's connection instead:
// `max_page_count` at the current size (the next write that needs a page fails with SQLITE_FULL, as on a full disk)
// and `query_only` (every write fails with SQLITE_READONLY, as on a read-only file).
import { readFileSync } from 'node:fs';
import type Database from 'better-sqlite3';

export const STORE_FAULTS_ENV = 'MUSTER_TEST_STORE_FAULTS';
export type StoreFault = 'full' | 'read-only' | 'none';

/** Arms the hook on `db`; returns the disarm function (for close). */
export function armStoreFaults(db: Database.Database, file: string): () => void {
  const unlimited = db.pragma('max_page_count', { simple: true }) as number;
  const apply = (): void => {
    let fault: string;
    try {
      fault = readFileSync(file, 'utf8').trim();
    } catch (e) {
      process.stderr.write(`muster: test hook: cannot read ${file}: ${(e as Error).message}\n`);
      return;
    }
    if (!db.open) return;
    if (fault === 'full') db.pragma(`max_page_count = ${db.pragma('page_count', { simple: true }) as number}`);
    else if (fault === 'read-only') db.pragma('query_only = ON');
    else if (fault === 'none') {
      db.pragma('query_only = OFF');
      db.pragma(`max_page_count = ${unlimited}`);
    } else {
      process.stderr.write(`muster: test hook: unknown store fault ${JSON.stringify(fault)}\n`);
      return;
    }
    // The test waits for this line before it goes on: the signal is handled between two turns of the event loop.
    process.stderr.write(`muster: test hook: store fault ${fault}\n`);
  };
  process.on('SIGUSR2', apply);
  return () => void process.off('SIGUSR2', apply);
}

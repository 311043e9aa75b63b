// Retention in bounded transactions, for both SQL stores. One DELETE of an hour's events held SQLite's one writer
// (and so the event loop) for as long as it ran, every hour: 508 ms for 100,000 events and as many audit entries
// among 1,000,000 of each, and 64 ms to find nothing (bench/retention.ts against the code before). A chunk at a time,
// requests that arrive meanwhile share a chunk's commit instead of waiting for the whole prune (6.8 ms at most).

/** Rows one retention transaction removes at most: a few milliseconds of SQLite's writer (bench/retention.ts). */
export const PRUNE_CHUNK = 200;

/** One chunk's outcome: rows removed, and where the next chunk starts (undefined: nothing more to remove). */
export interface PruneChunk {
  removed: number;
  next: number | undefined;
}

/**
 * Runs `chunk` from 0 until it says there is no next; the rows removed in all. Ends: each chunk's `next` is above
 * its `after` (a cursor that only moves forward) or it removed PRUNE_CHUNK rows that no later chunk sees again.
 */
export async function pruneInChunks(chunk: (after: number) => Promise<PruneChunk>): Promise<number> {
  let removed = 0;
  let after: number | undefined = 0;
  while (after !== undefined) {
    const c: PruneChunk = await chunk(after);
    removed += c.removed;
    after = c.next;
  }
  return removed;
}

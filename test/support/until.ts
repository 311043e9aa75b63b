// The one bounded wait of the tests: polls `ok` (in real time) until it holds, or fails naming what did not happen.
// For a round trip through a real server or broker, never for a timer a test clock drives.

/** Waits (bounded) until `ok()` holds. */
export async function until(ok: () => boolean | Promise<boolean>, what: string, ms = 10_000): Promise<void> {
  for (const end = Date.now() + ms; !(await ok()); await new Promise((r) => setTimeout(r, 20))) if (Date.now() > end) throw new Error(`not within ${ms} ms: ${what}`);
}

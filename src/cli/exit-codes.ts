// The CLI's exit codes, one table so help text, commands and tests agree.

export const EXIT = {
  /** The request was answered and every group got the asked status (every target applied, for a change). */
  ok: 0,
  /** An error: the request was refused as a whole (4xx/5xx), the server did not answer, bad config. */
  error: 1,
  /** Bad command line. */
  usage: 2,
  /**
   * The request was answered, but at least one group was rejected (or a change target did not apply it), or an
   * operator's change was stored but is not yet in force at every instance.
   */
  rejected: 3,
} as const;

export const EXIT_HELP = `Exit codes:
  0  answered, every group affiliated / deaffiliated (every change target applied)
  1  error: refused as a whole, no answer from the server, bad config
  2  bad command line
  3  answered, but at least one group was rejected (or a change target did not apply),
     or a profile or group stored but not yet in force at every instance`;

/** A refusal by the CLI itself (bad option values): printed as `muster: <message>`, exit 2. */
export class UsageError extends Error {}

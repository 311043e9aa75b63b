// Drains the GMS outbox: group affiliation status updates written with the affiliation, deleted only after
// the GMS confirmed them, so a crash or a GMS outage delays the updates but never loses them (DESIGN.md).
import type { Store } from '../ports/store.ts';
import type { GroupManagement } from '../ports/group-management.ts';
import type { Logger } from 'pino';

const OUTBOX_GATHER_MS = 10;

export class GmsOutboxSender {
  private running = false;
  private again = false;
  private retryTimer: NodeJS.Timeout | undefined;
  private stopped = false;
  private failures = 0;

  constructor(
    private readonly store: Store,
    private readonly gms: GroupManagement,
    private readonly log: Logger,
    private readonly batch = 500,
  ) {}

  /** Asks for a drain soon; calls while a drain runs fold into one more pass. */
  kick(): void {
    if (this.stopped) return;
    if (this.running) {
      this.again = true;
      return;
    }
    this.running = true;
    // A short pause gathers the updates of many requests into one delivery (steps 5a and 5b may come in any order).
    setTimeout(() => void this.drain(), OUTBOX_GATHER_MS);
  }

  private async drain(): Promise<void> {
    try {
      do {
        this.again = false;
        for (;;) {
          const pending = await this.store.pendingGmsUpdates(this.batch);
          if (pending.length === 0) break;
          await this.gms.sendStatusUpdates(pending);
          await this.store.confirmGmsUpdates(pending.map((p) => p.seq));
          this.failures = 0;
        }
      } while (this.again && !this.stopped);
      this.running = false;
    } catch (e) {
      this.running = false;
      this.failures += 1;
      // Bounded back-off: the GMS may be down for a while; the rows wait in the store meanwhile.
      const delay = Math.min(100 * 2 ** Math.min(this.failures, 6), 5000);
      this.log.warn({ err: (e as Error).message, retryInMs: delay }, 'GMS status update not delivered; will retry');
      if (!this.stopped) {
        this.retryTimer = setTimeout(() => this.kick(), delay);
        this.retryTimer.unref();
      }
    }
  }

  stop(): void {
    this.stopped = true;
    if (this.retryTimer) clearTimeout(this.retryTimer);
  }
}

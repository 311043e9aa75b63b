// Expiry in pages (STAGE3.md "What operators … expect": bursts of expiring subscriptions exhausting memory). Each tick
// takes at most `pageSize` due items and ends them before the next tick is armed: 100,000 expiries at one instant
// become pages, with the event loop free between them, instead of 100,000 timers firing together.
import type { Clock } from '../../ports/clock.ts';

export interface PagedExpiryOptions<T> {
  /** How often to look when nothing is due. */
  everyMs: number;
  pageSize: number;
  /** At most `limit` items due at `now`; taking them is what makes them leave the queue. */
  take(now: number, limit: number): Promise<T[]> | T[];
  /** Ends one page (final NOTIFYs, store rows); the next page waits for it. */
  end(page: T[]): Promise<void>;
  onError(e: unknown): void;
}

export class PagedExpiry<T> {
  private cancel: (() => void) | undefined;
  private stopped = false;

  constructor(
    private readonly clock: Clock,
    private readonly opts: PagedExpiryOptions<T>,
  ) {}

  start(): void {
    this.stopped = false;
    this.arm(this.opts.everyMs);
  }

  stop(): void {
    this.stopped = true;
    this.cancel?.();
  }

  /** One page: returns how many items it ended. A full page arms the next one at once (after other I/O), else after everyMs. */
  async tick(): Promise<number> {
    let n = 0;
    try {
      const page = await this.opts.take(this.clock.now(), this.opts.pageSize);
      n = page.length;
      if (n > 0) await this.opts.end(page);
    } catch (e) {
      this.opts.onError(e);
    }
    this.arm(n >= this.opts.pageSize ? 0 : this.opts.everyMs);
    return n;
  }

  private arm(ms: number): void {
    this.cancel?.();
    if (!this.stopped) this.cancel = this.clock.after(ms, () => void this.tick());
  }
}

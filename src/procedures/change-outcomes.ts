// Where a negotiated change request's originator waits for client 2's answer or the timeout (10.X.5.1.2 steps 5-6).
import type { ChangeRecord } from '../ports/store.ts';

export interface ChangeOutcomes {
  /** Resolves when the change for this target is settled (answered and applied, rejected, or timed out). */
  wait(id: string, target: string): Promise<ChangeRecord>;
  settle(record: ChangeRecord): void;
  /** Drops the waiters of a change that was never stored (nothing will settle it). */
  forget(id: string, target: string): void;
}

/** Waiters of this process; a change settled elsewhere reaches them through `settle` as well. */
export class LocalChangeOutcomes implements ChangeOutcomes {
  private readonly waiting = new Map<string, ((r: ChangeRecord) => void)[]>();

  wait(id: string, target: string): Promise<ChangeRecord> {
    return new Promise((resolve) => {
      const key = `${id} ${target}`;
      const list = this.waiting.get(key) ?? [];
      list.push(resolve);
      this.waiting.set(key, list);
    });
  }

  forget(id: string, target: string): void {
    this.waiting.delete(`${id} ${target}`);
  }

  settle(record: ChangeRecord): void {
    const key = `${record.id} ${record.target}`;
    const list = this.waiting.get(key);
    this.waiting.delete(key);
    list?.forEach((resolve) => resolve(record));
  }
}

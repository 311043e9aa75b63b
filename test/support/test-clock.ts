// A clock whose time moves only when the test says (src/ports/clock.ts): due timers fire in time order.
import type { Clock } from '../../src/ports/clock.ts';

interface Timer {
  at: number;
  fire: () => void;
}

export class TestClock implements Clock {
  private timers: Timer[] = [];
  constructor(public t = 1_800_000_000_000) {}
  now = (): number => this.t;
  after = (ms: number, fire: () => void): (() => void) => {
    const timer = { at: this.t + ms, fire };
    this.timers.push(timer);
    return () => void (this.timers = this.timers.filter((x) => x !== timer));
  };
  /** How far ahead each pending timer is due. */
  pending(): number[] {
    return this.timers.map((x) => x.at - this.t).sort((a, b) => a - b);
  }
  /** Fires the earliest due timer, if any; false when none is due. */
  fireNext(): boolean {
    const due = this.timers.filter((x) => x.at <= this.t).sort((a, b) => a.at - b.at)[0];
    if (!due) return false;
    this.timers = this.timers.filter((x) => x !== due);
    due.fire();
    return true;
  }
  /** Fires every timer due now, in time order (also those that due ones set for now). */
  fireDue(): void {
    while (this.fireNext());
  }
  /** Moves time on by `ms` and fires what is due then, in time order. */
  advance(ms: number): void {
    this.t += ms;
    this.fireDue();
  }
}

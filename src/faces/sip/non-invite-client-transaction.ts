// RFC 3261 §17.1.2: the non-INVITE client transaction (our NOTIFYs), as a transition table with one guarded
// transition function. Timer E retransmits over UDP, timer F gives up, timer K absorbs late response copies.
import type { Clock } from '../../ports/clock.ts';
import { T2, TIMERS } from './timers.ts';
import type { Flow } from './transport.ts';

export type ClientTxState = 'trying' | 'proceeding' | 'completed' | 'terminated';
export type ClientTxEvent = 'timer-e' | 'timer-f' | 'timer-k' | 'provisional' | 'final' | 'transport-error';

/** Figure 6 of RFC 3261. */
export const CLIENT_TX_TRANSITIONS: readonly { from: ClientTxState; event: ClientTxEvent; to: ClientTxState }[] = [
  { from: 'trying', event: 'timer-e', to: 'trying' },
  { from: 'trying', event: 'provisional', to: 'proceeding' },
  { from: 'trying', event: 'final', to: 'completed' },
  { from: 'trying', event: 'timer-f', to: 'terminated' },
  { from: 'trying', event: 'transport-error', to: 'terminated' },
  { from: 'proceeding', event: 'timer-e', to: 'proceeding' },
  { from: 'proceeding', event: 'provisional', to: 'proceeding' },
  { from: 'proceeding', event: 'final', to: 'completed' },
  { from: 'proceeding', event: 'timer-f', to: 'terminated' },
  { from: 'proceeding', event: 'transport-error', to: 'terminated' },
  { from: 'completed', event: 'provisional', to: 'completed' },
  { from: 'completed', event: 'final', to: 'completed' },
  { from: 'completed', event: 'timer-k', to: 'terminated' },
];

/** What the TU learns: the final status, 408 when timer F fired, 503 on a transport error (§8.1.3.1, §8.1.3.3). */
export type ClientTxResult = (status: number) => void;

export class NonInviteClientTransaction {
  state: ClientTxState = 'trying';
  private cancels: (() => void)[] = [];
  private interval: number = TIMERS.E;
  private told = false;

  constructor(
    readonly key: string,
    private readonly bytes: Buffer,
    private readonly flow: Flow,
    private readonly clock: Clock,
    private readonly onResult: ClientTxResult,
    private readonly onTerminated: (tx: NonInviteClientTransaction) => void,
  ) {}

  start(): void {
    this.send();
    if (this.flow.transport === 'udp') this.armE();
    this.cancels.push(this.clock.after(TIMERS.F, () => this.fire('timer-f')));
  }

  response(status: number): void {
    if (this.state === 'terminated') return;
    this.transition(status < 200 ? 'provisional' : 'final');
    if (status >= 200) this.tell(status);
  }

  private armE(): void {
    this.cancels.push(
      this.clock.after(this.interval, () => {
        if (this.state !== 'trying' && this.state !== 'proceeding') return;
        this.transition('timer-e');
        this.send();
        // §17.1.2.2: doubling up to T2 while trying; T2 once a provisional response came.
        this.interval = this.state === 'proceeding' ? T2 : Math.min(this.interval * 2, T2);
        this.armE();
      }),
    );
  }

  private fire(event: ClientTxEvent): void {
    if (CLIENT_TX_TRANSITIONS.some((r) => r.from === this.state && r.event === event)) {
      this.transition(event);
      if (event === 'timer-f') this.tell(408);
    }
  }

  private transition(event: ClientTxEvent): void {
    const row = CLIENT_TX_TRANSITIONS.find((r) => r.from === this.state && r.event === event);
    if (!row) throw new Error(`non-INVITE client transaction: ${event} in state ${this.state}`);
    this.state = row.to;
    if (row.to === 'completed') {
      this.cancels.forEach((c) => c());
      this.cancels = [];
      const k = TIMERS.K(this.flow.transport !== 'udp');
      if (k === 0) this.transition('timer-k');
      else this.cancels.push(this.clock.after(k, () => this.fire('timer-k')));
    }
    if (row.to === 'terminated') {
      this.cancels.forEach((c) => c());
      this.cancels = [];
      this.onTerminated(this);
    }
  }

  private send(): void {
    if (!this.flow.open()) {
      this.transition('transport-error');
      this.tell(503);
      return;
    }
    this.flow.send(this.bytes);
  }

  private tell(status: number): void {
    if (this.told) return;
    this.told = true;
    this.onResult(status);
  }
}

// RFC 3261 §17.2.2: the non-INVITE server transaction, as a table of allowed transitions and one guarded
// transition function (STYLE.md habit 9). Timers only raise events.
import type { Clock } from '../../ports/clock.ts';
import { TIMERS } from './timers.ts';
import type { Flow } from './transport.ts';

export type ServerTxState = 'trying' | 'proceeding' | 'completed' | 'terminated';
export type ServerTxEvent = 'request-retransmitted' | 'provisional-sent' | 'final-sent' | 'timer-j' | 'transport-error';

/** Figure 8 of RFC 3261, row by row. */
export const SERVER_TX_TRANSITIONS: readonly { from: ServerTxState; event: ServerTxEvent; to: ServerTxState }[] = [
  { from: 'trying', event: 'request-retransmitted', to: 'trying' }, // absorbed: the TU has not answered yet
  { from: 'trying', event: 'provisional-sent', to: 'proceeding' },
  { from: 'trying', event: 'final-sent', to: 'completed' },
  { from: 'proceeding', event: 'request-retransmitted', to: 'proceeding' }, // last provisional re-sent
  { from: 'proceeding', event: 'provisional-sent', to: 'proceeding' },
  { from: 'proceeding', event: 'final-sent', to: 'completed' },
  { from: 'completed', event: 'request-retransmitted', to: 'completed' }, // final response re-sent, no second effect
  { from: 'completed', event: 'timer-j', to: 'terminated' },
  { from: 'trying', event: 'transport-error', to: 'terminated' },
  { from: 'proceeding', event: 'transport-error', to: 'terminated' },
  { from: 'completed', event: 'transport-error', to: 'terminated' },
];

export class IllegalTransition extends Error {}

export class NonInviteServerTransaction {
  state: ServerTxState = 'trying';
  private lastResponse?: Buffer;
  retransmissionsAbsorbed = 0;

  constructor(
    readonly key: string,
    private readonly flow: Flow,
    private readonly destination: { address: string; port: number },
    private readonly clock: Clock,
    private readonly onTerminated: (tx: NonInviteServerTransaction) => void,
    /** Told when the TU's final response moves the transaction to completed (the layer counts unanswered ones). */
    private readonly onAnswered?: (tx: NonInviteServerTransaction) => void,
  ) {}

  private transition(event: ServerTxEvent): void {
    const row = SERVER_TX_TRANSITIONS.find((r) => r.from === this.state && r.event === event);
    if (!row) throw new IllegalTransition(`non-INVITE server transaction: ${event} in state ${this.state}`);
    this.state = row.to;
    if (row.to === 'terminated') this.onTerminated(this);
  }

  /** The TU's response: a provisional or a final one; a second final response is a bug of the TU. */
  respond(status: number, bytes: Buffer): void {
    this.transition(status < 200 ? 'provisional-sent' : 'final-sent');
    if (status >= 200) this.onAnswered?.(this);
    this.lastResponse = bytes;
    this.send(bytes);
    if (status >= 200) {
      const j = TIMERS.J(this.flow.transport !== 'udp');
      if (j === 0) this.transition('timer-j');
      else this.clock.after(j, () => this.state === 'completed' && this.transition('timer-j'));
    }
  }

  /** §17.2.2: a retransmission of the request; true means it was absorbed here and must not reach the TU. */
  retransmitted(): void {
    this.transition('request-retransmitted');
    this.retransmissionsAbsorbed++;
    if (this.state !== 'trying' && this.lastResponse) this.send(this.lastResponse);
  }

  private send(bytes: Buffer): void {
    try {
      this.flow.send(bytes, this.flow.transport === 'udp' ? this.destination : undefined);
    } catch {
      this.transition('transport-error');
    }
  }
}

// RFC 3261 §17.1.3 and §17.2.3: matching requests and responses to transactions. Server transactions are keyed
// by the top Via's branch, sent-by and the method (CSeq method for ACK-less non-INVITE); retransmissions are
// absorbed here and never reach the TU (DESIGN.md "Idempotency").
import type { Clock } from '../../ports/clock.ts';
import type { IncomingRequest, IncomingResponse } from './message.ts';
import { parseVia, responseDestination, stampVia, type TopVia } from './via.ts';
import { NonInviteServerTransaction } from './non-invite-server-transaction.ts';
import { NonInviteClientTransaction, type ClientTxResult } from './non-invite-client-transaction.ts';
import { sourceOf, type Flow } from './transport.ts';
import { tagOf } from './name-addr.ts';

const MAGIC_COOKIE = 'z9hG4bK';
/**
 * `working`: requests the TU has not answered yet; a flood beyond it is refused with 503. `kept`: all server
 * transactions, answered ones included (kept for timer J, 32 s over UDP, to absorb retransmissions); beyond it the
 * oldest answered one is let go early, so a sustained load costs bounded memory and is never refused for old answers.
 */
export const SERVER_TRANSACTION_LIMITS = { working: 50_000, kept: 200_000 };

/** The methods a CANCEL may name here (no INVITE is served). */
const CANCELLABLE = ['PUBLISH', 'SUBSCRIBE', 'MESSAGE', 'OPTIONS'];

export function serverTransactionKey(req: IncomingRequest, via: TopVia | undefined = topViaOf(req)): string | undefined {
  const top = req.headers.get('via');
  if (!via) return undefined;
  const sentBy = `${via.host}:${via.port ?? ''}`;
  if (via.branch?.startsWith(MAGIC_COOKIE)) return `${via.branch}|${sentBy}|${req.method}`;
  // §17.2.3: RFC 2543 peers without the cookie: match on Request-URI, tags, Call-ID, CSeq and top Via.
  return `2543|${req.uri}|${tagOf(req.headers.get('from') ?? '') ?? ''}|${req.callId}|${req.cseq.seq}|${req.method}|${top}`;
}

function topViaOf(req: IncomingRequest): TopVia | undefined {
  const top = req.headers.get('via');
  return top ? parseVia(top) : undefined;
}

/** `topVia`: the request's top Via as its responses carry it (`received`, `rport` recorded: stampVia). */
export type ServerMatch = { kind: 'new'; tx: NonInviteServerTransaction; topVia: string } | { kind: 'absorbed' } | { kind: 'unroutable' } | { kind: 'overloaded'; tx: NonInviteServerTransaction; topVia: string };

export class TransactionLayer {
  /** In creation order, so the first answered one is the oldest. */
  private readonly server = new Map<string, NonInviteServerTransaction>();
  private readonly working = new Set<NonInviteServerTransaction>();
  private readonly client = new Map<string, NonInviteClientTransaction>();

  constructor(
    private readonly clock: Clock,
    private readonly limits: { working: number; kept: number } = SERVER_TRANSACTION_LIMITS,
  ) {}

  /**
   * §9.2: whether the request a CANCEL names (same top Via and CSeq number, another method) has a server transaction
   * here. Tried for each method served: the CANCEL does not say which one it cancels.
   */
  cancels(cancel: IncomingRequest): boolean {
    return CANCELLABLE.some((method) => {
      const key = serverTransactionKey({ ...cancel, method, cseq: { ...cancel.cseq, method } });
      return key !== undefined && this.server.has(key);
    });
  }

  /** A request from the transport: a new transaction for the TU, or a retransmission absorbed here. */
  receiveRequest(req: IncomingRequest, flow: Flow): ServerMatch {
    // The top Via read once for the key and the response's destination (issue 6: it was parsed twice per request).
    const via = topViaOf(req);
    const key = serverTransactionKey(req, via);
    if (!key || !via) return { kind: 'unroutable' };
    const existing = this.server.get(key);
    if (existing) {
      existing.retransmitted();
      return { kind: 'absorbed' };
    }
    const source = sourceOf(flow);
    const destination = responseDestination(via, source);
    const topVia = stampVia(req.headers.get('via')!, source, via);
    const tx = new NonInviteServerTransaction(
      key,
      flow,
      destination,
      this.clock,
      (t) => this.forget(t),
      (t) => this.working.delete(t),
    );
    if (this.working.size >= this.limits.working) return { kind: 'overloaded', tx, topVia };
    if (this.server.size >= this.limits.kept) this.letGoOldestAnswered();
    this.server.set(key, tx);
    this.working.add(tx);
    return { kind: 'new', tx, topVia };
  }

  private forget(tx: NonInviteServerTransaction): void {
    this.working.delete(tx);
    // A transaction let go early may end later; its key may by then name a newer transaction.
    if (this.server.get(tx.key) === tx) this.server.delete(tx.key);
  }

  private letGoOldestAnswered(): void {
    for (const [key, tx] of this.server) {
      if (tx.state === 'completed') {
        this.server.delete(key);
        return;
      }
    }
  }

  /** A request we send (NOTIFY): a client transaction keyed by our branch and method. */
  sendRequest(branch: string, method: string, bytes: Buffer, flow: Flow, onResult: ClientTxResult): void {
    const key = `${branch}|${method}`;
    const tx = new NonInviteClientTransaction(key, bytes, flow, this.clock, onResult, (t) => this.client.delete(t.key));
    this.client.set(key, tx);
    tx.start();
  }

  /** §17.1.3: a response matches the client transaction of its top Via branch and CSeq method; strays are dropped. */
  receiveResponse(res: IncomingResponse): boolean {
    const top = res.headers.get('via');
    const branch = top ? parseVia(top)?.branch : undefined;
    const tx = branch ? this.client.get(`${branch}|${res.cseq.method}`) : undefined;
    if (!tx) return false;
    tx.response(res.status);
    return true;
  }

  get sizes(): { server: number; working: number; client: number } {
    return { server: this.server.size, working: this.working.size, client: this.client.size };
  }
}

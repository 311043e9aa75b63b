// RFC 3261 §17.1.3 and §17.2.3: matching requests and responses to transactions. Server transactions are keyed
// by the top Via's branch, sent-by and the method (CSeq method for ACK-less non-INVITE); retransmissions are
// absorbed here and never reach the TU (DESIGN.md "Idempotency").
import type { Clock } from '../../ports/clock.ts';
import type { IncomingRequest, IncomingResponse } from './message.ts';
import { parseVia, responseDestination } from './via.ts';
import { NonInviteServerTransaction } from './non-invite-server-transaction.ts';
import { NonInviteClientTransaction, type ClientTxResult } from './non-invite-client-transaction.ts';
import type { Flow } from './transport.ts';
import { tagOf } from './name-addr.ts';

const MAGIC_COOKIE = 'z9hG4bK';
/** A flood of new transactions is refused with 503 rather than grow memory without bound. */
const MAX_SERVER_TRANSACTIONS = 50_000;

export function serverTransactionKey(req: IncomingRequest): string | undefined {
  const top = req.headers.get('via');
  const via = top ? parseVia(top) : undefined;
  if (!via) return undefined;
  const sentBy = `${via.host}:${via.port ?? ''}`;
  if (via.branch?.startsWith(MAGIC_COOKIE)) return `${via.branch}|${sentBy}|${req.method}`;
  // §17.2.3: RFC 2543 peers without the cookie: match on Request-URI, tags, Call-ID, CSeq and top Via.
  return `2543|${req.uri}|${tagOf(req.headers.get('from') ?? '') ?? ''}|${req.callId}|${req.cseq.seq}|${req.method}|${top}`;
}

export type ServerMatch = { kind: 'new'; tx: NonInviteServerTransaction } | { kind: 'absorbed' } | { kind: 'unroutable' } | { kind: 'overloaded'; tx: NonInviteServerTransaction };

export class TransactionLayer {
  private readonly server = new Map<string, NonInviteServerTransaction>();
  private readonly client = new Map<string, NonInviteClientTransaction>();

  constructor(private readonly clock: Clock) {}

  /** A request from the transport: a new transaction for the TU, or a retransmission absorbed here. */
  receiveRequest(req: IncomingRequest, flow: Flow): ServerMatch {
    const key = serverTransactionKey(req);
    const top = req.headers.get('via');
    const via = top ? parseVia(top) : undefined;
    if (!key || !via) return { kind: 'unroutable' };
    const existing = this.server.get(key);
    if (existing) {
      existing.retransmitted();
      return { kind: 'absorbed' };
    }
    const destination = responseDestination(via, { address: flow.remoteAddress, port: flow.remotePort });
    const tx = new NonInviteServerTransaction(key, flow, destination, this.clock, (t) => this.server.delete(t.key));
    if (this.server.size >= MAX_SERVER_TRANSACTIONS) return { kind: 'overloaded', tx };
    this.server.set(key, tx);
    return { kind: 'new', tx };
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

  get sizes(): { server: number; client: number } {
    return { server: this.server.size, client: this.client.size };
  }
}

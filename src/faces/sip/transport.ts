// RFC 3261 §18: what the transaction layer needs from a transport. Transports deliver datagrams or framed
// messages with their source, and send bytes back along a flow; they know nothing of transactions.

export type TransportName = 'udp' | 'tcp';

/** Where a message came from and how to reach that peer again (the connection, for TCP). */
export interface Flow {
  transport: TransportName;
  remoteAddress: string;
  remotePort: number;
  /** Sends bytes to the peer: over the same connection (TCP), or to address/port (UDP; default the flow's source). */
  send(bytes: Buffer, to?: { address: string; port: number }): void;
  /** False once a TCP connection closed. */
  open(): boolean;
}

/** Where a request came from: what its response's top Via records (RFC 3581) and where a UDP answer goes. */
export function sourceOf(flow: Flow): { address: string; port: number } {
  return { address: flow.remoteAddress, port: flow.remotePort };
}

export interface TransportDelegate {
  onMessage(bytes: Buffer, flow: Flow): void;
  /** A stream that cannot be framed any more: the transport closes it after this call. */
  onFramingError(why: string, flow: Flow): void;
}

export interface Transport {
  readonly name: TransportName;
  readonly local: { address: string; port: number };
  close(): Promise<void>;
}

// A UDP SIP client for tests that need what sipp cannot do (keep state across a server restart, check a metric after
// one request): its own port on loopback, every message it gets parsed with the face's own parser and queued.
import { createSocket, type Socket } from 'node:dgram';
import { randomBytes } from 'node:crypto';
import { parseMessage } from '../../src/faces/sip/parser.ts';
import { responseTo, serialize } from '../../src/faces/sip/outgoing-message.ts';
import type { IncomingMessage, IncomingRequest, IncomingResponse } from '../../src/faces/sip/message.ts';

export class UdpClient {
  private readonly queue: IncomingMessage[] = [];
  private waiter: (() => void) | undefined;
  private constructor(
    private readonly socket: Socket,
    readonly port: number,
    /** The SIP face's UDP port on 127.0.0.1. */
    private readonly serverPort: number,
  ) {
    socket.on('message', (bytes) => {
      this.queue.push(parseMessage(bytes));
      this.waiter?.();
    });
  }

  static async open(serverPort: number): Promise<UdpClient> {
    const socket = createSocket('udp4');
    await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
    return new UdpClient(socket, socket.address().port, serverPort);
  }

  /**
   * The start line and headers of a request from this client's port as `user` (trusted peer: P-Asserted-Identity),
   * Event presence; `via` in place of the usual top Via (a fixed branch, another sent-by). Content-Length: send's.
   */
  request(r: { method: string; uri: string; user: string; callId: string; cseq: number; fromTag: string; via?: string }): string[] {
    return [
      `${r.method} ${r.uri} SIP/2.0`,
      `Via: ${r.via ?? `SIP/2.0/UDP 127.0.0.1:${this.port};branch=z9hG4bK-${randomBytes(6).toString('hex')};rport`}`,
      `From: <${r.user}>;tag=${r.fromTag}`,
      `To: <${r.uri}>`,
      `Call-ID: ${r.callId}`,
      `CSeq: ${r.cseq} ${r.method}`,
      `Contact: <sip:client@127.0.0.1:${this.port};transport=udp>`,
      'Max-Forwards: 70',
      `P-Asserted-Identity: <${r.user}>`,
      'P-Preferred-Service: urn:urn-7:3gpp-service.ims.icsi.mcptt',
      'Event: presence',
    ];
  }

  send(lines: string[], body = '', port = this.serverPort): void {
    const text = `${lines.join('\r\n')}\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`;
    this.socket.send(Buffer.from(text), port, '127.0.0.1');
  }

  /** The first queued (or next arriving) message that `match` accepts, within 10 s. */
  async next<T extends IncomingMessage>(match: (msg: IncomingMessage) => msg is T, what: string): Promise<T> {
    const deadline = Date.now() + 10_000;
    for (;;) {
      const i = this.queue.findIndex(match);
      if (i >= 0) return this.queue.splice(i, 1)[0] as T;
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no ${what} within 10 s`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.waiter = () => {
          clearTimeout(t);
          resolve();
        };
      });
    }
  }

  response(method: string): Promise<IncomingResponse> {
    return this.next((msg): msg is IncomingResponse => msg.kind === 'response' && msg.cseq.method === method, `response to ${method}`);
  }

  /** The next NOTIFY, answered 200 as a client does (or `status`, as one that got it out of order answers 500). */
  async notify(status = 200): Promise<IncomingRequest> {
    const n = await this.next((msg): msg is IncomingRequest => msg.kind === 'request' && msg.method === 'NOTIFY', 'NOTIFY');
    this.socket.send(serialize(responseTo(n, status)), this.serverPort, '127.0.0.1');
    return n;
  }

  close(): void {
    this.socket.close();
  }
}

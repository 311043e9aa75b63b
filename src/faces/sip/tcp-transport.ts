// RFC 3261 §18 over TCP (node:net): messages framed by Content-Length (§18.3); responses and NOTIFYs go back
// over the connection the request came on.
import { createServer, type Server, type Socket } from 'node:net';
import { StreamFramer } from './stream-framer.ts';
import type { Flow, Transport, TransportDelegate } from './transport.ts';

/** A connection that sends nothing for this long is closed (a client keeps its flow alive with CRLF pings). */
const IDLE_MS = 10 * 60_000;
const MAX_CONNECTIONS = 10_000;

export class TcpTransport implements Transport {
  readonly name = 'tcp' as const;
  private readonly sockets = new Set<Socket>();
  private constructor(
    private readonly server: Server,
    readonly local: { address: string; port: number },
  ) {}

  static async listen(host: string, port: number, delegate: TransportDelegate): Promise<TcpTransport> {
    const server = createServer();
    server.maxConnections = MAX_CONNECTIONS;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    const addr = server.address() as { address: string; port: number };
    const t = new TcpTransport(server, { address: addr.address, port: addr.port });
    server.on('connection', (socket) => t.accept(socket, delegate));
    return t;
  }

  private accept(socket: Socket, delegate: TransportDelegate): void {
    this.sockets.add(socket);
    socket.setTimeout(IDLE_MS, () => socket.destroy());
    socket.on('close', () => this.sockets.delete(socket));
    socket.on('error', () => socket.destroy());
    const framer = new StreamFramer();
    const flow: Flow = {
      transport: 'tcp',
      remoteAddress: socket.remoteAddress ?? '',
      remotePort: socket.remotePort ?? 0,
      send: (bytes) => {
        if (!socket.destroyed) socket.write(bytes);
      },
      open: () => !socket.destroyed,
    };
    socket.on('data', (chunk: Buffer) => {
      for (const out of framer.push(chunk)) {
        if (out.kind === 'message') delegate.onMessage(out.bytes, flow);
        else {
          delegate.onFramingError(out.why, flow);
          socket.end();
        }
      }
    });
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

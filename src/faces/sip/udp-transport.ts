// RFC 3261 §18.1.1 / §18.2.1 over UDP (node:dgram): one datagram is one message.
import { createSocket, type Socket } from 'node:dgram';
import { isIPv6 } from 'node:net';
import type { Flow, Transport, TransportDelegate } from './transport.ts';
import { SIP_LIMITS } from './message.ts';

export class UdpTransport implements Transport {
  readonly name = 'udp' as const;
  private constructor(
    private readonly socket: Socket,
    readonly local: { address: string; port: number },
  ) {}

  static async listen(host: string, port: number, delegate: TransportDelegate): Promise<UdpTransport> {
    const socket = createSocket({ type: isIPv6(host) ? 'udp6' : 'udp4' });
    await new Promise<void>((resolve, reject) => {
      socket.once('error', reject);
      socket.bind(port, host, () => {
        socket.off('error', reject);
        resolve();
      });
    });
    const addr = socket.address();
    const t = new UdpTransport(socket, { address: addr.address, port: addr.port });
    socket.on('message', (bytes, rinfo) => {
      if (bytes.length > SIP_LIMITS.messageBytes) return; // cannot be a message we answer; drop
      delegate.onMessage(bytes, t.flowTo(rinfo.address, rinfo.port));
    });
    socket.on('error', () => {
      /* ICMP errors on send surface here; a lost datagram is what UDP retransmission is for */
    });
    return t;
  }

  flowTo(address: string, port: number): Flow {
    return {
      transport: 'udp',
      remoteAddress: address,
      remotePort: port,
      send: (bytes, to) => {
        try {
          this.socket.send(bytes, to?.port ?? port, to?.address ?? address);
        } catch {
          // A destination dgram refuses outright (a port out of range) is a datagram lost, never a crash of the server.
        }
      },
      open: () => true,
    };
  }

  async close(): Promise<void> {
    await new Promise<void>((resolve) => this.socket.close(() => resolve()));
  }
}

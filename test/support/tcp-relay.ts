// A TCP relay on loopback in front of a server (NATS in the fabric tests): while cut, it drops its connections and
// refuses new ones (counted), as a network partition between one instance and that server would.
import { createServer, connect as tcpConnect, type Socket } from 'node:net';
import { freePort } from './harness.ts';

export interface TcpRelay {
  port: number;
  cut(on: boolean): void;
  /** Connections refused while cut: the client noticed and tries again. */
  refused(): number;
  close(): void;
}

export async function tcpRelayTo(port: number): Promise<TcpRelay> {
  let cut = false;
  let refused = 0;
  const links = new Set<Socket>();
  const relay = createServer((client) => {
    if (cut) {
      refused++;
      return client.destroy();
    }
    const upstream = tcpConnect(port, '127.0.0.1');
    links.add(client);
    client.pipe(upstream).pipe(client);
    const drop = (): void => {
      links.delete(client);
      client.destroy();
      upstream.destroy();
    };
    client.on('error', drop).on('close', drop);
    upstream.on('error', drop).on('close', drop);
  });
  const relayPort = await freePort();
  await new Promise<void>((r) => relay.listen(relayPort, '127.0.0.1', r));
  return {
    port: relayPort,
    cut: (on) => {
      cut = on;
      if (on) links.forEach((s) => s.destroy());
    },
    refused: () => refused,
    close: () => {
      relay.close();
      links.forEach((s) => s.destroy());
    },
  };
}

// A peer's answer (partner system, next hop, GMS elsewhere) is read whole within the peer's timeout and a size bound
// (peer-http.ts, textOf/jsonOf): a peer on loopback that sends its answer's body a byte at a time, or one too big,
// gives a clear failure in bounded time instead of holding the request (and its user's lock) open.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { PeerHttp, MAX_ANSWER_BYTES, jsonOf } from '../../src/adapters/peer-http.ts';

async function withPeer(answer: Parameters<typeof createServer>[1], run: (url: string) => Promise<void>): Promise<void> {
  const server: Server = createServer(answer);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as { port: number };
  try {
    await run(`http://127.0.0.1:${port}`);
  } finally {
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
  }
}

void test('a body sent a byte every 100 ms, each within the per-piece timeout, fails at the overall deadline', async () => {
  await withPeer(
    (_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      const timer = setInterval(() => res.write(' '), 100);
      res.on('close', () => clearInterval(timer));
    },
    async (url) => {
      const peer = new PeerHttp(url, 500);
      const started = Date.now();
      const res = await peer.request('GET', '/x');
      const read = await jsonOf(res, 500);
      const took = Date.now() - started;
      assert.ok('bodyError' in read && /ANSWER_DEADLINE|not complete/.test(read.bodyError), JSON.stringify(read));
      assert.ok(took >= 450 && took < 3000, `failed after ${took} ms`);
      await peer.destroy();
    },
  );
});

void test('a body over the size bound is refused; a normal one is read', async () => {
  await withPeer(
    (req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      if (req.url === '/big') res.end(`"${'x'.repeat(MAX_ANSWER_BYTES)}"`);
      else res.end('{"applied":3}');
    },
    async (url) => {
      const peer = new PeerHttp(url, 2000);
      const big = await jsonOf(await peer.request('GET', '/big'), 2000);
      assert.deepEqual(big, { bodyError: `answer over ${MAX_ANSWER_BYTES} bytes` });
      assert.deepEqual(await jsonOf(await peer.request('GET', '/small'), 2000), { body: { applied: 3 } });
      await peer.destroy();
    },
  );
});

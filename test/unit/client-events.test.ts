// The SDK's event stream: SSE parsing, Last-Event-ID, and reconnection, against a small real HTTP server.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { MusterClient, MusterClientError, type McEvent, type ReconnectInfo } from '../../src/client/muster-client.ts';

type Connection = (req: IncomingMessage, res: ServerResponse, n: number) => void;

/** A server on 127.0.0.1, port 0; the n-th connection (0-based) to it is served by `connections[n]` (the last one repeats). */
async function sseServer(connections: Connection[]): Promise<{ url: string; requests: IncomingMessage[]; close: () => Promise<void> }> {
  const requests: IncomingMessage[] = [];
  const server = createServer((req, res) => {
    const n = requests.push(req) - 1;
    connections[Math.min(n, connections.length - 1)]!(req, res, n);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    requests,
    close: () => {
      server.closeAllConnections();
      return new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

const sseHead = (res: ServerResponse): void => {
  res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store' });
  res.flushHeaders();
};

async function collect(iter: AsyncIterable<McEvent>, max = 100): Promise<McEvent[]> {
  const out: McEvent[] = [];
  for await (const e of iter) {
    out.push(e);
    if (out.length >= max) break;
  }
  return out;
}

const change = { id: 'c1', mode: 'negotiated', actor: 'sip:dispatch@police.example', target: 'sip:bob@police.example', service: 'mcptt', affiliate: ['sip:patrol@police.example'], deaffiliate: [] };

void test('events parses events split across chunks, keeps the last ID, and ends when the server closes', { timeout: 10_000 }, async () => {
  const srv = await sseServer([
    (_req, res) => {
      sseHead(res);
      const text =
        ': heartbeat\n\n' +
        `id: 7\nevent: affiliation-change\ndata: ${JSON.stringify(change)}\n\n` +
        'event: affiliation-status\ndata: {"service":"mcptt",\ndata: "status":[]}\n\n' + // data on two lines, no id: keeps 7
        'id: 9\ndata: not json\n\n';
      // Send in small pieces so that lines and events straddle chunks.
      const pieces = text.match(/[\s\S]{1,5}/g)!;
      let i = 0;
      const tick = setInterval(() => {
        if (i < pieces.length) res.write(pieces[i++]);
        else {
          clearInterval(tick);
          res.end();
        }
      }, 1);
    },
  ]);
  try {
    const client = new MusterClient({ server: srv.url, token: 'tok', timeoutMs: 2000 });
    const events = await collect(client.events());
    assert.deepEqual(events, [
      { id: '7', type: 'affiliation-change', data: change },
      { id: '7', type: 'affiliation-status', data: { service: 'mcptt', status: [] } },
      { id: '9', type: 'message', data: 'not json' },
    ]);
    const req = srv.requests[0]!;
    assert.equal(req.url, '/mc/v1/events');
    assert.equal(req.headers.authorization, 'Bearer tok');
    assert.equal(req.headers.accept, 'text/event-stream');
    assert.equal(req.headers['last-event-id'], undefined);
  } finally {
    await srv.close();
  }
});

void test('events sends Last-Event-ID when given and ends when the signal aborts', { timeout: 10_000 }, async () => {
  const srv = await sseServer([
    (_req, res) => {
      sseHead(res);
      res.write('id: 43\nevent: affiliation-status\ndata: {"service":"mcptt","status":[]}\n\n'); // then stays open
    },
  ]);
  try {
    const client = new MusterClient({ server: srv.url, token: 'tok', timeoutMs: 2000 });
    const ac = new AbortController();
    const got: McEvent[] = [];
    for await (const e of client.events({ lastEventId: '42', signal: ac.signal })) {
      got.push(e);
      setTimeout(() => ac.abort(), 20); // abort while the iterator waits for more
    }
    assert.deepEqual(got.map((e) => e.id), ['43']);
    assert.equal(srv.requests[0]!.headers['last-event-id'], '42');
  } finally {
    await srv.close();
  }
});

void test('events: a refusal throws MusterClientError with the error body', { timeout: 10_000 }, async () => {
  const srv = await sseServer([
    (_req, res) => {
      res.writeHead(401, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ error: { code: 'unauthenticated', message: 'credential expired' } }));
    },
  ]);
  try {
    const client = new MusterClient({ server: srv.url, token: 'tok', timeoutMs: 2000 });
    await assert.rejects(collect(client.events()), { name: 'MusterClientError', status: 401, code: 'unauthenticated', message: 'credential expired' });
  } finally {
    await srv.close();
  }
});

void test('eventsWithReconnect resumes with Last-Event-ID after a close and after a cut connection', { timeout: 10_000 }, async () => {
  const srv = await sseServer([
    (_req, res) => {
      sseHead(res);
      res.end('id: 1\nevent: affiliation-status\ndata: {"n":1}\n\nid: 2\nevent: affiliation-status\ndata: {"n":2}\n\n');
    },
    (_req, res) => {
      sseHead(res);
      res.write('retry: 30\nid: 3\nevent: affiliation-status\ndata: {"n":3}\n\n');
      setTimeout(() => res.socket?.destroy(), 30); // the connection drops, no clean end
    },
    (_req, res) => {
      res.writeHead(503, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ error: { code: 'unavailable', message: 'store down' } }));
    },
    (_req, res) => {
      sseHead(res);
      res.write('id: 4\nevent: affiliation-status\ndata: {"n":4}\n\n');
    },
  ]);
  try {
    const client = new MusterClient({ server: srv.url, token: 'tok', timeoutMs: 2000 });
    const ac = new AbortController();
    const reconnects: ReconnectInfo[] = [];
    const got: McEvent[] = [];
    for await (const e of client.eventsWithReconnect({ signal: ac.signal, initialDelayMs: 10, maxDelayMs: 100, onReconnect: (i) => reconnects.push(i) })) {
      got.push(e);
      if (e.id === '4') ac.abort();
    }
    assert.deepEqual(got.map((e) => [e.id, e.data]), [['1', { n: 1 }], ['2', { n: 2 }], ['3', { n: 3 }], ['4', { n: 4 }]]);
    assert.deepEqual(srv.requests.map((r) => r.headers['last-event-id']), [undefined, '2', '3', '3']);
    // A close, a cut (the server's retry hint of 30 ms is the next wait), then a 503 (the wait doubles).
    assert.deepEqual(reconnects.map((r) => [r.attempt, r.delayMs, r.lastEventId, r.error?.code]), [
      [1, 10, '2', undefined],
      [1, 30, '3', 'unreachable'],
      [2, 60, '3', 'unavailable'],
    ]);
  } finally {
    await srv.close();
  }
});

void test('eventsWithReconnect stops on a refusal, and on a server that never answered', { timeout: 10_000 }, async () => {
  const srv = await sseServer([
    (_req, res) => {
      sseHead(res);
      res.end('id: 1\ndata: {}\n\n');
    },
    (_req, res) => {
      res.writeHead(403, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ error: { code: 'forbidden', message: 'no' } }));
    },
  ]);
  const url = srv.url;
  try {
    const client = new MusterClient({ server: url, token: 'tok', timeoutMs: 2000 });
    await assert.rejects(collect(client.eventsWithReconnect({ initialDelayMs: 5 })), { status: 403, code: 'forbidden' });
    assert.equal(srv.requests.length, 2);
  } finally {
    await srv.close();
  }
  const gone = new MusterClient({ server: url, token: 'tok', timeoutMs: 2000 });
  await assert.rejects(collect(gone.eventsWithReconnect({ initialDelayMs: 5 })), (e: unknown) => e instanceof MusterClientError && e.code === 'unreachable');
});

void test('events: a server that accepts the connection but sends no headers times out', { timeout: 10_000 }, async () => {
  const srv = await sseServer([() => undefined]);
  try {
    const client = new MusterClient({ server: srv.url, token: 'tok', timeoutMs: 150 });
    await assert.rejects(collect(client.events()), { status: 0, code: 'timeout' });
  } finally {
    await srv.close();
  }
});

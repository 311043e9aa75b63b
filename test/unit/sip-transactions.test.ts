// The server transaction table under sustained load (issue 6, benchmark 4): answered transactions kept for timer J
// must not make new requests look like a flood, and what is kept stays bounded.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseMessage } from '../../src/faces/sip/parser.ts';
import type { IncomingRequest } from '../../src/faces/sip/message.ts';
import { TransactionLayer } from '../../src/faces/sip/transaction-layer.ts';
import type { Clock } from '../../src/ports/clock.ts';

const flow = { transport: 'udp' as const, remoteAddress: '127.0.0.1', remotePort: 5060, send: () => undefined, open: () => true };

function publish(n: number): IncomingRequest {
  const text = [
    'PUBLISH sip:mc-server@police.example SIP/2.0',
    `Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK-load-${n}`,
    `From: <sip:alice@police.example>;tag=t${n}`,
    'To: <sip:alice@police.example>',
    `Call-ID: load-${n}`,
    'CSeq: 1 PUBLISH',
    'Max-Forwards: 70',
    'Event: presence',
    'Content-Length: 0',
    '',
    '',
  ].join('\r\n');
  const msg = parseMessage(Buffer.from(text));
  assert.equal(msg.kind, 'request');
  return msg;
}

/** A clock whose timers fire only when the test says so. */
function manualClock(): Clock & { fireAll(): void } {
  let timers: (() => void)[] = [];
  return {
    now: () => 0,
    after: (_ms, fire) => (timers.push(fire), () => undefined),
    fireAll() {
      const due = timers;
      timers = [];
      due.forEach((t) => t());
    },
  };
}

void test('answered transactions waiting for timer J do not count as work in progress: no 503 for a steady load', () => {
  const layer = new TransactionLayer(manualClock(), { working: 3, kept: 1000 });
  for (let n = 0; n < 100; n++) {
    const match = layer.receiveRequest(publish(n), flow);
    assert.equal(match.kind, 'new', `request ${n}`);
    if (match.kind === 'new') match.tx.respond(200, Buffer.from('SIP/2.0 200 OK\r\n\r\n'));
  }
  assert.deepEqual(layer.sizes, { server: 100, working: 0, client: 0 });
});

void test('requests not yet answered beyond the working limit are refused (overloaded)', () => {
  const layer = new TransactionLayer(manualClock(), { working: 3, kept: 1000 });
  const kinds = [0, 1, 2, 3].map((n) => layer.receiveRequest(publish(n), flow).kind);
  assert.deepEqual(kinds, ['new', 'new', 'new', 'overloaded']);
});

void test('beyond the kept limit the oldest answered transaction is let go; a retransmission of the newest is still absorbed', () => {
  const clock = manualClock();
  const layer = new TransactionLayer(clock, { working: 10, kept: 5 });
  for (let n = 0; n < 6; n++) {
    const match = layer.receiveRequest(publish(n), flow);
    assert.equal(match.kind, 'new');
    if (match.kind === 'new') match.tx.respond(200, Buffer.from('SIP/2.0 200 OK\r\n\r\n'));
  }
  assert.equal(layer.sizes.server, 5);
  assert.equal(layer.receiveRequest(publish(5), flow).kind, 'absorbed');
  // Request 0 was let go: its retransmission is a new transaction, which its old timer J must not remove.
  const again = layer.receiveRequest(publish(0), flow);
  assert.equal(again.kind, 'new');
  clock.fireAll();
  assert.equal(layer.receiveRequest(publish(0), flow).kind, 'absorbed');
});

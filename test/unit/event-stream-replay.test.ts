// The event stream when its replay fails (the store down as a client resumes with Last-Event-ID): the stream ends
// without sending a live event, so the client's Last-Event-ID stays before the events it has not seen, and it gets
// them when it resumes; a live event sent after a failed replay would have moved it past them for good.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'node:http';
import Fastify from 'fastify';
import type { McUri } from '../../src/domain/ids.ts';
import type { ClientEvent, Store } from '../../src/ports/store.ts';
import { MusterError } from '../../src/domain/errors.ts';
import { LocalNotifier } from '../../src/adapters/local-notifier.ts';
import { streamEvents } from '../../src/faces/http/event-stream.ts';

const alice = 'sip:alice@police.example' as McUri;
const event = (id: number): ClientEvent => ({ id, userId: alice, type: 'affiliation-status', data: { n: id }, at: 0 });

/** Opens the stream with Last-Event-ID 100 and reads it until the server ends it (bounded: 5 s). */
function readStream(url: string): Promise<{ text: string; ended: boolean }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { headers: { 'last-event-id': '100' } }, (res) => {
      let text = '';
      const timer = setTimeout(() => (req.destroy(), resolve({ text, ended: false })), 5000);
      res.on('data', (c: Buffer) => (text += c.toString()));
      const done = (): void => (clearTimeout(timer), resolve({ text, ended: true }));
      res.on('end', done);
      res.on('error', done);
      res.on('aborted', done);
    });
    req.on('error', reject);
    req.end();
  });
}

void test('a replay that fails ends the stream; no live event is sent past the events not replayed', async () => {
  const notifier = new LocalNotifier();
  let replayAsked!: () => void;
  const asked = new Promise<void>((r) => (replayAsked = r));
  const store = {
    // The store issued the client's id and 150 (so the id is resumed after); reading the events after it fails.
    newestEventId: async (): Promise<number> => 150,
    async eventsAfter(): Promise<ClientEvent[]> {
      replayAsked();
      // The store is down; meanwhile event 150 is published live.
      await new Promise((r) => setTimeout(r, 50));
      throw new MusterError('unavailable', 'store unavailable: connection refused');
    },
  } as unknown as Store;
  const app = Fastify({ logger: false });
  app.get('/events', (req, reply) => streamEvents(req, reply, alice, store, notifier));
  const url = await app.listen({ host: '127.0.0.1', port: 0 });
  try {
    const reading = readStream(`${url}/events`);
    await asked;
    notifier.publish([event(150)]);
    const { text, ended } = await reading;
    assert.equal(ended, true, 'the server ended the stream');
    assert.doesNotMatch(text, /^id: /m, `no event sent: ${JSON.stringify(text)}`);
  } finally {
    await app.close();
  }
});

/** The events the store holds (committed), in id order; it issued the client's id 100 and every id it holds. */
const storeOf = (held: ClientEvent[]): Store =>
  ({ eventsAfter: async (_u: McUri, after: number, limit: number) => held.filter((e) => e.id > after).slice(0, limit), newestEventId: async () => Math.max(100, ...held.map((e) => e.id)) }) as unknown as Store;

void test('a replay that works sends the replayed events, then the live ones, in order', async () => {
  const notifier = new LocalNotifier();
  const held = [event(101), event(102)];
  const store = storeOf(held);
  const app = Fastify({ logger: false });
  app.get('/events', (req, reply) => streamEvents(req, reply, alice, store, notifier));
  const url = await app.listen({ host: '127.0.0.1', port: 0 });
  try {
    const reading = readStream(`${url}/events`);
    await new Promise((r) => setTimeout(r, 100));
    held.push(event(103)); // committed, then published
    notifier.publish([event(103)]);
    await new Promise((r) => setTimeout(r, 100));
    await app.close(); // ends the stream
    const { text } = await reading;
    assert.deepEqual([...text.matchAll(/^id: (\d+)$/gm)].map((m) => Number(m[1])), [101, 102, 103]);
  } finally {
    await app.close();
  }
});

void test('an event that reaches the stream after a later one (another instance\'s, over the fabric) is sent, in id order', async () => {
  const notifier = new LocalNotifier();
  const held = [event(101), event(102)];
  const app = Fastify({ logger: false });
  app.get('/events', (req, reply) => streamEvents(req, reply, alice, storeOf(held), notifier));
  const url = await app.listen({ host: '127.0.0.1', port: 0 });
  try {
    const reading = readStream(`${url}/events`);
    await new Promise((r) => setTimeout(r, 100));
    // 103 committed at another instance, then 104 here; 104's notice comes first, 103's over the fabric after it.
    held.push(event(103), event(104));
    notifier.publish([event(104)]);
    await new Promise((r) => setTimeout(r, 50));
    notifier.publish([event(103)]);
    await new Promise((r) => setTimeout(r, 100));
    await app.close();
    const { text } = await reading;
    assert.deepEqual([...text.matchAll(/^id: (\d+)$/gm)].map((m) => Number(m[1])), [101, 102, 103, 104]);
  } finally {
    await app.close();
  }
});

void test('a live event that comes just as a store read ends is still sent (no wake-up lost in between)', async () => {
  // The second event is published a few microtask steps after the first, as group-commit continuations run in one
  // drain; at every such gap both must go out.
  for (let gap = 0; gap <= 8; gap++) {
    const notifier = new LocalNotifier();
    const held = [event(101)];
    const app = Fastify({ logger: false });
    app.get('/events', (req, reply) => streamEvents(req, reply, alice, storeOf(held), notifier));
    const url = await app.listen({ host: '127.0.0.1', port: 0 });
    try {
      const reading = readStream(`${url}/events`);
      await new Promise((r) => setTimeout(r, 50));
      held.push(event(102));
      notifier.publish([event(102)]);
      for (let i = 0; i < gap; i++) await Promise.resolve();
      held.push(event(103));
      notifier.publish([event(103)]);
      await new Promise((r) => setTimeout(r, 50));
      await app.close();
      const { text } = await reading;
      assert.deepEqual([...text.matchAll(/^id: (\d+)$/gm)].map((m) => Number(m[1])), [101, 102, 103], `gap of ${gap} microtask steps`);
    } finally {
      await app.close();
    }
  }
});

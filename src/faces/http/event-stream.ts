// Server-Sent Events for a user's event log: replay after Last-Event-ID, then live events, with a bounded buffer.
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { McUri } from '../../domain/ids.ts';
import type { ClientEvent, Store } from '../../ports/store.ts';
import type { Notifier } from '../../ports/notifier.ts';
import { badInput } from '../../domain/errors.ts';

/** A client that does not read loses its stream before the server's memory grows past this. */
const MAX_UNREAD_BYTES = 1 << 20;
/** A comment line this often keeps proxies from closing an idle stream and lets the reader notice a dead one. */
export const HEARTBEAT_MS = 15_000;
const REPLAY_PAGE = 500;

/**
 * The event id a client resumes after: absent or empty is 0 (a first connection). Anything but an id this server
 * writes is refused: junk read as 0 replayed the wrong events, and a number past the store's bigint closed the stream
 * on PostgreSQL (the client reconnecting for ever) or, on SQLite, silently dropped every later event.
 */
export function lastEventIdOf(req: FastifyRequest): number {
  const header = req.headers['last-event-id'];
  if (header === undefined || header === '') return 0;
  if (typeof header !== 'string' || !/^[0-9]{1,15}$/.test(header)) throw badInput('Last-Event-ID', 'must be the id of an event this server sent (a decimal number of at most 15 digits)');
  return Number(header);
}

export async function streamEvents(req: FastifyRequest, reply: FastifyReply, userId: McUri, store: Store, notifier: Notifier): Promise<void> {
  const asked = lastEventIdOf(req);
  // An id above every id this store issued was never sent from here: resuming after it would hold back every event
  // until ids pass it, so the stream starts as a first connection would (and says so below).
  const newest = asked > 0 ? await store.newestEventId() : 0;
  const neverIssued = asked > newest;
  let sent = neverIssued ? 0 : asked;
  const firstConnection = sent === 0;
  const raw = reply.raw;
  reply.hijack();
  raw.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-store', connection: 'keep-alive', 'x-accel-buffering': 'no' });

  const write = (e: ClientEvent): void => {
    if (e.id <= sent || raw.destroyed) return;
    sent = e.id;
    raw.write(`id: ${e.id}\nevent: ${e.type}\ndata: ${JSON.stringify(e.data)}\n\n`);
    if (raw.writableLength > MAX_UNREAD_BYTES) raw.destroy();
  };
  // A live event is a wake-up, and the events are read from the store in id order: with several instances, one
  // instance's event reaches here over the fabric after a later one committed here, and sending the later one first
  // would move the client's Last-Event-ID past it for good. A user's event ids follow its commits (each is written
  // under the user's lock), so the store has every event up to the one that woke us.
  let reading = false;
  let wokenAgain = false;
  const catchUp = (): void => {
    if (reading) {
      wokenAgain = true;
      return;
    }
    reading = true;
    void (async () => {
      try {
        do {
          wokenAgain = false;
          await readAfterSent(false);
        } while (wokenAgain && !raw.destroyed);
      } catch (err) {
        end(err);
      } finally {
        // In the same turn as the loop's last look at wokenAgain: a wake-up after it starts a read of its own.
        reading = false;
      }
    })();
  };
  const readAfterSent = async (onlyPending: boolean): Promise<void> => {
    for (;;) {
      const page = await store.eventsAfter(userId, sent, REPLAY_PAGE);
      for (const e of page) {
        if (!onlyPending || (await stillPending(store, userId, e))) write(e);
        else sent = e.id;
      }
      if (page.length < REPLAY_PAGE || raw.destroyed) return;
    }
  };
  // A read that stopped short (the store failed): a later event now would move the client's Last-Event-ID past the
  // events not read, lost to it for good. The stream ends instead, and the client resumes from where it was.
  const end = (err: unknown): void => {
    req.log.warn({ err, userId }, 'event stream could not read the store; closed for the client to resume');
    raw.destroy();
  };
  let replaying = true;
  let wokenDuringReplay = false;
  // Subscribe before replaying, so nothing published during the replay falls between the two.
  const unsubscribe = notifier.subscribe(userId, (e) => {
    if (e.id <= sent) return;
    if (replaying) wokenDuringReplay = true;
    else catchUp();
  });
  const heartbeat = setInterval(() => raw.write(': keep-alive\n\n'), HEARTBEAT_MS);
  heartbeat.unref();
  raw.on('close', () => {
    unsubscribe();
    clearInterval(heartbeat);
  });
  raw.write(': connected\n\n');
  if (neverIssued) raw.write(`: Last-Event-ID ${asked} was never issued here (the newest event id is ${newest}): nothing replayed after it; started as a first connection\n\n`);
  try {
    // A first connection (no Last-Event-ID) gets what still waits for an answer, not the user's whole history.
    await readAfterSent(firstConnection);
  } catch (err) {
    return end(err);
  } finally {
    replaying = false;
  }
  if (wokenDuringReplay) catchUp();
}

/** A change request the user has not answered yet: mandatory ones not acknowledged, negotiated ones still asked. */
async function stillPending(store: Store, userId: McUri, e: ClientEvent): Promise<boolean> {
  if (e.type !== 'affiliation-change') return false;
  const id = (e.data as { id?: unknown }).id;
  if (typeof id !== 'string') return false;
  const change = await store.getChange(id, userId);
  return change?.state === 'told' || change?.state === 'asked';
}

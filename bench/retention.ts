// Retention under load (issue 6, p99): the hourly prune of events and audit entries on the embedded store, as the
// system runs it (events, then audit; the checkpointer in its worker), while a client writes an event every
// millisecond. Prints how long each prune took, the event loop's delays and the longest write meanwhile: what a
// request arriving during the prune waits for. Two prunes: one with `--old` rows past retention of each table, then
// the next hour's, with none (what every later hour costs).
//   node --import tsx bench/retention.ts [--events 1000000] [--old 100000]
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { openSqlite, SqliteStore } from '../src/adapters/sqlite-store.ts';
import { checkpointInWorker } from '../src/adapters/sqlite-checkpointer.ts';
import type { McUri } from '../src/domain/ids.ts';
import { arg, user, writeResults } from './workload.ts';

const EVENTS = arg('--events', 1_000_000);
const OLD = arg('--old', 100_000);
if (!(Number.isInteger(EVENTS) && Number.isInteger(OLD) && EVENTS > 0 && OLD >= 0 && OLD <= EVENTS)) throw new Error('--events: a positive integer; --old: an integer from 0 to --events');
const COMMAND = `node --import tsx bench/retention.ts --events ${EVENTS} --old ${OLD}`;
const USERS = 10_000;
const WEEK = 7 * 86_400_000;

const dir = mkdtempSync(join(tmpdir(), 'muster-bench-retention-'));
const db = openSqlite(join(dir, 'muster.db'));
const store = new SqliteStore(db);
try {
  // EVENTS events and as many audit entries, the first OLD of each eight days old, the rest a second old.
  const now = Date.now();
  const event = db.prepare('INSERT INTO events (user_id, type, data, created_at) VALUES (?, ?, ?, ?)');
  const audit = db.prepare("INSERT INTO audit_log (at, subject, role, on_behalf_of, action, service, groups, http_status, error_code, result) VALUES (?, ?, 'user', ?, 'affiliation', 'mcptt', ?, 200, NULL, 'null')");
  const data = JSON.stringify({ service: 'mcptt', status: [{ groupId: 'sip:g1@bench.example', status: 'affiliated' }] });
  const seededAt = performance.now();
  db.transaction(() => {
    for (let i = 0; i < EVENTS; i++) {
      const u = user(i % USERS);
      const at = i < OLD ? now - WEEK - 86_400_000 : now - 1000;
      event.run(u, 'affiliation-status', data, at);
      audit.run(at, u, u, '["sip:g1@bench.example"]');
    }
  })();
  console.log(`seeded ${EVENTS} events and ${EVENTS} audit entries in ${((performance.now() - seededAt) / 1000).toFixed(1)} s`);
  checkpointInWorker(db);
  await store.appendEvents([{ userId: user(0) as McUri, type: 'affiliation-status', data: null }]); // the seed's WAL synced

  const rows = [];
  for (const what of [`${OLD} of each past retention`, 'the next hour: none past retention']) {
    const delay = monitorEventLoopDelay({ resolution: 1 });
    let writing = true;
    const writes: number[] = [];
    // The client: one event written at a time, a millisecond apart (bounded by the prune's end).
    const client = (async () => {
      while (writing) {
        const s = performance.now();
        await store.appendEvents([{ userId: user(1) as McUri, type: 'affiliation-status', data: null }]);
        writes.push(performance.now() - s);
        await new Promise((r) => setTimeout(r, 1));
      }
    })();
    await new Promise((r) => setTimeout(r, 200));
    delay.enable();
    await new Promise((r) => setTimeout(r, 20)); // the delay monitor's timer running before the prune starts
    const started = performance.now();
    const events = await store.pruneEvents(now - WEEK);
    const audit = await store.pruneAudit(now - WEEK);
    const tookMs = performance.now() - started;
    delay.disable();
    writing = false;
    await client;
    writes.sort((a, b) => a - b);
    const ms = (ns: number): number => Math.round(ns / 1e5) / 10;
    rows.push({
      what, events, audit, tookMs: Math.round(tookMs),
      loopDelayP99: ms(delay.percentile(99)), loopDelayMax: ms(delay.max),
      writes: writes.length, writeP99: Math.round(writes[Math.floor(0.99 * (writes.length - 1))]! * 10) / 10, writeMax: Math.round(writes.at(-1)! * 10) / 10,
    });
  }
  console.log(`\nRetention prune on SQLite, ${EVENTS} events and ${EVENTS} audit entries, a write every millisecond meanwhile`);
  console.log('| prune | events removed | audit removed | took ms | event-loop delay p99 / max ms | writes | write p99 / max ms |');
  console.log('|---|---|---|---|---|---|---|');
  for (const r of rows) console.log(`| ${r.what} | ${r.events} | ${r.audit} | ${r.tookMs} | ${r.loopDelayP99} / ${r.loopDelayMax} | ${r.writes} | ${r.writeP99} / ${r.writeMax} |`);
  console.log(`command: ${COMMAND}`);
  writeResults('retention', { command: COMMAND, events: EVENTS, old: OLD, rows });
} finally {
  await store.close();
  rmSync(dir, { recursive: true, force: true });
}

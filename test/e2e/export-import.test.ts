// E2E (issue 5): a system moves from SQLite to PostgreSQL with `muster export` / `muster import`, without loss.
// Affiliations, the GMS member lists, the event replay (Last-Event-ID), a mandatory change and a negotiated change
// still open are all there afterwards; new events get ids above the imported ones, and the GMS's member lists follow
// the changes made after the move (its own server's members are read from the affiliations on either store).
// PostgreSQL runs on every machine here: a fresh database per run, dropped at the end; without it this fails.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type pg from 'pg';
import { adminClient } from '../support/postgres.ts';
import { POSTGRES_MIGRATIONS } from '../../src/adapters/postgres-migrations.ts';
import { Muster, call, cli, freePort, secret, type RawConfig } from '../support/harness.ts';

const D = 'police.example';
const u = (name: string): string => `sip:${name}@${D}`;
const g = (name: string): string => `sip:${name}@${D}`;
const enc = encodeURIComponent;

const USERS = ['dispatch', 'alice', 'bob', 'carol'].map(u);
const GROUPS = [g('patrol'), g('north'), g('south')];

interface SseEvent {
  id: number;
  type: string;
  data: { id?: string; mode?: string; [k: string]: unknown };
}

interface ExportDoc {
  format: string;
  version: number;
  system: { name: string; domain: string };
  store: { events: { id: number; userId: string }[]; outbox: unknown[]; sequences: { outbox: number; events: number }; changes: { id: string; state: string }[] };
  gms: { affiliations: { userId: string; groupId: string; status: string; seq: number }[] };
}

const work = mkdtempSync(join(tmpdir(), 'muster-export-import-'));
const dbName = `muster_test_${randomBytes(6).toString('hex')}`;
const pgUrl = `postgres://postgres@127.0.0.1:5432/${dbName}`;
let m: Muster | undefined;
let base = '';

function config(store: string, port: number): RawConfig {
  return {
    // Long: the negotiated change stays open across the move.
    negotiationTimeoutSeconds: 600,
    logLevel: 'warn',
    dataDir: work,
    systems: [
      {
        name: 'police',
        domain: D,
        http: { host: '127.0.0.1', port },
        secret: SECRET,
        store,
        users: [
          { id: u('dispatch'), services: ['mcptt'], n2: 10, groups: GROUPS, remoteChange: true },
          ...['alice', 'bob', 'carol'].map((n) => ({ id: u(n), services: ['mcptt'], n2: 3, groups: GROUPS })),
        ],
        groups: GROUPS.map((id) => ({ id, services: ['mcptt'], members: USERS })),
      },
    ],
  };
}
const SECRET = secret();

async function admin<T>(work: (c: pg.Client) => Promise<T>): Promise<T> {
  const c = await adminClient();
  try {
    return await work(c);
  } finally {
    await c.end();
  }
}

before(async () => {
  await admin((c) => c.query(`CREATE DATABASE ${dbName}`));
});

after(async () => {
  await m?.stop({ keepFiles: true });
  rmSync(work, { recursive: true, force: true });
  await admin((c) => c.query(`DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`));
});

async function operator(): Promise<string> {
  return m!.operatorToken();
}

async function affiliations(user: string): Promise<string[]> {
  const r = await call('GET', `${base}/mc/v1/users/${enc(user)}/affiliations?service=mcptt`, await operator());
  assert.equal(r.status, 200, JSON.stringify(r.body));
  return (r.body as { affiliations: { groupId: string; state: string; since: string }[] }).affiliations.map((a) => `${a.groupId} ${a.state} ${a.since}`).sort();
}

async function gmsMembers(groupId: string): Promise<string[]> {
  const r = await call('GET', `${base}/gms/v1/groups/${enc(groupId)}/affiliations?service=mcptt`, await operator());
  assert.equal(r.status, 200, JSON.stringify(r.body));
  return (r.body as { members: { mcServiceId: string; since: string }[] }).members.map((x) => `${x.mcServiceId} ${x.since}`).sort();
}

async function serverMembers(groupId: string): Promise<string[]> {
  const r = await call('GET', `${base}/mc/v1/groups/${enc(groupId)}/members?service=mcptt`, await operator());
  assert.equal(r.status, 200, JSON.stringify(r.body));
  return (r.body as { members: { mcServiceId: string }[] }).members.map((x) => x.mcServiceId).sort();
}

/** Polls (bounded: 50 x 100 ms) until the GMS lists exactly the server's members for every group. */
async function gmsAgrees(): Promise<void> {
  let diff: string[] = [];
  for (let attempt = 0; attempt < 50; attempt += 1) {
    diff = [];
    for (const gid of GROUPS) {
      const gms = (await gmsMembers(gid)).map((x) => x.split(' ')[0]);
      const server = await serverMembers(gid);
      if (JSON.stringify(gms) !== JSON.stringify(server)) diff.push(`${gid}: gms [${gms.join(' ')}] server [${server.join(' ')}]`);
    }
    if (diff.length === 0) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.fail(`GMS member lists differ from the server's records:\n${diff.join('\n')}`);
}

/**
 * Reads a user's SSE stream: until an event matches (`until`), or else until the stream has been quiet for 400 ms
 * after its replay; bounded by `ms` either way.
 */
async function readEvents(user: string, opts: { lastEventId?: number; until?: (e: SseEvent) => boolean; ms?: number } = {}): Promise<SseEvent[]> {
  const abort = new AbortController();
  const ms = opts.ms ?? 5000;
  const timer = setTimeout(() => abort.abort(), ms);
  const events: SseEvent[] = [];
  let quiet: NodeJS.Timeout | undefined;
  const settleQuiet = (): void => {
    if (opts.until) return;
    clearTimeout(quiet);
    quiet = setTimeout(() => abort.abort(), 400);
  };
  try {
    const res = await fetch(`${base}/mc/v1/events`, {
      headers: { authorization: `Bearer ${await m!.token(user)}`, ...(opts.lastEventId !== undefined ? { 'last-event-id': String(opts.lastEventId) } : {}) },
      signal: abort.signal,
    });
    assert.equal(res.status, 200);
    settleQuiet();
    const decoder = new TextDecoder();
    let buf = '';
    for await (const chunk of res.body!) {
      buf += decoder.decode(chunk, { stream: true });
      let cut: number;
      while ((cut = buf.indexOf('\n\n')) >= 0) {
        const block = buf.slice(0, cut);
        buf = buf.slice(cut + 2);
        const field = (name: string): string | undefined => block.split('\n').find((l) => l.startsWith(`${name}: `))?.slice(name.length + 2);
        const id = field('id');
        if (id === undefined) continue;
        const e: SseEvent = { id: Number(id), type: field('event') ?? 'message', data: JSON.parse(field('data') ?? 'null') as SseEvent['data'] };
        events.push(e);
        settleQuiet();
        if (opts.until?.(e)) return events;
      }
    }
    assert.fail(`stream ended: ${JSON.stringify(events)}`);
  } catch (e) {
    if (abort.signal.aborted && !opts.until && quiet) return events;
    if (abort.signal.aborted) assert.fail(`no such event within ${ms} ms: ${JSON.stringify(events)}`);
    throw e;
  } finally {
    clearTimeout(timer);
    clearTimeout(quiet);
    abort.abort();
  }
}

interface Answer {
  status: number;
  body: { id?: string; state?: string; status?: { groupId: string; status: string }[] };
}

async function post(user: string, path: string, body: Record<string, unknown>): Promise<Answer> {
  const r: Answer = await call('POST', `${base}/mc/v1/${path}`, await m!.token(user), body);
  return r;
}

function writeConfig(name: string, cfg: RawConfig): string {
  const file = join(work, name);
  writeFileSync(file, JSON.stringify(cfg, null, 2));
  return file;
}

void describe('muster export / import: SQLite to PostgreSQL', () => {
  // Bounded against a hang, with room for a loaded machine: it runs about 30 s alone and took 40 s in CI (two files at once).
  void test('affiliations, GMS lists, event replay and open changes move without loss; ids and seqs continue', { timeout: 180_000 }, async () => {
    const port = await freePort();
    const sqliteConfig = config(`sqlite:${join(work, 'police.db')}`, port);
    const sqliteDir = mkdtempSync(join(work, 'sqlite-'));
    // 'sqlite': this test is about the move, so it runs one instance whatever MUSTER_E2E_BACKEND says.
    m = await Muster.start(sqliteConfig, sqliteDir, 'sqlite');
    base = m.url('police');

    // --- Before: affiliations, a de-affiliation, a mandatory and a negotiated change.
    for (const [user, groups] of [
      [u('alice'), [g('patrol'), g('north')]],
      [u('bob'), [g('patrol')]],
      [u('dispatch'), GROUPS],
    ] as const) {
      const r = await post(user, 'affiliations', { mcServiceId: user, service: 'mcptt', groupIds: groups });
      assert.equal(r.status, 200, JSON.stringify(r.body));
    }
    const d = await post(u('alice'), 'deaffiliations', { mcServiceId: u('alice'), service: 'mcptt', groupIds: [g('north')] });
    assert.equal(d.body.status?.[0]?.status, 'deaffiliated');
    const mandatory = await post(u('dispatch'), 'affiliation-changes', { mcServiceId: u('dispatch'), service: 'mcptt', mode: 'mandatory', targets: [u('carol')], affiliate: [g('south')] });
    assert.equal(mandatory.status, 200, JSON.stringify(mandatory.body));
    // Client 1's negotiated request stays open until bob answers; it is given up before the stop.
    const giveUp = new AbortController();
    const negotiated = fetch(`${base}/mc/v1/affiliation-changes`, {
      method: 'POST',
      headers: { authorization: `Bearer ${await m.token(u('dispatch'))}`, 'content-type': 'application/json' },
      body: JSON.stringify({ mcServiceId: u('dispatch'), service: 'mcptt', mode: 'negotiated', targets: [u('bob')], affiliate: [g('north')] }),
      signal: giveUp.signal,
    }).catch(() => undefined);
    const asked = (await readEvents(u('bob'), { until: (e) => e.type === 'affiliation-change' && e.data.mode === 'negotiated' })).at(-1)!;
    const negotiatedId = asked.data.id!;
    await gmsAgrees();

    const before = {
      affiliations: await Promise.all(USERS.map(affiliations)),
      gms: await Promise.all(GROUPS.map(gmsMembers)),
      replay: await Promise.all(USERS.map((user) => readEvents(user, { lastEventId: 1 }))),
      // A first connection (no Last-Event-ID) replays what still waits for an answer.
      pendingOfBob: (await readEvents(u('bob'))).map((e) => e.data.id),
    };
    assert.deepEqual(before.pendingOfBob, [negotiatedId]);
    assert.ok(before.replay.every((r) => r.length > 0));
    giveUp.abort();
    await negotiated;
    await m.stop({ keepFiles: true });
    m = undefined;

    // --- Move: export from SQLite, migrate and import into a fresh PostgreSQL database.
    const exportFile = join(work, 'police.export.json');
    const ex = await cli(['export', '--config', join(sqliteDir, 'config.json'), '--out', exportFile]);
    assert.equal(ex.code, 0, ex.stderr);
    const doc = JSON.parse(readFileSync(exportFile, 'utf8')) as ExportDoc;
    assert.equal(doc.format, 'muster-export');
    assert.equal(doc.version, 1);
    assert.deepEqual(doc.system, { name: 'police', domain: D });
    assert.deepEqual(doc.store.outbox, [], 'every update reached the GMS before the stop');
    const lastEventId = doc.store.sequences.events;
    assert.equal(lastEventId, Math.max(...doc.store.events.map((e) => e.id)));
    assert.ok(doc.store.changes.some((c) => c.id === negotiatedId && c.state === 'asked'));
    // The co-located GMS on SQLite lists its own server's members from the affiliations: the dump holds them as rows
    // of that source with seq 0 (any later update of it is newer), and no row for alice's de-affiliation.
    assert.equal(doc.gms.affiliations.find((a) => a.userId === u('alice') && a.groupId === g('north')), undefined);
    const bobPatrol = doc.gms.affiliations.find((a) => a.userId === u('bob') && a.groupId === g('patrol'));
    assert.deepEqual(bobPatrol && [bobPatrol.status, bobPatrol.seq], ['affiliated', 0]);

    const pgConfig = config(pgUrl, port);
    const pgDir = mkdtempSync(join(work, 'pg-'));
    const pgConfigFile = join(pgDir, 'config.json');
    writeFileSync(pgConfigFile, JSON.stringify(pgConfig, null, 2));
    const mig = await cli(['migrate', '--config', pgConfigFile]);
    assert.equal(mig.code, 0, mig.stderr);
    const versions = POSTGRES_MIGRATIONS.map((_, i) => i + 1);
    assert.equal(mig.stdout, `police (postgres): schema version ${versions.length}, applied now: ${versions.join(', ')}\n`);
    const mig2 = await cli(['migrate', '--config', pgConfigFile, '--system', 'police']);
    assert.equal(mig2.stdout, `police (postgres): schema version ${versions.length}, up to date\n`);

    const notOurs = writeConfig('fire.json', { ...pgConfig, systems: [{ ...pgConfig.systems[0]!, domain: 'fire.example', users: [], groups: [] }] });
    const wrongDomain = await cli(['import', '--config', notOurs, '--in', exportFile]);
    assert.equal(wrongDomain.code, 1);
    assert.match(wrongDomain.stderr, /^muster: .*export of domain police\.example, not of system police \(fire\.example\)\n$/);
    const badFile = join(work, 'bad.json');
    writeFileSync(badFile, JSON.stringify({ ...doc, version: 2 }));
    const badVersion = await cli(['import', '--config', pgConfigFile, '--in', badFile]);
    assert.equal(badVersion.code, 1);
    assert.match(badVersion.stderr, /^muster: .*version 2; this muster reads version 1\n$/);
    // A display name the API would refuse (a control character) is refused by the import too, naming where it is.
    const raw = JSON.parse(readFileSync(exportFile, 'utf8')) as { gms: { groups: Record<string, unknown>[] } };
    raw.gms.groups[0] = { ...raw.gms.groups[0], displayName: 'North\u0000sector' };
    writeFileSync(badFile, JSON.stringify(raw));
    const badName = await cli(['import', '--config', pgConfigFile, '--in', badFile]);
    assert.equal(badName.code, 1);
    assert.match(badName.stderr, /^muster: .*\/gms\/groups\/0\/displayName must not contain control characters.*\n$/);

    const im = await cli(['import', '--config', pgConfigFile, '--in', exportFile]);
    assert.equal(im.code, 0, im.stderr);
    assert.match(im.stdout, /^police \(postgres\): imported \d+ affiliations/);
    const again = await cli(['import', '--config', pgConfigFile, '--in', exportFile]);
    assert.equal(again.code, 1, 'a store with data is refused');
    assert.match(again.stderr, /^muster: .*not empty.*\n$/);
    assert.equal(again.stdout, '');

    // --- After: the system on PostgreSQL answers as before.
    m = await Muster.start(pgConfig, pgDir, 'sqlite'); // one instance on the configured (PostgreSQL) store
    base = m.url('police');
    const health = await call('GET', `${base}/healthz`, undefined);
    assert.equal((health.body as { store?: string }).store, 'postgres:up');
    assert.deepEqual(await Promise.all(USERS.map(affiliations)), before.affiliations, 'affiliations (with their times) as before');
    assert.deepEqual(await Promise.all(GROUPS.map(gmsMembers)), before.gms, 'GMS member lists as before');
    const replay = await Promise.all(USERS.map((user, i) => readEvents(user, { lastEventId: 1, until: (e) => e.id === before.replay[i]!.at(-1)!.id })));
    assert.deepEqual(replay, before.replay, 'the event replay after Last-Event-ID as before');
    assert.deepEqual((await readEvents(u('bob'))).map((e) => e.data.id), [negotiatedId], 'the open negotiated change still waits for bob');

    // The open negotiated change can still be answered, and applies.
    const accept = await post(u('bob'), `affiliation-changes/${enc(negotiatedId)}/answer`, { accept: true });
    assert.equal(accept.status, 200, JSON.stringify(accept.body));
    assert.equal(accept.body.state, 'accepted');
    // The mandatory change is acknowledged now (it was stored as told).
    const ack = await post(u('carol'), `affiliation-changes/${enc(mandatory.body.id!)}/answer`, { accept: true });
    assert.equal(ack.status, 200, JSON.stringify(ack.body));
    assert.equal(ack.body.state, 'acknowledged');

    // Alice's de-affiliation from patrol, a membership the GMS listed before the move, leaves its list; and a client
    // resuming after the last imported event id gets the new events.
    const r = await post(u('alice'), 'affiliations', { mcServiceId: u('alice'), service: 'mcptt', groupIds: [g('north')] });
    assert.equal(r.body.status?.[0]?.status, 'affiliated', JSON.stringify(r.body));
    const left = await post(u('alice'), 'deaffiliations', { mcServiceId: u('alice'), service: 'mcptt', groupIds: [g('patrol')] });
    assert.equal(left.body.status?.[0]?.status, 'deaffiliated', JSON.stringify(left.body));
    const fresh = await readEvents(u('alice'), { lastEventId: lastEventId, until: (e) => e.type === 'affiliation-status' });
    assert.ok(fresh[0]!.id > lastEventId, `new event id ${fresh[0]!.id} is above the imported ${lastEventId}`);
    await gmsAgrees();
    assert.ok((await gmsMembers(g('north'))).some((x) => x.startsWith(`${u('alice')} `)), 'the GMS applied the new update');
    assert.ok(!(await gmsMembers(g('patrol'))).some((x) => x.startsWith(`${u('alice')} `)), 'the GMS no longer lists alice in patrol');
    assert.ok((await gmsMembers(g('north'))).some((x) => x.startsWith(`${u('bob')} `)), 'the accepted change reached the GMS');

    // And the store on PostgreSQL exports what it now holds, seqs above the imported ones.
    await m.stop({ keepFiles: true });
    m = undefined;
    const ex2 = await cli(['export', '--config', pgConfigFile]);
    assert.equal(ex2.code, 0, ex2.stderr);
    const doc2 = JSON.parse(ex2.stdout) as ExportDoc;
    assert.ok(doc2.store.sequences.outbox >= doc.store.sequences.outbox, 'the outbox sequence never goes back');
    assert.ok(doc2.store.sequences.events > doc.store.sequences.events);
    // The co-located GMS on PostgreSQL, too, lists its own server's members from the affiliations.
    const aliceRows = doc2.gms.affiliations.filter((a) => a.userId === u('alice')).map((a) => [a.groupId, a.status, a.seq]);
    assert.deepEqual(aliceRows, [[g('north'), 'affiliated', 0]]);
  });
});

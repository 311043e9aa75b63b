// Benchmark 4 (issue 6): SIP PUBLISH affiliation rate of Muster's SIP face against Kamailio's presence module, same
// sipp load in the same run. Each sipp call is one user's affiliation PUBLISH (1-4 groups) then the removal of that
// publication (de-affiliation), so every PUBLISH changes state; users come from an injection file of the 10,000
// users the Muster system knows. Muster trusts 127.0.0.1 (P-Asserted-Identity), so no credential is checked per
// PUBLISH; Kamailio checks none either. Kamailio runs twice: presence state in memory only (publ_cache 2), and written
// through to a fresh PostgreSQL database at each PUBLISH (publ_cache 1, db_postgres) as a durable deployment does;
// the database is created on 127.0.0.1:5432 for the run and dropped after. Needs sipp, kamailio, its presence and
// postgres modules, and the machine's PostgreSQL (see README).
//   node --import tsx bench/sip-publish.ts [--seconds 10] [--limit 64] [--users 10000] [--runs 3] [--kamailio-workers 2]
//   [--muster-only] (Muster alone, for profiling with MUSTER_SERVE_NODE_ARGS; no comparison)
// (three runs of 10 s per server, medians: about 2 min in all)
import { spawn, type ChildProcess } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Muster, ROOT, freePort, stopProcess } from '../test/support/harness.ts';
import { createTestDatabase, dropTestDatabases, withClient } from '../test/support/postgres.ts';
import { arg, benchConfig, cpuSecondsOf, groupCount, groupsOf, median, percentile, user, writeResults } from './workload.ts';

const SECONDS = arg('--seconds', 10);
const LIMIT = arg('--limit', 64);
const USERS = arg('--users', 10_000);
const RUNS = arg('--runs', 3);
const KAMAILIO_WORKERS = arg('--kamailio-workers', 2);
const MUSTER_ONLY = process.argv.includes('--muster-only');
const COMMAND = `node --import tsx bench/sip-publish.ts --seconds ${SECONDS} --limit ${LIMIT} --users ${USERS} --runs ${RUNS} --kamailio-workers ${KAMAILIO_WORKERS}`;
const PSI = 'sip:mc-server@bench.example';
const KAMAILIO_TABLES = '/usr/share/kamailio/dbtext/kamailio';
/** The schema kamailio-postgres-modules ships: the version table, then presence's tables (presentity among them). */
const KAMAILIO_PG_SCHEMA = ['standard-create.sql', 'presence-create.sql'].map((f) => join('/usr/share/kamailio/postgres', f));

interface SipFigures {
  what: string;
  /** PUBLISH transactions answered 200 per second (two per call). */
  publishPerSecond: number;
  p50: number;
  p99: number;
  calls: number;
  failedCalls: number;
  retransmissions: number;
  /**
   * CPU time the server's processes (all of Kamailio's, and for the written-through one its PostgreSQL backends;
   * Muster's one with its threads) used per second of the run.
   */
  serverCores: number;
  /** The same for sipp, the load generator (on the same cores): near 1, sipp's one thread bounds the rate. */
  sippCores: number;
}

const dir = mkdtempSync(join(tmpdir(), 'muster-bench-sip-'));

/** sipp's injection file: each user with the <mcpttPI10:affiliation/> elements of its 1-4 groups. */
function writeUsers(): string {
  const groups = groupCount(USERS);
  const lines = Array.from({ length: USERS }, (_, i) => `${user(i)};${groupsOf(i, groups).slice(0, 1 + (i % 4)).map((g) => `<mcpttPI10:affiliation group="${g}"/>`).join('')}`);
  const file = join(dir, 'users.csv');
  writeFileSync(file, `SEQUENTIAL\n${lines.join('\n')}\n`);
  return file;
}


/** The load generator of the run under way, if any: an interrupted run stops it too. */
let runningSipp: ReturnType<typeof spawn> | undefined;
/** Set once the clean-up has begun (the run ended or was interrupted). */
let cleaning: Promise<void> | undefined;
/**
 * Runs the PUBLISH load against 127.0.0.1:port for a first second (ramp-up, not counted) and SECONDS more, then
 * stops sipp, and reads its statistics (dumped every second) and the response time of each PUBLISH. sipp is stopped
 * rather than left to its -timeout: on quitting it waits for calls still open, which can take until their timers.
 */
async function publishLoad(what: string, port: number, usersFile: string, serverPids: number[]): Promise<SipFigures> {
  const work = mkdtempSync(join(dir, 'sipp-'));
  const args = [`127.0.0.1:${port}`, '-sf', join(ROOT, 'bench/sipp/publish-load.xml'), '-inf', usersFile, '-key', 'psi', PSI, '-t', 'u1', '-i', '127.0.0.1', '-p', String(await freePort()),
    // As fast as the server answers, at most LIMIT calls outstanding (a closed loop, like autocannon's connections).
    '-r', '100000', '-l', String(LIMIT), '-nostdin', '-trace_stat', '-stf', 'stat.csv', '-fd', '1', '-trace_rtt', '-rtt_freq', '100',
    // Why calls failed: sipp writes each unexpected message there (nothing when none fails).
    '-trace_err', '-error_file', 'errors.log'];
  const cpuBefore = cpuSecondsOf(...serverPids);
  const wallBefore = performance.now();
  let sippCores = NaN;
  await new Promise<void>((resolve) => {
    // Interrupted meanwhile: no new load generator that nothing would stop.
    if (cleaning) return resolve();
    const p = spawn('sipp', args, { cwd: work, stdio: 'ignore' });
    runningSipp = p;
    const stop = setTimeout(() => {
      sippCores = cpuSecondsOf(p.pid!) / ((performance.now() - wallBefore) / 1000);
      p.kill('SIGTERM');
    }, (SECONDS + 1.5) * 1000);
    const kill = setTimeout(() => p.kill('SIGKILL'), (SECONDS + 10) * 1000);
    p.on('exit', () => {
      clearTimeout(stop);
      clearTimeout(kill);
      runningSipp = undefined;
      resolve();
    });
  });
  const serverCores = (cpuSecondsOf(...serverPids) - cpuBefore) / ((performance.now() - wallBefore) / 1000);
  const rows = readFileSync(join(work, 'stat.csv'), 'utf8').trim().split('\n').map((l) => l.split(';'));
  const header = rows[0]!;
  const col = (row: string[], name: string): string => row[header.indexOf(name)] ?? '';
  const at = (row: string[]): number => Number(col(row, 'CurrentTime').split('\t')[2]);
  const succeeded = (row: string[]): number => Number(col(row, 'SuccessfulCall(C)'));
  // The counted window: from the first dump after one second to the last dump.
  const first = rows.slice(1).find((r) => at(r) - at(rows[1]!) >= 1);
  const last = rows[rows.length - 1]!;
  const seconds = first ? at(last) - at(first) : NaN;
  if (!first || !(seconds > 0)) throw new Error(`sipp left too few statistics for ${what}: ${rows.length - 1} dumps`);
  const calls = succeeded(last) - succeeded(first);
  // Response time of every PUBLISH (rtd 1: the affiliation, rtd 2: the removal), whole milliseconds.
  const rttFile = readdirSync(work).find((f) => f.endsWith('_rtt.csv'));
  const rtts = rttFile ? readFileSync(join(work, rttFile), 'utf8').trim().split('\n').slice(1).map((l) => Number(l.split(';')[1])).sort((a, b) => a - b) : [];
  const failedCalls = Number(col(last, 'FailedCall(C)'));
  if (failedCalls > 0) console.error(`${what}: ${failedCalls} failed calls; their answers, counted by status line: ${failureSummary(join(work, 'errors.log'))}`);
  return { what, publishPerSecond: (2 * calls) / seconds, p50: percentile(rtts, 0.5), p99: percentile(rtts, 0.99), calls, failedCalls, retransmissions: Number(col(last, 'Retransmissions(C)')), serverCores, sippCores };
}

/** sipp's error file, counted by what was expected and what came instead (e.g. 200 at index 3, got a 500). */
function failureSummary(file: string): string {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return 'no error file';
  }
  const counts = new Map<string, number>();
  // The received message's first line runs to the end of the line (a reason phrase may hold an apostrophe).
  for (const m of text.matchAll(/while expecting '([^']*)' \(index ([0-9]+)\), received '([^\r\n]*)/g)) {
    const key = `expected ${m[1]} at index ${m[2]}, got "${m[3]!.replace(/'$/, '').trim()}"`;
    counts.set(key, (counts.get(key) ?? 0) + 1);
  }
  return counts.size === 0 ? `none recognised in ${text.length} bytes` : [...counts].sort((a, b) => b[1] - a[1]).slice(0, 5).map(([line, n]) => `${n}× ${line}`).join('; ');
}


/**
 * Kamailio with presence + presence_xml on loopback UDP, in the foreground, its own runtime directory; its tables
 * either db_text files (presence state in memory) or the PostgreSQL database at postgresUrl (written through).
 */
async function startKamailio(port: number, postgresUrl?: string): Promise<{ proc: ChildProcess; output: () => string }> {
  const run = mkdtempSync(join(dir, 'kamailio-'));
  let database: string[];
  if (postgresUrl) database = ['-A', 'WITH_POSTGRES', '-A', `DBURL="${postgresUrl}"`];
  else {
    const db = join(run, 'db');
    mkdirSync(db);
    for (const table of ['version', 'presentity', 'active_watchers', 'watchers', 'xcap']) copyFileSync(join(KAMAILIO_TABLES, table), join(db, table));
    database = ['-A', `DBURL="text://${db}"`];
  }
  // Shared memory 1 GiB: each transaction lives on for tm's wait timer (5 s), a few KiB each at thousands per second.
  const proc = spawn('kamailio', ['-f', join(ROOT, 'bench/kamailio/kamailio.cfg'), '-DD', '-E', '-l', `udp:127.0.0.1:${port}`, '-Y', run, '-P', join(run, 'kamailio.pid'), '-n', String(KAMAILIO_WORKERS), '-m', '1024', '-M', '16', ...database], { stdio: ['ignore', 'ignore', 'pipe'] });
  let output = '';
  proc.stderr.on('data', (c: Buffer) => (output += c.toString()));
  await untilAnswers(port, () => output);
  return { proc, output: () => output };
}

/** Loads Kamailio's presence schema into the written-through Kamailio's fresh database. */
async function loadKamailioSchema(url: string): Promise<void> {
  await withClient(url, async (client) => {
    for (const file of KAMAILIO_PG_SCHEMA) await client.query(readFileSync(file, 'utf8'));
  });
}

/** The PostgreSQL backends serving Kamailio's connections to its database (children of the postmaster, not of Kamailio). */
async function backendPids(url: string): Promise<number[]> {
  const backends = await withClient(url, (client) => client.query<{ pid: number }>('SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()'));
  return backends.rows.map((r) => r.pid);
}

/**
 * What the written-through Kamailio left in PostgreSQL: presentity rows now, and the rows inserted and deleted
 * in all (PostgreSQL's statistics, complete once Kamailio's connections have closed).
 */
async function presentityCounts(url: string): Promise<{ rows: number; inserted: number; deleted: number }> {
  return withClient(url, async (client) => {
    // A backend reports its statistics as it ends: wait (at most 5 s) until Kamailio's have ended.
    for (let i = 0; i < 50; i++) {
      const others = await client.query<{ n: string }>('SELECT count(*) AS n FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()');
      if (Number(others.rows[0]?.n) === 0) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    const rows = await client.query<{ n: string }>('SELECT count(*) AS n FROM presentity');
    const stats = await client.query<{ ins: string; del: string }>("SELECT n_tup_ins AS ins, n_tup_del AS del FROM pg_stat_user_tables WHERE relname = 'presentity'");
    return { rows: Number(rows.rows[0]?.n), inserted: Number(stats.rows[0]?.ins), deleted: Number(stats.rows[0]?.del) };
  });
}

/** Waits (at most 10 s) until a SIP server on 127.0.0.1:port answers an OPTIONS. */
async function untilAnswers(port: number, output: () => string): Promise<void> {
  const socket = createSocket('udp4');
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
  const local = socket.address().port;
  try {
    const answered = new Promise<void>((resolve) => socket.once('message', () => resolve()));
    for (let i = 0; i < 50; i++) {
      const options = `OPTIONS ${PSI} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:${local};branch=z9hG4bK-ready-${i}\r\nFrom: <sip:bench@bench.example>;tag=ready\r\nTo: <${PSI}>\r\nCall-ID: ready-${i}\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n`;
      socket.send(options, port, '127.0.0.1');
      const ok = await Promise.race([answered.then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), 200))]);
      if (ok) return;
    }
    throw new Error(`no SIP answer on port ${port} in 10 s:\n${output()}`);
  } finally {
    socket.close();
  }
}


const usersFile = writeUsers();
const [musterSip, kamailioSip, kamailioPgSip] = [await freePort(), await freePort(), await freePort()];
const m = await Muster.start(benchConfig(USERS, await freePort(), { sip: { port: musterSip, trustedPeers: ['127.0.0.1'], transports: ['udp'] } }), undefined, 'sqlite');
let kamailio: Awaited<ReturnType<typeof startKamailio>> | undefined;
let kamailioPg: Awaited<ReturnType<typeof startKamailio>> | undefined;
let kamailioDb: { name: string; url: string } | undefined;
/** Once, whether the run ends or is interrupted: the servers stopped, Kamailio's database dropped, the files gone. */
function cleanUp(): Promise<void> {
  cleaning ??= (async () => {
    runningSipp?.kill('SIGKILL');
    if (kamailio) await stopProcess(kamailio.proc);
    if (kamailioPg) await stopProcess(kamailioPg.proc);
    // A database left behind is worth a message, not skipping the rest of the clean-up.
    if (kamailioDb) await dropTestDatabases([kamailioDb.name]).catch((e: unknown) => console.error(`could not drop ${kamailioDb!.name}:`, e));
    await m.stop();
    rmSync(dir, { recursive: true, force: true });
  })();
  return cleaning;
}
// Ctrl-C in the middle of a run: clean up as at its end, then exit as interrupted.
process.once('SIGINT', () => void cleanUp().finally(() => process.exit(130)));
try {
  if (MUSTER_ONLY) {
    for (let r = 0; r < RUNS; r++) console.log(JSON.stringify(await publishLoad('muster SIP face', musterSip, usersFile, [m.pids[0]!])));
  } else await compare();
} finally {
  await cleanUp();
}

async function compare(): Promise<void> {
  kamailio = await startKamailio(kamailioSip);
  kamailioDb = await createTestDatabase(`muster_bench_kamailio_${process.pid}`);
  await loadKamailioSchema(kamailioDb.url);
  kamailioPg = await startKamailio(kamailioPgSip, kamailioDb.url);
  // Each run's figures in this order, whatever order the servers ran in.
  const servers: (() => Promise<SipFigures>)[] = [
    () => publishLoad('kamailio presence (in memory)', kamailioSip, usersFile, [kamailio!.proc.pid!]),
    async () => publishLoad('kamailio presence (PostgreSQL, written through at each PUBLISH)', kamailioPgSip, usersFile, [kamailioPg!.proc.pid!, ...(await backendPids(kamailioDb!.url))]),
    () => publishLoad('muster SIP face (SQLite, WAL synced before each answer)', musterSip, usersFile, [m.pids[0]!]),
  ];
  const runs: SipFigures[][] = [];
  for (let r = 0; r < RUNS; r++) {
    // Alternating the order, so no server always runs on the warmer (or noisier) part of the run.
    const order = r % 2 === 0 ? [0, 1, 2] : [2, 1, 0];
    const figures: SipFigures[] = [];
    for (const k of order) figures[k] = await servers[k]!();
    runs.push(figures);
  }
  // Kamailio's connections closed first, so PostgreSQL's statistics hold all of its writes.
  await stopProcess(kamailioPg.proc);
  const presentity = await presentityCounts(kamailioDb.url);
  const rows = [0, 1, 2].map((k) => ({
    what: runs[0]![k]!.what,
    publishPerSecond: median(runs.map((p) => p[k]!.publishPerSecond)),
    p50: median(runs.map((p) => p[k]!.p50)),
    p99: median(runs.map((p) => p[k]!.p99)),
    calls: median(runs.map((p) => p[k]!.calls)),
    failedCalls: Math.max(...runs.map((p) => p[k]!.failedCalls)),
    retransmissions: Math.max(...runs.map((p) => p[k]!.retransmissions)),
    serverCores: median(runs.map((p) => p[k]!.serverCores)),
    sippCores: median(runs.map((p) => p[k]!.sippCores)),
  }));
  const ratio = rows[2]!.publishPerSecond / rows[0]!.publishPerSecond;
  const ratioPostgres = rows[2]!.publishPerSecond / rows[1]!.publishPerSecond;
  console.log(
    [
      `\nSIP PUBLISH affiliation, ${USERS} users, sipp over UDP, at most ${LIMIT} calls outstanding, ${SECONDS} s each${RUNS > 1 ? `, medians of ${RUNS} runs` : ''}`,
      '| server | PUBLISH/s | p50 ms | p99 ms | calls | failed calls | retransmissions | server CPU (cores) | sipp CPU (cores) |',
      '|---|---|---|---|---|---|---|---|---|',
      ...rows.map((r) => `| ${r.what} | ${Math.round(r.publishPerSecond)} | ${r.p50} | ${r.p99} | ${r.calls} | ${r.failedCalls} | ${r.retransmissions} | ${r.serverCores.toFixed(2)} | ${r.sippCores.toFixed(2)} |`),
    ].join('\n'),
  );
  console.log(
    [
      `ratio muster / kamailio in memory: ${(ratio * 100).toFixed(1)} %`,
      `ratio muster / kamailio PostgreSQL: ${(ratioPostgres * 100).toFixed(1)} %`,
      `kamailio PostgreSQL presentity: ${presentity.inserted} rows inserted, ${presentity.deleted} deleted, ${presentity.rows} left at the end`,
      `command: ${COMMAND}`,
    ].join('\n'),
  );
  writeResults('sip-publish', { command: COMMAND, users: USERS, rows, runs, ratio, ratioPostgres, kamailioPostgresPresentity: presentity });
}

// Waiting negotiations (issue 6): what the store's reads of change requests cost when many negotiated changes wait
// for their targets at once (an incident commander moving hundreds of responders in negotiated mode). Two reads
// happen all the time: the expiry round every second (the asked changes past their deadline) and, at each target's
// publication or answer, that target's waiting changes. Prints the median time of each on the embedded store, and
// of reading every asked change, which is what the expiry round did before it had an index of its own.
//   node --import tsx bench/negotiations.ts [--changes 10000] [--rounds 50]
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openSqlite, SqliteStore } from '../src/adapters/sqlite-store.ts';
import type { McUri } from '../src/domain/ids.ts';
import type { ChangeRecord } from '../src/ports/store.ts';
import { arg, group, median, user, writeResults } from './workload.ts';

const CHANGES = arg('--changes', 10_000);
const ROUNDS = arg('--rounds', 50);
if (!(Number.isInteger(CHANGES) && CHANGES > 0 && Number.isInteger(ROUNDS) && ROUNDS > 0)) throw new Error('--changes and --rounds: positive integers');
const COMMAND = `node --import tsx bench/negotiations.ts --changes ${CHANGES} --rounds ${ROUNDS}`;

const dir = mkdtempSync(join(tmpdir(), 'muster-bench-negotiations-'));
const store = new SqliteStore(openSqlite(join(dir, 'muster.db')));
try {
  const now = Date.now();
  const changes: ChangeRecord[] = Array.from({ length: CHANGES }, (_, i) => ({
    id: `n${i}`, target: user(i) as McUri, actor: user(CHANGES) as McUri, service: 'mcptt', mode: 'negotiated',
    affiliate: [group(i % 100) as McUri], deaffiliate: [], state: 'asked', deadline: now + 60_000, result: null, createdAt: now,
  }));
  await store.createChanges(changes, []);
  const timed = async (read: (round: number) => Promise<unknown>): Promise<number> => {
    const ms: number[] = [];
    for (let round = 0; round < ROUNDS; round++) {
      const started = performance.now();
      await read(round);
      ms.push(performance.now() - started);
    }
    return Math.round(median(ms) * 1000) / 1000;
  };
  const rows = [
    { what: 'expiry round: asked changes past their deadline (none yet)', ms: await timed(() => store.changesPastDeadline(now, 500)) },
    { what: "one target's waiting changes (at its publication or answer)", ms: await timed((round) => store.changesInState('asked', user((round * 7919) % CHANGES) as McUri)) },
    { what: 'every asked change (the expiry round before its index; still the read at start-up)', ms: await timed(() => store.changesInState('asked')) },
  ];
  console.log(`\nChange-request reads on SQLite with ${CHANGES} negotiations waiting, median of ${ROUNDS}`);
  console.log('| read | ms |');
  console.log('|---|---|');
  for (const r of rows) console.log(`| ${r.what} | ${r.ms} |`);
  console.log(`command: ${COMMAND}`);
  writeResults('negotiations', { command: COMMAND, changes: CHANGES, rows });
} finally {
  await store.close();
  rmSync(dir, { recursive: true, force: true });
}

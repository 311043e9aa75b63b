// Issue 5's benchmark: affiliation throughput of one system on embedded SQLite, on PostgreSQL with one instance,
// and on PostgreSQL + NATS with two instances behind a round-robin balancer, same workload and same run.
//   node --import tsx bench/scale-out.ts [--seconds 10] [--connections 64] [--users 10000]
import { Muster, freePort } from '../test/support/harness.ts';
import { createTestDatabase, dropTestDatabases } from '../test/support/postgres.ts';
import { affiliationRequests, arg, benchConfig, load, table, tokensOf, writeResults, type Figures } from './workload.ts';

const SECONDS = arg('--seconds', 10);
const CONNECTIONS = arg('--connections', 64);
const USERS = arg('--users', 10_000);
const COMMAND = `node --import tsx bench/scale-out.ts --seconds ${SECONDS} --connections ${CONNECTIONS} --users ${USERS}`;

async function measure(what: string, instances: 1 | 2): Promise<{ what: string } & Figures> {
  const config = benchConfig(USERS, await freePort());
  // The harness's 'postgres' mode is two instances behind a balancer; a single PostgreSQL instance is set up below.
  const m = await Muster.start(config, undefined, instances === 2 ? 'postgres' : 'sqlite');
  try {
    const tokens = await tokensOf(m, USERS);
    return { what, ...(await load(m.url(), affiliationRequests(USERS, tokens), { seconds: SECONDS, connections: CONNECTIONS })) };
  } finally {
    await m.stop();
  }
}

async function measurePostgresSingle(): Promise<{ what: string } & Figures> {
  const db = await createTestDatabase('muster_bench');
  try {
    const config = benchConfig(USERS, await freePort());
    config.systems[0]!.store = db.url;
    const m = await Muster.start(config, undefined, 'sqlite');
    try {
      const tokens = await tokensOf(m, USERS);
      return { what: 'PostgreSQL, one instance', ...(await load(m.url(), affiliationRequests(USERS, tokens), { seconds: SECONDS, connections: CONNECTIONS })) };
    } finally {
      await m.stop();
    }
  } finally {
    await dropTestDatabases([db.name]);
  }
}

const rows = [await measure('embedded SQLite, one instance', 1), await measurePostgresSingle(), await measure('PostgreSQL + NATS, two instances behind a balancer', 2)];
console.log(table(`\nScale-out, ${USERS} users, ${CONNECTIONS} connections, ${SECONDS} s each`, rows));
console.log(`command: ${COMMAND}`);
writeResults('scale-out', { command: COMMAND, users: USERS, rows });

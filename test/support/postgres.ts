// The machine's PostgreSQL for tests and benchmarks: a fresh database per run, dropped at the end, and a clear
// failure (never a skip) when the server is not running.
import { randomBytes } from 'node:crypto';
import pg from 'pg';

export const PG_ADMIN_URL = 'postgres://postgres@127.0.0.1:5432/postgres';
export const PG_REQUIRED =
  'PostgreSQL at 127.0.0.1:5432 is required' +
  (process.env['CI'] ? ' in CI' : ' (it runs on every machine here)') +
  '; start it with: pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start';

/** Connects to a database of the machine's server (by default `postgres`), or fails with how to start PostgreSQL. */
export async function adminClient(url = PG_ADMIN_URL): Promise<pg.Client> {
  const admin = new pg.Client({ connectionString: url, connectionTimeoutMillis: 3000 });
  try {
    await admin.connect();
  } catch (e) {
    await admin.end().catch(() => undefined);
    throw new Error(`${PG_REQUIRED} (${e instanceof Error ? e.message || e.name : String(e)})`, { cause: e });
  }
  return admin;
}

/** Runs `work` on a connection to `url` and closes it, whatever `work` does. */
export async function withClient<T>(url: string, work: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = await adminClient(url);
  try {
    return await work(client);
  } finally {
    await client.end();
  }
}

/** A new empty database; its name and the URL to reach it. */
export async function createTestDatabase(prefix = 'muster_test'): Promise<{ name: string; url: string }> {
  const name = `${prefix}_${randomBytes(6).toString('hex')}`;
  await withClient(PG_ADMIN_URL, (admin) => admin.query(`CREATE DATABASE ${name}`));
  return { name, url: `postgres://postgres@127.0.0.1:5432/${name}` };
}

export async function dropTestDatabases(names: readonly string[]): Promise<void> {
  if (names.length === 0) return;
  await withClient(PG_ADMIN_URL, async (admin) => {
    for (const name of names) await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
  });
}

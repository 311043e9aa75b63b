// The PostgreSQL connection pool of the shared store: its bounds, one transaction helper, and the mapping of a
// database that is down or unreachable to MusterError('unavailable').
import pg from 'pg';
import { MusterError } from '../domain/errors.ts';

/** Pool settings: a database that is down costs a request at most the connection timeout, a stuck one the statement timeout. */
export function postgresPoolConfig(url: string): pg.PoolConfig {
  return {
    connectionString: url,
    max: 10,
    connectionTimeoutMillis: 3000,
    statement_timeout: 10_000,
    // Client-side bound for a network that drops packets silently (no RST): the server-side timeout never answers then.
    query_timeout: 15_000,
    idleTimeoutMillis: 30_000,
    keepAlive: true,
    application_name: 'muster',
  };
}

/** A pool whose idle connections may die (database restart) without crashing the process: the next query reports it. */
export function newPool(url: string, overrides: pg.PoolConfig = {}): pg.Pool {
  const pool = new pg.Pool({ ...postgresPoolConfig(url), ...overrides });
  pool.on('error', () => undefined);
  return pool;
}

/** How often a transaction the database aborted as a deadlock victim is run again (only possible when one write's events go to several users). */
const DEADLOCK_ATTEMPTS = 3;

/** Runs `work` between BEGIN and COMMIT; rolls back on any error and runs it again if it lost a deadlock. */
export async function inTransaction<T>(pool: pg.Pool, work: (c: pg.PoolClient) => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt += 1) {
    let c: pg.PoolClient;
    try {
      c = await pool.connect();
    } catch (e) {
      throw toStoreError(e);
    }
    try {
      await c.query('BEGIN');
      const result = await work(c);
      await c.query('COMMIT');
      c.release();
      return result;
    } catch (e) {
      // A connection that cannot even roll back is broken: destroy it rather than return it to the pool.
      const broken = await c.query('ROLLBACK').then(
        () => false,
        () => true,
      );
      c.release(broken);
      if (sqlState(e) === '40P01' && attempt < DEADLOCK_ATTEMPTS) continue;
      throw toStoreError(e);
    }
  }
}

/** Rows per INSERT ... SELECT FROM unnest(...) statement of a restore. */
const RESTORE_CHUNK = 5000;

/**
 * Inserts `count` rows, RESTORE_CHUNK per statement, as columns unnested from one array parameter each
 * (`types`: their PostgreSQL element types). `row(i)` gives the values of row i in column order.
 */
export async function insertColumns(c: pg.PoolClient, into: string, types: string[], count: number, row: (i: number) => unknown[]): Promise<void> {
  const unnest = types.map((t, i) => `$${i + 1}::${t}[]`).join(', ');
  for (let start = 0; start < count; start += RESTORE_CHUNK) {
    const columns: unknown[][] = types.map(() => []);
    for (let i = start; i < Math.min(count, start + RESTORE_CHUNK); i += 1) row(i).forEach((v, k) => columns[k]!.push(v));
    await c.query(`INSERT INTO ${into} SELECT * FROM unnest(${unnest})`, columns);
  }
}

const NETWORK_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN', 'EPIPE', 'ECONNABORTED']);
const NETWORK_MESSAGES = /timeout exceeded when trying to connect|Connection terminated|Query read timeout|Client has encountered a connection error|Client was closed|Cannot use a pool after calling end/i;

function sqlState(e: unknown): string {
  const code = (e as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : '';
}

/**
 * A database that is down, unreachable, shutting down, overloaded or too slow becomes MusterError('unavailable');
 * anything else (a bug, a constraint violation, an error of `decide`) passes unchanged.
 */
export function toStoreError(e: unknown): unknown {
  if (e instanceof MusterError) return e;
  const code = sqlState(e);
  const message = e instanceof Error ? e.message : String(e);
  const unavailable =
    NETWORK_CODES.has(code) ||
    // connection exception, no such database or role (cannot serve), insufficient resources, shutdown or restart
    /^(08|28|3D|53|57P)/.test(code) ||
    code === '57014' || // query_canceled: statement_timeout
    (code === '' && NETWORK_MESSAGES.test(message)) ||
    (e instanceof AggregateError && e.errors.some((x) => NETWORK_CODES.has(sqlState(x))));
  return unavailable ? new MusterError('unavailable', `store unavailable: ${code ? `${code} ` : ''}${message || 'no connection'}`) : e;
}


// `muster migrate`: applies the missing schema migrations to the store of each configured system (opening a store
// does that; this does it without starting the server) and prints the schema version per system.
import type { Command } from 'commander';
import { loadConfig, type SystemConfig } from '../../config/config.ts';
import type { Store } from '../../ports/store.ts';
import { UsageError } from '../exit-codes.ts';
import { DEFAULT_CONFIG } from './token.ts';

interface MigrateOptionValues {
  config: string;
  system?: string;
}

export function registerMigrate(program: Command): void {
  program
    .command('migrate')
    .description('apply missing schema migrations to the store of every configured system (or one); prints "<name> (<store kind>): schema version N ..." per system')
    .option('--config <file>', 'configuration file (YAML or JSON)', DEFAULT_CONFIG)
    .option('--system <name>', 'only this system')
    .addHelpText('after', '\n`muster serve` applies them too when it starts; this is for doing it beforehand (e.g. before `muster import`).')
    .action(async (values: MigrateOptionValues) => {
      const all = loadConfig(values.config);
      const systems = values.system === undefined ? all : all.filter((s) => s.name === values.system);
      if (systems.length === 0) throw new UsageError(`no system ${values.system ?? ''} in ${values.config} (systems: ${all.map((s) => s.name).join(', ')})`);
      for (const config of systems) process.stdout.write(`${await migrateOne(config)}\n`);
    });
}

/** Opens (and so migrates) one system's store; the line that says what its schema is now. */
async function migrateOne(config: SystemConfig): Promise<string> {
  // Loaded only here, so the client commands start without the server's code.
  const { openStores } = await import('../../system.ts');
  const started = Date.now();
  const stores = await openStores(config);
  try {
    const { versions, known } = await schemaVersions(stores.store);
    const current = Math.max(0, ...versions.map((v) => v.version));
    const now = versions.filter((v) => v.appliedAt >= started).map((v) => v.version);
    const what = now.length > 0 ? `applied now: ${now.join(', ')}` : 'up to date';
    const newer = current > known ? `; newer than this muster knows (${known})` : '';
    return `${config.name} (${stores.store.kind}): schema version ${current}, ${what}${newer}`;
  } finally {
    await stores.close();
  }
}

/** The applied schema versions of a store (its schema_migrations table) and how many this code knows. */
async function schemaVersions(store: Store): Promise<{ versions: { version: number; appliedAt: number }[]; known: number }> {
  const { SqliteStore } = await import('../../adapters/sqlite-store.ts');
  if (store instanceof SqliteStore) {
    const { SQLITE_MIGRATIONS } = await import('../../adapters/sqlite-migrations.ts');
    const rows = store.db.prepare('SELECT version, applied_at FROM schema_migrations ORDER BY version').all() as { version: number; applied_at: number }[];
    return { versions: rows.map((r) => ({ version: r.version, appliedAt: r.applied_at })), known: SQLITE_MIGRATIONS.length };
  }
  const { PostgresStore } = await import('../../adapters/postgres-store.ts');
  if (store instanceof PostgresStore) {
    const { POSTGRES_MIGRATIONS } = await import('../../adapters/postgres-migrations.ts');
    const { rows } = await store.pool.query<{ version: number; applied_at: string }>('SELECT version, applied_at FROM schema_migrations ORDER BY version');
    return { versions: rows.map((r) => ({ version: r.version, appliedAt: Number(r.applied_at) })), known: POSTGRES_MIGRATIONS.length };
  }
  throw new Error(`cannot read the schema version of a ${store.kind} store`);
}

// Two instances of one MC system on one store, in the test's own process: two McSystems on one fresh PostgreSQL
// database (each with its own caches, and its own per-user lock in a face), or one McSystem on SQLite seen twice.
// And the gates a test forces an interleaving of the two with: never a sleep.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { resolveConfig } from '../../src/config/config.ts';
import { McSystem } from '../../src/system.ts';
import type { Store } from '../../src/ports/store.ts';
import { createTestDatabase, dropTestDatabases } from './postgres.ts';

/** A promise and its resolver: a gate the test opens, or a signal the code under test gives. */
export function deferred(): { promise: Promise<void>; resolve: () => void } {
  let resolve = (): void => undefined;
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve };
}

/**
 * Opens `system` (one entry of a configuration's `systems`) twice on one store and runs `work` with both; on SQLite
 * `a` and `b` are the same McSystem. Stopped, and the database dropped, whatever `work` does.
 */
export async function twoInstancesOf(kind: 'postgres' | 'sqlite', system: Record<string, unknown>, work: (a: McSystem, b: McSystem) => Promise<void>): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'muster-two-instances-'));
  const opened: McSystem[] = [];
  let database: string | undefined;
  try {
    let store: string | undefined;
    if (kind === 'postgres') {
      const db = await createTestDatabase();
      database = db.name;
      store = db.url;
    }
    const [config] = resolveConfig({ dataDir: dir, systems: [{ ...system, ...(store ? { store } : {}) }] });
    for (let i = 0; i < (kind === 'postgres' ? 2 : 1); i++) opened.push(await McSystem.open(config!, { log: pino({ level: 'silent' }) }));
    await work(opened[0]!, opened[opened.length - 1]!);
  } finally {
    for (const s of opened.reverse()) await s.stop();
    if (database) await dropTestDatabases([database]);
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * `store` as one instance sees it: a method the test replaces on the view (to hold or watch that instance's reads
 * and writes) is replaced there only, also where both instances share one SQLite store.
 */
export function storeView(store: Store): Store {
  const own = new Map<PropertyKey, unknown>();
  return new Proxy(store, {
    get: (target, p) => {
      if (own.has(p)) return own.get(p);
      const v: unknown = Reflect.get(target, p, target);
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
    set: (_target, p, v) => (own.set(p, v), true),
  });
}

/**
 * The next read of the user's groups at `store` is held: `reached` is called before it reads (`when: 'before'`) or
 * once its rows are in (`'after'`), then it waits for `open` (none: it goes on at once, only watched). One read only:
 * later reads pass, also the other instance's where both share one SQLite store.
 */
export function holdNextGroupsRead(store: Store, gate: { when: 'before' | 'after'; reached: () => void; open?: Promise<void> }): void {
  const affiliationsOfUser = store.affiliationsOfUser.bind(store);
  store.affiliationsOfUser = async (...args) => {
    store.affiliationsOfUser = affiliationsOfUser;
    if (gate.when === 'before') {
      gate.reached();
      await gate.open;
      return affiliationsOfUser(...args);
    }
    const rows = await affiliationsOfUser(...args);
    gate.reached();
    await gate.open;
    return rows;
  };
}

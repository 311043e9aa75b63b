// One MC system opened in the test's own process on a fresh SQLite file (no process, no listening socket): for the
// procedures on a real store, GMS and notifier. Removed again whatever `work` does.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { resolveConfig } from '../../src/config/config.ts';
import { McSystem } from '../../src/system.ts';
import type { McUri } from '../../src/domain/ids.ts';

/** `system`: one entry of a configuration's `systems` (validated as a configuration file would be). */
export async function withSystem(system: Record<string, unknown>, work: (system: McSystem) => Promise<void>): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'muster-in-process-'));
  try {
    const [config] = resolveConfig({ dataDir: dir, systems: [system] });
    const opened = await McSystem.open(config!, { log: pino({ level: 'silent' }) });
    try {
      await work(opened);
    } finally {
      await opened.stop();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** police.example, the system of the in-process procedure tests: an ID of it, and an entry with the test's own keys. */
export const POLICE = 'police.example';
export const policeId = (name: string): McUri => `sip:${name}@${POLICE}` as McUri;
export function policeSystem<T extends Record<string, unknown>>(keys: T): T & { name: string; domain: string } {
  return { name: 'police', domain: POLICE, http: { port: 0 }, secret: 'police-secret', ...keys };
}

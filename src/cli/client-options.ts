// The options every client command shares (CONTRACT.md "Running it"): server, credential, caller, MC service, output.
import { Option, type Command } from 'commander';
import { decodeJwt } from 'jose';
import { MC_SERVICES, type McService } from '../domain/services.ts';
import { MusterClient } from '../client/muster-client.ts';
import { UsageError } from './exit-codes.ts';

export const DEFAULT_SERVER = 'http://127.0.0.1:8080';

export interface ClientOptionValues {
  server: string;
  token?: string;
  as?: string;
  service: McService;
  json?: boolean;
  timeout?: string;
}

export interface ClientContext {
  client: MusterClient;
  /** The caller's MC service ID: --as, else the credential's subject. */
  caller: string;
  service: McService;
  json: boolean;
}

export function addClientOptions(cmd: Command): Command {
  return cmd
    .addOption(new Option('--server <url>', "the user's home MC system").env('MUSTER_SERVER').default(DEFAULT_SERVER))
    .addOption(new Option('--token <credential>', 'bearer credential (muster token --user ID)').env('MUSTER_TOKEN'))
    .addOption(new Option('--as <user>', "the caller's MC service ID (default: the credential's subject)"))
    .addOption(new Option('--service <service>', 'MC service').choices(MC_SERVICES).default('mcptt'))
    .addOption(new Option('--timeout <seconds>', 'seconds to wait for an answer (default 15; a change waits at least 120)'))
    .option('--json', 'print the JSON answer on stdout');
}

export function clientContext(values: ClientOptionValues): ClientContext {
  if (!values.token) throw new UsageError('no credential: give --token or set MUSTER_TOKEN (muster token --user ID prints one)');
  const caller = values.as ?? subjectOf(values.token);
  let timeoutMs: number | undefined;
  if (values.timeout !== undefined) {
    const seconds = Number(values.timeout);
    if (!Number.isFinite(seconds) || seconds <= 0) throw new UsageError(`--timeout ${values.timeout} is not a positive number of seconds`);
    timeoutMs = Math.round(seconds * 1000);
  }
  const client = new MusterClient({ server: values.server, token: values.token, ...(timeoutMs !== undefined ? { timeoutMs } : {}) });
  return { client, caller, service: values.service, json: values.json === true };
}

/** The `sub` claim of the credential, read without verifying it (the server verifies). */
export function subjectOf(token: string): string {
  let sub: unknown;
  try {
    sub = decodeJwt(token).sub;
  } catch {
    throw new UsageError('the credential is not a JWT; give --as USER or a credential from muster token');
  }
  if (typeof sub !== 'string' || sub === '') throw new UsageError('the credential names no subject; give --as USER');
  return sub;
}

/** Collects a repeatable option into a list. */
export const collect = (value: string, previous: string[] = []): string[] => [...previous, value];

export function printJson(value: unknown): void {
  process.stdout.write(JSON.stringify(value) + '\n');
}

export function printLines(lines: readonly string[]): void {
  if (lines.length > 0) process.stdout.write(lines.join('\n') + '\n');
}

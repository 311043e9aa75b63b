#!/usr/bin/env node
// The `muster` command line (CONTRACT.md "Running it"): client flows, credentials, and serving the systems.
// Every error ends as one line on stderr, `muster: <reason>`, and a non-zero exit code (exit-codes.ts).
import { Command, CommanderError } from 'commander';
import { MusterClientError } from '../client/muster-client.ts';
import { ConfigError } from '../config/config.ts';
import { EXIT, EXIT_HELP, UsageError } from './exit-codes.ts';
import { registerAffiliate } from './commands/affiliate.ts';
import { registerChange } from './commands/change.ts';
import { registerWatch } from './commands/watch.ts';
import { registerStatus } from './commands/status.ts';
import { registerToken } from './commands/token.ts';
import { registerServe } from './commands/serve.ts';
import { registerMigrate } from './commands/migrate.ts';
import { registerExportImport } from './commands/export-import.ts';
import { registerSip } from './commands/sip.ts';
import { registerResync } from './commands/resync.ts';
import { registerOperatorChanges } from './commands/operator-changes.ts';

export function musterProgram(): Command {
  const program = new Command('muster')
    .description('Muster: 3GPP MCX group affiliation — MC service server, GMS and client')
    .exitOverride()
    .configureOutput({ outputError: (text, write) => write(`muster: ${text.replace(/^error: /, '')}`) })
    .addHelpText('after', `\nClient commands take --server, --token, --as, --service and --json (see muster help <command>).\n\n${EXIT_HELP}`);
  registerAffiliate(program);
  registerChange(program);
  registerWatch(program);
  registerStatus(program);
  registerToken(program);
  registerServe(program);
  registerMigrate(program);
  registerExportImport(program);
  registerSip(program);
  registerResync(program);
  registerOperatorChanges(program);
  return program;
}

/** The one line an error becomes on stderr, and the exit code it gives. */
export function describeError(e: unknown): { line: string; exitCode: number } {
  if (e instanceof MusterClientError) {
    return { line: e.status === 0 ? e.message : `${e.status} ${e.code}: ${e.message}`, exitCode: EXIT.error };
  }
  if (e instanceof UsageError) return { line: e.message, exitCode: EXIT.usage };
  if (e instanceof ConfigError) return { line: `config ${e.message}`, exitCode: EXIT.error };
  return { line: e instanceof Error ? e.message : String(e), exitCode: EXIT.error };
}

async function main(argv: string[]): Promise<void> {
  try {
    await musterProgram().parseAsync(argv);
  } catch (e) {
    if (e instanceof CommanderError) {
      // Commander has printed help or its own one-line error already.
      process.exitCode = e.exitCode === 0 ? EXIT.ok : EXIT.usage;
      return;
    }
    const { line, exitCode } = describeError(e);
    if (process.argv.includes('--json') && e instanceof MusterClientError) {
      process.stdout.write(JSON.stringify({ error: { status: e.status, code: e.code, message: e.message } }) + '\n');
    }
    process.stderr.write(`muster: ${line.split('\n')[0]}\n`);
    process.exitCode = exitCode;
  }
}

// Piped into `head` or a closed terminal: the reader has gone, which is no error of ours.
process.stdout.on('error', (e: NodeJS.ErrnoException) => {
  if (e.code === 'EPIPE') process.exit(process.exitCode ?? 0);
  throw e;
});

await main(process.argv);

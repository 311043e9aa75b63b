// `muster resync --system NAME [--partner DOMAIN]`: the operator's partner re-synchronisation (README "Partner
// re-synchronisation"). Signs an operator credential from the configuration, asks the running system, and prints
// per partner what was removed at the partner and what was asked again.
import type { Command } from 'commander';
import { operatorClient } from '../operator-options.ts';
import { EXIT, UsageError } from '../exit-codes.ts';
import { printJson, printLines } from '../client-options.ts';
import { resyncLines } from '../output.ts';
import { DEFAULT_CONFIG } from './token.ts';

interface ResyncOptionValues {
  config: string;
  system: string;
  partner?: string;
  server?: string;
  timeout?: string;
  json?: boolean;
}

export function registerResync(program: Command): void {
  program
    .command('resync')
    .description('re-synchronise a running system with its partner systems now: print what was removed at each partner and what was asked again')
    .option('--config <file>', 'configuration file (YAML or JSON)', DEFAULT_CONFIG)
    .requiredOption('--system <name>', 'the system (its address and secret come from the configuration)')
    .option('--partner <domain>', 'one partner system only (default: every partner)')
    .option('--server <url>', "the system's address (default: its http host and port in the configuration)")
    .option('--timeout <seconds>', 'seconds to wait for the reports (default 330)')
    .option('--json', 'print the JSON answer on stdout')
    .addHelpText('after', '\nExit 0 when every re-synchronisation completed, 3 when one did not (partner unreachable), 1 on error.')
    .action(async (values: ResyncOptionValues) => {
      const seconds = values.timeout === undefined ? 330 : Number(values.timeout);
      if (!Number.isFinite(seconds) || seconds <= 0) throw new UsageError(`--timeout ${values.timeout} is not a positive number of seconds`);
      // The credential is always signed from the configuration here (no --token): --server only picks the instance.
      const client = await operatorClient({ config: values.config, system: values.system, ...(values.server !== undefined ? { server: values.server } : {}) }, Math.round(seconds * 1000));
      const { resyncs } = await client.resyncPartners(values.partner);
      if (values.json) printJson({ resyncs });
      else printLines(resyncs.flatMap(resyncLines));
      if (resyncs.some((r) => !r.complete)) process.exitCode = EXIT.rejected;
    });
}

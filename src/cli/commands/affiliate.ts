// `muster affiliate GROUP...` and `muster deaffiliate GROUP...`: affiliation (TS 23.280 10.X.3.1) and
// de-affiliation (10.X.3.3) requests of the caller, one status line per group.
import type { Command } from 'commander';
import { addClientOptions, clientContext, printJson, printLines, type ClientOptionValues } from '../client-options.ts';
import { affiliationResponseLines, anyRejected } from '../output.ts';
import { EXIT, EXIT_HELP } from '../exit-codes.ts';

export function registerAffiliate(program: Command): void {
  for (const kind of ['affiliate', 'deaffiliate'] as const) {
    const cmd = program
      .command(kind)
      .description(kind === 'affiliate' ? 'affiliate the caller to groups (affiliation request)' : 'de-affiliate the caller from groups (de-affiliation request)')
      .argument('<group...>', 'MC service group IDs, e.g. sip:patrol@police.example');
    addClientOptions(cmd)
      .addHelpText('after', `\nPrints one line per group: "<group>  ${kind === 'affiliate' ? 'affiliated' : 'deaffiliated'}" or "<group>  rejected (<reason>: <text>)".\n\n${EXIT_HELP}`)
      .action(async (groupIds: string[], values: ClientOptionValues) => {
        const { client, caller, service, json } = clientContext(values);
        const request = { mcServiceId: caller, service, groupIds };
        const response = kind === 'affiliate' ? await client.affiliate(request) : await client.deaffiliate(request);
        if (json) printJson(response);
        else printLines(affiliationResponseLines(response));
        process.exitCode = anyRejected(response.status) ? EXIT.rejected : EXIT.ok;
      });
  }
}

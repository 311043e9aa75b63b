// `muster change`: affiliation change request by an authorised user, mandatory (TS 23.280 10.X.5.1.1) or
// negotiated (10.X.5.1.2); prints per target its outcome and the status of each group.
import { Option, type Command } from 'commander';
import { addClientOptions, clientContext, collect, printJson, printLines, type ClientOptionValues } from '../client-options.ts';
import { changeFullyApplied, changeResponseLines } from '../output.ts';
import { EXIT, EXIT_HELP, UsageError } from '../exit-codes.ts';

interface ChangeOptionValues extends ClientOptionValues {
  mode: 'mandatory' | 'negotiated';
  target: string[];
  affiliate: string[];
  deaffiliate: string[];
}

export function registerChange(program: Command): void {
  const cmd = program
    .command('change')
    .description("change other users' affiliations (affiliation change request)")
    .addOption(new Option('--mode <mode>', 'mandatory: applied without asking; negotiated: each target accepts or rejects').choices(['mandatory', 'negotiated']).makeOptionMandatory())
    .option('--target <user>', 'target MC service ID (repeatable)', collect, [])
    .option('--affiliate <group>', 'group to affiliate the targets to (repeatable)', collect, [])
    .option('--deaffiliate <group>', 'group to de-affiliate the targets from (repeatable)', collect, []);
  addClientOptions(cmd)
    .addHelpText(
      'after',
      `\nPrints per target "<target>  <outcome>" (applied, rejected-by-user, timeout, not-authorised),\nthen "  <group>  <status>" per group.\n\n${EXIT_HELP}`,
    )
    .action(async (values: ChangeOptionValues) => {
      if (values.target.length === 0) throw new UsageError('change needs at least one --target USER');
      if (values.affiliate.length + values.deaffiliate.length === 0) throw new UsageError('change needs at least one --affiliate GROUP or --deaffiliate GROUP');
      const { client, caller, service, json } = clientContext(values);
      const response = await client.change({
        mcServiceId: caller,
        service,
        mode: values.mode,
        targets: values.target,
        affiliate: values.affiliate,
        deaffiliate: values.deaffiliate,
      });
      if (json) printJson(response);
      else printLines(changeResponseLines(response));
      process.exitCode = changeFullyApplied(response) ? EXIT.ok : EXIT.rejected;
    });
}

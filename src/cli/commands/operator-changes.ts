// `muster user-profile put|delete` and `muster group put|delete`: the operator's changes to user profiles
// (/admin/v1/users) and group documents (/gms/v1/groups). On a system of several instances a change is stored at
// once and in force at an instance once it confirmed; one that some live instance did not confirm in time (202) is
// said on stdout and stderr, naming those instances, and exits 3: it is not yet safe to count on it everywhere.
import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { parse as parseYaml } from 'yaml';
import type { GroupDocument, NotInForce, OperatorClient, UserProfileDocument } from '../../client/muster-client.ts';
import { EXIT, UsageError } from '../exit-codes.ts';
import { printJson, printLines } from '../client-options.ts';
import { addOperatorOptions, operatorClient, type OperatorOptionValues } from '../operator-options.ts';
import { inForceLine } from '../output.ts';

const HELP = `
Prints "<id>  stored, in force at every instance" (or "deleted, ..."), or, when a live instance did not confirm the
change in time, "<id>  stored, not yet in force at instances: <names>" with the server's warning on stderr.
Exit 0 in force everywhere, 3 stored but not yet in force at every instance, 1 on error.`;

/** A document from a YAML or JSON file: an object with an `id`. */
function readDocument(file: string): { id: string } & Record<string, unknown> {
  let doc: unknown;
  try {
    doc = parseYaml(readFileSync(file, 'utf8'));
  } catch (e) {
    throw new UsageError(`${file}: ${(e as Error).message}`);
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc) || typeof (doc as { id?: unknown }).id !== 'string') throw new UsageError(`${file}: not a document with an id`);
  return doc as { id: string } & Record<string, unknown>;
}

function report(id: string, verb: 'stored' | 'deleted', answer: NotInForce | undefined, values: OperatorOptionValues, json: unknown): void {
  if (values.json) printJson(json);
  else printLines([inForceLine(id, verb, answer?.notConfirmed ?? [])]);
  if ((answer?.notConfirmed ?? []).length === 0) return;
  process.stderr.write(`muster: ${answer?.warning ?? 'not yet in force at every instance'}\n`);
  process.exitCode = EXIT.rejected;
}

/** The two kinds of document an operator changes: the command, what its file holds, and the client's calls. */
const DOCUMENTS = [
  {
    command: 'user-profile',
    what: 'a user profile',
    fields: 'the profile: id, services, n2, groups, remoteChange',
    id: 'the MC service ID',
    put: (c: OperatorClient, doc: unknown) => c.putUser(doc as UserProfileDocument),
    delete: (c: OperatorClient, id: string) => c.deleteUser(id),
  },
  {
    command: 'group',
    what: 'a group document',
    fields: 'the group: id, services, members, enabled, deaffiliationForbidden, displayName',
    id: 'the MC service group ID',
    put: (c: OperatorClient, doc: unknown) => c.putGroup(doc as GroupDocument),
    delete: (c: OperatorClient, id: string) => c.deleteGroup(id),
  },
] as const;

export function registerOperatorChanges(program: Command): void {
  for (const d of DOCUMENTS) {
    const cmd = program.command(d.command).description(`create, replace or delete ${d.what} of a running system (operator)`);
    addOperatorOptions(cmd.command('put').description(`create or replace ${d.what} from a YAML or JSON file`).argument('<file>', d.fields))
      .addHelpText('after', HELP)
      .action(async (file: string, values: OperatorOptionValues) => {
        const doc = readDocument(file);
        const answer = await d.put(await operatorClient(values), doc);
        report(doc.id, 'stored', answer, values, answer);
      });
    addOperatorOptions(cmd.command('delete').description(`delete ${d.what}`).argument('<id>', d.id))
      .addHelpText('after', HELP)
      .action(async (id: string, values: OperatorOptionValues) => {
        const answer = await d.delete(await operatorClient(values), id);
        report(id, 'deleted', answer, values, answer ?? { id, deleted: true });
      });
  }
}

// `muster status USER|GROUP`: a user's affiliations, or a group's affiliated members, for one MC service.
import { Option, type Command } from 'commander';
import { MusterClientError, type GroupMembers, type UserAffiliations } from '../../client/muster-client.ts';
import { addClientOptions, clientContext, printJson, printLines, type ClientOptionValues } from '../client-options.ts';
import { groupMemberLines, userAffiliationLines } from '../output.ts';

interface StatusOptionValues extends ClientOptionValues {
  user?: boolean;
  group?: boolean;
}

export function registerStatus(program: Command): void {
  const cmd = program
    .command('status')
    .description("a user's affiliations (\"<group>  <state>\" per line), or a group's affiliated members (one ID per line)")
    .argument('<id>', 'MC service ID or MC service group ID')
    .addOption(new Option('--user', 'the ID is a user').conflicts('group'))
    .addOption(new Option('--group', 'the ID is a group'));
  addClientOptions(cmd)
    .addHelpText('after', '\nWithout --user or --group, the ID is looked up as a user first, then (when no such user, or not one the caller may see) as a group.')
    .action(async (id: string, values: StatusOptionValues) => {
      const { client, service, json } = clientContext(values);
      let answer: { user: UserAffiliations } | { group: GroupMembers };
      if (values.group) answer = { group: await client.membersOf(id, service) };
      else {
        try {
          answer = { user: await client.affiliationsOf(id, service) };
        } catch (e) {
          // A user the caller may not read (403) or that does not exist (404) may be a group: ask for its members.
          if (values.user || !(e instanceof MusterClientError) || (e.status !== 404 && e.status !== 403)) throw e;
          try {
            answer = { group: await client.membersOf(id, service) };
          } catch (e2) {
            if (!(e2 instanceof MusterClientError) || e2.status !== 404) throw e2;
            if (e.status === 404) throw new MusterClientError(404, 'not-found', `no user or group ${id} (${e.message}; ${e2.message})`);
            throw new MusterClientError(e.status, e.code, `${e.message} (as a group: ${e2.message})`);
          }
        }
      }
      if (json) printJson('user' in answer ? answer.user : answer.group);
      else printLines('user' in answer ? userAffiliationLines(answer.user) : groupMemberLines(answer.group));
    });
}

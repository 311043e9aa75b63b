// `muster status USER|GROUP`: a user's affiliations, or a group's affiliated members, for one MC service.
import { Option, type Command } from 'commander';
import { MusterClientError } from '../../client/muster-client.ts';
import { addClientOptions, clientContext, printJson, printLines, type ClientOptionValues } from '../client-options.ts';
import { isRecord } from '../../client/transport.ts';

interface StatusOptionValues extends ClientOptionValues {
  user?: boolean;
  group?: boolean;
}

export function registerStatus(program: Command): void {
  const cmd = program
    .command('status')
    .description("a user's affiliated groups, or a group's affiliated members (one ID per line)")
    .argument('<id>', 'MC service ID or MC service group ID')
    .addOption(new Option('--user', 'the ID is a user').conflicts('group'))
    .addOption(new Option('--group', 'the ID is a group'));
  addClientOptions(cmd)
    .addHelpText('after', '\nWithout --user or --group, the ID is looked up as a user first, then as a group.')
    .action(async (id: string, values: StatusOptionValues) => {
      const { client, service, json } = clientContext(values);
      let answer: unknown;
      let listKeys: string[];
      if (values.group) {
        answer = await client.membersOf(id, service);
        listKeys = GROUP_KEYS;
      } else {
        try {
          answer = await client.affiliationsOf(id, service);
          listKeys = USER_KEYS;
        } catch (e) {
          if (values.user || !(e instanceof MusterClientError) || e.status !== 404) throw e;
          try {
            answer = await client.membersOf(id, service);
            listKeys = GROUP_KEYS;
          } catch (e2) {
            if (e2 instanceof MusterClientError && e2.status === 404) throw new MusterClientError(404, 'not-found', `no user or group ${id} (${e.message}; ${e2.message})`);
            throw e2;
          }
        }
      }
      if (json) printJson(answer);
      else printLines(idsIn(answer, listKeys));
    });
}

const USER_KEYS = ['groupIds', 'affiliations', 'groups', 'status'];
const GROUP_KEYS = ['members', 'mcServiceIds', 'affiliations', 'users'];

/** The IDs listed in an answer: the first list found under one of `keys`, of strings or of objects naming an ID. */
export function idsIn(answer: unknown, keys: readonly string[]): string[] {
  const list = Array.isArray(answer) ? answer : isRecord(answer) ? keys.map((k) => answer[k]).find(Array.isArray) : undefined;
  if (!list) return [];
  return (list as unknown[]).flatMap((item) => {
    if (typeof item === 'string') return [item];
    if (!isRecord(item)) return [];
    const itemId = item['groupId'] ?? item['mcServiceId'] ?? item['id'];
    if (typeof itemId !== 'string') return [];
    const state = item['status'] ?? item['state'];
    return [typeof state === 'string' && state !== 'affiliated' ? `${itemId}  ${state}` : itemId];
  });
}

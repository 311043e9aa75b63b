// `muster sip subscriptions|publications --system NAME`: the operator's list of the SIP face's live state (README
// "Operating it"), from any instance: subscriptions with the instance that owns each, publications with their
// SIP-ETag. An operator credential is signed from the configuration (or given with --token), and the running system asked.
import type { Command } from 'commander';
import { operatorClient } from '../operator-options.ts';
import { type OperatorClient, type SipListQuery, type SipPublicationEntry, type SipSubscriptionEntry } from '../../client/muster-client.ts';
import { UsageError } from '../exit-codes.ts';
import { printJson, printLines } from '../client-options.ts';
import { DEFAULT_CONFIG } from './token.ts';

interface SipListOptionValues {
  config: string;
  system?: string;
  server?: string;
  token?: string;
  user?: string;
  limit?: string;
  after?: string;
  json?: boolean;
}

export function registerSip(program: Command): void {
  const sip = program.command('sip').description("the SIP face's live state, for operators: subscriptions and publications");
  const common = (cmd: Command): Command =>
    cmd
      .option('--config <file>', 'configuration file (YAML or JSON)', DEFAULT_CONFIG)
      .option('--system <name>', 'the system (its address and secret come from the configuration)')
      .option('--server <url>', "the system's address (default: its http host and port in the configuration)")
      .option('--token <credential>', 'an operator credential instead of one signed from the configuration (not read from MUSTER_TOKEN, which holds a user credential)')
      .option('--user <id>', 'only those about this MC service ID')
      .option('--limit <n>', 'at most this many (1-1000, default 100)')
      .option('--after <key>', 'the page after this key (printed as "more: --after KEY" when there is one)')
      .option('--json', 'print the JSON answer on stdout');
  common(sip.command('subscriptions').description('live SUBSCRIBE dialogs: "<user>  <watcher>  <service>  <transport> <remote>  <expires at>  <instance>" per line')).action(
    async (values: SipListOptionValues) => {
      const { client, query } = await operatorContext(values);
      const page = await client.sipSubscriptions(query);
      if (values.json) printJson(page);
      else printLines(page.subscriptions.map(subscriptionLine));
      more(page.next);
    },
  );
  common(sip.command('publications').description('live PUBLISH state: "<user>  <service>  <SIP-ETag>  <expires at|never>  <tuple id>" per line')).action(async (values: SipListOptionValues) => {
    const { client, query } = await operatorContext(values);
    const page = await client.sipPublications(query);
    if (values.json) printJson(page);
    else printLines(page.publications.map(publicationLine));
    more(page.next);
  });
}

export function subscriptionLine(s: SipSubscriptionEntry): string {
  return `${s.userId}  ${s.watcher}  ${s.service}  ${s.transport} ${s.remote}  ${s.expiresAt}  ${s.instance}`;
}

export function publicationLine(p: SipPublicationEntry): string {
  return `${p.userId}  ${p.service}  ${p.etag}  ${p.expiresAt ?? 'never'}  ${p.tupleId ?? '-'}`;
}

/** The next page's key goes to stderr, so stdout stays one entry per line. */
function more(next: string | null): void {
  if (next !== null) process.stderr.write(`more: --after ${next}\n`);
}

async function operatorContext(values: SipListOptionValues): Promise<{ client: OperatorClient; query: SipListQuery }> {
  let limit: number | undefined;
  if (values.limit !== undefined) {
    limit = Number(values.limit);
    if (!Number.isInteger(limit) || limit < 1 || limit > 1000) throw new UsageError(`--limit ${values.limit} is not a whole number from 1 to 1000`);
  }
  const query: SipListQuery = { ...(values.user !== undefined ? { user: values.user } : {}), ...(limit !== undefined ? { limit } : {}), ...(values.after !== undefined ? { after: values.after } : {}) };
  return { client: await operatorClient(values), query };
}


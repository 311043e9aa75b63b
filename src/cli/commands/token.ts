// `muster token`: the development identity provider. Prints a bearer credential signed with the secret of the
// user's home system (the system whose domain is the user's domain), or an operator credential.
import type { Command } from 'commander';
import { loadConfig, type SystemConfig } from '../../config/config.ts';
import { issueToken } from '../../faces/http/credentials.ts';
import { sipDigestPassword } from '../../faces/sip/digest.ts';
import { domainOf, InvalidId, parseMcUri, type McUri } from '../../domain/ids.ts';
import { UsageError } from '../exit-codes.ts';

export const DEFAULT_CONFIG = 'examples/demo.yaml';

interface TokenOptionValues {
  config: string;
  user?: string;
  operator?: boolean;
  server?: string;
  system?: string;
  ttl?: string;
  sipPassword?: boolean;
}

export function registerToken(program: Command): void {
  program
    .command('token')
    .description("print a credential for a user (or an operator) of a configured system, signed with that system's secret")
    .option('--config <file>', 'configuration file', DEFAULT_CONFIG)
    .option('--user <id>', 'the MC service ID the credential speaks for')
    .option('--operator', 'an operator credential (/admin/v1, /gms/v1)')
    .option('--server <name>', "a server credential for an MC service server whose GMS is this system (its `gms.credential`); <name> is the source of its status updates")
    .option('--system <name>', 'for --operator and --server: the system (default: the first one)')
    .option('--ttl <seconds>', 'lifetime in seconds (default 12 h)')
    .option('--sip-password', "with --user: the user's SIP digest password instead (username = the MC service ID, realm = the domain)")
    .addHelpText('after', '\nPrints the credential only, e.g.\n  export MUSTER_TOKEN=$(npx muster token --user sip:alice@police.example)\n  npx muster token --user sip:alice@police.example --sip-password')
    .action(async (values: TokenOptionValues) => {
      if ([values.user, values.operator, values.server].filter(Boolean).length !== 1) throw new UsageError('token needs exactly one of --user ID, --operator or --server NAME');
      if (values.sipPassword && !values.user) throw new UsageError('--sip-password needs --user ID');
      const ttlSeconds = values.ttl === undefined ? undefined : Number(values.ttl);
      if (ttlSeconds !== undefined && (!Number.isInteger(ttlSeconds) || ttlSeconds <= 0)) throw new UsageError(`--ttl ${values.ttl} is not a positive whole number of seconds`);
      const systems = loadConfig(values.config);
      let system: SystemConfig;
      let subject: string;
      if (values.user) {
        const user = userId(values.user);
        const domain = domainOf(user);
        const home = systems.find((s) => s.domain === domain);
        if (!home) throw new UsageError(`no system of domain ${domain ?? '(none)'} in ${values.config} for ${user}`);
        system = home;
        subject = user;
        // Derived from the secret like the credential, so rotating the secret revokes both.
        if (values.sipPassword) {
          process.stdout.write(sipDigestPassword(home.secret, user) + '\n');
          return;
        }
      } else {
        const chosen = values.system === undefined ? systems[0] : systems.find((s) => s.name === values.system);
        if (!chosen) throw new UsageError(`no system ${values.system ?? ''} in ${values.config} (systems: ${systems.map((s) => s.name).join(', ')})`);
        system = chosen;
        subject = values.server ?? 'operator';
      }
      const token = await issueToken({
        secret: system.secret,
        domain: system.domain,
        subject,
        role: values.user ? 'user' : values.server ? 'server' : 'operator',
        ...(ttlSeconds !== undefined ? { ttlSeconds } : {}),
      });
      process.stdout.write(token + '\n');
    });
}

function userId(raw: string): McUri {
  try {
    return parseMcUri(raw);
  } catch (e) {
    if (e instanceof InvalidId) throw new UsageError(`--user ${raw} ${e.why}`);
    throw e;
  }
}

// The options of the operator's commands that change a system (user profiles, group documents): which system, and an
// operator credential signed from its configuration (or given with --token together with --server).
import type { Command } from 'commander';
import { loadConfig } from '../config/config.ts';
import { issueToken } from '../faces/http/credentials.ts';
import { OperatorClient } from '../client/muster-client.ts';
import { UsageError } from './exit-codes.ts';
import { DEFAULT_CONFIG } from './commands/token.ts';

export interface OperatorOptionValues {
  config: string;
  system?: string;
  server?: string;
  token?: string;
  json?: boolean;
}

export function addOperatorOptions(cmd: Command): Command {
  return cmd
    .option('--config <file>', 'configuration file (YAML or JSON)', DEFAULT_CONFIG)
    .option('--system <name>', 'the system (its address and secret come from the configuration)')
    .option('--server <url>', "the system's address, or one instance's (default: its http host and port in the configuration)")
    .option('--token <credential>', 'an operator credential instead of one signed from the configuration (with --server)')
    .option('--json', 'print the JSON answer on stdout');
}

/** The operator's client for `values` (every operator command: user-profile, group, sip, resync); `timeoutMs` for slow answers. */
export async function operatorClient(values: Omit<OperatorOptionValues, 'json'>, timeoutMs?: number): Promise<OperatorClient> {
  const wait = timeoutMs === undefined ? {} : { timeoutMs };
  if (values.token !== undefined && values.server !== undefined) return new OperatorClient({ server: values.server, token: values.token, ...wait });
  if (values.system === undefined) throw new UsageError('give --system NAME (or --server URL with --token CREDENTIAL)');
  const systems = loadConfig(values.config);
  const system = systems.find((s) => s.name === values.system);
  if (!system) throw new UsageError(`no system ${values.system} in ${values.config} (systems: ${systems.map((s) => s.name).join(', ')})`);
  const host = system.http.host === '0.0.0.0' || system.http.host === '::' ? '127.0.0.1' : system.http.host;
  const server = values.server ?? `http://${host.includes(':') ? `[${host}]` : host}:${system.http.port}`;
  // A short-lived operator credential, signed with the system's secret: who can read the configuration is the operator.
  const token = values.token ?? (await issueToken({ secret: system.secret, domain: system.domain, subject: 'operator', role: 'operator', ttlSeconds: 600 }));
  return new OperatorClient({ server, token, ...wait });
}

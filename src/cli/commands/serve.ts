// `muster serve`: runs the MC systems a configuration file describes until SIGINT or SIGTERM.
import type { Command } from 'commander';
import { loadConfig } from '../../config/config.ts';
import { DEFAULT_CONFIG } from './token.ts';
import { UsageError } from '../exit-codes.ts';

const STOP_TIMEOUT_MS = 10_000;

export function registerServe(program: Command): void {
  program
    .command('serve')
    .description('run the MC systems of a configuration file (MC service server + GMS each); prints "<name>: <url>" per system')
    .addHelpText('after', '\nRuns until SIGINT or SIGTERM, then stops the systems (at most 10 s; a second signal exits at once).')
    .option('--config <file>', 'configuration file (YAML or JSON)', DEFAULT_CONFIG)
    .option('--system <name>', 'run only this system of the file')
    .option('--port <port>', "HTTP port of this instance, instead of the file's (one system only): run one system as several instances on a shared PostgreSQL store")
    .action(async (values: { config: string; system?: string; port?: string }) => {
      let configs = loadConfig(values.config);
      if (values.system) {
        configs = configs.filter((c) => c.name === values.system);
        if (configs.length === 0) throw new UsageError(`no system ${values.system} in ${values.config}`);
      }
      if (values.port !== undefined) {
        const port = Number(values.port);
        if (!Number.isInteger(port) || port < 0 || port > 65535) throw new UsageError(`--port ${values.port} is not a port number`);
        if (configs.length !== 1) throw new UsageError('--port needs a single system (use --system NAME)');
        configs = [{ ...configs[0]!, http: { ...configs[0]!.http, port } }];
      }
      // Loaded only here, so the client commands start without the server's code.
      const { startSystems } = await import('../../system.ts');
      const running = await startSystems(configs);
      for (const s of running.systems) process.stdout.write(`${s.name}: ${s.url}\n`);
      await new Promise<void>((resolve) => {
        let stopping = false;
        const stop = (signal: NodeJS.Signals): void => {
          if (stopping) {
            process.stderr.write(`muster: ${signal} again, exiting without waiting\n`);
            process.exit(1);
          }
          stopping = true;
          // A stop that hangs (a client holding a connection open) must not keep the process: bounded wait.
          setTimeout(() => {
            process.stderr.write(`muster: stopping took longer than ${STOP_TIMEOUT_MS / 1000} s, exiting\n`);
            process.exit(1);
          }, STOP_TIMEOUT_MS).unref();
          running.stop().then(
            () => resolve(),
            (e: unknown) => {
              process.stderr.write(`muster: stopping failed: ${e instanceof Error ? e.message : String(e)}\n`);
              process.exitCode = 1;
              resolve();
            },
          );
        };
        process.on('SIGINT', stop);
        process.on('SIGTERM', stop);
      });
      // Stray handles (keep-alive sockets, timers of a dependency) must not keep a stopped server alive.
      process.exit(process.exitCode ?? 0);
    });
}

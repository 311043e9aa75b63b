// Runs a committed sipp scenario (test/sipp/*.xml) against a SIP face on loopback, bounded in calls and time.
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { ROOT, freePort } from './harness.ts';

export interface SippRun {
  code: number;
  output: string;
  /** The messages sipp sent and received (its -trace_msg file), for checks sipp cannot make. */
  messages: string;
}

export async function sipp(scenario: string, target: { port: number }, keys: Record<string, string>, opts: { transport?: 'u1' | 't1'; cidStr?: string; localPort?: number; auth?: { username: string; password: string; uri: string } } = {}): Promise<SippRun> {
  const { mkdtempSync, readFileSync, existsSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const dir = mkdtempSync(join(tmpdir(), 'muster-sipp-'));
  const messageFile = join(dir, 'messages.log');
  const args = [
    `127.0.0.1:${target.port}`,
    '-sf', join(ROOT, 'test/sipp', scenario),
    '-m', '1',
    '-timeout', '20s',
    '-t', opts.transport ?? 'u1',
    '-i', '127.0.0.1',
    '-p', String(opts.localPort ?? (await freePort())),
    '-nostdin',
    '-trace_msg', '-message_file', messageFile,
    '-trace_err', '-error_file', join(dir, 'errors.log'),
    ...(opts.cidStr ? ['-cid_str', opts.cidStr] : []),
    // sipp's [authentication] takes no keys inside it: -au/-ap give it the digest username and password, and
    // -auth_uri the digest-uri (sipp puts "sip:" before it; its default is the remote address, not the Request-URI).
    ...(opts.auth ? ['-au', opts.auth.username, '-ap', opts.auth.password, '-auth_uri', opts.auth.uri.replace(/^sip:/, '')] : []),
    ...Object.entries(keys).flatMap(([k, v]) => ['-key', k, v]),
  ];
  return new Promise((resolve, reject) => {
    const p = spawn('sipp', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    // No sipp on this machine (.ci/run installs it): a clear failure, not an uncaught error and a hang.
    p.once('error', (e) => reject(new Error(`sipp could not be started (${(e as { code?: string }).code ?? e.message}); install Debian's sip-tester`)));
    let output = '';
    p.stdout.on('data', (c: Buffer) => (output += c.toString()));
    p.stderr.on('data', (c: Buffer) => (output += c.toString()));
    const t = setTimeout(() => p.kill('SIGKILL'), 30_000);
    p.on('exit', (code) => {
      clearTimeout(t);
      const errors = existsSync(join(dir, 'errors.log')) ? readFileSync(join(dir, 'errors.log'), 'utf8') : '';
      const messages = existsSync(messageFile) ? readFileSync(messageFile, 'utf8') : '';
      resolve({ code: code ?? -1, output: `${output.split('\n').slice(-8).join('\n')}\n${errors}`, messages });
    });
  });
}

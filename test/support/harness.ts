// Starts real Muster server processes (`muster serve`) on loopback with a temporary configuration, for e2e tests.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { issueToken } from '../../src/faces/http/credentials.ts';

export const ROOT = new URL('../..', import.meta.url).pathname;
export const CLI = join(ROOT, 'src/cli/muster.ts');

/** A free TCP port on 127.0.0.1 (asked of the OS, then released for the server to take). */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

export const secret = (): string => randomBytes(24).toString('base64url');

export interface RawSystem {
  name: string;
  domain: string;
  http: { host?: string; port: number };
  secret: string;
  store?: string;
  [k: string]: unknown;
}

export interface RawConfig {
  negotiationTimeoutSeconds?: number;
  partnerTimeoutMs?: number;
  systems: RawSystem[];
  [k: string]: unknown;
}

export class Muster {
  private proc?: ChildProcess;
  readonly urls = new Map<string, string>();
  output = '';

  constructor(
    readonly config: RawConfig,
    readonly dir: string,
  ) {}

  /** Writes the config, starts `muster serve` and waits for every system's "<name>: <url>" line. */
  static async start(config: RawConfig, dir = mkdtempSync(join(tmpdir(), 'muster-e2e-'))): Promise<Muster> {
    for (const s of config.systems) s.store ??= `sqlite:${join(dir, `${s.name}.db`)}`;
    config.dataDir ??= dir;
    config.logLevel ??= 'warn';
    const m = new Muster(config, dir);
    await m.spawn();
    return m;
  }

  url(name?: string): string {
    const u = name ? this.urls.get(name) : [...this.urls.values()][0];
    if (!u) throw new Error(`no system ${name}`);
    return u;
  }

  async spawn(): Promise<void> {
    const file = join(this.dir, 'config.json');
    writeFileSync(file, JSON.stringify(this.config, null, 2));
    const proc = spawn(process.execPath, ['--import', 'tsx', CLI, 'serve', '--config', file], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    this.proc = proc;
    this.urls.clear();
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`server did not start in 60 s:\n${this.output}`)), 60_000);
      const onData = (chunk: Buffer): void => {
        this.output += chunk.toString();
        for (const m of this.output.matchAll(/^([a-z0-9-]+): (http:\/\/\S+)$/gm)) this.urls.set(m[1]!, m[2]!);
        if (this.urls.size === this.config.systems.length) {
          clearTimeout(timer);
          resolve();
        }
      };
      proc.stdout.on('data', onData);
      proc.stderr.on('data', (c: Buffer) => (this.output += c.toString()));
      proc.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`server exited with ${code}:\n${this.output}`));
      });
    });
  }

  /** SIGKILL: no shutdown code runs, as in a crash. */
  async kill(): Promise<void> {
    const p = this.proc;
    if (!p || p.exitCode !== null) return;
    await new Promise<void>((resolve) => {
      p.once('exit', () => resolve());
      p.kill('SIGKILL');
    });
  }

  async stop(opts: { keepFiles?: boolean } = {}): Promise<void> {
    const p = this.proc;
    if (p && p.exitCode === null && p.signalCode === null) {
      await new Promise<void>((resolve) => {
        const t = setTimeout(() => p.kill('SIGKILL'), 5000);
        p.once('exit', () => {
          clearTimeout(t);
          resolve();
        });
        p.kill('SIGTERM');
      });
    }
    if (!opts.keepFiles) rmSync(this.dir, { recursive: true, force: true });
  }

  private system(domain: string): RawSystem {
    const s = this.config.systems.find((x) => x.domain === domain);
    if (!s) throw new Error(`no system for ${domain}`);
    return s;
  }

  async token(userId: string, opts: { ttlSeconds?: number } = {}): Promise<string> {
    const s = this.system(userId.split('@')[1]!);
    return issueToken({ secret: s.secret, domain: s.domain, subject: userId, role: 'user', ...opts });
  }

  async operatorToken(domain = this.config.systems[0]!.domain): Promise<string> {
    const s = this.system(domain);
    return issueToken({ secret: s.secret, domain: s.domain, subject: 'operator', role: 'operator' });
  }
}

/** JSON over HTTP with a bearer credential; returns status and parsed body. */
export async function call(method: string, url: string, token: string | undefined, body?: unknown): Promise<{ status: number; body: any }> { // eslint-disable-line @typescript-eslint/no-explicit-any -- test bodies are inspected freely
  const res = await fetch(url, {
    method,
    headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
    body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
    signal: AbortSignal.timeout(30_000),
  });
  const text = await res.text();
  let parsed: unknown = text;
  try {
    parsed = text ? JSON.parse(text) : undefined;
  } catch {
    /* not JSON: keep the text */
  }
  return { status: res.status, body: parsed };
}

/** Runs the CLI as a user would, returning exit code, stdout and stderr. */
export async function cli(args: string[], env: Record<string, string> = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, ['--import', 'tsx', CLI, ...args], { cwd: ROOT, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    p.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    const t = setTimeout(() => p.kill('SIGKILL'), 30_000);
    p.on('exit', (code) => {
      clearTimeout(t);
      resolve({ code: code ?? -1, stdout, stderr });
    });
  });
}

// Starts real Muster server processes (`muster serve`) on loopback with a temporary configuration, for e2e tests.
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer as createHttpServer, request as httpRequest, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { createSocket } from 'node:dgram';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { issueToken } from '../../src/faces/http/credentials.ts';
import { createTestDatabase, dropTestDatabases } from './postgres.ts';

export const ROOT = new URL('../..', import.meta.url).pathname;
export const CLI = join(ROOT, 'src/cli/muster.ts');

/** Ports handed to servers come from below Linux's ephemeral range (32768-60999): an outgoing connection of any
 *  test could otherwise take a port between its probe here and the server's bind (EADDRINUSE at start-up). */
const PORT_POOL = { low: 20000, high: 32767 };

/** Whether `port` can be bound on 127.0.0.1 for both TCP and UDP right now (the SIP face listens on both). */
async function bindable(port: number): Promise<boolean> {
  const tcp = await new Promise<boolean>((resolve) => {
    const s = createServer();
    s.once('error', () => resolve(false));
    s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
  });
  if (!tcp) return false;
  return new Promise<boolean>((resolve) => {
    const u = createSocket('udp4');
    u.once('error', () => {
      u.close();
      resolve(false);
    });
    u.bind(port, '127.0.0.1', () => u.close(() => resolve(true)));
  });
}

/** A free port on 127.0.0.1, picked at random from PORT_POOL and probed, then released for the server to take. */
export async function freePort(): Promise<number> {
  for (let attempt = 0; attempt < 200; attempt++) {
    const port = PORT_POOL.low + Math.floor(Math.random() * (PORT_POOL.high - PORT_POOL.low + 1));
    if (await bindable(port)) return port;
  }
  throw new Error(`no free port in ${PORT_POOL.low}-${PORT_POOL.high} after 200 tries`);
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

/**
 * The store the e2e suite runs on: `sqlite` (default, one process per Muster), or `postgres`: every system on a
 * fresh PostgreSQL database with NATS between TWO server instances, behind a round-robin load balancer on the
 * configured port, so the same tests spread their requests over both instances (issue 5).
 */
export const E2E_BACKEND = process.env['MUSTER_E2E_BACKEND'] === 'postgres' ? 'postgres' : 'sqlite';
const NATS_URL = 'nats://127.0.0.1:4222';

export class Muster {
  private procs: ChildProcess[] = [];
  /** Per instance, the configuration it runs (the instances of one system differ only in their ports). */
  private instanceConfigs: RawConfig[] = [];
  private balancers: RoundRobinBalancer[] = [];
  private databases: string[] = [];
  readonly urls = new Map<string, string>();
  output = '';

  constructor(
    readonly config: RawConfig,
    readonly dir: string,
  ) {}

  /** Writes the config, starts `muster serve` and waits for every system's "<name>: <url>" line. */
  static async start(config: RawConfig, dir = mkdtempSync(join(tmpdir(), 'muster-e2e-')), backend: 'sqlite' | 'postgres' = E2E_BACKEND): Promise<Muster> {
    config.dataDir ??= dir;
    config.logLevel ??= 'warn';
    const m = new Muster(config, dir);
    if (backend === 'postgres') await m.preparePostgres();
    else for (const s of config.systems) s.store ??= `sqlite:${join(dir, `${s.name}.db`)}`;
    if (m.instanceConfigs.length === 0) m.instanceConfigs = [config];
    await m.spawn();
    return m;
  }

  /** A database per system, NATS, and two instances behind a balancer on each system's configured port. */
  private async preparePostgres(): Promise<void> {
    for (const s of this.config.systems) {
      if (s.store && !s.store.startsWith('sqlite:')) continue;
      const db = await createTestDatabase('muster_e2e');
      this.databases.push(db.name);
      s.store = db.url;
      s['nats'] ??= NATS_URL;
    }
    for (let i = 0; i < 2; i++) {
      const copy = JSON.parse(JSON.stringify(this.config)) as RawConfig;
      for (const s of copy.systems) {
        s.http = { ...s.http, port: await freePort() };
        const sip = s['sip'] as { port: number } | undefined;
        if (sip && i > 0) s['sip'] = { ...sip, port: await freePort() };
      }
      this.instanceConfigs.push(copy);
    }
  }

  url(name?: string): string {
    const u = name ? this.urls.get(name) : [...this.urls.values()][0];
    if (!u) throw new Error(`no system ${name}`);
    return u;
  }

  /** Starts every instance (again, after kill()) on the same files and addresses. */
  async spawn(): Promise<void> {
    this.urls.clear();
    const started = await Promise.all(this.instanceConfigs.map((c, i) => this.spawnInstance(c, i)));
    if (this.instanceConfigs.length === 1) {
      for (const [name, url] of started[0]!) this.urls.set(name, url);
      return;
    }
    if (this.balancers.length === 0) {
      for (const s of this.config.systems) {
        const backends = started.map((m) => m.get(s.name)!);
        this.balancers.push(await RoundRobinBalancer.listen(s.http.host ?? '127.0.0.1', s.http.port, backends));
      }
    }
    for (const s of this.config.systems) this.urls.set(s.name, `http://${s.http.host ?? '127.0.0.1'}:${s.http.port}`);
  }

  private async spawnInstance(config: RawConfig, index: number): Promise<Map<string, string>> {
    const file = join(this.dir, index === 0 ? 'config.json' : `config-${index}.json`);
    writeFileSync(file, JSON.stringify(config, null, 2));
    // MUSTER_SERVE_NODE_ARGS (e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof") profiles the servers a benchmark starts.
    const nodeArgs = process.env['MUSTER_SERVE_NODE_ARGS']?.split(' ').filter(Boolean) ?? [];
    const proc = spawn(process.execPath, [...nodeArgs, '--import', 'tsx', CLI, 'serve', '--config', file], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    this.procs[index] = proc;
    const urls = new Map<string, string>();
    let out = '';
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`server did not start in 60 s:\n${this.output}`)), 60_000);
      const onData = (chunk: Buffer): void => {
        out += chunk.toString();
        this.output += chunk.toString();
        for (const m of out.matchAll(/^([a-z0-9-]+): (http:\/\/\S+)$/gm)) urls.set(m[1]!, m[2]!);
        if (urls.size === config.systems.length) {
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
    // Once started, a server that dies on its own is a finding, not noise: say so, with its output, where the next failure shows.
    proc.once('exit', (code, signal) => {
      if (signalled.has(proc)) return;
      const death = `server ${file} (pid ${proc.pid}) exited on its own (code ${code}, signal ${signal}); its output:\n${this.output.slice(-4000)}`;
      serverDeaths.push(death);
      process.stderr.write(`${death}\n`);
    });
    return urls;
  }

  /** SIGKILL every instance: no shutdown code runs, as in a crash. */
  async kill(): Promise<void> {
    await Promise.all(this.procs.map((p) => killHard(p)));
  }

  /** SIGKILL one instance only (for "an instance killed under load"). */
  async killInstance(index: number): Promise<void> {
    const p = this.procs[index];
    if (p) await killHard(p);
  }

  /** One instance's own address for a system (not the balancer's), e.g. to ask that instance alone. */
  instanceUrl(index: number, name = this.config.systems[0]!.name): string {
    const s = this.instanceConfigs[index]?.systems.find((x) => x.name === name);
    if (!s) throw new Error(`no instance ${index} of system ${name}`);
    return `http://${s.http.host ?? '127.0.0.1'}:${s.http.port}`;
  }

  /** Process IDs of the running instances (for benchmarks that read their memory). */
  get pids(): number[] {
    return this.procs.map((p) => p.pid).filter((p): p is number => p !== undefined);
  }

  get instances(): number {
    return this.instanceConfigs.length;
  }

  async stop(opts: { keepFiles?: boolean } = {}): Promise<void> {
    await Promise.all(this.procs.map((p) => stopProcess(p)));
    await Promise.all(this.balancers.map((b) => b.close()));
    this.balancers = [];
    if (this.databases.length > 0 && !opts.keepFiles) {
      await dropTestDatabases(this.databases.splice(0));
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

  /** The groups `userId` is affiliated to (not reserved), sorted, as the user reads them over HTTP. */
  async affiliatedGroups(userId: string, service = 'mcptt'): Promise<string[]> {
    const res = await call('GET', `${this.url(this.system(userId.split('@')[1]!).name)}/mc/v1/users/${encodeURIComponent(userId)}/affiliations?service=${service}`, await this.token(userId));
    if (res.status !== 200) throw new Error(`affiliations of ${userId}: ${res.status} ${JSON.stringify(res.body)}`);
    return ((res.body as { affiliations: { groupId: string; state: string }[] }).affiliations ?? []).filter((a) => a.state === 'affiliated').map((a) => a.groupId).sort();
  }

  async operatorToken(domain = this.config.systems[0]!.domain): Promise<string> {
    const s = this.system(domain);
    return issueToken({ secret: s.secret, domain: s.domain, subject: 'operator', role: 'operator' });
  }
}

/** Servers that exited without the harness stopping them (see spawnInstance), reported with a failed call. */
const serverDeaths: string[] = [];
/** Processes the harness itself signalled (kill, stop): their exit is expected. */
const signalled = new WeakSet<ChildProcess>();

/** A connection the peer had already closed (a keep-alive one to a server since killed): not a refusal, not a status. */
const STALE_CONNECTION = new Set(['UND_ERR_SOCKET', 'ECONNRESET', 'EPIPE']);

/**
 * JSON over HTTP with a bearer credential; returns status and parsed body. A GET that meets a stale connection is
 * sent once more, as an HTTP client does with an idempotent request (and says so on stderr); nothing else is retried.
 */
export async function call(method: string, url: string, token: string | undefined, body?: unknown): Promise<{ status: number; body: any }> { // eslint-disable-line @typescript-eslint/no-explicit-any -- test bodies are inspected freely
  const send = (): Promise<Response> =>
    fetch(url, {
      method,
      headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
      body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
      signal: AbortSignal.timeout(30_000),
    });
  const code = (e: unknown): string => (e instanceof Error && e.cause instanceof Error && 'code' in e.cause ? String(e.cause.code) : '');
  const res = await send()
    .catch((e: unknown) => {
      if (method !== 'GET' || !STALE_CONNECTION.has(code(e))) throw e;
      process.stderr.write(`harness: GET ${url} met a closed connection (${code(e)}); sent again\n`);
      return send();
    })
    .catch((e: unknown) => {
      // undici says only "fetch failed"; what failed (refused, reset, timed out) is in its cause.
      const cause = e instanceof Error && e.cause instanceof Error ? `: ${e.cause.message}${code(e) ? ` (${code(e)})` : ''}` : '';
      const deaths = serverDeaths.length > 0 ? `\n${serverDeaths.join('\n')}` : '';
      throw new Error(`${method} ${url}: ${e instanceof Error ? e.message : String(e)}${cause}${deaths}`, { cause: e });
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

/** SIGTERM, so the process shuts down as an operator's stop would; SIGKILL if it is still there after 5 s. */
export async function stopProcess(p: ChildProcess): Promise<void> {
  if (p.exitCode !== null || p.signalCode !== null) return;
  await new Promise<void>((resolve) => {
    signalled.add(p);
    const t = setTimeout(() => p.kill('SIGKILL'), 5000);
    p.once('exit', () => {
      clearTimeout(t);
      resolve();
    });
    p.kill('SIGTERM');
  });
}

async function killHard(p: ChildProcess): Promise<void> {
  if (p.exitCode !== null || p.signalCode !== null) return;
  await new Promise<void>((resolve) => {
    signalled.add(p);
    p.once('exit', () => resolve());
    p.kill('SIGKILL');
  });
}

/**
 * The load balancer in front of several instances: each HTTP request goes to the next instance in turn (not
 * each connection, since clients keep connections alive); a request to an instance that is down is tried on
 * the next one, as a load balancer's health check would do.
 */
export class RoundRobinBalancer {
  private next = 0;
  private constructor(
    private readonly server: Server,
    private readonly backends: string[],
  ) {}

  static async listen(host: string, port: number, backends: string[]): Promise<RoundRobinBalancer> {
    const server = createHttpServer();
    const b = new RoundRobinBalancer(server, backends);
    server.on('request', (req, res) => {
      // The body is buffered so a request refused by a dead instance can be sent to the next one.
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => b.attempt(req, res, Buffer.concat(chunks), 0));
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => resolve());
    });
    return b;
  }

  private attempt(req: IncomingMessage, res: ServerResponse, body: Buffer, tries: number): void {
    const target = new URL(this.backends[this.next++ % this.backends.length]!);
    const out = httpRequest({ host: target.hostname, port: target.port, method: req.method, path: req.url, headers: req.headers }, (up) => {
      res.writeHead(up.statusCode ?? 502, up.headers);
      up.pipe(res);
    });
    out.on('error', () => {
      if (tries + 1 < this.backends.length && !res.headersSent) return this.attempt(req, res, body, tries + 1);
      if (!res.headersSent) res.writeHead(502).end();
      else res.destroy();
    });
    res.on('close', () => out.destroy());
    out.end(body);
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

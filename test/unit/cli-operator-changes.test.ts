// `muster user-profile put|delete` and `muster group put|delete`: the operator's changes from the command line,
// run as processes against a small HTTP server. A change stored but not confirmed by every live instance (202,
// `notConfirmed`) is said on stdout and stderr and exits 3; one in force everywhere exits 0.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createServer, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CredentialVerifier } from '../../src/faces/http/credentials.ts';

const ALICE = 'sip:alice@police.example';
const PATROL = 'sip:patrol@police.example';
const B = 'host-b/127.0.0.1:8081';
const WARNING = `stored, not yet in force at instances ${B}: they did not confirm within 1 s`;

interface Seen {
  method: string;
  url: string;
  authorization: string | undefined;
  body: unknown;
}

async function standIn(answer: (req: Seen, res: ServerResponse) => void): Promise<{ url: string; seen: Seen[]; close: () => Promise<void> }> {
  const seen: Seen[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const text = Buffer.concat(chunks).toString('utf8');
      const s = { method: req.method ?? '', url: req.url ?? '', authorization: req.headers.authorization, body: text ? (JSON.parse(text) as unknown) : undefined };
      seen.push(s);
      answer(s, res);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    seen,
    close: () => {
      server.closeAllConnections();
      return new Promise<void>((r) => server.close(() => r()));
    },
  };
}

function reply(res: ServerResponse, status: number, body?: unknown): void {
  if (body === undefined) return void res.writeHead(status).end();
  res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
}

function muster(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const env = { ...process.env };
    delete env['MUSTER_SERVER'];
    delete env['MUSTER_TOKEN'];
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli/muster.ts', ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    const killer = setTimeout(() => child.kill('SIGKILL'), 15_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(killer);
      resolve({ code, stdout, stderr });
    });
  });
}

void test('user-profile put from a YAML file, operator credential signed from the configuration: 202 said on both outputs, exit 3', { timeout: 60_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'muster-cli-op-'));
  const profile = { id: ALICE, services: ['mcptt'], n2: 2, groups: [PATROL], remoteChange: false };
  const srv = await standIn((req, res) => reply(res, 202, { ...(req.body as object), notConfirmed: [B], warning: WARNING }));
  try {
    const port = Number(new URL(srv.url).port);
    writeFileSync(join(dir, 'police.yaml'), `systems:\n  - name: police\n    domain: police.example\n    http: { host: 127.0.0.1, port: ${port} }\n    store: sqlite:${join(dir, 'police.db')}\n    secret: op-secret\n`);
    writeFileSync(join(dir, 'alice.yaml'), `id: ${ALICE}\nservices: [mcptt]\nn2: 2\ngroups: [${PATROL}]\nremoteChange: false\n`);
    const run = await muster(['user-profile', 'put', join(dir, 'alice.yaml'), '--config', join(dir, 'police.yaml'), '--system', 'police']);
    assert.equal(run.code, 3, run.stderr);
    assert.equal(run.stdout, `${ALICE}  stored, not yet in force at instances: ${B}\n`);
    assert.equal(run.stderr, `muster: ${WARNING}\n`);
    assert.equal(srv.seen[0]!.method, 'PUT');
    assert.equal(srv.seen[0]!.url, `/admin/v1/users/${encodeURIComponent(ALICE)}`);
    assert.deepEqual(srv.seen[0]!.body, profile);
    const cred = await new CredentialVerifier('op-secret', 'police.example').verify(srv.seen[0]!.authorization);
    assert.equal(cred.role, 'operator');
  } finally {
    await srv.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

void test('group put in force everywhere: exit 0; group delete 202 --json prints the answer; user-profile delete 204: exit 0', { timeout: 60_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'muster-cli-op-'));
  const srv = await standIn((req, res) => {
    if (req.method === 'PUT') return reply(res, 200, { ...(req.body as object), revision: 4 });
    if (req.url.startsWith('/gms/')) return reply(res, 202, { id: PATROL, deleted: true, notConfirmed: [B], warning: WARNING });
    reply(res, 204);
  });
  try {
    writeFileSync(join(dir, 'patrol.json'), JSON.stringify({ id: PATROL, services: ['mcptt'], members: [ALICE] }));
    const put = await muster(['group', 'put', join(dir, 'patrol.json'), '--server', srv.url, '--token', 't']);
    assert.equal(put.code, 0, put.stderr);
    assert.equal(put.stdout, `${PATROL}  stored, in force at every instance\n`);
    assert.equal(srv.seen[0]!.url, `/gms/v1/groups/${encodeURIComponent(PATROL)}`);

    const del = await muster(['group', 'delete', PATROL, '--server', srv.url, '--token', 't', '--json']);
    assert.equal(del.code, 3);
    assert.deepEqual(JSON.parse(del.stdout), { id: PATROL, deleted: true, notConfirmed: [B], warning: WARNING });
    assert.equal(del.stderr, `muster: ${WARNING}\n`);
    assert.equal(srv.seen[1]!.method, 'DELETE');

    const gone = await muster(['user-profile', 'delete', ALICE, '--server', srv.url, '--token', 't']);
    assert.equal(gone.code, 0, gone.stderr);
    assert.equal(gone.stdout, `${ALICE}  deleted, in force at every instance\n`);
    assert.equal(srv.seen[2]!.url, `/admin/v1/users/${encodeURIComponent(ALICE)}`);
  } finally {
    await srv.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

// The `muster` CLI: output shapes as tables, and the commands run as real processes against a small HTTP server.
import { test, describe, before } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { issueToken, CredentialVerifier } from '../../src/faces/http/credentials.ts';
import { affiliationResponseLines, changeResponseLines, changeEventLine, statusEventLines, userAffiliationLines, groupMemberLines } from '../../src/cli/output.ts';
import { asChange } from '../../src/cli/commands/watch.ts';

const ALICE = 'sip:alice@police.example';
const BOB = 'sip:bob@police.example';
const DISPATCH = 'sip:dispatch@police.example';
const PATROL = 'sip:patrol@police.example';
const FIRE_OPS = 'sip:fire-ops@fire.example';
const NORTH = 'sip:north@police.example';

void describe('output shapes', () => {
  void test('affiliation response: one line per group, rejected ones with reason code and text', () => {
    const lines = affiliationResponseLines({
      mcServiceId: ALICE,
      service: 'mcptt',
      groupIds: [PATROL, FIRE_OPS],
      status: [
        { groupId: PATROL, status: 'affiliated' },
        { groupId: FIRE_OPS, status: 'rejected', reason: 'n2-limit' },
      ],
    });
    assert.deepEqual(lines, [
      'sip:patrol@police.example  affiliated',
      'sip:fire-ops@fire.example  rejected (n2-limit: the user is at the limit (N2) of simultaneous affiliations)',
    ]);
  });

  void test('change response: per target its outcome, then its groups indented', () => {
    const lines = changeResponseLines({
      id: 'c1',
      mcServiceId: DISPATCH,
      service: 'mcptt',
      mode: 'mandatory',
      results: [
        { target: BOB, outcome: 'applied', status: [{ groupId: PATROL, status: 'affiliated' }, { groupId: NORTH, status: 'deaffiliated' }] },
        { target: 'sip:carol@police.example', outcome: 'rejected-by-user', status: [{ groupId: PATROL, status: 'rejected', reason: 'rejected-by-user' }] },
      ],
    });
    assert.deepEqual(lines, [
      'sip:bob@police.example    applied',
      '  sip:patrol@police.example  affiliated',
      '  sip:north@police.example   deaffiliated',
      'sip:carol@police.example  rejected-by-user',
      '  sip:patrol@police.example  rejected (rejected-by-user: the target user rejected the change)',
    ]);
  });

  void test('events: change and status lines', () => {
    const change = asChange({ id: 'c9', mode: 'negotiated', actor: DISPATCH, target: BOB, service: 'mcptt', affiliate: [PATROL], deaffiliate: [NORTH] });
    assert.ok(change);
    assert.equal(changeEventLine(change), `affiliation-change c9 negotiated from ${DISPATCH} (mcptt): affiliate ${PATROL}; deaffiliate ${NORTH}`);
    assert.equal(asChange({ id: 'c9', mode: 'sometimes' }), undefined);
    assert.deepEqual(statusEventLines({ service: 'mcdata', status: [{ groupId: PATROL, status: 'affiliated' }] }), ['affiliation-status (mcdata)', `  ${PATROL}  affiliated`]);
  });

  void test('status: a user\'s affiliations with state (and a group no longer usable), a group\'s members', () => {
    const affiliations = userAffiliationLines({
      mcServiceId: ALICE,
      affiliations: [
        { groupId: PATROL, service: 'mcptt', state: 'affiliated', group: 'enabled' },
        { groupId: FIRE_OPS, service: 'mcptt', state: 'reserved', group: 'partner' },
        { groupId: 'sip:night@police.example', service: 'mcptt', state: 'affiliated', group: 'disabled' },
      ],
    });
    assert.deepEqual(affiliations, [
      `${PATROL}  affiliated`,
      `${FIRE_OPS}  reserved`,
      'sip:night@police.example   affiliated  (group disabled)',
    ]);
    assert.deepEqual(groupMemberLines({ groupId: PATROL, members: [{ mcServiceId: ALICE, service: 'mcptt' }, { mcServiceId: BOB, service: 'mcptt' }] }), [ALICE, BOB]);
  });
});

// ---- the CLI as a process ----

interface Seen {
  method: string;
  url: string;
  headers: IncomingMessage['headers'];
  body: unknown;
}
type Route = (req: Seen, res: ServerResponse) => void;

function json(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
}

async function fakeServer(route: Route): Promise<{ url: string; seen: Seen[]; close: () => Promise<void> }> {
  const seen: Seen[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const text = Buffer.concat(chunks).toString('utf8');
      const s = { method: req.method ?? '', url: req.url ?? '', headers: req.headers, body: text ? (JSON.parse(text) as unknown) : undefined };
      seen.push(s);
      route(s, res);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    seen,
    close: () => {
      server.closeAllConnections();
      return new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `muster ARGS` as a process (never blocking this one, whose server it talks to); `whileRunning` may signal it. */
function muster(args: string[], opts: { env?: Record<string, string>; whileRunning?: (child: ReturnType<typeof spawn>, out: () => string) => void } = {}): Promise<Run> {
  return new Promise((resolve, reject) => {
    const env: NodeJS.ProcessEnv = { ...process.env, ...opts.env };
    if (!opts.env?.['MUSTER_SERVER']) delete env['MUSTER_SERVER'];
    if (!opts.env?.['MUSTER_TOKEN']) delete env['MUSTER_TOKEN'];
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli/muster.ts', ...args], {
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
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
    opts.whileRunning?.(child, () => stdout);
  });
}

void describe('muster as a process', { timeout: 60_000 }, () => {
  let token: string;
  before(async () => {
    token = await issueToken({ secret: 's', domain: 'police.example', subject: ALICE, role: 'user' });
  });

  void test('affiliate: --as defaults to the credential subject; exit 3 when a group is rejected', async () => {
    const srv = await fakeServer((req, res) => {
      const body = req.body as { mcServiceId: string; service: string; groupIds: string[] };
      json(res, 200, { ...body, status: [{ groupId: PATROL, status: 'affiliated' }, { groupId: FIRE_OPS, status: 'rejected', reason: 'n2-limit' }] });
    });
    try {
      const run = await muster(['affiliate', '--server', srv.url, '--token', token, PATROL, FIRE_OPS]);
      assert.equal(run.code, 3, run.stderr);
      assert.equal(run.stdout, `${PATROL}  affiliated\n${FIRE_OPS}  rejected (n2-limit: the user is at the limit (N2) of simultaneous affiliations)\n`);
      assert.deepEqual(srv.seen[0]!.body, { mcServiceId: ALICE, service: 'mcptt', groupIds: [PATROL, FIRE_OPS] });
      assert.equal(srv.seen[0]!.url, '/mc/v1/affiliations');
    } finally {
      await srv.close();
    }
  });

  void test('deaffiliate --json prints the raw answer; exit 0 when every group is deaffiliated; env gives server and token', async () => {
    const answer = { mcServiceId: BOB, service: 'mcdata', groupIds: [PATROL], status: [{ groupId: PATROL, status: 'deaffiliated' }] };
    const srv = await fakeServer((_req, res) => json(res, 200, answer));
    try {
      const run = await muster(['deaffiliate', '--as', BOB, '--service', 'mcdata', '--json', PATROL], { env: { MUSTER_SERVER: srv.url, MUSTER_TOKEN: token } });
      assert.equal(run.code, 0, run.stderr);
      assert.deepEqual(JSON.parse(run.stdout), answer);
      assert.equal(srv.seen[0]!.url, '/mc/v1/deaffiliations');
      assert.deepEqual(srv.seen[0]!.body, { mcServiceId: BOB, service: 'mcdata', groupIds: [PATROL] });
    } finally {
      await srv.close();
    }
  });

  void test('a refusal is one line on stderr with status, code and message, exit 1', async () => {
    const srv = await fakeServer((_req, res) => json(res, 403, { error: { code: 'forbidden', message: "mcServiceId is not the credential's user" } }));
    try {
      const run = await muster(['affiliate', '--server', srv.url, '--token', token, '--as', BOB, PATROL]);
      assert.equal(run.code, 1);
      assert.equal(run.stdout, '');
      assert.equal(run.stderr, "muster: 403 forbidden: mcServiceId is not the credential's user\n");
    } finally {
      await srv.close();
    }
  });

  void test('no server: one line naming the URL, exit 1; bad command line: exit 2', async () => {
    const srv = await fakeServer(() => undefined);
    const url = srv.url;
    await srv.close();
    const run = await muster(['affiliate', '--server', url, '--token', token, PATROL]);
    assert.equal(run.code, 1);
    assert.match(run.stderr, new RegExp(`^muster: cannot reach the server at ${url} \\(ECONNREFUSED\\)\\n$`));
    const usage = await muster(['affiliate', '--service', 'mcfoo', '--token', token, PATROL]);
    assert.equal(usage.code, 2);
    assert.match(usage.stderr, /^muster: option '--service <service>' argument 'mcfoo' is invalid/);
    const noToken = await muster(['status', ALICE]);
    assert.equal(noToken.code, 2);
    assert.match(noToken.stderr, /^muster: no credential/);
  });

  void test('change: per target outcome and groups; exit 3 when a target did not apply it', async () => {
    const srv = await fakeServer((_req, res) =>
      json(res, 200, {
        id: 'c1',
        mcServiceId: DISPATCH,
        service: 'mcptt',
        mode: 'negotiated',
        results: [
          { target: BOB, outcome: 'applied', status: [{ groupId: PATROL, status: 'affiliated' }] },
          { target: ALICE, outcome: 'timeout', status: [{ groupId: PATROL, status: 'rejected', reason: 'timeout' }] },
        ],
      }),
    );
    try {
      const args = ['change', '--server', srv.url, '--token', token, '--as', DISPATCH, '--mode', 'negotiated', '--target', BOB, '--target', ALICE, '--affiliate', PATROL, '--deaffiliate', NORTH];
      const run = await muster(args);
      assert.equal(run.code, 3, run.stderr);
      assert.equal(
        run.stdout,
        [`${BOB}    applied`, `  ${PATROL}  affiliated`, `${ALICE}  timeout`, `  ${PATROL}  rejected (timeout: the target user did not answer in time)`, ''].join('\n'),
      );
      assert.deepEqual(srv.seen[0]!.body, { mcServiceId: DISPATCH, service: 'mcptt', mode: 'negotiated', targets: [BOB, ALICE], affiliate: [PATROL], deaffiliate: [NORTH] });
    } finally {
      await srv.close();
    }
  });

  void test('status: an unknown user is looked up as a group', async () => {
    const srv = await fakeServer((req, res) => {
      if (req.url.startsWith('/mc/v1/users/')) json(res, 404, { error: { code: 'not-found', message: 'no such user' } });
      else json(res, 200, { groupId: PATROL, members: [{ mcServiceId: ALICE, service: 'mcptt' }, { mcServiceId: BOB, service: 'mcptt' }] });
    });
    try {
      const run = await muster(['status', '--server', srv.url, '--token', token, PATROL]);
      assert.equal(run.code, 0, run.stderr);
      assert.equal(run.stdout, `${ALICE}\n${BOB}\n`);
      assert.deepEqual(srv.seen.map((s) => s.url), [`/mc/v1/users/${encodeURIComponent(PATROL)}/affiliations?service=mcptt`, `/mc/v1/groups/${encodeURIComponent(PATROL)}/members?service=mcptt`]);
    } finally {
      await srv.close();
    }
  });

  void test('watch --reject: acknowledges mandatory changes, rejects negotiated ones, prints each event; Ctrl-C ends it with 0', async () => {
    const mandatory = { id: 'm1', mode: 'mandatory', actor: DISPATCH, target: ALICE, service: 'mcptt', affiliate: [PATROL], deaffiliate: [] };
    const negotiated = { id: 'n1', mode: 'negotiated', actor: DISPATCH, target: ALICE, service: 'mcptt', affiliate: [], deaffiliate: [NORTH], deadline: '2030-01-01T00:00:30.000Z' };
    const srv = await fakeServer((req, res) => {
      if (req.url === '/mc/v1/events') {
        res.writeHead(200, { 'content-type': 'text/event-stream' });
        res.write(`id: 1\nevent: affiliation-change\ndata: ${JSON.stringify(mandatory)}\n\n`);
        res.write(`id: 2\nevent: affiliation-change\ndata: ${JSON.stringify(negotiated)}\n\n`);
        res.write(`id: 3\nevent: affiliation-status\ndata: ${JSON.stringify({ service: 'mcptt', status: [{ groupId: PATROL, status: 'affiliated' }] })}\n\n`);
        return; // stays open
      }
      const accept = (req.body as { accept: boolean }).accept;
      json(res, 200, { id: req.url.includes('/m1/') ? 'm1' : 'n1', state: accept ? 'acknowledged' : 'rejected', status: req.url.includes('/m1/') ? [{ groupId: PATROL, status: 'affiliated' }] : [] });
    });
    try {
      const run = await muster(['watch', '--server', srv.url, '--token', token, '--reject'], {
        whileRunning: (child, out) => {
          const poll = setInterval(() => {
            if (out().includes('affiliation-status')) {
              clearInterval(poll);
              child.kill('SIGINT');
            }
          }, 20);
        },
      });
      assert.equal(run.code, 0, run.stderr);
      assert.equal(
        run.stdout,
        [
          `affiliation-change m1 mandatory from ${DISPATCH} (mcptt): affiliate ${PATROL}`,
          '  acknowledged',
          `  ${PATROL}  affiliated`,
          `affiliation-change n1 negotiated from ${DISPATCH} (mcptt): deaffiliate ${NORTH} (answer by 2030-01-01T00:00:30.000Z)`,
          '  rejected',
          'affiliation-status (mcptt)',
          `  ${PATROL}  affiliated`,
          '',
        ].join('\n'),
      );
      const answers = srv.seen.filter((s) => s.method === 'POST').map((s) => [s.url, s.body]);
      assert.deepEqual(answers, [
        ['/mc/v1/affiliation-changes/m1/answer', { accept: true }],
        ['/mc/v1/affiliation-changes/n1/answer', { accept: false }],
      ]);
    } finally {
      await srv.close();
    }
  });

  void test('token: signed with the secret of the user\'s home system; --operator for the named system', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'muster-cli-'));
    try {
      const config = join(dir, 'two.yaml');
      writeFileSync(
        config,
        [
          `dataDir: ${join(dir, 'data')}`,
          'systems:',
          '  - { name: police, domain: police.example, http: { port: 0 }, secret: police-secret,',
          '      users: [{ id: "sip:alice@police.example", services: [mcptt], n2: 3, groups: [] }] }',
          '  - { name: fire, domain: fire.example, http: { port: 0 }, secret: fire-secret }',
        ].join('\n'),
      );
      const run = await muster(['token', '--config', config, '--user', 'sip:bob@FIRE.example', '--ttl', '60']);
      assert.equal(run.code, 0, run.stderr);
      assert.match(run.stdout, /^[\w-]+\.[\w-]+\.[\w-]+\n$/);
      const cred = await new CredentialVerifier('fire-secret', 'fire.example').verify(`Bearer ${run.stdout.trim()}`);
      assert.deepEqual([cred.subject, cred.role], ['sip:bob@fire.example', 'user']);

      const op = await muster(['token', '--config', config, '--operator', '--system', 'police']);
      assert.equal(op.code, 0, op.stderr);
      assert.equal((await new CredentialVerifier('police-secret', 'police.example').verify(`Bearer ${op.stdout.trim()}`)).role, 'operator');

      const stranger = await muster(['token', '--config', config, '--user', 'sip:eve@elsewhere.example']);
      assert.equal(stranger.code, 2);
      assert.match(stranger.stderr, /^muster: no system of domain elsewhere.example/);
      const bad = await muster(['token', '--config', join(dir, 'missing.yaml'), '--user', ALICE]);
      assert.equal(bad.code, 1);
      assert.match(bad.stderr, /^muster: config .*missing\.yaml: cannot read/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

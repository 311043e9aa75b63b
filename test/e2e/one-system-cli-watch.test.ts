// E2E (issue 2), one MC system: the `muster` CLI as a process against the real server: `watch --accept` answering a
// negotiated change sent by `change --mode negotiated`, and errors as one line on stderr with a non-zero exit.
// (affiliate, deaffiliate, change and status: one-system-cli.test.ts)
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { CLI, Muster, ROOT, call, cli, freePort, secret } from '../support/harness.ts';
import { issueToken } from '../../src/faces/http/credentials.ts';

const D = 'police.example';
const u = (name: string): string => `sip:${name}@${D}`;
const g = (name: string): string => `sip:${name}@${D}`;
const enc = encodeURIComponent;

interface GroupStatus {
  groupId: string;
  status: string;
  reason?: string;
}

let m: Muster;
let base: string;
let operator: string;

before(async () => {
  m = await Muster.start({
    // Long enough for `muster watch` to start (a process with tsx on a busy machine) before the change times out.
    negotiationTimeoutSeconds: 30,
    systems: [
      {
        name: 'police',
        domain: D,
        http: { host: '127.0.0.1', port: await freePort() },
        secret: secret(),
        users: [
          { id: u('dispatch'), services: ['mcptt'], n2: 10, groups: [g('patrol'), g('north')], remoteChange: true },
          { id: u('alice'), services: ['mcptt'], n2: 2, groups: [g('patrol'), g('north'), g('closed'), g('south')] },
          { id: u('bob'), services: ['mcptt'], n2: 2, groups: [g('patrol'), g('north')] },
          { id: u('erin'), services: ['mcptt'], n2: 2, groups: [g('patrol'), g('north')] },
        ],
        groups: [
          { id: g('patrol'), services: ['mcptt'], members: [u('dispatch'), u('alice'), u('bob'), u('erin')] },
          { id: g('north'), services: ['mcptt'], members: [u('dispatch'), u('alice'), u('bob'), u('erin')] },
          { id: g('south'), services: ['mcptt'], members: [u('alice')] },
          { id: g('closed'), services: ['mcptt'], members: [u('dispatch')] },
        ],
      },
    ],
  });
  base = m.url('police');
  operator = await m.operatorToken();
});

after(async () => {
  await m?.stop();
});

async function stored(user: string): Promise<string[]> {
  const r = await call('GET', `${base}/mc/v1/users/${enc(user)}/affiliations?service=mcptt`, operator);
  assert.equal(r.status, 200, JSON.stringify(r.body));
  return (r.body as { affiliations: { groupId: string }[] }).affiliations.map((a) => a.groupId).sort();
}

const lines = (text: string): string[] => text.split('\n').filter((l) => l.length > 0);
/** The lines of a stream still being written: the last one may be cut, so only those ended by a newline. */
const completeLines = (text: string): string[] => lines(text.slice(0, text.lastIndexOf('\n') + 1));

/** A failed command: non-zero exit, exactly one line on stderr ("muster: ..."), nothing on stdout. */
function assertOneLineError(r: { code: number; stdout: string; stderr: string }, code: number, pattern: RegExp): void {
  assert.equal(r.code, code, `exit ${r.code}; stderr: ${r.stderr}; stdout: ${r.stdout}`);
  const errLines = lines(r.stderr);
  assert.equal(errLines.length, 1, `stderr: ${r.stderr}`);
  assert.match(errLines[0]!, /^muster: /);
  assert.match(errLines[0]!, pattern);
  assert.equal(r.stdout, '');
}

void describe('muster CLI against the server: watch and errors', () => {
  void test('watch --accept answers a negotiated change sent with change --mode negotiated', async () => {
    const watch = spawn(process.execPath, ['--import', 'tsx', CLI, 'watch', '--accept', '--json', '--server', base, '--token', await m.token(u('erin'))], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let wOut = '';
    let wErr = '';
    watch.stdout.on('data', (c: Buffer) => (wOut += c.toString()));
    watch.stderr.on('data', (c: Buffer) => (wErr += c.toString()));
    const exited = new Promise<number | null>((resolve) => watch.once('exit', (code) => resolve(code)));
    const guard = setTimeout(() => watch.kill('SIGKILL'), 40_000);
    try {
      const c = await cli(['change', '--server', base, '--token', await m.token(u('dispatch')), '--json', '--mode', 'negotiated', '--target', u('erin'), '--affiliate', g('north')]);
      assert.equal(c.code, 0, `${c.stdout}\n${c.stderr}\nwatch: ${wOut}\n${wErr}`);
      const res = JSON.parse(c.stdout) as { mode: string; results: { target: string; outcome: string; status: GroupStatus[] }[] };
      assert.equal(res.mode, 'negotiated');
      assert.equal(res.results[0]!.outcome, 'applied');
      assert.deepEqual(res.results[0]!.status, [{ groupId: g('north'), status: 'affiliated' }]);
      assert.deepEqual(await stored(u('erin')), [g('north')]);

      // watch printed the change event and its answer (JSON lines); wait (bounded) for the answer line.
      let answerLine: { type: string; accept?: boolean } | undefined;
      for (let i = 0; i < 50 && !answerLine; i += 1) {
        answerLine = completeLines(wOut)
          .map((l) => JSON.parse(l) as { type: string; accept?: boolean })
          .find((e) => e.type === 'answer');
        if (!answerLine) await new Promise((r) => setTimeout(r, 100));
      }
      assert.deepEqual({ type: answerLine?.type, accept: answerLine?.accept }, { type: 'answer', accept: true }, wOut);
      assert.ok(completeLines(wOut).some((l) => (JSON.parse(l) as { type: string }).type === 'affiliation-change'), wOut);
    } finally {
      watch.kill('SIGTERM');
      const code = await exited;
      clearTimeout(guard);
      assert.equal(code, 0, `watch exit ${code}; stderr: ${wErr}`);
    }
  });

  void test('errors: one line on stderr and a non-zero exit', async () => {
    // Independent failures, run side by side.
    const forged = await issueToken({ secret: secret(), domain: D, subject: u('alice'), role: 'user' });
    const alice = await m.token(u('alice'));
    const nowhere = `http://127.0.0.1:${await freePort()}`;
    const [badCredential, badInput, someoneElse, noServer, noToken] = await Promise.all([
      // A credential the server refuses (signed with another secret).
      cli(['affiliate', '--server', base, '--token', forged, g('patrol')]),
      // Bad input, named by the server.
      cli(['affiliate', '--server', base, '--token', alice, 'patrol']),
      // Acting as someone else.
      cli(['affiliate', '--server', base, '--token', alice, '--as', u('bob'), g('patrol')]),
      // No server at that address.
      cli(['status', '--server', nowhere, '--token', alice, u('alice')]),
      // No credential at all: a usage error.
      cli(['deaffiliate', '--server', base, g('patrol')], { MUSTER_TOKEN: '' }),
    ]);
    assertOneLineError(badCredential, 1, /401/);
    assertOneLineError(badInput, 1, /400.*groupIds\[0\]/);
    assertOneLineError(someoneElse, 1, /403/);
    assertOneLineError(noServer, 1, /./);
    assert.notEqual(noToken.code, 0);
    assert.equal(lines(noToken.stderr).length, 1, noToken.stderr);
    // The refused attempts stored nothing.
    assert.deepEqual(await stored(u('alice')), []);
    assert.deepEqual(await stored(u('bob')), []);
  });
});

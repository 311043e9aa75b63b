// When the primary server re-synchronises with a partner server (partner-recovery.ts), on a clock the test moves:
// a partner server that announces it started ends a back-off wait at once, the re-synchronisation runs promptly and
// never twice at once, a partner that fails again backs off further, and a 429's Retry-After is still waited out, as
// is a 503's that a node or host refused before doing anything (processed: false); a relay loop (508) is logged as the
// configuration error it is and tried again on the back-off only.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { resolveConfig } from '../../src/config/config.ts';
import { McSystem } from '../../src/system.ts';
import type { ResyncPageOutcome } from '../../src/ports/partner.ts';
import { PartnerRecovery, type PartnerRecoveryOptions } from '../../src/procedures/partner-recovery.ts';
import { standInPartners } from '../support/stand-in-partners.ts';
import { TestClock } from '../support/test-clock.ts';

const P = 'police.example';
const F = 'fire.example';
const OPTS: PartnerRecoveryOptions = { probeEveryMs: 1000, maxProbeEveryMs: 60_000, runTimeoutMs: 300_000, maxFollowUps: 3 };
const AGREED: ResyncPageOutcome = { kind: 'answered', answer: { removed: [], spared: [], missing: [], graceMs: 5000 } };
const FAILED: ResyncPageOutcome = { kind: 'failed', why: 'the partner did not answer the page' };


/** A partner server whose pages answer as `answers` says next, else as `setDefault` says (failed until told); counts pages and how many were open at once. */
function partner(clock: TestClock) {
  const seen = { pages: 0, open: 0, mostOpen: 0 };
  const answers: (() => Promise<ResyncPageOutcome>)[] = [];
  let answerNext: () => Promise<ResyncPageOutcome> = async () => FAILED;
  const partners = standInPartners(F, {
    async resync() {
      seen.pages++;
      seen.mostOpen = Math.max(seen.mostOpen, ++seen.open);
      try {
        return await (answers.shift() ?? answerNext)();
      } finally {
        seen.open--;
      }
    },
  });
  return { seen, answers, partners, clock, setDefault: (a: () => Promise<ResyncPageOutcome>) => (answerNext = a) };
}

/** Fires due timers and lets the event loop turn until `done` holds (bounded: well under a second of real time). */
async function settle(clock: TestClock, done: () => boolean, what: string): Promise<void> {
  for (let turn = 0; turn < 200; turn++) {
    clock.fireDue();
    if (done()) return;
    await new Promise((r) => setTimeout(r, 1));
  }
  assert.fail(`${what}: not within 200 turns of the event loop (the clock at +${clock.t - 1_800_000_000_000} ms, timers due in ${clock.pending().join(', ') || 'none'} ms)`);
}

/** Fires due timers and lets the event loop turn a few times: whatever is ready to happen has happened. */
async function quiet(clock: TestClock): Promise<void> {
  for (let turn = 0; turn < 20; turn++) {
    clock.fireDue();
    await new Promise((r) => setImmediate(r));
  }
}

/** A log line of the recovery, as pino writes it. */
type LogLine = { level: number; msg: string; [k: string]: unknown };

/** Police (SQLite, not listening: no re-synchronisation of its own) and its recovery towards the stand-in fire; `logs`: what the recovery logged. */
async function withRecovery(work: (recovery: PartnerRecovery, fire: ReturnType<typeof partner>, logs: LogLine[]) => Promise<void>): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'muster-recovery-'));
  const clock = new TestClock(1_800_000_000_000);
  const config = resolveConfig({ dataDir: dir, systems: [{ name: 'police', domain: P, http: { port: 0 }, secret: 'police-secret', partners: [{ domain: F, url: 'http://127.0.0.1:9', secret: 'shared' }] }] })[0]!;
  const police = await McSystem.open(config, { clock, log: pino({ level: 'silent' }) });
  const fire = partner(clock);
  const logs: LogLine[] = [];
  const log = pino({ level: 'info' }, { write: (line: string) => void logs.push(JSON.parse(line) as LogLine) });
  const recovery = new PartnerRecovery({ ...police.server, partners: fire.partners, clock, log }, OPTS);
  try {
    await work(recovery, fire, logs);
  } finally {
    recovery.stop();
    await police.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

void test('a partner server that announces it started ends the back-off wait: the re-synchronisation runs at once', () =>
  withRecovery(async (recovery, fire) => {
    const { clock, seen } = fire;
    recovery.whenReachable(F, 'back after being unreachable');
    await settle(clock, () => seen.pages === 1, 'the first re-synchronisation');
    await quiet(clock);

    // Fire restarts and says so (its start-up page to police): the wait ends, the clock does not move.
    fire.setDefault(async () => AGREED);
    recovery.partnerStarted(F);
    await settle(clock, () => seen.pages === 2, 'the re-synchronisation after the partner server announced it started');
    await quiet(clock);
    assert.deepEqual([seen.pages, seen.mostOpen], [2, 1]);
    assert.deepEqual(clock.pending(), [], 'complete: nothing left waiting');
  }));

void test('a partner server that announces it started and fails again keeps backing off, further each time', () =>
  withRecovery(async (recovery, fire) => {
    const { clock, seen } = fire;
    recovery.whenReachable(F, 'back after being unreachable');
    // Failed runs in a row: 2 s, 4 s, 8 s, 16 s between them.
    for (let failed = 1; failed <= 4; failed++) {
      await settle(clock, () => seen.pages === failed, `run ${failed}`);
      await quiet(clock);
      assert.deepEqual(clock.pending(), [OPTS.probeEveryMs * 2 ** failed]);
      if (failed < 4) clock.t += OPTS.probeEveryMs * 2 ** failed;
    }
    // Fire says it started, but fails again: one prompt run, then a longer wait than before (32 s), not a loop.
    recovery.partnerStarted(F);
    await settle(clock, () => seen.pages === 5, 'the re-synchronisation after the partner server announced it started');
    await quiet(clock);
    assert.equal(seen.pages, 5, 'one run per announcement');
    assert.deepEqual(clock.pending(), [32_000]);
    clock.t += 31_999;
    await quiet(clock);
    assert.equal(seen.pages, 5, 'not before the back-off');
    clock.t += 1;
    await settle(clock, () => seen.pages === 6, 'the run after the back-off');
    await quiet(clock);
    assert.deepEqual(clock.pending(), [OPTS.maxProbeEveryMs], 'at most the longest wait');

    // Announced twice in a row while waiting: one run, the wait after it capped as before.
    recovery.partnerStarted(F);
    recovery.partnerStarted(F);
    await settle(clock, () => seen.pages === 7, 'the run after two announcements');
    await quiet(clock);
    assert.deepEqual([seen.pages, seen.mostOpen, clock.pending()], [7, 1, [OPTS.maxProbeEveryMs]]);
  }));

void test('announced while a re-synchronisation runs: the next starts after it, never two at once', () =>
  withRecovery(async (recovery, fire) => {
    const { clock, seen } = fire;
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    fire.answers.push(async () => (await held, AGREED));
    fire.setDefault(async () => AGREED);
    recovery.whenReachable(F, 'back after being unreachable');
    await settle(clock, () => seen.open === 1, 'the first re-synchronisation');
    recovery.partnerStarted(F);
    await quiet(clock);
    recovery.partnerStarted(F);
    await quiet(clock);
    assert.deepEqual([seen.pages, seen.open], [1, 1], 'the first still running, the next not started');
    release();
    await settle(clock, () => seen.pages === 2 && seen.open === 0, 'the run after the first');
    await quiet(clock);
    assert.deepEqual([seen.pages, seen.mostOpen, clock.pending()], [2, 1, []], 'one more run for both announcements');
  }));

void test("a partner server's Retry-After (429) is waited out even when it announces it started meanwhile", () =>
  withRecovery(async (recovery, fire) => {
    const { clock, seen } = fire;
    fire.answers.push(async () => ({ kind: 'rate-limited', retryAfterMs: 3000 }));
    fire.setDefault(async () => AGREED);
    recovery.whenReachable(F, 'back after being unreachable');
    await settle(clock, () => seen.pages === 1, 'the first page');
    await quiet(clock);
    recovery.partnerStarted(F);
    await quiet(clock);
    assert.equal(seen.pages, 1, 'the page is not sent again before its Retry-After');
    clock.t += 3000;
    await settle(clock, () => seen.pages === 3 && seen.open === 0, 'the page again, then the run after the announcement');
    await quiet(clock);
    assert.deepEqual([seen.pages, seen.mostOpen, clock.pending()], [3, 1, []]);
  }));

void test('announced while a failing re-synchronisation runs: the run after it is prompt, and the back-off counts on from both', () =>
  withRecovery(async (recovery, fire) => {
    const { clock, seen } = fire;
    recovery.whenReachable(F, 'back after being unreachable');
    for (let failed = 1; failed <= 2; failed++) {
      await settle(clock, () => seen.pages === failed, `run ${failed}`);
      await quiet(clock);
      clock.t += OPTS.probeEveryMs * 2 ** failed;
    }
    // The third failed run is held at the partner while it announces it started.
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    fire.answers.push(async () => (await held, FAILED));
    await settle(clock, () => seen.open === 1, 'run 3');
    recovery.partnerStarted(F);
    await quiet(clock);
    release();
    await settle(clock, () => seen.pages === 4 && seen.open === 0, 'the run after the announcement, right after run 3');
    await quiet(clock);
    // One wait: the one run 3's failure set (8 s); run 4's failure finds it waiting and leaves it.
    assert.deepEqual([seen.pages, seen.mostOpen, clock.pending()], [4, 1, [8000]]);
    clock.t += 8000;
    await settle(clock, () => seen.pages === 5, 'run 5');
    await quiet(clock);
    assert.deepEqual(clock.pending(), [32_000], 'five failed in a row, the announcement\'s run among them');
  }));

void test("a 503 refused before anything was done (processed: false) is waited out as its Retry-After says, and the run goes on", () =>
  withRecovery(async (recovery, fire) => {
    const { clock, seen } = fire;
    // 3 s: not the 2 s a failed run's back-off would wait.
    fire.answers.push(async () => ({ kind: 'unavailable', retryAfterMs: 3000, why: 'status 503: next hop has 128 relayed requests in progress (maxRelaysInFlight)' }));
    fire.setDefault(async () => AGREED);
    recovery.whenReachable(F, 'back after being unreachable');
    await settle(clock, () => seen.pages === 1, 'the first page');
    await quiet(clock);
    assert.deepEqual(clock.pending(), [3000], 'the Retry-After, nothing else');
    clock.t += 3000;
    await settle(clock, () => seen.pages === 2 && seen.open === 0, 'the page again');
    await quiet(clock);
    assert.deepEqual([seen.pages, clock.pending()], [2, []], 'the run completed: no back-off');
  }));

void test('a relay loop (508) on the way to the partner: logged at error level with the chain, tried again on the back-off only', () =>
  withRecovery(async (recovery, fire, logs) => {
    const { clock, seen } = fire;
    const why = "relay loop towards fire.example: gateway.example -> coast.example -> gateway.example (Via); the partners' `via` routes to fire.example lead back to gateway.example";
    fire.setDefault(async () => ({ kind: 'loop-detected', why }));
    recovery.whenReachable(F, 'back after being unreachable');
    for (let run = 1; run <= 3; run++) {
      await settle(clock, () => seen.pages === run, `run ${run}`);
      await quiet(clock);
      assert.deepEqual(clock.pending(), [OPTS.probeEveryMs * 2 ** run], `the back-off after run ${run}`);
      clock.t += OPTS.probeEveryMs * 2 ** run - 1;
      await quiet(clock);
      assert.equal(seen.pages, run, 'no run before the back-off');
      clock.t += 1;
    }
    const errors = logs.filter((l) => l.level === 50);
    assert.equal(errors.length, 3, JSON.stringify(logs));
    assert.match(JSON.stringify(errors[0]), /gateway\.example -> coast\.example -> gateway\.example/);
    assert.match(errors[0]!.msg, /relay loop/);
  }));

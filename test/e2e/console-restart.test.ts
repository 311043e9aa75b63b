// E2E: the console (`GET /console`) keeps working across a server restart, as a dispatcher would expect: with the
// page open and a user signed in, `muster serve` is stopped and started again on the same store and port; the page's
// event stream reconnects by itself (src/client/event-stream.ts), and a dispatcher's mandatory change made after the
// restart arrives live, is acknowledged and listed without a reload.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Page } from 'playwright-core';
import { Muster, call, freePort, secret } from '../support/harness.ts';
import { openConsoleBrowser, WAIT, type ConsoleBrowser } from '../support/console-browser.ts';

const D = 'police.example';
const u = (name: string): string => `sip:${name}@${D}`;
const g = (name: string): string => `sip:${name}@${D}`;
const ALICE = u('alice');
const DISPATCH = u('dispatch');

let m: Muster;
let base: string;
let browser: ConsoleBrowser;
let page: Page;

before(async () => {
  m = await Muster.start({
    systems: [
      {
        name: 'police',
        domain: D,
        http: { host: '127.0.0.1', port: await freePort() },
        secret: secret(),
        users: [
          { id: DISPATCH, services: ['mcptt'], n2: 10, groups: [g('patrol')], remoteChange: true },
          { id: ALICE, services: ['mcptt'], n2: 3, groups: [g('patrol'), g('south')] },
        ],
        groups: [
          { id: g('patrol'), services: ['mcptt'], members: [DISPATCH, ALICE] },
          { id: g('south'), services: ['mcptt'], members: [DISPATCH, ALICE] },
        ],
      },
    ],
  });
  base = m.url('police');
  browser = await openConsoleBrowser();
  page = browser.page;
});

after(async () => {
  await browser?.close();
  await m?.stop();
});

const myRow = (group: string): ReturnType<Page['locator']> => page.locator('#my-affiliations tr', { hasText: group });

/**
 * What the restart itself may make the page log, and nothing else: the open `/mc/v1/events` response cut by the
 * stopping server ("Failed to load resource: net::ERR_INCOMPLETE_CHUNKED_ENCODING"), and the SDK's reconnect tries
 * that find nothing listening on the port while it is down ("Failed to load resource: net::ERR_CONNECTION_REFUSED";
 * none when the first try comes after the start).
 */
const RESTART_ERRORS = ['net::ERR_INCOMPLETE_CHUNKED_ENCODING', 'net::ERR_CONNECTION_REFUSED'];

void describe('console across a server restart', () => {
  void test("stays signed in, reconnects its live events by itself, and shows a dispatcher's change made after the restart without a reload", { timeout: 120_000 }, async () => {
    const r0 = await call('POST', `${base}/mc/v1/affiliations`, await m.token(ALICE), { mcServiceId: ALICE, service: 'mcptt', groupIds: [g('patrol')] });
    assert.equal(r0.status, 200, JSON.stringify(r0.body));

    await page.goto(`${base}/console`);
    await page.getByLabel('Bearer credential').fill(await m.token(ALICE));
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.locator('#whoami', { hasText: `Signed in as ${ALICE}` }).waitFor(WAIT);
    await page.locator('#stream-state', { hasText: 'Connected' }).waitFor(WAIT);
    await myRow(g('patrol')).waitFor(WAIT);
    browser.assertNoProblems();
    const loadedAt = await page.evaluate(() => performance.timeOrigin);

    // Stopped as an operator would (SIGTERM), its files kept: the page sees its stream end and says it is reconnecting.
    await m.stop({ keepFiles: true });
    await page.locator('#stream-state', { hasText: 'reconnecting' }).waitFor(WAIT);
    await m.spawn();
    assert.equal(m.url('police'), base, 'restarted on the same address');

    // The SDK's backoff is at most 15 s between tries: the stream is back well within 40 s, with no action in the page.
    await page.locator('#stream-state', { hasText: 'Connected' }).waitFor({ timeout: 40_000 });
    await page.locator('#whoami', { hasText: `Signed in as ${ALICE}` }).waitFor(WAIT);

    const r = await call('POST', `${base}/mc/v1/affiliation-changes`, await m.token(DISPATCH), {
      mcServiceId: DISPATCH,
      service: 'mcptt',
      mode: 'mandatory',
      targets: [ALICE],
      affiliate: [g('south')],
    });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal((r.body as { results?: { outcome: string }[] }).results?.[0]?.outcome, 'applied');
    await page.locator('#event-log li', { hasText: `mandatory change from ${DISPATCH}` }).filter({ hasText: 'acknowledged' }).waitFor(WAIT);
    await page.locator('#event-log li', { hasText: 'affiliation-status' }).filter({ hasText: g('south') }).first().waitFor(WAIT);
    await myRow(g('south')).waitFor(WAIT);
    // What was stored before the restart is still there, and listed.
    await myRow(g('patrol')).waitFor(WAIT);
    assert.deepEqual(await m.affiliatedGroups(ALICE), [g('patrol'), g('south')]);
    assert.equal(await page.evaluate(() => performance.timeOrigin), loadedAt, 'the page was reloaded');
    assert.equal(await page.locator('#events-error').isHidden(), true, 'the events panel shows an error');
    browser.assertNoProblems(RESTART_ERRORS);
  });
});

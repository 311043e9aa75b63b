// E2E: the console (`GET /console`, src/console/) in a real headless Chromium against a real `muster serve`: the
// strict CSP and no console error under it, sign-in with a pasted credential, the user's affiliations, affiliating
// (stored, as the API says), a bad group URI's error naming the field, a dispatcher's mandatory change arriving live,
// a negotiated change accepted in the page taking effect, and the dispatcher's own tools.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Page } from 'playwright-core';
import { Muster, call, freePort, secret } from '../support/harness.ts';
import { openConsoleBrowser, WAIT, type ConsoleBrowser } from '../support/console-browser.ts';
import { CONSOLE_CSP } from '../../src/faces/http/routes-console.ts';
import { issueToken } from '../../src/faces/http/credentials.ts';

const D = 'police.example';
const u = (name: string): string => `sip:${name}@${D}`;
const g = (name: string): string => `sip:${name}@${D}`;
const ALICE = u('alice');
const BOB = u('bob');
const DISPATCH = u('dispatch');

let m: Muster;
let base: string;
let browser: ConsoleBrowser;
let page: Page;

before(async () => {
  m = await Muster.start({
    negotiationTimeoutSeconds: 30,
    systems: [
      {
        name: 'police',
        domain: D,
        http: { host: '127.0.0.1', port: await freePort() },
        secret: secret(),
        users: [
          { id: DISPATCH, services: ['mcptt'], n2: 10, groups: [g('patrol')], remoteChange: true },
          { id: ALICE, services: ['mcptt', 'mcdata'], n2: 3, groups: [g('patrol'), g('north'), g('south'), g('east'), g('data-ops')] },
          { id: BOB, services: ['mcptt'], n2: 3, groups: [g('patrol'), g('north')] },
        ],
        groups: [
          { id: g('patrol'), services: ['mcptt'], members: [DISPATCH, ALICE, BOB] },
          { id: g('north'), services: ['mcptt'], members: [DISPATCH, ALICE, BOB] },
          { id: g('south'), services: ['mcptt'], members: [DISPATCH, ALICE] },
          { id: g('east'), services: ['mcptt'], members: [DISPATCH, ALICE] },
          { id: g('data-ops'), services: ['mcdata'], members: [ALICE] },
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

const assertNoProblems = (expected: number[] = []): void => browser.assertNoProblems(expected);

async function signIn(user: string): Promise<void> {
  await page.getByLabel('Bearer credential').fill(await m.token(user));
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.locator('#whoami', { hasText: `Signed in as ${user}` }).waitFor(WAIT);
  await page.locator('#stream-state', { hasText: 'Connected' }).waitFor(WAIT);
}

const myRow = (group: string): ReturnType<Page['locator']> => page.locator('#my-affiliations tr', { hasText: group });

/** The first target's outcome in a change response. */
const outcomeOf = (body: unknown): string | undefined => (body as { results?: { outcome: string }[] }).results?.[0]?.outcome;

async function affiliate(user: string, groupIds: string[]): Promise<void> {
  const r = await call('POST', `${base}/mc/v1/affiliations`, await m.token(user), { mcServiceId: user, service: 'mcptt', groupIds });
  assert.equal(r.status, 200, JSON.stringify(r.body));
}

void describe('console', () => {
  void test('is served with a strict Content-Security-Policy, no inline script or style, and no credential needed', async () => {
    const html = await fetch(`${base}/console`);
    assert.equal(html.status, 200);
    assert.match(html.headers.get('content-type') ?? '', /^text\/html/);
    assert.equal(html.headers.get('content-security-policy'), CONSOLE_CSP);
    assert.doesNotMatch(CONSOLE_CSP, /unsafe-inline|unsafe-eval/);
    assert.equal(html.headers.get('x-content-type-options'), 'nosniff');
    const text = await html.text();
    assert.doesNotMatch(text, /<script(?![^>]*\bsrc=)/i, 'an inline script');
    assert.doesNotMatch(text, /<style|\sstyle=|\son[a-z]+=/i, 'inline style or handler');
    for (const [path, type] of [['/console/app.js', /^text\/javascript/], ['/console/app.css', /^text\/css/], ['/console/icon.svg', /^image\/svg\+xml/]] as const) {
      const r = await fetch(`${base}${path}`);
      assert.equal(r.status, 200, path);
      assert.match(r.headers.get('content-type') ?? '', type, path);
      assert.equal(r.headers.get('x-content-type-options'), 'nosniff', path);
      assert.equal(r.headers.get('content-security-policy'), CONSOLE_CSP, path);
    }
    // The API itself still wants a credential.
    assert.equal((await fetch(`${base}/mc/v1/users/${encodeURIComponent(ALICE)}/affiliations`)).status, 401);
  });

  void test("refuses a forged credential with the API's 401; signs in with a pasted one (by keyboard), says who I am and shows my affiliations per service", { timeout: 60_000 }, async () => {
    await affiliate(ALICE, [g('patrol')]);
    const r = await call('POST', `${base}/mc/v1/affiliations`, await m.token(ALICE), { mcServiceId: ALICE, service: 'mcdata', groupIds: [g('data-ops')] });
    assert.equal(r.status, 200, JSON.stringify(r.body));

    const response = await page.goto(`${base}/console`);
    assert.equal(response?.headers()['content-security-policy'], CONSOLE_CSP);
    // A credential the server does not accept (signed with another secret) is refused with the API's 401, and not kept.
    await page.getByLabel('Bearer credential').fill(await issueToken({ secret: secret(), domain: D, subject: ALICE, role: 'user' }));
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.locator('#sign-in-error .code', { hasText: '401 unauthenticated' }).waitFor(WAIT);
    assert.equal(await page.evaluate(() => sessionStorage.length), 0);
    assert.equal(await page.locator('#signed-in').isHidden(), true);
    assertNoProblems([401]);

    await page.getByLabel('Bearer credential').fill(await m.token(ALICE));
    await page.keyboard.press('Tab');
    await page.keyboard.press('Enter');
    await page.locator('#whoami', { hasText: `Signed in as ${ALICE}` }).waitFor(WAIT);
    await page.locator('#stream-state', { hasText: 'Connected' }).waitFor(WAIT);

    const patrol = myRow(g('patrol'));
    await patrol.waitFor(WAIT);
    assert.match((await patrol.textContent()) ?? '', /affiliated.*enabled/);
    assert.equal(await page.locator('#my-affiliations table', { has: page.locator('caption', { hasText: 'mcptt' }) }).locator('tr', { hasText: g('patrol') }).count(), 1);
    assert.equal(await page.locator('#my-affiliations table', { has: page.locator('caption', { hasText: 'mcdata' }) }).locator('tr', { hasText: g('data-ops') }).count(), 1);
    assert.match((await page.locator('#my-affiliations').textContent()) ?? '', /mcvideo: no affiliations/);
    // The credential lives in this tab's sessionStorage only, and the field it was pasted into is emptied.
    const storage = await page.evaluate(() => ({ session: Object.values(sessionStorage), local: localStorage.length }));
    assert.equal(storage.local, 0);
    assert.equal(storage.session.length, 1);
    assert.equal(await page.getByLabel('Bearer credential').inputValue(), '');
    assertNoProblems();
  });

  void test('affiliates to a group: the page lists it and the API has it stored', { timeout: 60_000 }, async () => {
    await page.getByLabel(/Group URIs/).fill(g('north'));
    await page.getByRole('button', { name: 'Affiliate', exact: true }).click();
    await page.locator('#affiliate-result tr', { hasText: g('north') }).filter({ hasText: 'affiliated' }).waitFor(WAIT);
    await myRow(g('north')).waitFor(WAIT);
    assert.deepEqual(await m.affiliatedGroups(ALICE), [g('north'), g('patrol')]);
    assertNoProblems();
  });

  void test('a bad group URI shows the API error with its code and field, and changes nothing', { timeout: 60_000 }, async () => {
    await page.getByLabel(/Group URIs/).fill('not-a-uri');
    await page.getByRole('button', { name: 'Affiliate', exact: true }).click();
    const error = page.locator('#affiliate-error');
    await error.waitFor({ state: 'visible', ...WAIT });
    assert.equal(await error.locator('.code').textContent(), '400 bad-request');
    assert.equal(await error.locator('.field').textContent(), 'field: groupIds[0]');
    assert.equal(await error.getAttribute('role'), 'alert');
    assert.deepEqual(await m.affiliatedGroups(ALICE), [g('north'), g('patrol')]);
    // A user without the right reads nobody else's affiliations: the 403 is shown as such.
    await page.getByLabel('User URI', { exact: true }).fill(BOB);
    await page.getByRole('button', { name: 'Read affiliations' }).click();
    await page.locator('#other-error .code', { hasText: '403 forbidden' }).waitFor(WAIT);
    assertNoProblems([400, 403]);
  });

  void test("a dispatcher's mandatory change made elsewhere arrives live, is acknowledged and listed without a reload", { timeout: 60_000 }, async () => {
    const loadedAt = await page.evaluate(() => performance.timeOrigin);
    const r = await call('POST', `${base}/mc/v1/affiliation-changes`, await m.token(DISPATCH), {
      mcServiceId: DISPATCH,
      service: 'mcptt',
      mode: 'mandatory',
      targets: [ALICE],
      affiliate: [g('south')],
    });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(outcomeOf(r.body), 'applied');
    await page.locator('#event-log li', { hasText: `mandatory change from ${DISPATCH}` }).filter({ hasText: 'acknowledged' }).waitFor(WAIT);
    await page.locator('#event-log li', { hasText: 'affiliation-status' }).filter({ hasText: g('south') }).first().waitFor(WAIT);
    await myRow(g('south')).waitFor(WAIT);
    assert.equal(await page.evaluate(() => performance.timeOrigin), loadedAt, 'the page was reloaded');
    assertNoProblems();
  });

  void test('a negotiated change accepted in the console takes effect', { timeout: 90_000 }, async () => {
    // The dispatcher's request is answered only once alice has decided.
    const pending = m.token(DISPATCH).then((token) =>
      call('POST', `${base}/mc/v1/affiliation-changes`, token, { mcServiceId: DISPATCH, service: 'mcptt', mode: 'negotiated', targets: [ALICE], affiliate: [g('east')], deaffiliate: [g('north')] }),
    );
    const offer = page.locator('#change-list li', { hasText: `negotiated change from ${DISPATCH}` });
    await offer.waitFor(WAIT);
    assert.match((await offer.textContent()) ?? '', /Answer by/);
    await offer.getByRole('button', { name: 'Accept' }).click();
    const r = await pending;
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(outcomeOf(r.body), 'applied', JSON.stringify(r.body));
    await offer.locator('p', { hasText: 'Accepted' }).waitFor(WAIT);
    await myRow(g('east')).waitFor(WAIT);
    await myRow(g('north')).waitFor({ state: 'detached', ...WAIT });
    assert.deepEqual(await m.affiliatedGroups(ALICE), [g('east'), g('patrol'), g('south')]);
    assertNoProblems();
  });

  void test("a reload keeps the session, signing out forgets the credential; a dispatcher reads a user's affiliations, changes them and lists a group's members", { timeout: 90_000 }, async () => {
    // A reload of the tab keeps the user signed in (sessionStorage); sign-out then forgets the credential.
    await page.reload();
    await page.locator('#whoami', { hasText: `Signed in as ${ALICE}` }).waitFor(WAIT);
    await myRow(g('east')).waitFor(WAIT);
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.getByLabel('Bearer credential').waitFor({ state: 'visible', ...WAIT });
    assert.equal(await page.locator('#whoami').textContent(), 'Not signed in.');
    assert.equal(await page.evaluate(() => sessionStorage.length + localStorage.length), 0);
    assert.equal(await page.locator('#my-affiliations tr').count(), 0);

    await signIn(DISPATCH);
    await page.getByLabel('User URI', { exact: true }).fill(ALICE);
    await page.getByRole('button', { name: 'Read affiliations' }).click();
    for (const group of [g('east'), g('patrol'), g('south')]) await page.locator('#other-result tr', { hasText: group }).waitFor(WAIT);

    await page.getByLabel('Mode', { exact: true }).selectOption('mandatory');
    await page.getByLabel('Target user URIs').fill(BOB);
    await page.getByLabel('Groups to affiliate to').fill(`${g('patrol')}\n${g('north')}`);
    await page.getByRole('button', { name: 'Send change request' }).click();
    await page.locator('#change-result .target-result', { hasText: BOB }).filter({ hasText: 'applied' }).waitFor(WAIT);
    assert.equal(await page.locator('#change-result .target-result tr', { hasText: 'affiliated' }).count(), 2);
    assert.deepEqual(await m.affiliatedGroups(BOB), [g('north'), g('patrol')]);

    await page.getByLabel('Group URI', { exact: true }).fill(g('patrol'));
    await page.getByRole('button', { name: 'Show affiliated members' }).click();
    for (const user of [ALICE, BOB]) await page.locator('#members-result tr', { hasText: user }).waitFor(WAIT);
    assertNoProblems();
  });
});

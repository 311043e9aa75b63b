// E2E: the console's operator view (src/console/operator.ts) in a real headless Chromium against a real `muster serve`
// of two partner systems: health with the store up, a user profile looked up, its N2 changed (stored, as the API says)
// and the change in the audit table, a bad profile's error naming the field, a profile created and deleted, a group
// policy changed, a real 202's notConfirmed and warning shown (two instances on PostgreSQL + NATS, one stopped), a partner re-synchronisation's report; a user's credential
// gets no operator view, and the server refuses it the admin calls anyway.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { hostname } from 'node:os';
import type { Page } from 'playwright-core';
import { Muster, call, freePort, secret } from '../support/harness.ts';
import { openConsoleBrowser, WAIT, type ConsoleBrowser } from '../support/console-browser.ts';
import { until } from '../support/until.ts';
import { issueToken } from '../../src/faces/http/credentials.ts';
import { OperatorClient } from '../../src/client/muster-client.ts';

const P = 'police.example';
const F = 'fire.example';
const ALICE = `sip:alice@${P}`;
const CAROL = `sip:carol@${P}`;
const PATROL = `sip:patrol@${P}`;
const NORTH = `sip:north@${P}`;

let m: Muster;
let base: string;
let browser: ConsoleBrowser;
let page: Page;
/** The API as the operator sees it, to check what the page stored. */
let api: OperatorClient;

before(async () => {
  const [pp, fp] = [await freePort(), await freePort()];
  const shared = secret();
  m = await Muster.start({
    systems: [
      {
        name: 'police',
        domain: P,
        http: { host: '127.0.0.1', port: pp },
        secret: secret(),
        partners: [{ domain: F, url: `http://127.0.0.1:${fp}`, secret: shared }],
        users: [{ id: ALICE, services: ['mcptt'], n2: 3, groups: [PATROL, NORTH] }],
        groups: [
          { id: PATROL, services: ['mcptt'], members: [ALICE] },
          { id: NORTH, services: ['mcptt'], members: [ALICE] },
        ],
      },
      { name: 'fire', domain: F, http: { host: '127.0.0.1', port: fp }, secret: secret(), partners: [{ domain: P, url: `http://127.0.0.1:${pp}`, secret: shared }], users: [], groups: [] },
    ],
  });
  base = m.url('police');
  api = new OperatorClient({ server: base, token: await m.operatorToken(P) });
  browser = await openConsoleBrowser();
  page = browser.page;
});

after(async () => {
  await browser?.close();
  await m?.stop();
});

const shownRow = (section: string, field: string): ReturnType<Page['locator']> => page.locator(`#${section}-shown tr`, { has: page.locator('td', { hasText: new RegExp(`^${field}$`) }) });

/** `Date` as a datetime-local value (this machine's time zone, which the browser shares). */
const localInput = (d: Date): string => {
  const p = (n: number): string => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
};

void describe('console: the operator view', () => {
  void test('an operator signs in (by keyboard) and sees the health of the system: store up, the partner up', { timeout: 60_000 }, async () => {
    await page.goto(`${base}/console`);
    await page.getByLabel('Bearer credential').fill(await m.operatorToken(P));
    await page.keyboard.press('Tab');
    await page.keyboard.press('Enter');
    await page.locator('#whoami', { hasText: 'Signed in as operator of police' }).waitFor(WAIT);
    assert.equal(await page.locator('#signed-in').isHidden(), true, "the user's view is not shown to an operator");
    assert.equal(await page.locator('#operator-view').isVisible(), true);
    const store = page.locator('#health-result tr', { hasText: 'Store' });
    assert.match((await store.textContent()) ?? '', /Store\s*[a-z]+:up/);
    assert.equal(await store.locator('td.health-up').count(), 1);
    await page.locator('#health-result tr', { hasText: `Partner ${F}` }).filter({ hasText: 'up' }).waitFor(WAIT);
    assert.match((await page.locator('#health-result').textContent()) ?? '', /police: ok/);
    await page.getByRole('button', { name: 'Refresh health' }).click();
    await page.locator('#health-result tr', { hasText: 'GMS' }).waitFor(WAIT);
    browser.assertNoProblems();
  });

  void test("looks up a user's profile, changes its N2 (stored, as the API says) and finds the change in the audit table", { timeout: 60_000 }, async () => {
    await page.getByLabel('Profile user URI').fill(ALICE);
    await page.getByRole('button', { name: 'Look up profile' }).click();
    await page.locator('#profile-edit-title', { hasText: `Edit the profile of ${ALICE}` }).waitFor(WAIT);
    assert.match((await shownRow('profile', 'N2').textContent()) ?? '', /3/);
    assert.equal(await page.getByLabel(/^N2/).inputValue(), '3');
    assert.equal(await page.locator('#profile-services input[value="mcptt"]').isChecked(), true);
    assert.equal(await page.getByLabel(/^Allowed groups/).inputValue(), `${PATROL}\n${NORTH}`);

    await page.getByLabel(/^N2/).fill('5');
    await page.getByRole('button', { name: 'Save profile' }).click();
    await page.locator('#profile-result .in-force', { hasText: `${ALICE}  stored, in force at every instance` }).waitFor(WAIT);
    await shownRow('profile', 'N2').filter({ hasText: '5' }).waitFor(WAIT);
    assert.deepEqual(await api.getUser(ALICE), { id: ALICE, services: ['mcptt'], n2: 5, groups: [PATROL, NORTH], remoteChange: false });

    await page.getByLabel(/^Subject/).fill('operator');
    await page.getByLabel(/^Since/).fill(localInput(new Date(Date.now() - 3600_000)));
    await page.getByLabel(/^Limit/).fill('50');
    await page.getByRole('button', { name: 'Search audit log' }).click();
    const entry = page.locator('#audit-result tr', { hasText: 'profile-put' }).filter({ hasText: ALICE });
    await entry.waitFor(WAIT);
    assert.match((await entry.textContent()) ?? '', /operator.*profile-put.*200/);
    assert.match((await entry.textContent()) ?? '', /"n2": 5/);
    browser.assertNoProblems();
  });

  void test('a bad profile or audit filter shows the API error naming the field, and changes nothing', { timeout: 60_000 }, async () => {
    await page.getByLabel(/^Allowed groups/).fill(`${PATROL}\nnot-a-uri`);
    await page.getByRole('button', { name: 'Save profile' }).click();
    const error = page.locator('#profile-error');
    await error.waitFor({ state: 'visible', ...WAIT });
    assert.equal(await error.locator('.code').textContent(), '400 bad-request');
    assert.equal(await error.locator('.field').textContent(), 'field: groups[1]');
    assert.equal(await error.getAttribute('role'), 'alert');
    assert.deepEqual((await api.getUser(ALICE)).groups, [PATROL, NORTH]);

    // A time range that ends before it starts: the API's 400 names `until`.
    await page.getByLabel(/^Until/).fill(localInput(new Date(Date.now() - 7200_000)));
    await page.getByRole('button', { name: 'Search audit log' }).click();
    await page.locator('#audit-error .field', { hasText: 'field: until' }).waitFor(WAIT);
    await page.getByLabel(/^Until/).fill('');
    browser.assertNoProblems([400]);
  });

  void test('creates a profile nobody had, deletes it after a confirmation; changes a group policy', { timeout: 60_000 }, async () => {
    await page.getByLabel('Profile user URI').fill(CAROL);
    await page.getByRole('button', { name: 'Look up profile' }).click();
    await page.locator('#profile-edit-title', { hasText: `New profile ${CAROL}` }).waitFor(WAIT);
    assert.equal(await page.locator('#profile-error .code').textContent(), '404 not-found');
    await page.locator('#profile-services input[value="mcptt"]').check();
    await page.getByLabel(/^N2/).fill('mcptt=2');
    await page.getByLabel(/^Allowed groups/).fill(PATROL);
    await page.getByLabel('Remote-change right').selectOption('listed');
    await page.getByLabel('Remote change: users').fill(ALICE);
    await page.getByRole('button', { name: 'Save profile' }).click();
    await page.locator('#profile-result .in-force', { hasText: `${CAROL}  stored` }).waitFor(WAIT);
    assert.deepEqual(await api.getUser(CAROL), { id: CAROL, services: ['mcptt'], n2: { mcptt: 2 }, groups: [PATROL], remoteChange: { users: [ALICE], groups: [] } });

    await page.getByRole('button', { name: 'Delete profile' }).click();
    const confirm = page.getByRole('button', { name: 'Confirm deletion' }).first();
    assert.equal(await confirm.evaluate((b) => b === document.activeElement), true, 'the confirmation has the focus');
    await page.keyboard.press('Enter');
    await page.locator('#profile-result .in-force', { hasText: `${CAROL}  deleted, in force at every instance` }).waitFor(WAIT);
    await assert.rejects(api.getUser(CAROL), { status: 404 });

    await page.getByLabel('Policy group URI').fill(NORTH);
    await page.getByRole('button', { name: 'Look up group' }).click();
    await page.locator('#group-edit-title', { hasText: `Edit the group of ${NORTH}` }).waitFor(WAIT);
    assert.equal(await page.getByLabel('Enabled').isChecked(), true);
    await page.getByLabel('Display name').fill('North sector');
    await page.getByLabel('Enabled').uncheck();
    await page.getByRole('button', { name: 'Save group' }).click();
    await page.locator('#group-result .in-force', { hasText: `${NORTH}  stored` }).waitFor(WAIT);
    const group = await api.getGroup(NORTH);
    assert.equal(group.enabled, false);
    assert.equal(group.displayName, 'North sector');
    await shownRow('group', 'Enabled').filter({ hasText: 'no' }).waitFor(WAIT);
    browser.assertNoProblems([404]);
  });

  void test("a 202 (stored, not yet in force at every instance) shows the server's notConfirmed and warning", { timeout: 90_000 }, async () => {
    // Two real instances on PostgreSQL + NATS; the second is stopped (SIGSTOP) for less than the 3.5 s after which a
    // silent instance counts as gone, so it cannot confirm within the 1 s bound: the first answers a real 202.
    const pg = await Muster.start(
      { systems: [{ name: 'police', domain: P, http: { port: await freePort() }, secret: secret(), users: [{ id: ALICE, services: ['mcptt'], n2: 3, groups: [PATROL, NORTH] }], groups: [{ id: PATROL, services: ['mcptt'], members: [ALICE] }, { id: NORTH, services: ['mcptt'], members: [ALICE] }] }] },
      undefined,
      'postgres',
    );
    const two = await openConsoleBrowser();
    try {
      assert.equal(pg.instances, 2);
      const first = pg.instanceUrl(0);
      const secondName = `${hostname()}/${pg.instanceUrl(1).slice('http://'.length)}`;
      const p2 = two.page;
      await p2.goto(`${first}/console`);
      await p2.getByLabel('Bearer credential').fill(await pg.operatorToken(P));
      await p2.getByRole('button', { name: 'Sign in' }).click();
      await p2.locator('#operator-view').waitFor(WAIT);
      // The first instance knows the second (its heartbeat) before it is stopped: then it waits for its confirmation.
      await until(async () => ((await call('GET', `${first}/healthz?partners=omit`, undefined)).body as { instances?: string[] }).instances?.includes(secondName) === true, `the first instance sees ${secondName}`);
      await p2.getByLabel('Profile user URI').fill(ALICE);
      await p2.getByRole('button', { name: 'Look up profile' }).click();
      await p2.locator('#profile-edit-title', { hasText: `Edit the profile of ${ALICE}` }).waitFor(WAIT);
      process.kill(pg.pids[1]!, 'SIGSTOP');
      try {
        await p2.getByRole('button', { name: 'Save profile' }).click();
        const notice = p2.locator('#profile-result .not-in-force');
        await notice.waitFor(WAIT);
        assert.match((await notice.locator('strong').textContent()) ?? '', /not yet in force everywhere \(202\)/);
        assert.match((await notice.locator('.warning').textContent()) ?? '', new RegExp(secondName.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')));
        assert.deepEqual(await notice.locator('.not-confirmed li').allTextContents(), [secondName]);
      } finally {
        process.kill(pg.pids[1]!, 'SIGCONT');
      }
      two.assertNoProblems();
    } finally {
      await two.close();
      for (const pid of pg.pids) process.kill(pid, 'SIGCONT'); // never leave a stopped instance to the shutdown
      await pg.stop();
    }
  });

  void test("re-synchronises with the partners and shows each partner's report", { timeout: 60_000 }, async () => {
    await page.getByRole('button', { name: 'Re-synchronise partners' }).click();
    const report = page.locator(`#resync-result .report[data-partner="${F}"]`);
    await report.waitFor(WAIT);
    assert.match((await report.textContent()) ?? '', new RegExp(`^${F}  complete: 0 removed, 0 asked again, 0 spared as recent`));
    browser.assertNoProblems();
  });

  void test("a user's credential gets no operator view, a forged operator credential is refused, and the server refuses a user the admin calls", { timeout: 60_000 }, async () => {
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.getByLabel('Bearer credential').waitFor({ state: 'visible', ...WAIT });
    assert.equal(await page.locator('#operator-view').isHidden(), true);
    assert.equal(await page.locator('#health-result tr').count(), 0);
    assert.equal(await page.evaluate(() => sessionStorage.length), 0);

    // Claiming the role is not enough: signed with another secret, the server answers 401 and no view opens.
    await page.getByLabel('Bearer credential').fill(await issueToken({ secret: secret(), domain: P, subject: 'operator', role: 'operator' }));
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.locator('#sign-in-error .code', { hasText: '401 unauthenticated' }).waitFor(WAIT);
    assert.equal(await page.locator('#operator-view').isHidden(), true);
    assert.equal(await page.evaluate(() => sessionStorage.length), 0);

    const user = await m.token(ALICE);
    await page.getByLabel('Bearer credential').fill(user);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.locator('#whoami', { hasText: `Signed in as ${ALICE}` }).waitFor(WAIT);
    await page.locator('#stream-state', { hasText: 'Connected' }).waitFor(WAIT);
    assert.equal(await page.locator('#operator-view').isHidden(), true);
    assert.equal(await page.locator('#signed-in').isVisible(), true);
    browser.assertNoProblems([401]);

    // What the page does not show, the server does not allow either.
    for (const [method, path, body] of [
      ['GET', '/admin/v1/audit', undefined],
      ['GET', `/admin/v1/users/${encodeURIComponent(ALICE)}`, undefined],
      ['PUT', `/admin/v1/users/${encodeURIComponent(ALICE)}`, { services: ['mcptt'], n2: 100, groups: [PATROL] }],
      ['PUT', `/gms/v1/groups/${encodeURIComponent(NORTH)}`, { services: ['mcptt'], members: [ALICE] }],
      ['POST', '/admin/v1/partner-resyncs', {}],
    ] as const) {
      const r = await call(method, `${base}${path}`, user, body);
      assert.equal(r.status, 403, `${method} ${path}: ${JSON.stringify(r.body)}`);
    }
    assert.equal((await api.getUser(ALICE)).n2, 5);
  });
});

// Debian's headless Chromium driven by playwright-core for the console's e2e tests: one page whose console errors,
// warnings, CSP violations and uncaught exceptions are collected, so every test can say nothing went wrong.
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type BrowserContext, type Page } from 'playwright-core';

const CHROMIUM = '/usr/bin/chromium';
const CHROMIUM_FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];

/** How long a test waits for the page to show something. */
export const WAIT = { timeout: 15_000 };

export interface ConsoleBrowser {
  page: Page;
  context: BrowserContext;
  /**
   * Nothing went wrong in the page since the last check. `expected` are the API refusals a test provoked on purpose:
   * Chromium logs each non-2xx answer to fetch as "Failed to load resource: ... status of N". A string is a network
   * error a test provoked (e.g. 'net::ERR_CONNECTION_REFUSED' while the server is down), logged as "Failed to load
   * resource: net::ERR_...".
   */
  assertNoProblems(expected?: (number | string)[]): void;
  close(): Promise<void>;
}

export async function openConsoleBrowser(): Promise<ConsoleBrowser> {
  // Never a silent skip: without the browser the console is untested, and that is a failure to fix (see .ci/run).
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: install Debian's chromium (apt-get install -y chromium) to test the console`);
  const profile = mkdtempSync(join(tmpdir(), 'muster-chromium-'));
  const context = await chromium.launchPersistentContext(profile, { executablePath: CHROMIUM, args: CHROMIUM_FLAGS, headless: true });
  // A CSP violation is reported on the console too; this makes sure, whatever the browser's wording.
  await context.addInitScript(() => {
    document.addEventListener('securitypolicyviolation', (e) => console.error(`CSP violation: ${e.violatedDirective} ${e.blockedURI}`));
  });
  const page = context.pages()[0] ?? (await context.newPage());
  let problems: string[] = [];
  page.on('console', (msg) => {
    if (msg.type() === 'error' || msg.type() === 'warning') problems.push(`console.${msg.type()}: ${msg.text()}`);
  });
  page.on('pageerror', (err) => problems.push(`pageerror: ${err.message}`));
  return {
    page,
    context,
    assertNoProblems(expected = []) {
      const allowed = new Set(expected.map((e) => (typeof e === 'number' ? `status of ${e} ` : `Failed to load resource: ${e}`)));
      const left = problems.filter((p) => !(p.startsWith('console.error: Failed to load resource') && [...allowed].some((a) => p.includes(a))));
      problems = [];
      assert.deepEqual(left, [], 'the page logged errors or warnings');
    },
    async close() {
      await context.close();
      rmSync(profile, { recursive: true, force: true });
    },
  };
}

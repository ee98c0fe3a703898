// The browser tests' helpers: launch Debian's Chromium through playwright-core, sign in, take
// screenshots, wait for text, fail on any script error or Content-Security-Policy violation.
//
// A spec is `tests/browser/<name>.mjs`:
//
//   import { run, env } from './lib.mjs';
//   await run('recorders', async (t) => {
//     const page = await t.page();          // a fresh tab (phone: t.page({ phone: true }))
//     await t.signIn(page);                 // as JT_EMAIL / JT_PASSWORD
//     await t.step('the list shows', async () => { await t.text(page, 'Recorders'); });
//     await t.shot(page, 'recorders');      // JT_SCREENSHOT_DIR/<spec>-recorders.png
//   });
//
// Environment (tests/e2e/dashboard.rs sets it): JT_BASE_URL, JT_EMAIL, JT_PASSWORD,
// JT_SCREENSHOT_DIR, JT_CHROMIUM (scripts/browser-test), and any spec-specific JT_* values.

import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

function need(name) {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set (tests/e2e/dashboard.rs sets it; see tests/browser/lib.mjs)`);
  return v;
}

/** The platform under test. */
export const env = {
  get base() { return need('JT_BASE_URL'); },
  get email() { return need('JT_EMAIL'); },
  get password() { return need('JT_PASSWORD'); },
  get shots() { return process.env.JT_SCREENSHOT_DIR || 'screenshots'; },
  value: need,
};

export { assert };

// Chromium's flags for a quiet, sandbox-free (containers) headless run that talks to nothing
// but the platform under test.
const ARGS = [
  '--no-sandbox',
  '--disable-dev-shm-usage',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-default-apps',
  '--disable-sync',
  '--disable-extensions',
  '--no-first-run',
  '--no-default-browser-check',
  '--metrics-recording-only',
  '--disable-features=Translate,OptimizationHints,MediaRouter',
];

class Tester {
  constructor(browser, name) {
    this.browser = browser;
    this.name = name;
    this.pages = [];
    this.problems = [];
    this.started = Date.now();
  }

  /** A fresh browser context and tab at the platform's base URL (its own cookies); a phone's
   *  screen with `phone`, the dark colour scheme with `dark`. */
  async page({ phone = false, dark = false } = {}) {
    const context = await this.browser.newContext({
      colorScheme: dark ? 'dark' : 'light',
      baseURL: env.base,
      viewport: phone ? { width: 390, height: 844 } : { width: 1280, height: 860 },
      deviceScaleFactor: 1,
      isMobile: phone,
      hasTouch: phone,
    });
    await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: env.base });
    const page = await context.newPage();
    page.setDefaultTimeout(10_000);
    page.on('pageerror', (e) => this.problems.push(`script error: ${e.message}`));
    page.on('console', (m) => {
      // A failed fetch (a 401 before sign-in, a 404 the page explains) is logged by Chromium
      // as "Failed to load resource": expected answers, not script errors.
      if (m.type() === 'error' && !m.text().startsWith('Failed to load resource')) {
        this.problems.push(`console error: ${m.text()}`);
      }
    });
    this.pages.push(page);
    return page;
  }

  /** Signs in through the sign-in form and waits for the signed-in layout. */
  async signIn(page, email = env.email, password = env.password) {
    await page.goto('/signin');
    await page.getByLabel('E-mail').fill(email);
    await page.getByLabel('Password', { exact: true }).fill(password);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByTestId('whoami').filter({ hasText: email }).waitFor();
  }

  /** Waits until `text` is visible on the page (a string matches a substring). */
  async text(page, text, { timeout } = {}) {
    await page.getByText(text).first().waitFor({ state: 'visible', timeout });
  }

  /** Saves a full-page screenshot as `<dir>/<spec>-<name>.png`. */
  async shot(page, name) {
    mkdirSync(env.shots, { recursive: true });
    const path = join(env.shots, `${this.name}-${name}.png`);
    await page.screenshot({ path, fullPage: true });
    return path;
  }

  /** A named step: logged with its duration, so a failure says where. */
  async step(name, fn) {
    const t0 = Date.now();
    process.stdout.write(`  - ${name} … `);
    try {
      const v = await fn();
      process.stdout.write(`ok (${Date.now() - t0} ms)\n`);
      return v;
    } catch (e) {
      process.stdout.write('FAILED\n');
      throw new Error(`step "${name}": ${e.message}`, { cause: e });
    }
  }
}

/** Runs a spec: launches Chromium, runs `fn(t)`, and exits non-zero on any failure. */
export async function run(name, fn) {
  console.log(`spec ${name} against ${env.base}`);
  const browser = await chromium.launch({
    executablePath: process.env.JT_CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: ARGS,
  });
  const t = new Tester(browser, name);
  try {
    await fn(t);
    assert.deepEqual(t.problems, [], 'the pages logged errors');
    console.log(`spec ${name}: passed in ${Date.now() - t.started} ms`);
  } catch (e) {
    console.error(`spec ${name}: FAILED: ${e.stack || e}`);
    for (const [i, p] of t.pages.entries()) {
      try {
        const path = await t.shot(p, `failure-${i}`);
        console.error(`  screenshot of tab ${i} (${p.url()}): ${path}`);
      } catch { /* a closed tab has nothing to show */ }
    }
    if (t.problems.length) console.error(`  page errors:\n    ${t.problems.join('\n    ')}`);
    process.exitCode = 1;
  } finally {
    await browser.close();
  }
}

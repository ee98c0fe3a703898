// Sign-in, sign-out and the frame: the redirect to sign-in, a wrong password in words, the
// nav, deep links and reloads, the security headers, a phone-sized layout.

import { run, env, assert } from './lib.mjs';

await run('signin', async (t) => {
  const page = await t.page();

  await t.step('a page needs signing in first and comes back after', async () => {
    await page.goto('/recorders');
    await page.waitForURL(/\/signin\?next=%2Frecorders$/);
    await t.text(page, 'Forgot your password?');
    await t.shot(page, 'signin');
  });

  await t.step('the pages carry the security headers', async () => {
    const r = await page.request.get('/signals');
    assert.equal(r.status(), 200);
    const h = r.headers();
    assert.match(h['content-security-policy'], /default-src 'self'/);
    assert.match(h['content-security-policy'], /frame-ancestors 'none'/);
    assert.equal(h['x-frame-options'], 'DENY');
    assert.equal(h['x-content-type-options'], 'nosniff');
    assert.equal((await page.request.get('/assets/js/nope.js')).status(), 404);
  });

  await t.step('an empty form says what is missing', async () => {
    await page.getByRole('button', { name: 'Sign in' }).click();
    await t.text(page, 'Enter your e-mail address.');
  });

  await t.step('a wrong password is refused in words', async () => {
    await page.getByLabel('E-mail').fill(env.email);
    await page.getByLabel('Password', { exact: true }).fill('not the password');
    await page.getByRole('button', { name: 'Sign in' }).click();
    const alert = page.getByRole('alert');
    await alert.waitFor();
    assert.match(await alert.innerText(), /Wrong e-mail or password/);
    await t.shot(page, 'wrong-password');
  });

  await t.step('the right password, typed with the keyboard alone, opens the page asked for', async () => {
    await page.reload();
    // Tab from the top of the page to the e-mail field: the skip link and the logo come first.
    for (let i = 0; i < 6 && !(await page.evaluate(() => document.activeElement?.name === 'email')); i += 1) {
      await page.keyboard.press('Tab');
    }
    assert.equal(await page.evaluate(() => document.activeElement?.name), 'email');
    await page.keyboard.type(env.email);
    await page.keyboard.press('Tab');
    await page.keyboard.type(env.password);
    await page.keyboard.press('Enter');
    await page.waitForURL(/\/recorders$/);
    await page.getByTestId('whoami').filter({ hasText: env.email }).waitFor();
  });

  await t.step('the nav shows the pages, not Admin to a user', async () => {
    const nav = page.getByRole('navigation', { name: 'Main' });
    for (const name of ['Recorders', 'Signals', 'Accounts', 'Copy', 'Charts']) {
      await nav.getByRole('link', { name, exact: true }).waitFor();
    }
    assert.equal(await nav.getByRole('link', { name: 'Admin' }).count(), 0);
    assert.equal(await nav.getByRole('link', { name: 'Recorders' }).getAttribute('aria-current'), 'page');
    await t.shot(page, 'frame');
  });

  await t.step('nav links move without reloading; a reload keeps the page', async () => {
    await page.evaluate(() => { window.jtMarker = 'still here'; });
    await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Signals' }).click();
    await page.waitForURL(/\/signals$/);
    assert.equal(await page.evaluate(() => window.jtMarker), 'still here');
    await page.goBack();
    await page.waitForURL(/\/recorders$/);
    await page.goto('/signals');
    await page.getByRole('heading', { level: 1, name: 'Signals' }).waitFor();
    await page.getByTestId('whoami').waitFor();
  });

  await t.step('an unknown page says so', async () => {
    await page.goto('/recorders/x/y/z');
    await t.text(page, 'Page not found');
  });

  await t.step('sign-out ends the session', async () => {
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.waitForURL(/\/signin$/);
    await page.goto('/signals');
    await page.waitForURL(/\/signin\?next=%2Fsignals$/);
    const me = await page.request.get('/api/v1/me');
    assert.equal(me.status(), 401);
  });

  await t.step('on a phone the frame fits the screen', async () => {
    const phone = await t.page({ phone: true });
    await t.signIn(phone);
    const overflow = await phone.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert.ok(overflow <= 0, `the page is ${overflow}px wider than the phone's screen`);
    await t.shot(phone, 'phone');
  });
});

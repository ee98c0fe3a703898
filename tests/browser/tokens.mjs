// API tokens and the password reset: a token is shown once with a copy button, works as a
// Bearer token, and stops working once revoked; the reset link from the mail sets a new
// password. Environment beyond lib.mjs: JT_MAIL_DIR (where the API writes its mail).

import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { run, env, assert } from './lib.mjs';

await run('tokens', async (t) => {
  const page = await t.page();
  await t.signIn(page);

  let token;
  await t.step('create a token: shown once, with a copy button', async () => {
    await page.getByRole('link', { name: 'API tokens' }).click();
    await page.getByLabel('Name').fill('backtest script');
    await page.getByRole('button', { name: 'Create token' }).click();
    await t.text(page, 'it is not shown again');
    token = await page.getByLabel('The new token').inputValue();
    assert.match(token, /^jt_/);
    await page.getByRole('button', { name: 'Copy token' }).click();
    assert.equal(await page.evaluate(() => navigator.clipboard.readText()), token);
    await page.locator('tr', { hasText: 'backtest script' }).waitFor();
    await t.shot(page, 'tokens');
  });

  const me = () => fetch(`${env.base}/api/v1/me`, { headers: { authorization: `Bearer ${token}` } });
  await t.step('the token works as a Bearer token', async () => {
    assert.equal((await me()).status, 200);
  });

  await t.step('revoking asks first, then the token stops working', async () => {
    await page.getByRole('button', { name: 'Revoke token backtest script' }).click();
    await page.getByRole('dialog').getByRole('button', { name: 'Cancel' }).click();
    assert.equal(await page.locator('tr', { hasText: 'backtest script' }).count(), 1);
    await page.getByRole('button', { name: 'Revoke token backtest script' }).click();
    await page.getByRole('dialog').getByRole('button', { name: 'Revoke' }).click();
    const row = page.locator('tr', { hasText: 'backtest script' });
    await row.getByText('revoked').waitFor();
    assert.equal(await row.getByRole('button').count(), 0);
    assert.equal((await me()).status, 401);
  });

  await t.step('a password reset by the mailed link', async () => {
    const anon = await t.page();
    await anon.goto('/signin');
    await anon.getByRole('link', { name: 'Forgot your password?' }).click();
    await anon.getByLabel('E-mail').fill(env.email);
    await anon.getByRole('button', { name: 'Send the link' }).click();
    await t.text(anon, 'a link to reset its password is on its way');
    const dir = env.value('JT_MAIL_DIR');
    let link;
    const deadline = Date.now() + 10_000;
    while (!link) {
      for (const f of existsSync(dir) ? readdirSync(dir) : []) {
        const m = /(https?:\/\/\S+\/reset-password\?token=[^\s"<]+)/.exec(readFileSync(join(dir, f), 'utf8').replace(/=\r?\n/g, ''));
        if (m) link = m[1];
      }
      assert.ok(link || Date.now() < deadline, `no reset mail in ${dir}`);
      if (!link) await anon.waitForTimeout(200);
    }
    await anon.goto(new URL(link).pathname + new URL(link).search);
    await anon.getByLabel('New password', { exact: true }).fill('a new long passphrase');
    await anon.getByLabel('New password again').fill('a different one');
    await anon.getByRole('button', { name: 'Set the password' }).click();
    await t.text(anon, 'The two passwords differ.');
    await anon.getByLabel('New password again').fill('a new long passphrase');
    await anon.getByRole('button', { name: 'Set the password' }).click();
    await t.text(anon, 'Your password is set');
    await t.shot(anon, 'reset-done');
    await t.signIn(anon, env.email, 'a new long passphrase');
  });
});

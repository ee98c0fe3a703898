// Accounts, live: the page is open when an alert arrives, and without a reload it shows both
// accounts' new positions — one protected by its stop, one UNPROTECTED in red — with the day's
// P&L and the distance to the max daily loss; then one account is flattened after a
// confirmation (a cancelled confirmation changes nothing) and shows flat, live.
//
// Environment beyond lib.mjs: JT_ACCOUNTS (two sub-account names: the first trades with a
// stop, the second without), JT_WEBHOOK (the recorder's webhook URL).

import { run, env, assert } from './lib.mjs';

const [protectedAcc, bareAcc] = env.value('JT_ACCOUNTS').split(',');
const webhook = env.value('JT_WEBHOOK');

await run('accounts', async (t) => {
  const page = await t.page();
  await t.signIn(page);

  await t.step('the accounts page shows the logins, flat, with live updates on', async () => {
    await page.goto('/accounts');
    await page.getByRole('heading', { level: 1, name: 'Accounts' }).waitFor();
    await page.getByTestId('live').filter({ hasText: 'Live' }).waitFor();
    await page.getByRole('row', { name: new RegExp(protectedAcc) }).getByText('Flat', { exact: true }).waitFor();
  });

  await t.step('an alert arrives: positions and protection appear without a reload', async () => {
    // A marker that a reload would wipe out.
    await page.evaluate(() => { window.jtNoReload = true; });
    const r = await fetch(webhook, { method: 'POST', headers: { 'content-type': 'text/plain' }, body: '{"action":"buy","ticker":"MNQ1!","position":"long","price":21000.25}' });
    assert.equal(r.status, 200, await r.text());
    const guarded = page.getByRole('row', { name: new RegExp(protectedAcc) });
    await guarded.getByText(/Long 1 MNQ/).waitFor({ timeout: 20_000 });
    await guarded.getByText('Stop 1').waitFor({ timeout: 20_000 });
    const bare = page.getByRole('row', { name: new RegExp(bareAcc) });
    await bare.getByTestId('unprotected').waitFor({ timeout: 20_000 });
    assert.match(await bare.getByTestId('unprotected').innerText(), /UNPROTECTED/);
    // Red: the danger colour, not the text colour.
    const colour = await bare.getByTestId('unprotected').evaluate((el) => getComputedStyle(el).color);
    assert.notEqual(colour, await page.evaluate(() => getComputedStyle(document.body).color));
    assert.equal(await page.evaluate(() => window.jtNoReload), true, 'the page was not reloaded');
    await t.text(page, 'A position on this login is not protected by a working stop.');
  });

  await t.step('the day P&L and the distance to the max daily loss are shown', async () => {
    const guarded = page.getByRole('row', { name: new RegExp(protectedAcc) });
    await guarded.getByText(/Max daily loss \$1000: /).waitFor({ timeout: 20_000 });
    await guarded.getByText(/As of /).waitFor();
    await t.shot(page, 'positions');
  });

  await t.step('a cancelled flatten changes nothing', async () => {
    await page.getByRole('button', { name: `Flatten ${bareAcc}` }).click();
    const dialog = page.getByRole('dialog');
    await dialog.getByText(`Close every position and cancel every working order of ${bareAcc} now?`).waitFor();
    await t.shot(page, 'flatten-confirm');
    await dialog.getByRole('button', { name: 'Cancel' }).click();
    await dialog.waitFor({ state: 'detached' });
    await page.waitForTimeout(1500);
    await page.getByRole('row', { name: new RegExp(bareAcc) }).getByTestId('unprotected').waitFor();
  });

  await t.step('flatten one account after confirming: it shows flat, the other keeps its position', async () => {
    await page.getByRole('button', { name: `Flatten ${bareAcc}` }).click();
    await page.getByRole('dialog').getByRole('button', { name: 'Flatten' }).click();
    await t.text(page, `Flatten sent for ${bareAcc}`);
    await page.getByRole('row', { name: new RegExp(bareAcc) }).getByText('Flat', { exact: true }).waitFor({ timeout: 20_000 });
    await page.getByRole('row', { name: new RegExp(protectedAcc) }).getByText(/Long 1 MNQ/).waitFor();
    assert.equal(await page.evaluate(() => window.jtNoReload), true, 'the page was not reloaded');
    await t.shot(page, 'flattened');
  });

  await t.step('kill switch: engaged after confirming, shown on that account only, then resumed', async () => {
    await page.getByRole('button', { name: `Kill switch for ${bareAcc}` }).click();
    await page.getByRole('dialog').getByRole('button', { name: 'Engage kill switch' }).click();
    await t.text(page, `Kill switch engaged for ${bareAcc}`);
    const row = page.getByRole('row', { name: new RegExp(bareAcc) });
    await row.getByTestId('kill-switch').getByText(/New entries refused on this account: dashboard/).waitFor();
    await row.getByRole('button', { name: `Resume ${bareAcc}` }).waitFor();
    assert.equal(await page.getByRole('row', { name: new RegExp(protectedAcc) }).getByTestId('kill-switch').count(), 0,
      'the other account has no kill switch');
    await t.shot(page, 'kill-switch');
    await row.getByRole('button', { name: `Resume ${bareAcc}` }).click();
    await page.getByRole('dialog').getByRole('button', { name: 'Resume' }).click();
    await t.text(page, `${bareAcc} resumed`);
    await page.getByRole('row', { name: new RegExp(bareAcc) }).getByRole('button', { name: `Kill switch for ${bareAcc}` }).waitFor();
    assert.equal(await page.getByRole('row', { name: new RegExp(bareAcc) }).getByTestId('kill-switch').count(), 0,
      'the switch is gone once resumed');
  });

  await t.step('charts: the closed paper trade on the P&L curve, the latency histogram, in words too', async () => {
    const r = await fetch(webhook, { method: 'POST', headers: { 'content-type': 'text/plain' }, body: '{"action":"sell","ticker":"MNQ1!","position":"flat","price":21010.25}' });
    assert.equal(r.status, 200, await r.text());
    await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Charts' }).click();
    await page.getByRole('heading', { level: 1, name: 'Charts' }).waitFor();
    // The close reaches the paper record within moments; the page follows the `pnl` events.
    const curve = page.getByRole('img', { name: /Cumulative paper P&L per recorder/ });
    await curve.waitFor({ timeout: 20_000 });
    assert.match(await page.locator('.legend').innerText(), /\$20\b/, 'one MNQ trade of 10 points: $20');
    const latency = page.getByRole('img', { name: /Alert to broker latency histogram/ });
    await latency.waitFor();
    await t.text(page, /\d+ orders; median \d+ ms/);
    assert.ok(await page.locator('svg.chart rect.bar').count() >= 10, 'one bar per bucket');
    await t.shot(page, 'charts');
  });

  await t.step('the accounts page fits a phone', async () => {
    const phone = await t.page({ phone: true });
    await t.signIn(phone);
    await phone.goto('/accounts');
    await phone.getByRole('heading', { level: 1, name: 'Accounts' }).waitFor();
    const wide = await phone.evaluate(() => document.documentElement.scrollWidth > window.innerWidth + 1);
    assert.equal(wide, false, 'no sideways scrolling of the page');
    await t.shot(phone, 'phone');
  });
});

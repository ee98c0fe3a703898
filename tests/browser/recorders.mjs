// Recorders and the signal timeline, as a trader uses them: create a recorder, link two
// accounts, override a setting on one trader, see a refused setting explained on its field,
// set a stop and a take-profit leg, copy the webhook URL from the page and send an alert to
// it, watch the signal arrive with both traders' decisions and timelines, find a skipped one,
// rotate the token; and another user sees none of it.
//
// Environment beyond lib.mjs: JT_ACCOUNTS (two sub-account names, comma-separated),
// JT_OTHER_EMAIL / JT_OTHER_PASSWORD (a second user).

import { run, env, assert } from './lib.mjs';

const [accA, accB] = env.value('JT_ACCOUNTS').split(',');
const NAME = 'Breakout MNQ';

await run('recorders', async (t) => {
  const page = await t.page();
  await t.signIn(page);

  await t.step('the empty list invites a first recorder', async () => {
    await page.goto('/recorders');
    await t.text(page, 'No recorders yet');
    await t.shot(page, 'empty');
  });

  await t.step('create a recorder', async () => {
    await page.getByLabel('Name', { exact: true }).fill(NAME);
    await page.getByLabel('Symbol (optional)', { exact: true }).fill('MNQ1!');
    await page.getByRole('button', { name: 'Create recorder' }).click();
    await page.waitForURL(/\/recorders\/[0-9a-f-]{36}$/);
    await page.getByRole('heading', { level: 1, name: NAME }).waitFor();
  });
  const recorderUrl = page.url();

  await t.step('link two accounts as traders', async () => {
    for (const acc of [accA, accB]) {
      await page.getByLabel('Account', { exact: true }).selectOption({ label: acc });
      await page.getByRole('button', { name: 'Link trader' }).click();
      await page.locator('details.trader summary', { hasText: acc }).waitFor();
    }
    assert.equal(await page.locator('details.trader').count(), 2);
    await t.text(page, 'Every account is linked.');
  });

  await t.step("override a trader's multiplier, then see it and its inheritance", async () => {
    const trader = page.locator('details.trader', { hasText: accB });
    await trader.locator('summary').click();
    await trader.getByRole('button', { name: `Override Quantity multiplier for ${accB}` }).click();
    await trader.getByLabel('Quantity multiplier', { exact: true }).fill('2');
    await trader.getByRole('button', { name: 'Set', exact: true }).click();
    await page.locator('details.trader', { hasText: accB }).locator('summary', { hasText: '1 setting overridden' }).waitFor();
    const row = page.locator('details.trader', { hasText: accB }).locator('tr', { hasText: 'Quantity multiplier' });
    assert.match(await row.innerText(), /2\s+this trader/);
    const other = page.locator('details.trader', { hasText: accA }).locator('summary');
    assert.match(await other.innerText(), /all settings inherited/);
    await t.shot(page, 'recorder');
  });

  await t.step('a trader override cleared goes back to the recorder value', async () => {
    const trader = page.locator('details.trader', { hasText: accB });
    await trader.getByRole('button', { name: 'Override Skip signals older than (seconds)' + ` for ${accB}` }).click();
    await trader.getByLabel('Skip signals older than (seconds)', { exact: true }).fill('45');
    await trader.getByRole('button', { name: 'Set', exact: true }).click();
    await page.locator('details.trader summary', { hasText: '2 settings overridden' }).waitFor();
    await page.locator('details.trader', { hasText: accB })
      .getByRole('button', { name: `Use the recorder's Skip signals older than (seconds) for ${accB}` }).click();
    await page.locator('details.trader summary', { hasText: '1 setting overridden' }).waitFor();
  });

  await t.step('a refused setting is explained beside its field', async () => {
    const editor = page.locator('form', { has: page.getByRole('button', { name: 'Save settings' }) });
    await editor.getByLabel('Quantity multiplier', { exact: true }).fill('0');
    await editor.getByRole('button', { name: 'Save settings' }).click();
    const field = editor.locator('[data-setting="multiplier"]');
    await field.locator('.error', { hasText: /greater than 0/ }).waitFor();
    await t.shot(page, 'setting-refused');
    await editor.getByLabel('Quantity multiplier', { exact: true }).fill('1');
    await editor.getByLabel('Place a protective stop', { exact: true }).check();
    await editor.getByLabel('Stop distance', { exact: true }).fill('40');
    await editor.getByRole('button', { name: 'Add a leg' }).click();
    await editor.getByLabel('Take-profit legs: leg 1 distance', { exact: true }).fill('20');
    await editor.getByLabel('Take-profit legs: leg 1 size', { exact: true }).fill('1');
    await editor.getByRole('button', { name: 'Save settings' }).click();
    await t.text(page, 'Settings saved.');
    // Stored, not just shown: a fresh page reads them back from the API.
    await page.reload();
    await page.locator('details.trader').nth(1).waitFor();
    const fresh = page.locator('form', { has: page.getByRole('button', { name: 'Save settings' }) });
    assert.equal(await fresh.getByLabel('Take-profit legs: leg 1 distance', { exact: true }).inputValue(), '20');
    assert.equal(await fresh.getByLabel('Stop distance', { exact: true }).inputValue(), '40');
    assert.ok(await fresh.getByLabel('Place a protective stop', { exact: true }).isChecked());
  });

  let webhook;
  await t.step('copy the webhook URL and the alert message', async () => {
    await page.getByRole('button', { name: 'Copy the URL' }).click();
    await t.text(page, 'Copied to the clipboard');
    webhook = await page.evaluate(() => navigator.clipboard.readText());
    assert.equal(webhook, await page.getByTestId('webhook-url').inputValue());
    assert.match(webhook, /^http:\/\/127\.0\.0\.1:\d+\/webhook\/\S+$/);
    await page.getByRole('button', { name: 'Copy the message' }).click();
    const message = await page.evaluate(() => navigator.clipboard.readText());
    assert.equal(message, await page.getByTestId('alert-message').inputValue());
    assert.match(message, /\{\{strategy\.order\.action\}\}/);
  });

  let signalId;
  await t.step('an alert sent to the copied URL is queued', async () => {
    const body = JSON.stringify({ action: 'buy', ticker: 'MNQ1!', contracts: 1, position: 'long', prev_position: 'flat' });
    const r = await fetch(webhook, { method: 'POST', headers: { 'content-type': 'text/plain' }, body });
    const answer = await r.json();
    assert.equal(r.status, 200, JSON.stringify(answer));
    assert.equal(answer.status, 'queued', JSON.stringify(answer));
    signalId = answer.signal_id;
  });

  await t.step('the signal shows both decisions with their timelines', async () => {
    await page.getByRole('link', { name: 'Signals of this recorder' }).click();
    const signal = page.getByTestId('signal').first();
    const deadline = Date.now() + 20_000;
    for (;;) {
      await signal.waitFor();
      const executed = await signal.getByTestId('decision').filter({ hasText: 'executed' }).count();
      if (executed === 2) break;
      assert.ok(Date.now() < deadline, `two executed decisions expected, the page shows: ${await signal.innerText()}`);
      await page.waitForTimeout(500);
      await page.reload();
    }
    for (const acc of [accA, accB]) {
      const d = signal.getByTestId('decision').filter({ hasText: acc });
      assert.match(await d.innerText(), /received\s+0 ms/);
      assert.match(await d.innerText(), /queued\s+\d+ ms[\s\S]*sent\s+\d+ ms/);
    }
    assert.match(await signal.getByTestId('decision').filter({ hasText: accB }).innerText(), /buy 2 ×/);
    await t.shot(page, 'signals');
  });

  await t.step('the failures filter leaves out what succeeded', async () => {
    await page.getByLabel('Only failures and skips', { exact: true }).check();
    await page.waitForURL(/problems=1/);
    await t.text(page, 'No failures among these signals.');
    await page.getByLabel('Only failures and skips', { exact: true }).uncheck();
    await page.waitForURL((u) => !u.search.includes('problems'));
  });

  await t.step('a stale alert appears live, is not executed, says why, and the filter finds it', async () => {
    await page.getByTestId('live').filter({ hasText: /^Live$/ }).waitFor();
    await page.evaluate(() => { window.jtNoReload = true; });
    // TradingView's time of the alert, 90 s ago: older than the recorder's 30 s limit.
    const time = new Date(Date.now() - 90_000).toISOString();
    const body = JSON.stringify({ action: 'sell', ticker: 'MES1!', position: 'short', time });
    const r = await fetch(webhook, { method: 'POST', headers: { 'content-type': 'text/plain' }, body });
    assert.equal(r.status, 200, await r.text());
    // No reload: the newest page follows the live stream.
    const signal = page.getByTestId('signal').filter({ hasText: 'MES1!' });
    const deadline = Date.now() + 20_000;
    while (!(await signal.count() === 1 && /stale/.test(await signal.innerText()))) {
      assert.ok(Date.now() < deadline, `the stale alert is not shown as stale: ${await page.locator('main').innerText()}`);
      await page.waitForTimeout(300);
    }
    assert.equal(await page.evaluate(() => window.jtNoReload), true, 'the page was not reloaded');
    assert.match(await signal.innerText(), /skipped[\s\S]*Why: stale: the alert was \d+ s old/);
    await page.getByLabel('Only failures and skips', { exact: true }).check();
    await page.waitForURL(/problems=1/);
    await page.getByTestId('signal').filter({ hasText: 'MES1!' }).waitFor();
    assert.equal(await page.getByTestId('signal').filter({ hasText: 'MNQ1!' }).count(), 0);
    await t.shot(page, 'failures');
    await page.getByLabel('Outcome', { exact: true }).selectOption('duplicate');
    await page.waitForURL(/outcome=duplicate/);
    await t.text(page, 'No signals match these filters.');
  });

  await t.step('one signal a page: older and back to the newest', async () => {
    await page.goto(`/signals?recorder_id=${new URL(recorderUrl).pathname.split('/').pop()}&limit=1`);
    await page.getByTestId('signal').filter({ hasText: 'MES1!' }).waitFor();
    assert.equal(await page.getByTestId('signal').count(), 1);
    await page.getByRole('link', { name: 'Older →' }).click();
    await page.getByTestId('signal').filter({ hasText: 'MNQ1!' }).waitFor();
    assert.equal(await page.getByTestId('signal').count(), 1);
    await page.getByRole('link', { name: '← Newest' }).click();
    await page.getByTestId('signal').filter({ hasText: 'MES1!' }).waitFor();
  });

  await t.step('rotating the token asks first; then the old URL is refused', async () => {
    await page.goto(new URL(recorderUrl).pathname);
    await page.getByRole('button', { name: 'Rotate token' }).click();
    await page.getByRole('dialog').getByRole('button', { name: 'Cancel' }).click();
    assert.equal(await page.getByTestId('webhook-url').inputValue(), webhook);
    await page.getByRole('button', { name: 'Rotate token' }).click();
    await page.getByRole('dialog').getByRole('button', { name: 'Rotate' }).click();
    await t.text(page, 'New webhook URL');
    const fresh = await page.getByTestId('webhook-url').inputValue();
    assert.notEqual(fresh, webhook);
    // The ingest caches a token's recorder for 2 s (docs/pipeline.md): probe until the old
    // URL is refused, with a body that is no alert (400 or 422 while the token still
    // resolves), so the probe never trades.
    const deadline = Date.now() + 10_000;
    for (;;) {
      const old = await fetch(webhook, { method: 'POST', headers: { 'content-type': 'text/plain' }, body: 'not an alert' });
      if ([401, 404].includes(old.status)) break;
      assert.ok([400, 422].includes(old.status), `the probe answered ${old.status}: it must never be taken as an alert`);
      assert.ok(Date.now() < deadline, `the old URL still answers ${old.status} after 10 s`);
      await page.waitForTimeout(250);
    }
    webhook = fresh;
  });

  await t.step("the list counts today's signal and its outcomes", async () => {
    await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Recorders' }).click();
    const row = page.locator('tr', { hasText: NAME });
    await row.waitFor();
    assert.match(await row.innerText(), /2 executed/);
    assert.match(await row.innerText(), /2 skipped/);
    await t.shot(page, 'list');
  });

  await t.step('another user cannot see the recorder or the signal', async () => {
    const other = await t.page();
    await t.signIn(other, env.value('JT_OTHER_EMAIL'), env.value('JT_OTHER_PASSWORD'));
    await other.goto(new URL(recorderUrl).pathname);
    await other.getByRole('heading', { name: 'Recorder not found' }).waitFor();
    await t.text(other, 'does not exist, or it belongs to another user');
    await t.shot(other, 'other-user-404');
    await other.goto(`/signals/${signalId}`);
    await other.getByRole('heading', { name: 'Signal not found' }).waitFor();
    await other.goto('/recorders');
    await t.text(other, 'No recorders yet');
    assert.equal(await other.getByText(NAME).count(), 0);
  });

  await t.step('on a phone (in the dark scheme) the recorder page fits the screen', async () => {
    const phone = await t.page({ phone: true, dark: true });
    await t.signIn(phone);
    await phone.goto(new URL(recorderUrl).pathname);
    await phone.getByRole('heading', { level: 1, name: NAME }).waitFor();
    const overflow = await phone.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert.ok(overflow <= 0, `the page is ${overflow}px wider than the phone's screen`);
    await t.shot(phone, 'phone-recorder');
    await phone.goto('/signals');
    await phone.getByTestId('signal').first().waitFor();
    await t.shot(phone, 'phone-signals');
  });
});

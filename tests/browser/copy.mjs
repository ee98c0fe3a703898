// The copy cockpit: pick the leader, buy one contract by hand, and see the followers copy it
// (their positions, the copy log with latency), live; then close. The Rust test checks the
// simulator: every follower holds what the page showed.
//
// Environment beyond lib.mjs: JT_LEADER (the leader's label), JT_FOLLOWERS (the followers'
// sub-account names, comma-separated).

import { run, env } from './lib.mjs';

const leader = env.value('JT_LEADER');
const followers = env.value('JT_FOLLOWERS').split(',');

await run('copy', async (t) => {
  const page = await t.page();
  await t.signIn(page);

  await t.step('the cockpit shows the leader and its followers, flat', async () => {
    await page.goto('/copy');
    await page.getByRole('heading', { level: 1, name: 'Copy trading' }).waitFor();
    await page.getByLabel('Leader', { exact: true }).selectOption({ label: leader });
    await page.getByRole('heading', { name: `Leader ${leader}` }).waitFor();
    for (const f of followers) await page.getByRole('row', { name: new RegExp(f) }).getByText('Flat', { exact: true }).waitFor();
    await t.text(page, 'Nothing copied yet.');
  });

  await t.step('a manual buy on the leader reaches every follower', async () => {
    await page.getByLabel('Contracts', { exact: true }).fill('1');
    await page.getByRole('button', { name: 'Buy', exact: true }).click();
    await t.text(page, 'Buy sent to');
    for (const f of followers) {
      await page.getByRole('row', { name: new RegExp(f) }).getByText(/Long 1 MNQ/).waitFor({ timeout: 30_000 });
    }
    await page.locator('table').last().getByText(/^(accepted|filled)$/).first().waitFor({ timeout: 30_000 });
    await t.shot(page, 'copied');
  });

  await t.step('close the leader: the followers close too', async () => {
    await page.getByRole('button', { name: 'Close position' }).click();
    await t.text(page, 'Close sent to');
    for (const f of followers) {
      await page.getByRole('row', { name: new RegExp(f) }).getByText('Flat', { exact: true }).waitFor({ timeout: 30_000 });
    }
    await t.shot(page, 'closed');
  });
});

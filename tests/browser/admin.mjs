// Administration, for admins only: a user does not see the Admin link and the page refuses
// them in words; an admin approves a waiting user, sees the audit log record it, views the
// platform as that user (read-only, with the banner) and stops; creates and changes a plan.
//
// Environment beyond lib.mjs: JT_ADMIN_EMAIL / JT_ADMIN_PASSWORD (an admin), JT_PENDING_EMAIL
// (a user waiting for approval).

import { run, env, assert } from './lib.mjs';

const pending = env.value('JT_PENDING_EMAIL');

await run('admin', async (t) => {
  await t.step('a user sees no Admin link, and the page says it is for admins', async () => {
    const page = await t.page();
    await t.signIn(page);
    assert.equal(await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Admin' }).count(), 0);
    await page.goto('/admin');
    await t.text(page, 'This page is for administrators only.');
    await t.shot(page, 'refused');
  });

  const admin = await t.page();
  await t.signIn(admin, env.value('JT_ADMIN_EMAIL'), env.value('JT_ADMIN_PASSWORD'));

  await t.step('an admin sees the Admin page with users, dead letters and the audit log', async () => {
    await admin.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Admin' }).click();
    await admin.getByRole('heading', { level: 2, name: 'Users' }).waitFor();
    await admin.getByRole('heading', { level: 2, name: 'Dead letters' }).waitFor();
    await admin.getByRole('heading', { level: 2, name: 'Audit log' }).waitFor();
    await admin.getByRole('row', { name: new RegExp(pending) }).getByText('Waiting for approval').waitFor();
  });

  await t.step('approve the waiting user; the audit log records it', async () => {
    await admin.getByRole('button', { name: `Approve ${pending}` }).click();
    await admin.getByRole('row', { name: new RegExp(pending) }).getByText('Approved').waitFor();
    await admin.getByRole('row', { name: /user\.approve/ }).first().waitFor();
    await t.shot(admin, 'admin');
  });

  await t.step('create a plan, see it listed, change it through Edit; the audit log records it', async () => {
    const plans = admin.getByRole('region', { name: 'Plans' });
    const form = plans.getByRole('form', { name: 'Create or change a plan' });
    await form.getByLabel('Code', { exact: true }).fill('pro-e2e');
    await form.getByLabel('Name', { exact: true }).fill('Pro');
    await form.getByLabel('Most recorders', { exact: true }).fill('5');
    await form.getByLabel('Features', { exact: true }).fill('copy_trading, webull');
    await form.getByRole('button', { name: 'Save plan' }).click();
    await t.text(admin, 'Plan pro-e2e saved');
    const row = plans.getByRole('row', { name: /pro-e2e/ });
    await row.waitFor();
    assert.match(await row.innerText(), /Pro[\s\S]*Unlimited[\s\S]*5[\s\S]*Unlimited[\s\S]*copy_trading, webull/);
    await row.getByRole('button', { name: 'Edit plan pro-e2e' }).click();
    assert.equal(await form.getByLabel('Most recorders', { exact: true }).inputValue(), '5');
    await form.getByLabel('Most recorders', { exact: true }).fill('');
    await form.getByLabel('Most followers', { exact: true }).fill('3');
    await form.getByRole('button', { name: 'Save plan' }).click();
    await plans.getByRole('row', { name: /pro-e2e/ }).filter({ hasText: /Unlimited[\s\S]*Unlimited[\s\S]*3/ }).waitFor();
    // A refused value is shown on its field, in words.
    // (A saved plan empties the form.)
    await form.getByLabel('Code', { exact: true }).fill('no spaces');
    await form.getByLabel('Name', { exact: true }).fill('Spaced');
    await form.getByRole('button', { name: 'Save plan' }).click();
    await form.getByText(/1 to 32 letters, digits/).waitFor();
    await admin.getByRole('row', { name: /plan\.upsert/ }).first().waitFor();
    await t.shot(admin, 'plans');
  });

  await t.step('view as the user: read-only, with the banner; then stop', async () => {
    await admin.getByRole('button', { name: `View as ${env.email}` }).click();
    await admin.waitForURL(/\/accounts$/);
    await t.text(admin, 'Read-only: you are viewing the platform as another user.');
    await t.text(admin, 'Live updates off while viewing as another user');
    // The user's accounts, with no button that would write.
    await admin.getByRole('heading', { level: 2, name: /simulator/ }).waitFor();
    assert.equal(await admin.getByRole('button', { name: /Flatten/ }).count(), 0, 'no flatten while read-only');
    await t.shot(admin, 'view-as');
    await admin.getByRole('button', { name: 'Stop viewing' }).click();
    await admin.getByText('Read-only: you are viewing').waitFor({ state: 'detached' });
  });
});

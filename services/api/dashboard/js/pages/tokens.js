// API tokens: for scripts that call the REST API with `Authorization: Bearer`. A new token is
// shown once, with a copy button; the list shows only each token's first characters.

import * as api from '../api.js';
import { page } from '../router.js';
import { h, mount, field, table, badge, alertBox, confirmDialog, copyButton, toast, fmtTime } from '../ui.js';

function state(t) {
  if (t.revoked_at) return badge(`revoked ${fmtTime(t.revoked_at)}`, 'neutral');
  if (t.expires_at && new Date(t.expires_at) <= new Date()) return badge('expired', 'warn');
  return badge('active', 'ok');
}

page({
  path: '/tokens',
  title: 'API tokens',
  render: async (root) => {
    const listBox = h('div');
    const created = h('div', { 'aria-live': 'polite' });
    const name = field('Name', h('input', { type: 'text', name: 'name', maxlength: 100, required: true }),
      'What the token is for, e.g. "my backtest script".');
    const status = h('div');
    const submit = h('button', { type: 'submit' }, 'Create token');
    const form = h('form', { novalidate: true }, name, status, submit);

    async function refresh() {
      const tokens = await api.get('/tokens');
      mount(listBox, table([
        { label: 'Name', render: (t) => t.name },
        { label: 'Starts with', render: (t) => h('span', { class: 'mono' }, `${t.prefix}…`) },
        { label: 'Created', render: (t) => fmtTime(t.created_at) },
        { label: 'Expires', render: (t) => (t.expires_at ? fmtTime(t.expires_at) : 'never') },
        { label: 'Last used', render: (t) => fmtTime(t.last_used_at) },
        { label: 'State', render: state },
        {
          label: 'Actions',
          render: (t) => (t.revoked_at ? '' : h('button', {
            type: 'button', class: 'danger', 'aria-label': `Revoke token ${t.name}`,
            onclick: async () => {
              if (!await confirmDialog(`Revoke "${t.name}"? Scripts using it stop working at once.`, { confirm: 'Revoke', danger: true })) return;
              try { await api.del(`/tokens/${t.id}`); toast('Token revoked'); await refresh(); } catch (e) { toast(e.message, 'error'); }
            },
          }, 'Revoke')),
        },
      ], tokens, { empty: 'No API tokens yet.' }));
    }

    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      name.setError(null); mount(status);
      if (!name.input.value.trim()) { name.setError('Give the token a name.'); name.input.focus(); return; }
      submit.disabled = true;
      try {
        const t = await api.post('/tokens', { name: name.input.value.trim() });
        const out = h('input', { type: 'text', readonly: true, value: t.token, class: 'mono', 'aria-label': 'The new token' });
        mount(created, h('div', { class: 'alert ok', role: 'status' },
          h('p', {}, h('strong', {}, 'Copy this token now: it is not shown again.')),
          h('div', { class: 'row' }, out, copyButton(() => t.token, 'Copy token'))));
        name.input.value = '';
        await refresh();
      } catch (err) {
        if (err.field === 'name') name.setError(err.message);
        else mount(status, alertBox(err.message));
      } finally {
        submit.disabled = false;
      }
    });

    mount(root, h('h1', {}, 'API tokens'),
      h('p', { class: 'muted' }, 'Scripts send a token as "Authorization: Bearer <token>" to the REST API (/api/v1).'),
      h('section', { class: 'panel', 'aria-labelledby': 'new-token' }, h('h2', { id: 'new-token' }, 'New token'), form, created),
      h('h2', {}, 'Your tokens'), listBox);
    await refresh();
  },
});

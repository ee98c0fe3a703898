// Administration (admins only; the API refuses everyone else with 403 and the nav hides the
// link): users — approve or disable, make admin or user, view the platform as them (read-only:
// the API refuses writes with `X-View-As`, and a banner says so on every page) — plans (their
// limits and features; a new plan or a changed one is `PUT /admin/plans/{code}`, audited),
// dead letters with a retry after a confirmation, and the audit log.

import * as api from '../api.js';
import { page } from '../router.js';
import { h, mount, table, badge, alertBox, field, confirmDialog, toast, fmtTime } from '../ui.js';

function usersTable(users, me, ctx, redraw) {
  const change = async (u, body, what) => {
    try {
      await api.patch(`/admin/users/${u.id}`, body);
      toast(what);
      await redraw();
    } catch (e) {
      toast(e.message, 'error');
    }
  };
  const self = (u) => u.id === me.user.id;
  return table([
    { label: 'E-mail', render: (u) => h('strong', {}, u.email) },
    { label: 'Role', render: (u) => (u.role === 'admin' ? badge('Admin', 'warn') : badge('User', 'neutral')) },
    { label: 'Status', render: (u) => (u.approved ? badge('Approved', 'ok') : badge('Waiting for approval', 'bad')) },
    { label: 'Last sign-in', render: (u) => fmtTime(u.last_login_at) },
    {
      label: 'Actions',
      render: (u) => h('div', { class: 'actions' },
        u.approved
          ? h('button', { type: 'button', class: 'secondary', disabled: self(u), 'aria-label': `Disable ${u.email}`, onclick: async () => {
            if (await confirmDialog(`${u.email} will be signed out and refused until approved again.`, { title: `Disable ${u.email}?`, confirm: 'Disable', danger: true })) {
              await change(u, { approved: false }, `${u.email} disabled`);
            }
          } }, 'Disable')
          : h('button', { type: 'button', 'aria-label': `Approve ${u.email}`, onclick: () => change(u, { approved: true }, `${u.email} approved`) }, 'Approve'),
        h('button', {
          type: 'button', class: 'secondary', disabled: self(u), 'aria-label': `${u.role === 'admin' ? 'Make user' : 'Make admin'}: ${u.email}`,
          onclick: () => change(u, { role: u.role === 'admin' ? 'user' : 'admin' }, `${u.email} is now ${u.role === 'admin' ? 'a user' : 'an admin'}`),
        }, u.role === 'admin' ? 'Make user' : 'Make admin'),
        h('button', {
          type: 'button', class: 'secondary', disabled: self(u), 'aria-label': `View as ${u.email}`,
          onclick: async () => {
            api.setViewAs(u.id);
            await ctx.signedIn();
            ctx.navigate('/accounts');
          },
        }, 'View as')),
    },
  ], users, { empty: 'No users.' });
}

const LIMITS = [
  ['max_broker_accounts', 'Most broker accounts'],
  ['max_recorders', 'Most recorders'],
  ['max_followers', 'Most followers'],
];

const limitText = (v) => (v === null || v === undefined ? 'Unlimited' : String(v));

/** The plans on offer, and a form that creates a plan or replaces one with the same code. */
function plans(list, redraw) {
  const code = h('input', { type: 'text', required: true, autocomplete: 'off' });
  const name = h('input', { type: 'text', required: true, autocomplete: 'off' });
  const limits = LIMITS.map(([key, label]) => [key, field(label, h('input', { type: 'number', min: '0', step: '1', inputmode: 'numeric' }), 'Empty = unlimited.')]);
  const features = h('input', { type: 'text', autocomplete: 'off' });
  const fCode = field('Code', code, 'Lower-case letters, digits, - and _. An existing code replaces that plan.');
  const fName = field('Name', name);
  const fFeatures = field('Features', features, 'Comma-separated, e.g. copy_trading, webull.');
  const all = [fCode, fName, fFeatures, ...limits.map(([, f]) => f)];
  const edit = (p) => {
    code.value = p.code;
    name.value = p.name;
    for (const [key, f] of limits) f.input.value = p[key] === null || p[key] === undefined ? '' : String(p[key]);
    features.value = p.features.join(', ');
    name.focus();
  };
  const form = h('form', {
    class: 'panel',
    'aria-label': 'Create or change a plan',
    onsubmit: async (e) => {
      e.preventDefault();
      all.forEach((f) => f.setError(null));
      const body = { name: name.value.trim(), features: features.value.split(',').map((x) => x.trim()).filter(Boolean) };
      for (const [key, f] of limits) {
        if (f.input.value !== '') body[key] = Number(f.input.value);
      }
      try {
        await api.put(`/admin/plans/${encodeURIComponent(code.value.trim())}`, body);
        toast(`Plan ${code.value.trim()} saved`);
        await redraw();
      } catch (x) {
        const target = { name: fName, features: fFeatures, ...Object.fromEntries(limits) }[x.field];
        if (target) target.setError(x.message);
        else fCode.setError(x.message);
      }
    },
  },
  h('h3', {}, 'Create or change a plan'),
  h('div', { class: 'grid' }, all),
  h('button', { type: 'submit' }, 'Save plan'));
  return [
    table([
      { label: 'Code', render: (p) => h('code', {}, p.code) },
      { label: 'Name', render: (p) => h('strong', {}, p.name) },
      ...LIMITS.map(([key, label]) => ({ label, num: true, render: (p) => limitText(p[key]) })),
      { label: 'Features', render: (p) => (p.features.length ? p.features.join(', ') : '—') },
      { label: '', render: (p) => h('button', { type: 'button', class: 'secondary', 'aria-label': `Edit plan ${p.code}`, onclick: () => edit(p) }, 'Edit') },
    ], list, { empty: 'No plans yet: users are limited by the default plan (JT_DEFAULT_PLAN) or not at all.' }),
    form,
  ];
}

function deadLetters(letters, redraw) {
  return table([
    { label: 'When', render: (d) => fmtTime(d.dead_at) },
    { label: 'Where', render: (d) => `${d.stream} / ${d.consumer}` },
    { label: 'Why', render: (d) => d.reason },
    { label: 'Attempts', num: true, render: (d) => String(d.attempts) },
    { label: 'Message', render: (d) => h('details', {}, h('summary', {}, d.subject), h('pre', {}, JSON.stringify(d.body, null, 2))) },
    {
      label: '',
      render: (d) => h('button', {
        type: 'button', 'aria-label': `Retry dead letter ${d.sequence}`,
        onclick: async () => {
          if (!await confirmDialog(`Put this ${d.stream} message back on its stream once? It runs again as if new.`, { title: 'Retry the message?', confirm: 'Retry' })) return;
          try {
            await api.post(`/admin/dead-letters/${d.sequence}/retry`, {});
            toast('Back on its stream');
            await redraw();
          } catch (e) {
            toast(e.message, 'error');
          }
        },
      }, 'Retry'),
    },
  ], letters, { empty: 'No dead letters: every message was handled.' });
}

function audit(rows) {
  return table([
    { label: 'When', render: (r) => fmtTime(r.at) },
    { label: 'Admin', render: (r) => r.actor_email },
    { label: 'Action', render: (r) => h('code', {}, r.action) },
    { label: 'Target', render: (r) => `${r.target_type}${r.target_id ? ` ${r.target_id}` : ''}` },
    { label: 'Details', render: (r) => (r.details && Object.keys(r.details).length ? h('code', { class: 'mono' }, JSON.stringify(r.details)) : '—') },
  ], rows, { empty: 'Nothing audited yet.' });
}

page({
  path: '/admin',
  title: 'Admin',
  nav: { label: 'Admin', order: 90, admin: true },
  render: async (root, ctx) => {
    if (!ctx.me || ctx.me.user.role !== 'admin') {
      mount(root, h('h1', {}, 'Admin'), alertBox('This page is for administrators only.'));
      return;
    }
    if (ctx.me.viewing_as) {
      mount(root, h('h1', {}, 'Admin'), alertBox('Stop viewing as another user to administer the platform (the banner above).', 'warn'));
      return;
    }
    const body = h('div');
    const draw = async () => {
      const [users, planList, letters, rows] = await Promise.all([
        api.get('/admin/users?limit=200'),
        api.get('/plans'),
        api.get('/admin/dead-letters?limit=50'),
        api.get('/admin/audit?limit=50'),
      ]);
      if (ctx.signal.aborted) return;
      mount(body,
        h('section', { 'aria-labelledby': 'users-h' }, h('h2', { id: 'users-h' }, 'Users'), usersTable(users, ctx.me, ctx, draw)),
        h('section', { 'aria-labelledby': 'plans-h' }, h('h2', { id: 'plans-h' }, 'Plans'), plans(planList, draw)),
        h('section', { 'aria-labelledby': 'dl-h' }, h('h2', { id: 'dl-h' }, 'Dead letters'), deadLetters(letters, draw)),
        h('section', { 'aria-labelledby': 'audit-h' }, h('h2', { id: 'audit-h' }, 'Audit log'), audit(rows)));
    };
    mount(root, h('h1', {}, 'Admin'), body);
    await draw();
  },
});

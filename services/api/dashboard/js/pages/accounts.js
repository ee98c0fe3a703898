// Accounts: every broker login with its authentication and connection, and per sub-account the
// open positions with their protection (a position no working stop fully covers is shown as
// UNPROTECTED, in red), the day's P&L and the distance to each risk limit (as the risk monitor
// shares them, with their age), and the controls: flatten and the kill switch, each after a
// confirmation. A login that needs re-authentication stands out with a form for new
// credentials. Live: positions and P&L events redraw the page without a reload.

import * as api from '../api.js';
import { page } from '../router.js';
import { h, mount, table, badge, alertBox, field, confirmDialog, toast, fmtTime } from '../ui.js';
import { subscribe, coalesce } from '../live.js';

const AUTH = {
  ok: ['Signed in', 'ok'],
  needs_reauth: ['Needs re-authentication', 'bad'],
  locked: ['Locked by the broker', 'bad'],
  no_credentials: ['No credentials', 'warn'],
};

const LINK = {
  connected: ['Connected', 'ok'],
  connecting: ['Connecting', 'warn'],
  disconnected: ['Disconnected', 'bad'],
  not_held: ['No connection manager', 'warn'],
  unknown: ['Connection unknown', 'neutral'],
};

const RULES = {
  trailing_drawdown: 'Trailing drawdown',
  daily_loss: 'Daily loss limit',
  daily_profit_cap: 'Daily profit cap',
  max_position: 'Contracts per position',
  max_order: 'Contracts per order',
};

function money(v) {
  if (v === null || v === undefined) return '—';
  const neg = String(v).startsWith('-');
  return h('span', { class: neg ? 'pnl-neg' : (Number(v) > 0 ? 'pnl-pos' : null) }, neg ? `−$${String(v).slice(1)}` : `$${v}`);
}

function protection(p) {
  if (p.unprotected) {
    return h('span', { class: 'unprotected', 'data-testid': 'unprotected' },
      `UNPROTECTED (stop covers ${p.stop_quantity} of ${Math.abs(p.net_quantity)})`);
  }
  return h('span', {}, badge(`Stop ${p.stop_quantity}`, 'ok'), ' ',
    p.take_profit_quantity ? badge(`Take-profit ${p.take_profit_quantity}`, 'ok') : badge('No take-profit', 'neutral'));
}

function positionsCell(sub) {
  if (!sub.positions.length) return h('span', { class: 'muted' }, 'Flat');
  return h('ul', { class: 'distances' }, sub.positions.map((p) => h('li', { class: p.unprotected ? 'unprotected-row' : null },
    h('strong', {}, `${p.net_quantity > 0 ? 'Long' : 'Short'} ${Math.abs(p.net_quantity)} ${p.contract}`),
    p.average_price ? ` @ ${p.average_price} ` : ' ', protection(p))));
}

function riskCell(risk) {
  if (!risk) return h('span', { class: 'muted' }, 'Not watched (no daily loss limit or prop-firm rules)');
  const items = [];
  items.push(h('li', {}, 'Day P&L: ', money(risk.realized_pnl), ' realised, ',
    risk.open_pnl === null ? h('span', { class: 'muted' }, 'open unknown') : [money(risk.open_pnl), ' open']));
  if (risk.max_daily_loss) {
    items.push(h('li', {}, `Max daily loss $${risk.max_daily_loss}: `, money(risk.max_daily_loss_distance), ' left'));
  }
  for (const d of risk.rules) {
    items.push(h('li', {}, `${RULES[d.rule] || d.rule}: ${d.remaining} left before the platform acts (at ${d.acts_at}; firm's limit ${d.firm_limit})`));
  }
  if (risk.breached) items.push(h('li', {}, badge('Locked for the day: a limit was reached', 'bad')));
  items.push(h('li', { class: 'muted' }, risk.stale
    ? badge(`Old figures (as of ${fmtTime(risk.as_of)}): the risk service is not updating them`, 'warn')
    : `As of ${fmtTime(risk.as_of)}`));
  return h('ul', { class: 'distances' }, items);
}

function reauthForm(login, redraw) {
  const input = h('input', { type: 'password', autocomplete: 'new-password', required: true });
  const f = field(`New password for ${login.label}`, input, 'The broker refused the stored login. Enter the current password to trade again.');
  const err = h('div');
  return h('form', {
    class: 'row',
    onsubmit: async (e) => {
      e.preventDefault();
      f.setError(null);
      mount(err);
      try {
        await api.put(`/broker-accounts/${login.account_id}/credentials`, { password: input.value });
        toast('Credentials saved');
        await redraw();
      } catch (x) {
        if (x.field) f.setError(x.message); else mount(err, alertBox(x.message));
      }
    },
  }, f, h('button', { type: 'submit' }, 'Save new credentials'), err);
}

async function act(what, fn, redraw) {
  try {
    await fn();
    toast(what);
    await redraw();
  } catch (e) {
    toast(e.message, 'error');
  }
}

function controls(sub, redraw) {
  const flatten = async () => {
    if (!await confirmDialog(`Close every position and cancel every working order of ${sub.name} now?`,
      { title: `Flatten ${sub.name}?`, confirm: 'Flatten', danger: true })) return;
    await act(`Flatten sent for ${sub.name}`, () => api.post(`/sub-accounts/${sub.id}/flatten`, { reason: 'dashboard' }), redraw);
  };
  const kill = async () => {
    if (!await confirmDialog(`Flatten ${sub.name} and refuse every new entry on it until you resume it?`,
      { title: `Kill switch for ${sub.name}?`, confirm: 'Engage kill switch', danger: true })) return;
    await act(`Kill switch engaged for ${sub.name}`, () => api.put(`/sub-accounts/${sub.id}/kill`, { engaged: true, reason: 'dashboard' }), redraw);
  };
  const resume = async () => {
    if (!await confirmDialog(`Allow new entries on ${sub.name} again?`, { title: `Resume ${sub.name}?`, confirm: 'Resume' })) return;
    await act(`${sub.name} resumed`, () => api.put(`/sub-accounts/${sub.id}/kill`, { engaged: false }), redraw);
  };
  // Resume releases the account's own switch; a user-wide or platform switch is released
  // where it was engaged (PUT /kill, or an admin), so this account offers no button for it.
  const own = sub.kill_switch && sub.kill_switch.scope === 'account';
  return h('div', { class: 'actions' },
    h('button', { type: 'button', class: 'danger', onclick: flatten, 'aria-label': `Flatten ${sub.name}` }, 'Flatten'),
    own
      ? h('button', { type: 'button', class: 'secondary', onclick: resume, 'aria-label': `Resume ${sub.name}` }, 'Resume')
      : h('button', { type: 'button', class: 'secondary', onclick: kill, 'aria-label': `Kill switch for ${sub.name}` }, 'Kill switch'));
}

const KILL_SCOPE = {
  account: 'this account',
  user: 'all your accounts',
  global: 'the whole platform (an administrator releases it)',
};

/** The engaged kill switch of an account, in words; nothing when none is engaged. */
function killBadge(k) {
  if (!k) return null;
  const why = k.reason ? `: ${k.reason}` : '';
  return h('div', { class: 'kill', 'data-testid': 'kill-switch' },
    badge('Kill switch on', 'bad'),
    h('span', { class: 'muted' }, ` New entries refused on ${KILL_SCOPE[k.scope] || k.scope}${why} (since ${fmtTime(k.since)}).`));
}

function loginPanel(login, redraw, readOnly) {
  const [authText, authKind] = AUTH[login.auth.status] || [login.auth.status, 'neutral'];
  const [linkText, linkKind] = LINK[login.connection.state] || [login.connection.state, 'neutral'];
  const reauth = login.auth.status === 'needs_reauth';
  const subs = login.sub_accounts;
  const unprotected = subs.some((s) => s.positions.some((p) => p.unprotected));
  return h('section', { class: `panel${reauth ? ' needs-reauth' : ''}`, 'aria-label': login.label, 'data-login': login.account_id },
    h('div', { class: 'heading-row' },
      h('h2', {}, `${login.label} `, h('span', { class: 'muted' }, `(${login.broker})`)),
      h('div', { class: 'row' }, badge(authText, authKind), badge(linkText, linkKind), login.enabled ? null : badge('Disabled', 'warn'))),
    reauth ? alertBox(`This login needs re-authentication: ${login.auth.reason || 'the broker refused the stored credentials'}. Nothing trades on it until new credentials are saved.`) : null,
    reauth && !readOnly ? reauthForm(login, redraw) : null,
    login.connection.reason && login.connection.state !== 'connected' ? h('p', { class: 'muted' }, `Connection: ${login.connection.reason}`) : null,
    unprotected ? alertBox('A position on this login is not protected by a working stop.') : null,
    table([
      { label: 'Account', render: (s) => h('span', {}, h('strong', {}, s.name), s.enabled ? null : [' ', badge('New entries off', 'warn')], killBadge(s.kill_switch)) },
      { label: 'Positions and protection', render: positionsCell },
      { label: 'Day P&L and limits', render: (s) => riskCell(s.risk) },
      { label: 'Working orders', num: true, render: (s) => String(s.working_orders) },
      readOnly ? null : { label: 'Controls', render: (s) => controls(s, redraw) },
    ].filter(Boolean), subs, { empty: 'No active sub-accounts on this login.' }));
}

page({
  path: '/accounts',
  title: 'Accounts',
  nav: { label: 'Accounts', order: 30 },
  render: async (root, ctx) => {
    // An admin viewing as a user reads only (the API refuses writes with X-View-As): no
    // buttons that would only be refused.
    const readOnly = Boolean(ctx.me && ctx.me.viewing_as);
    const body = h('div');
    const draw = coalesce(async () => {
      const status = await api.get('/status');
      if (ctx.signal.aborted) return;
      if (!status.length) {
        mount(body, h('p', { class: 'muted' }, 'No broker accounts yet. Add one through the API (POST /api/v1/broker-accounts).'));
        return;
      }
      mount(body, status.map((l) => loginPanel(l, draw, readOnly)));
    });
    const refresh = () => draw().catch((e) => toast(e.message, 'error'));
    const flattenAll = async () => {
      if (!await confirmDialog('Close every position and cancel every working order on all your accounts now?',
        { title: 'Flatten every account?', confirm: 'Flatten all', danger: true })) return;
      await act('Flatten sent for every account', () => api.post('/flatten', { reason: 'dashboard' }), draw);
    };
    const live = subscribe(ctx.signal, { positions: refresh, pnl: refresh, reload: refresh });
    mount(root,
      h('div', { class: 'heading-row' }, h('h1', {}, 'Accounts'),
        h('div', { class: 'row' }, live, readOnly ? null : h('button', { type: 'button', class: 'danger', onclick: flattenAll }, 'Flatten all'))),
      body);
    await draw();
  },
});

// The copy cockpit: pick a leader, trade it by hand (buy, sell, close — each request with its
// own Idempotency-Key, so a double click or a retried request trades once), and watch its
// followers: their position, whether copying to them is on or locked out by their risk limits,
// the last copy's latency, and the copy log. Live: position and signal events redraw it.

import * as api from '../api.js';
import { page } from '../router.js';
import { h, mount, table, badge, alertBox, field, toast, fmtTime } from '../ui.js';
import { subscribe, coalesce } from '../live.js';

/** A fresh idempotency key (random; `crypto.randomUUID` needs a secure context, this does not). */
function idempotencyKey() {
  const b = new Uint8Array(16);
  crypto.getRandomValues(b);
  return `dash-${Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('')}`;
}

function netIn(status, subId) {
  for (const login of status) {
    for (const s of login.sub_accounts) {
      if (s.id === subId) return s.positions;
    }
  }
  return null;
}

function positionText(positions) {
  if (positions === null) return h('span', { class: 'muted' }, 'Not active');
  if (!positions.length) return h('span', { class: 'muted' }, 'Flat');
  return positions.map((p) => h('div', {}, `${p.net_quantity > 0 ? 'Long' : 'Short'} ${Math.abs(p.net_quantity)} ${p.contract}`,
    p.unprotected ? [' ', h('span', { class: 'unprotected' }, 'UNPROTECTED')] : null));
}

function tradeForm(leader, subName, after) {
  const symbol = h('input', { value: 'MNQ1!', autocomplete: 'off', required: true });
  const qty = h('input', { type: 'number', min: '1', step: '1', value: '1', required: true });
  const fSymbol = field('Symbol', symbol, 'As TradingView names it (MNQ1!) or a contract (MNQZ6).');
  const fQty = field('Contracts', qty);
  const out = h('div', { 'aria-live': 'polite' });
  const send = async (label, body) => {
    fSymbol.setError(null);
    fQty.setError(null);
    mount(out);
    const key = idempotencyKey();
    try {
      const a = await api.post(`/sub-accounts/${leader.sub_account_id}/orders`, body, { headers: { 'Idempotency-Key': key } });
      mount(out, alertBox(`${label} sent to ${subName}${a && a.duplicate ? ' (already sent)' : ''}: the followers copy its fill.`, 'ok'));
      toast(`${label} sent`);
      after();
    } catch (e) {
      if (e.field === 'symbol') fSymbol.setError(e.message);
      else if (e.field === 'qty') fQty.setError(e.message);
      else mount(out, alertBox(e.message));
    }
  };
  const q = () => Number(qty.value);
  return h('form', { class: 'panel', 'aria-labelledby': 'trade-h', onsubmit: (e) => e.preventDefault() },
    h('h2', { id: 'trade-h' }, `Trade ${subName} by hand`),
    h('div', { class: 'grid' }, fSymbol, fQty),
    h('div', { class: 'row' },
      h('button', { type: 'button', onclick: () => send('Buy', { symbol: symbol.value.trim(), action: 'entry', direction: 'long', qty: q() }) }, 'Buy'),
      h('button', { type: 'button', onclick: () => send('Sell', { symbol: symbol.value.trim(), action: 'entry', direction: 'short', qty: q() }) }, 'Sell'),
      h('button', { type: 'button', class: 'secondary', onclick: () => send('Close', { symbol: symbol.value.trim(), action: 'exit' }) }, 'Close position')),
    out);
}

function followersTable(followers, subs, status, log) {
  const lastLatency = (f) => {
    const row = log.find((r) => r.follower_id === f.id && r.latency_ms !== null);
    return row ? `${row.latency_ms} ms` : '—';
  };
  const state = (f) => {
    if (f.locked_out) return badge(`Locked out: ${f.lockout_reason || 'a risk limit was reached'}`, 'bad');
    if (!f.enabled) return badge('Copying off', 'warn');
    // A follower whose hand-closed position is left flat is not re-synced: say so beside it.
    if (f.closed_by_hand_stays_flat) {
      return h('span', {}, badge('Copying', 'ok'), ' ', h('span', { class: 'muted' }, 'closed by hand stays flat'));
    }
    return badge('Copying', 'ok');
  };
  return table([
    { label: 'Follower', render: (f) => h('strong', {}, f.label || (subs[f.sub_account_id] || {}).name || f.sub_account_id) },
    { label: 'Account', render: (f) => (subs[f.sub_account_id] || {}).name || '—' },
    { label: 'Multiplier', num: true, render: (f) => f.multiplier },
    { label: 'Position', render: (f) => positionText(netIn(status, f.sub_account_id)) },
    { label: 'Sync', render: state },
    { label: 'Last latency', num: true, render: lastLatency },
  ], followers, { empty: 'No followers yet: add them through the API (POST /api/v1/leaders/{id}/followers).' });
}

function logTable(log, names) {
  const STATUS = { filled: 'ok', accepted: 'ok', pending: 'neutral', skipped: 'warn', error: 'bad' };
  return table([
    { label: 'When', render: (r) => fmtTime(r.created_at) },
    { label: 'Follower', render: (r) => names[r.follower_id] || '—' },
    { label: 'Leader', render: (r) => `${r.leader_side || ''} ${r.leader_quantity} ${r.leader_symbol}`.trim() },
    { label: 'Copied', render: (r) => `${r.follower_side || ''} ${r.follower_quantity} ${r.follower_symbol}`.trim() },
    { label: 'Trigger', render: (r) => r.trigger },
    { label: 'Status', render: (r) => h('span', {}, badge(r.status, STATUS[r.status] || 'neutral'), r.error ? ` ${r.error}` : '') },
    { label: 'Latency', num: true, render: (r) => (r.latency_ms === null ? '—' : `${r.latency_ms} ms`) },
  ], log, { empty: 'Nothing copied yet.' });
}

page({
  path: '/copy',
  title: 'Copy trading',
  nav: { label: 'Copy', order: 40 },
  render: async (root, ctx) => {
    const [leaders, subList] = await Promise.all([api.get('/leaders'), api.get('/sub-accounts')]);
    if (ctx.signal.aborted) return;
    const subs = Object.fromEntries(subList.map((s) => [s.id, s]));
    const nameOf = (l) => l.label || (subs[l.sub_account_id] || {}).name || l.sub_account_id;
    if (!leaders.length) {
      mount(root, h('h1', {}, 'Copy trading'),
        h('p', { class: 'muted' }, 'No leader yet. Make one of your accounts a leader through the API (POST /api/v1/leaders), then add followers.'));
      return;
    }
    const chosen = leaders.find((l) => l.id === ctx.query.get('leader')) || leaders[0];
    const select = h('select', { id: 'leader' }, leaders.map((l) => h('option', { value: l.id, selected: l.id === chosen.id }, nameOf(l))));
    select.addEventListener('change', () => ctx.navigate(`/copy?leader=${select.value}`));
    const body = h('div');
    const draw = coalesce(async () => {
      const [followers, status, log] = await Promise.all([
        api.get(`/leaders/${chosen.id}/followers`),
        api.get('/status'),
        api.get(`/copy-log${api.qs({ leader_id: chosen.id, limit: 25 })}`),
      ]);
      if (ctx.signal.aborted) return;
      const names = Object.fromEntries(followers.map((f) => [f.id, f.label || (subs[f.sub_account_id] || {}).name || f.id]));
      mount(body,
        h('section', { class: 'panel', 'aria-labelledby': 'leader-h' },
          h('h2', { id: 'leader-h' }, `Leader ${nameOf(chosen)}`),
          h('p', {}, chosen.enabled ? badge('Copying on', 'ok') : badge('Copying off', 'warn'), ' ',
            chosen.auto_copy ? badge('Copies its own fills too', 'neutral') : badge('Copies manual trades only', 'neutral')),
          h('p', {}, 'Position: ', positionText(netIn(status, chosen.sub_account_id)))),
        h('section', { 'aria-labelledby': 'followers-h' }, h('h2', { id: 'followers-h' }, 'Followers'),
          followersTable(followers, subs, status, log.items)),
        h('section', { 'aria-labelledby': 'log-h' }, h('h2', { id: 'log-h' }, 'Copy log'), logTable(log.items, names)));
    });
    const refresh = () => draw().catch((e) => toast(e.message, 'error'));
    const live = subscribe(ctx.signal, { positions: refresh, signal: refresh, reload: refresh });
    // The copy log is not in the live feed (docs/api.md, "Live updates"): a copy that changes
    // no position (skipped, refused) shows within five seconds this way.
    const timer = setInterval(refresh, 5000);
    ctx.signal.addEventListener('abort', () => clearInterval(timer));
    mount(root,
      h('div', { class: 'heading-row' }, h('h1', {}, 'Copy trading'), live),
      h('div', { class: 'toolbar' }, h('div', { class: 'field' }, h('label', { for: 'leader' }, 'Leader'), select)),
      ctx.me && ctx.me.viewing_as ? null : tradeForm(chosen, nameOf(chosen), refresh),
      body);
    await draw();
  },
});

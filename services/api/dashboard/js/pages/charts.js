// Charts: each recorder's cumulative paper P&L over a window (a step line per recorder, one
// step per closed paper trade) and the alert → broker latency histogram of the caller's
// signal intents, drawn as inline SVG (js/chart.js), each with its numbers in a table as the
// text alternative. Broker P&L per recorder is not drawn: the API does not have it (the store
// keeps no realised P&L per trade; docs/api.md, "Charts"), and the page says so.

import * as api from '../api.js';
import { page } from '../router.js';
import { h, mount, table, alertBox, fmtTime } from '../ui.js';
import { lineChart, barChart } from '../chart.js';
import { subscribe, coalesce } from '../live.js';

const WINDOWS = [
  ['1', 'Last 24 hours'],
  ['7', 'Last 7 days'],
  ['30', 'Last 30 days'],
  ['90', 'Last 90 days'],
];

function bucketLabel(b) {
  const ms = (v) => (v >= 1000 ? `${v / 1000}s` : `${v}`);
  return b.to_ms === null ? `≥${ms(b.from_ms)}` : `<${ms(b.to_ms)}`;
}

function pnlSection(chart) {
  const withTrades = chart.recorders.filter((r) => r.paper.length);
  const series = withTrades.map((r) => ({
    name: r.name, points: r.paper.map((p) => ({ at: p.at, value: p.cumulative })),
  }));
  const words = withTrades.length
    ? withTrades.map((r) => `${r.name}: ${r.paper.length} closed trades, total $${r.paper_total}`).join('; ')
    : 'No paper trade closed in this window.';
  return h('section', { class: 'panel', 'aria-labelledby': 'pnl-h' },
    h('h2', { id: 'pnl-h' }, 'Cumulative P&L per recorder (paper)'),
    withTrades.length
      ? [
        h('ul', { class: 'legend' }, withTrades.map((r, i) => h('li', {}, h('span', { class: `swatch s${i % 6}` }), `${r.name}: $${r.paper_total}`))),
        lineChart(series, {
          title: 'Cumulative paper P&L per recorder', desc: words, since: chart.since, until: chart.until,
        }),
      ]
      : h('p', { class: 'muted' }, 'No paper trade closed in this window.'),
    chart.truncated ? alertBox('More trades closed than one chart shows (10,000): the curves stop early.', 'warn') : null,
    h('details', {}, h('summary', {}, 'The numbers'),
      table([
        { label: 'Recorder', render: (r) => r.name },
        { label: 'Closed trades', num: true, render: (r) => String(r.paper.length) },
        { label: 'P&L in the window', num: true, render: (r) => `$${r.paper_total}` },
        { label: 'Last close', render: (r) => (r.paper.length ? fmtTime(r.paper[r.paper.length - 1].at) : '—') },
      ], chart.recorders, { empty: 'No recorders yet.' })),
    h('p', { class: 'muted' }, 'Broker P&L per recorder is not shown: the platform does not yet keep a realised P&L per broker trade '
      + 'to charge to a recorder. Each account\'s broker P&L of the day is on the Accounts page.'));
}

function latencySection(lat) {
  const bars = lat.buckets.map((b) => ({ label: bucketLabel(b), count: b.count }));
  const desc = lat.count
    ? `${lat.count} orders; median ${lat.p50_ms} ms, 95th percentile ${lat.p95_ms} ms, slowest ${lat.max_ms} ms.`
    : 'No signal reached a broker in this window.';
  return h('section', { class: 'panel', 'aria-labelledby': 'lat-h' },
    h('h2', { id: 'lat-h' }, 'Alert → broker latency'),
    h('p', {}, desc),
    lat.count ? barChart(bars, { title: 'Alert to broker latency histogram (milliseconds)', desc }) : null,
    h('details', {}, h('summary', {}, 'The numbers'),
      table([
        { label: 'Latency (ms)', render: (b) => (b.to_ms === null ? `${b.from_ms} or more` : `${b.from_ms} to ${b.to_ms}`) },
        { label: 'Orders', num: true, render: (b) => String(b.count) },
      ], lat.buckets)),
    h('p', { class: 'muted' }, 'From the alert reaching the platform to the broker\'s answer to the first order it caused.'));
}

page({
  path: '/charts',
  title: 'Charts',
  nav: { label: 'Charts', order: 50 },
  render: async (root, ctx) => {
    const days = WINDOWS.some(([d]) => d === ctx.query.get('days')) ? ctx.query.get('days') : '30';
    const select = h('select', { id: 'chart-window' }, WINDOWS.map(([d, label]) => h('option', { value: d, selected: d === days }, label)));
    select.addEventListener('change', () => ctx.navigate(`/charts?days=${select.value}`));
    const body = h('div');
    const draw = coalesce(async () => {
      const until = new Date();
      const since = new Date(until.getTime() - Number(days) * 86400000);
      const q = api.qs({ since: since.toISOString(), until: until.toISOString() });
      const [pnl, lat] = await Promise.all([api.get(`/charts/pnl${q}`), api.get(`/charts/latency${q}`)]);
      if (ctx.signal.aborted) return;
      mount(body, pnlSection(pnl), latencySection(lat));
    });
    const refresh = () => draw().catch(() => {});
    const live = subscribe(ctx.signal, { pnl: refresh, signal: refresh, reload: refresh });
    mount(root,
      h('div', { class: 'heading-row' }, h('h1', {}, 'Charts'), live),
      h('div', { class: 'toolbar' }, h('div', { class: 'field' }, h('label', { for: 'chart-window' }, 'Window'), select)),
      body);
    await draw();
  },
});

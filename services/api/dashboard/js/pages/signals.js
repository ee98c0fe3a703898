// The signal timeline: each alert, newest first, with every trader's decision and its reason,
// and a bar of the decision's steps (received → queued → sent → … → completed) in
// milliseconds. Filters: recorder, outcome (server side), "only failures and skips" (this
// page's signals whose alert was not accepted or that did not execute on every account);
// cursor paging.

import * as api from '../api.js';
import { page } from '../router.js';
import { h, mount, link, badge, alertBox, fmtTime, toast } from '../ui.js';
import { subscribe, coalesce } from '../live.js';

const OUTCOMES = ['accepted', 'duplicate', 'stale', 'filtered', 'rejected'];
const BAD = ['failed', 'rejected', 'unknown'];
const STAGES = ['received', 'queued', 'attempt_started', 'sent', 'attempt_finished', 'completed'];

function decisionBadge(d) {
  if (d === 'executed') return badge('executed', 'ok');
  if (BAD.includes(d)) return badge(d, 'bad');
  if (d === 'pending' || d === 'skipped') return badge(d, 'warn');
  return badge(d, 'neutral');
}

// What a trader must look at: an alert that was not accepted, or one that did not execute on
// some account (failed, refused, unknown, skipped by a rule, cancelled).
const NOT_DONE = [...BAD, 'skipped', 'cancelled'];
function isProblem(s) {
  return s.outcome !== 'accepted' || s.decisions.some((d) => NOT_DONE.includes(d.decision));
}

/** The decision's steps as a bar (one coloured segment per step) and a list in words. */
export function timeline(steps) {
  // In time order; steps of the same millisecond in the pipeline's order.
  const rank = (s) => { const i = STAGES.indexOf(s.stage); return i < 0 ? STAGES.length : i; };
  const sorted = [...steps].sort((a, b) => a.ms_since_received - b.ms_since_received || rank(a) - rank(b));
  if (!sorted.length) return h('p', { class: 'muted' }, 'No steps recorded yet.');
  const total = Math.max(1, sorted[sorted.length - 1].ms_since_received);
  const bar = h('div', { class: 'timeline', 'aria-hidden': 'true' });
  for (let i = 0; i + 1 < sorted.length; i += 1) {
    const span = h('span', { class: `c${i % 6}`, title: `${sorted[i].stage} → ${sorted[i + 1].stage}: ${sorted[i + 1].ms_since_received - sorted[i].ms_since_received} ms` });
    // CSSOM, which the Content-Security-Policy allows (a style attribute it would not).
    span.style.flexGrow = String(Math.max(0.5, sorted[i + 1].ms_since_received - sorted[i].ms_since_received));
    bar.appendChild(span);
  }
  if (sorted.length === 1) bar.appendChild(h('span', {}));
  return h('div', {},
    bar,
    h('ol', { class: 'steps', 'aria-label': `Timeline, ${total} ms in all` },
      sorted.map((s, i) => h('li', {},
        // The swatch is the colour of the bar's segment that starts at this step.
        i + 1 < sorted.length ? h('span', { class: `swatch c${i % 6}`, 'aria-hidden': 'true' }) : null,
        `${s.stage.replace(/_/g, ' ')} `, h('strong', {}, `${s.ms_since_received} ms`),
        s.detail && s.stage !== 'queued' ? ` (${s.detail})` : null))));
}

function decisionView(d, subName) {
  const what = [d.kind, d.side, d.quantity ? `${d.quantity} × ${d.contract || d.symbol}` : d.symbol].filter(Boolean).join(' ');
  const fill = d.average_fill_price ? ` · filled ${d.filled_quantity} at ${d.average_fill_price}` : '';
  return h('div', { class: 'decision', 'data-testid': 'decision' },
    h('div', { class: 'row' }, h('strong', {}, subName(d.sub_account_id)), decisionBadge(d.decision),
      h('span', { class: 'muted' }, `${what}${fill}`)),
    d.reason ? (BAD.includes(d.decision) || d.decision === 'skipped'
      ? h('p', { class: BAD.includes(d.decision) ? 'error-text' : 'muted' }, `Why: ${d.reason}`)
      : h('p', { class: 'muted' }, d.reason)) : null,
    timeline(d.timeline));
}

/** One signal as a panel. */
export function signalView(s, { subName, recorderName }) {
  const accepted = s.outcome === 'accepted';
  return h('article', { class: 'panel', 'data-testid': 'signal', 'aria-label': `Signal ${s.action} ${s.ticker || ''} at ${fmtTime(s.received_at)}` },
    h('div', { class: 'row spread' },
      h('div', { class: 'row' },
        h('strong', {}, `${s.action.toUpperCase()} ${s.ticker || ''}`),
        s.quantity ? h('span', {}, `qty ${s.quantity}`) : null,
        s.price ? h('span', {}, `@ ${s.price}`) : null,
        accepted ? badge('accepted', 'ok') : badge(s.outcome, 'warn')),
      h('span', { class: 'muted' }, link(`/signals/${s.id}`, fmtTime(s.received_at)), ' · ', link(`/recorders/${s.recorder_id}`, recorderName(s.recorder_id)))),
    s.outcome_reason ? h('p', { class: 'muted' }, `Not executed: ${s.outcome_reason}`) : null,
    s.decisions.length
      ? h('div', { class: 'decisions' }, s.decisions.map((d) => decisionView(d, subName)))
      : h('p', { class: 'muted' }, accepted ? 'No trader decided yet (or none is linked).' : 'No trader was asked.'));
}

async function lookups() {
  const [recorders, subs] = await Promise.all([api.get('/recorders'), api.get('/sub-accounts')]);
  return {
    recorders,
    subName: (id) => (subs.find((s) => s.id === id) || {}).name || 'an account',
    recorderName: (id) => (recorders.find((r) => r.id === id) || {}).name || 'a recorder',
  };
}

function emptyText(filter, unfiltered) {
  if (filter.problems && unfiltered) return 'No failures among these signals.';
  if (filter.outcome || filter.problems) return 'No signals match these filters.';
  if (filter.recorder_id) return 'No signals for this recorder yet. Send an alert to its webhook URL.';
  return 'No signals yet. Send an alert to a recorder\'s webhook URL.';
}

page({
  path: '/signals',
  title: 'Signals',
  nav: { label: 'Signals', order: 20 },
  render: async (root, ctx) => {
    const q = ctx.query;
    const names = await lookups();
    const filter = {
      recorder_id: q.get('recorder_id') || '',
      outcome: q.get('outcome') || '',
      cursor: q.get('cursor') || '',
      problems: q.get('problems') === '1',
      // The page size (the API takes 1 to 100); 25 unless the URL says otherwise.
      limit: Math.min(100, Math.max(1, Number.parseInt(q.get('limit'), 10) || 25)),
    };
    const size = filter.limit === 25 ? '' : filter.limit;
    const recSel = h('select', { id: 'f-rec' }, h('option', { value: '' }, 'All recorders'),
      names.recorders.map((r) => h('option', { value: r.id, selected: r.id === filter.recorder_id }, r.name)));
    const outSel = h('select', { id: 'f-out' }, h('option', { value: '' }, 'Any outcome'),
      OUTCOMES.map((o) => h('option', { value: o, selected: o === filter.outcome }, o)));
    const probs = h('input', { type: 'checkbox', id: 'f-prob', checked: filter.problems });
    const apply = () => ctx.navigate(`/signals${api.qs({ recorder_id: recSel.value, outcome: outSel.value, problems: probs.checked ? '1' : '', limit: size })}`);
    [recSel, outSel, probs].forEach((el) => el.addEventListener('change', apply));
    const toolbar = h('div', { class: 'toolbar', role: 'group', 'aria-label': 'Filters' },
      h('div', { class: 'field' }, h('label', { for: 'f-rec' }, 'Recorder'), recSel),
      h('div', { class: 'field' }, h('label', { for: 'f-out' }, 'Outcome'), outSel),
      h('div', { class: 'field' }, h('label', { class: 'check', for: 'f-prob' }, probs, 'Only failures and skips')));

    const here = { recorder_id: filter.recorder_id, outcome: filter.outcome, problems: filter.problems ? '1' : '', limit: size };
    const list = h('div', { 'aria-live': 'polite' });
    // The newest page follows new signals and decisions live; an older page stays as it was
    // (what it shows is fixed by its cursor).
    const newest = !filter.cursor;
    const draw = coalesce(async () => {
      const pageData = await api.get(`/signals${api.qs({ recorder_id: filter.recorder_id, outcome: filter.outcome, cursor: filter.cursor, limit: filter.limit })}`);
      if (ctx.signal.aborted) return;
      const items = filter.problems ? pageData.items.filter(isProblem) : pageData.items;
      const nav = h('nav', { class: 'row', 'aria-label': 'Pages' },
        filter.cursor ? link(`/signals${api.qs(here)}`, '← Newest') : null,
        pageData.next_cursor ? link(`/signals${api.qs({ ...here, cursor: pageData.next_cursor })}`, 'Older →') : null);
      mount(list,
        items.length ? items.map((s) => signalView(s, names))
          : h('p', { class: 'muted' }, emptyText(filter, pageData.items.length)),
        nav);
    });
    try {
      await draw();
    } catch (e) {
      if (e.status === 400) { mount(root, h('h1', {}, 'Signals'), toolbar, alertBox(e.message), link('/signals', 'Show the newest signals')); return; }
      throw e;
    }
    const refresh = () => draw().catch((e) => toast(e.message, 'error'));
    const live = newest ? subscribe(ctx.signal, { signal: refresh, reload: refresh }) : null;
    mount(root,
      h('div', { class: 'heading-row' }, h('h1', {}, 'Signals'), live),
      toolbar,
      list);
  },
});

page({
  path: '/signals/:id',
  title: 'Signal',
  render: async (root, ctx) => {
    let s;
    try {
      s = await api.get(`/signals/${encodeURIComponent(ctx.params.id)}`);
    } catch (e) {
      if (e.status === 404) {
        mount(root, h('h1', {}, 'Signal not found'), alertBox('This signal does not exist, or it belongs to another user.'), h('p', {}, link('/signals', 'Back to the signals')));
        return;
      }
      throw e;
    }
    const names = await lookups();
    mount(root, h('p', {}, link('/signals', '← Signals')), h('h1', {}, `${s.action.toUpperCase()} ${s.ticker || ''}`), signalView(s, names),
      h('details', {}, h('summary', {}, 'The alert as received'), h('pre', { class: 'mono' }, JSON.stringify(s.payload, null, 2))));
  },
});

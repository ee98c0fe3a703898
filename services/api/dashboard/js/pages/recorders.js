// Recorders: the list with today's signals and their outcomes, a new-recorder form, and one
// recorder's page — its webhook URL and ready-to-paste TradingView alert message (copy
// buttons, token rotation), every setting in an editor, and its traders (linked sub-accounts)
// with each setting's effective value, whether it is inherited, and overrides to set or clear.

import * as api from '../api.js';
import { page } from '../router.js';
import { h, mount, link, table, badge, alertBox, field, confirmDialog, copyButton, toast, fmtTime } from '../ui.js';
import { sections, settingField, settingOf, valueText, describe } from '../settings.js';

function startOfToday() {
  const d = new Date();
  d.setHours(0, 0, 0, 0);
  return d.toISOString();
}

/** Every signal since `since` (all pages, at most `max`). */
async function signalsSince(since, max = 500) {
  const out = [];
  let cursor = null;
  do {
    const p = await api.get(`/signals${api.qs({ since, cursor, limit: 100 })}`);
    out.push(...p.items);
    cursor = p.next_cursor;
  } while (cursor && out.length < max);
  return out;
}

/** Counts of today's decisions by kind, as badges. */
function outcomeBadges(signals) {
  const n = { executed: 0, skipped: 0, failed: 0, pending: 0, refused: 0 };
  for (const s of signals) {
    if (s.outcome !== 'accepted') n.refused += 1;
    for (const d of s.decisions) {
      if (d.decision === 'executed') n.executed += 1;
      else if (d.decision === 'skipped') n.skipped += 1;
      else if (['failed', 'rejected', 'unknown'].includes(d.decision)) n.failed += 1;
      else if (d.decision === 'pending') n.pending += 1;
    }
  }
  return h('span', { class: 'row' },
    n.executed ? badge(`${n.executed} executed`, 'ok') : null,
    n.skipped ? badge(`${n.skipped} skipped`, 'warn') : null,
    n.failed ? badge(`${n.failed} failed`, 'bad') : null,
    n.pending ? badge(`${n.pending} pending`, 'warn') : null,
    n.refused ? badge(`${n.refused} not accepted`, 'warn') : null,
    signals.length ? null : h('span', { class: 'muted' }, '—'));
}

page({
  path: '/recorders',
  title: 'Recorders',
  nav: { label: 'Recorders', order: 10 },
  render: async (root, ctx) => {
    const [recorders, traders, today] = await Promise.all([
      api.get('/recorders'), api.get('/traders'), signalsSince(startOfToday()),
    ]);
    const name = field('Name', h('input', { type: 'text', name: 'name', required: true, maxlength: 200 }));
    const symbol = field('Symbol (optional)', h('input', { type: 'text', name: 'symbol', placeholder: 'MNQ1!' }),
      "Only for your reference; the alert's ticker is what is traded.");
    const status = h('div');
    const submit = h('button', { type: 'submit' }, 'Create recorder');
    const form = h('form', { novalidate: true }, h('div', { class: 'grid' }, name, symbol), status, submit);
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      name.setError(null); symbol.setError(null); mount(status);
      if (!name.input.value.trim()) { name.setError('Give the recorder a name.'); name.input.focus(); return; }
      submit.disabled = true;
      try {
        const body = { name: name.input.value.trim() };
        if (symbol.input.value.trim()) body.symbol = symbol.input.value.trim();
        const r = await api.post('/recorders', body);
        toast(`Recorder "${r.name}" created`);
        ctx.navigate(`/recorders/${r.id}`);
      } catch (err) {
        if (err.field === 'name') name.setError(err.message);
        else if (err.field === 'symbol') symbol.setError(err.message);
        else mount(status, alertBox(err.message));
      } finally {
        submit.disabled = false;
      }
    });
    mount(root,
      h('h1', {}, 'Recorders'),
      h('p', { class: 'muted' }, 'A recorder turns one TradingView strategy\'s alerts into orders on every account linked to it.'),
      table([
        { label: 'Recorder', render: (r) => link(`/recorders/${r.id}`, r.name) },
        { label: 'Symbol', render: (r) => r.symbol || '—' },
        { label: 'Traders', num: true, render: (r) => String(traders.filter((t) => t.recorder_id === r.id).length) },
        { label: 'Signals today', num: true, render: (r) => link(`/signals?recorder_id=${r.id}`, String(today.filter((s) => s.recorder_id === r.id).length)) },
        { label: 'Outcomes today', render: (r) => outcomeBadges(today.filter((s) => s.recorder_id === r.id)) },
        { label: 'Last signal', render: (r) => fmtTime((today.find((s) => s.recorder_id === r.id) || {}).received_at) },
      ], recorders, { empty: 'No recorders yet: create one below.' }),
      h('section', { class: 'panel', 'aria-labelledby': 'new-recorder' }, h('h2', { id: 'new-recorder' }, 'New recorder'), form));
  },
});

/** A read-only value with a copy button. */
function copyField(label, value, { multiline = false, testid, button } = {}) {
  const id = `copy-${label.replace(/\W+/g, '-').toLowerCase()}`;
  const el = multiline
    ? h('textarea', { id, readonly: true, rows: 4, 'data-testid': testid }, value)
    : h('input', { id, type: 'text', readonly: true, value, class: 'mono', 'data-testid': testid });
  const wrap = h('div', { class: 'field' }, h('label', { for: id }, label),
    h('div', { class: 'copy-field' }, el, copyButton(() => el.value, button)));
  wrap.set = (v) => { el.value = v; };
  return wrap;
}

/** Shows an API error on the form: on the field it names, else in `status`. */
function showError(err, fields, status) {
  const name = settingOf(err.field) || err.field;
  const f = fields.find((x) => x.settingName === name);
  if (f) { f.setError(err.message); f.focus(); } else mount(status, alertBox(err.message));
}

function notFound(root, what) {
  mount(root, h('h1', {}, `${what} not found`),
    alertBox(`This ${what.toLowerCase()} does not exist, or it belongs to another user.`),
    h('p', {}, link('/recorders', 'Back to your recorders')));
}

page({
  path: '/recorders/:id',
  title: 'Recorder',
  render: async (root, ctx) => {
    const id = ctx.params.id;
    let recorder;
    try {
      recorder = await api.get(`/recorders/${encodeURIComponent(id)}`);
    } catch (e) {
      if (e.status === 404) { notFound(root, 'Recorder'); return; }
      throw e;
    }
    ctx.setTitle(recorder.name);
    const [traders, subs] = await Promise.all([api.get('/traders'), api.get('/sub-accounts')]);
    const mine = traders.filter((t) => t.recorder_id === recorder.id);
    const subName = (sid) => { const s = subs.find((x) => x.id === sid); return s ? s.name : sid; };

    // Webhook
    const url = copyField('Webhook URL', recorder.webhook_url, { testid: 'webhook-url', button: 'Copy the URL' });
    const message = copyField('Alert message', recorder.alert_message, { multiline: true, testid: 'alert-message', button: 'Copy the message' });
    const rotate = h('button', {
      type: 'button', class: 'danger',
      onclick: async () => {
        if (!await confirmDialog('The current webhook URL stops working within seconds: every TradingView alert must be changed to the new URL.',
          { title: 'Rotate the webhook token?', confirm: 'Rotate', danger: true })) return;
        try {
          const w = await api.post(`/recorders/${recorder.id}/rotate-token`);
          url.set(w.webhook_url);
          toast('New webhook URL: update your TradingView alerts');
        } catch (e) { toast(e.message, 'error'); }
      },
    }, 'Rotate token');
    const webhook = h('section', { class: 'panel', 'aria-labelledby': 'wh' },
      h('h2', { id: 'wh' }, 'Webhook'),
      h('p', { class: 'muted' }, 'In TradingView: create an alert on your strategy, paste the URL under Notifications → Webhook URL, and the message as the alert\'s message.'),
      url, message, rotate);

    // Settings editor
    const nameF = field('Name', h('input', { type: 'text', value: recorder.name, required: true }));
    nameF.settingName = 'name';
    nameF.read = () => { const v = nameF.input.value.trim(); if (!v) throw new Error('Give the recorder a name.'); return v; };
    nameF.focus = () => nameF.input.focus();
    const symF = field('Symbol (optional)', h('input', { type: 'text', value: recorder.symbol || '' }));
    symF.settingName = 'symbol';
    symF.read = () => symF.input.value.trim() || null;
    symF.focus = () => symF.input.focus();
    const comF = field('Commission per contract ($)', h('input', { type: 'text', inputmode: 'decimal', value: recorder.commission_per_contract }),
      'Taken off the paper record\'s P&L.');
    comF.settingName = 'commission_per_contract';
    comF.read = () => { const v = comF.input.value.trim(); if (!/^\d+(\.\d+)?$/.test(v)) throw new Error('Enter an amount such as 0 or 1.25.'); return v; };
    comF.focus = () => comF.input.focus();
    const settingFields = [];
    const groups = [];
    for (const [section, names] of sections(recorder.settings)) {
      const fs = names.map((n) => settingField(n, recorder.settings[n], 'rec'));
      settingFields.push(...fs);
      groups.push(h('fieldset', { class: 'panel' }, h('legend', {}, section), h('div', { class: 'grid' }, fs)));
    }
    const saveStatus = h('div', { 'aria-live': 'polite' });
    const save = h('button', { type: 'submit' }, 'Save settings');
    const editor = h('form', { novalidate: true, 'aria-labelledby': 'st' },
      h('div', { class: 'grid' }, nameF, symF, comF), groups, saveStatus, save);
    editor.addEventListener('submit', async (e) => {
      e.preventDefault();
      const all = [nameF, symF, comF, ...settingFields];
      all.forEach((f) => f.setError(null));
      mount(saveStatus);
      const body = { settings: {} };
      let firstBad = null;
      for (const f of all) {
        try {
          const v = f.read();
          if (f === nameF) body.name = v;
          else if (f === symF) body.symbol = v;
          else if (f === comF) body.commission_per_contract = v;
          else if (JSON.stringify(v) !== JSON.stringify(recorder.settings[f.settingName])) body.settings[f.settingName] = v;
        } catch (err) {
          f.setError(err.message);
          firstBad = firstBad || f;
        }
      }
      if (firstBad) { firstBad.focus(); mount(saveStatus, alertBox('Some settings need fixing: see the messages beside them.')); return; }
      save.disabled = true;
      try {
        recorder = await api.patch(`/recorders/${recorder.id}`, body);
        mount(saveStatus, alertBox('Settings saved.', 'ok'));
        ctx.setTitle(recorder.name);
        root.querySelector('h1').textContent = recorder.name;
        await drawTraders();
      } catch (err) {
        // On the field it names, and beside the button (the field may be far up the form).
        showError(err, all, saveStatus);
        if (!saveStatus.childElementCount) mount(saveStatus, alertBox(`Not saved. ${err.message}`));
      } finally {
        save.disabled = false;
      }
    });

    // Traders
    const tradersBox = h('div');
    async function drawTraders() {
      const fresh = (await api.get('/traders')).filter((t) => t.recorder_id === recorder.id);
      mine.splice(0, mine.length, ...fresh);
      const linked = new Set(mine.map((t) => t.sub_account_id));
      const free = subs.filter((s) => s.active && !linked.has(s.id));
      const pick = h('select', { id: 'link-sub' }, free.map((s) => h('option', { value: s.id }, s.name)));
      const linkStatus = h('div');
      const linkBtn = h('button', { type: 'submit', disabled: !free.length }, 'Link trader');
      const linkForm = h('form', { class: 'toolbar' },
        h('div', { class: 'field' }, h('label', { for: 'link-sub' }, 'Account'), free.length ? pick : h('p', { class: 'muted' }, 'Every account is linked.')),
        linkBtn, linkStatus);
      linkForm.addEventListener('submit', async (e) => {
        e.preventDefault();
        linkBtn.disabled = true;
        try {
          await api.post('/traders', { recorder_id: recorder.id, sub_account_id: pick.value, enabled: true });
          toast(`${subName(pick.value)} now trades this recorder`);
          await drawTraders();
        } catch (err) { mount(linkStatus, alertBox(err.message)); linkBtn.disabled = false; }
      });
      mount(tradersBox,
        mine.length ? mine.map((t) => traderPanel(t)) : h('p', { class: 'muted' }, 'No trader yet: link an account to trade this recorder\'s alerts.'),
        h('h3', {}, 'Link an account'), linkForm);
    }

    function traderPanel(t) {
      const overridden = Object.values(t.settings).filter((s) => !s.inherited).length;
      const enabled = h('input', { type: 'checkbox', id: `en-${t.id}`, checked: t.enabled });
      enabled.addEventListener('change', async () => {
        try {
          await api.patch(`/traders/${t.id}`, { enabled: enabled.checked });
          toast(enabled.checked ? 'Trader enabled' : 'Trader disabled: it takes no new signals');
        } catch (e) { enabled.checked = !enabled.checked; toast(e.message, 'error'); }
      });
      // The editor's order (by section), not the API's alphabetical one.
      const values = Object.fromEntries(Object.entries(t.settings).map(([n, v]) => [n, v.value]));
      const ordered = [...sections(values).values()].flat();
      const body = h('div', {},
        h('div', { class: 'row spread' },
          h('label', { class: 'check', for: `en-${t.id}` }, enabled, 'Takes signals'),
          h('button', {
            type: 'button', class: 'danger',
            onclick: async () => {
              if (!await confirmDialog(`Unlink ${subName(t.sub_account_id)}? It stops taking this recorder's signals; open positions stay as they are.`, { confirm: 'Unlink', danger: true })) return;
              try { await api.del(`/traders/${t.id}`); toast('Trader unlinked'); await drawTraders(); } catch (e) { toast(e.message, 'error'); }
            },
          }, 'Unlink')),
        table([
          { label: 'Setting', render: (n) => describe(n, t.settings[n].value).label },
          { label: 'Effective value', render: (n) => valueText(n, t.settings[n].value) },
          { label: 'From', render: (n) => (t.settings[n].inherited ? badge('inherited', 'neutral') : badge('this trader', 'warn')) },
          { label: 'Change', render: (n) => overrideControls(t, n) },
        ], ordered));
      return h('details', { class: 'trader', dataset: { trader: t.id } },
        h('summary', {}, h('strong', {}, subName(t.sub_account_id)),
          t.enabled ? badge('enabled', 'ok') : badge('disabled', 'warn'),
          h('span', { class: 'muted' }, overridden ? `${overridden} setting${overridden === 1 ? '' : 's'} overridden` : 'all settings inherited')),
        body);
    }

    function overrideControls(t, n) {
      const s = t.settings[n];
      const box = h('div', { class: 'row' });
      const edit = h('button', {
        type: 'button', class: 'secondary', 'aria-label': `Override ${describe(n, s.value).label} for ${subName(t.sub_account_id)}`,
        onclick: () => {
          const f = settingField(n, s.value, `tr-${t.id}`);
          const set = h('button', { type: 'button' }, 'Set');
          const cancel = h('button', { type: 'button', class: 'secondary', onclick: () => mount(box, edit, clear) }, 'Cancel');
          set.addEventListener('click', async () => {
            f.setError(null);
            let v;
            try { v = f.read(); } catch (err) { f.setError(err.message); f.focus(); return; }
            try {
              await api.patch(`/traders/${t.id}`, { settings: { [n]: v } });
              toast('Override saved');
              await drawTraders();
              const open = tradersBox.querySelector(`details[data-trader="${t.id}"]`);
              if (open) open.open = true;
            } catch (err) { f.setError(err.message); f.focus(); }
          });
          mount(box, f, set, cancel);
          f.focus();
        },
      }, 'Override');
      const clear = s.inherited ? null : h('button', {
        type: 'button', class: 'secondary', 'aria-label': `Use the recorder's ${describe(n, s.value).label} for ${subName(t.sub_account_id)}`,
        onclick: async () => {
          try {
            await api.patch(`/traders/${t.id}`, { settings: { [n]: null } });
            toast('Back to the recorder\'s value');
            await drawTraders();
            const open = tradersBox.querySelector(`details[data-trader="${t.id}"]`);
            if (open) open.open = true;
          } catch (err) { toast(err.message, 'error'); }
        },
      }, "Use recorder's");
      return mount(box, edit, clear);
    }

    const del = h('button', {
      type: 'button', class: 'danger',
      onclick: async () => {
        if (!await confirmDialog(`Delete "${recorder.name}"? Its webhook stops, its traders are unlinked; its history stays.`, { title: 'Delete this recorder?', confirm: 'Delete', danger: true })) return;
        try { await api.del(`/recorders/${recorder.id}`); toast('Recorder deleted'); ctx.navigate('/recorders'); } catch (e) { toast(e.message, 'error'); }
      },
    }, 'Delete recorder');

    mount(root,
      h('p', {}, link('/recorders', '← Recorders')),
      h('div', { class: 'row spread' }, h('h1', {}, recorder.name), link(`/signals?recorder_id=${recorder.id}`, 'Signals of this recorder')),
      webhook,
      h('section', { 'aria-labelledby': 'tr' }, h('h2', { id: 'tr' }, 'Traders'), tradersBox),
      h('section', { 'aria-labelledby': 'st' }, h('h2', { id: 'st' }, 'Settings'), editor),
      h('section', { class: 'panel', 'aria-labelledby': 'dz' }, h('h2', { id: 'dz' }, 'Delete'), del));
    await drawTraders();
  },
});

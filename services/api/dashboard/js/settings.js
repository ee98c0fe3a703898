// The recorder and trader settings (DOMAIN §4) as form inputs: a label and a hint for each
// setting the platform knows, and an input that reads back the setting's JSON form (decimals
// stay strings, never floats). A setting the API answers but this list does not know yet is
// still editable, by the type of its value, so the editor always covers every setting.

import { h } from './ui.js';

const PRICE_UNITS = [['Ticks', 'ticks'], ['Points', 'points'], ['Percent', 'percent of price']];

/** What the dashboard knows of each setting: label, hint, kind, section. */
export const CATALOGUE = {
  initial_position_size: { label: 'Entry size (contracts)', kind: 'int', section: 'Size', hint: 'Contracts for an entry from flat, before the multiplier.' },
  add_position_size: { label: 'Add size (contracts)', kind: 'int', section: 'Size', hint: 'Contracts for each averaging-in add, before the multiplier.' },
  multiplier: { label: 'Quantity multiplier', kind: 'decimal', section: 'Size', hint: 'Scales every quantity of a trader (greater than 0, e.g. 0.5 or 2).' },
  max_contracts: { label: 'Max position (contracts)', kind: 'int', section: 'Size', hint: '0 = no cap.' },
  max_contracts_per_trade: { label: 'Max contracts per entry', kind: 'int', section: 'Size', hint: '0 = no cap.' },
  tp_targets: { label: 'Take-profit legs', kind: 'legs', section: 'Take profit', hint: 'Each leg: distance from the entry and how much it closes. None = no take-profit.' },
  tp_units: { label: 'Take-profit distance in', kind: 'enum', section: 'Take profit', choices: PRICE_UNITS },
  trim_units: { label: 'Leg size in', kind: 'enum', section: 'Take profit', choices: [['Contracts', 'contracts'], ['Percent', 'percent of the entry']] },
  sl_enabled: { label: 'Place a protective stop', kind: 'bool', section: 'Stop loss' },
  sl_amount: { label: 'Stop distance', kind: 'decimal', section: 'Stop loss', hint: 'In the unit below; must be above 0 when the stop is on.' },
  sl_units: { label: 'Stop distance in', kind: 'enum', section: 'Stop loss', choices: PRICE_UNITS },
  sl_type: { label: 'Stop type', kind: 'enum', section: 'Stop loss', choices: [['Fixed', 'fixed'], ['Trailing', 'trailing']] },
  trail_trigger: { label: 'Start trailing after (ticks of profit)', kind: 'decimal', section: 'Stop loss', hint: '0 = trail at once.' },
  trail_freq: { label: 'Trailing step (ticks)', kind: 'decimal', section: 'Stop loss', hint: "0 = the broker's finest step." },
  break_even_enabled: { label: 'Move the stop to break-even', kind: 'bool', section: 'Stop loss' },
  break_even_ticks: { label: 'Break-even after (ticks of profit)', kind: 'decimal', section: 'Stop loss' },
  break_even_offset: { label: 'Break-even offset (ticks)', kind: 'decimal', section: 'Stop loss', hint: 'Beyond the entry, in the profit direction.' },
  dca_enabled: { label: 'Average in on same-direction signals', kind: 'bool', section: 'Entries' },
  add_delay: { label: 'Seconds between adds', kind: 'int', section: 'Entries' },
  same_direction_ignore: { label: 'Ignore same-direction signals while in a position', kind: 'bool', section: 'Entries' },
  direction_filter: { label: 'Directions traded', kind: 'enum', section: 'Entries', choices: [['both', 'long and short'], ['long_only', 'long only'], ['short_only', 'short only']] },
  inverse_strategy: { label: 'Inverse (swap buy and sell)', kind: 'bool', section: 'Entries' },
  custom_ticker: { label: 'Trade this symbol instead', kind: 'optional', section: 'Entries', hint: "Empty = the alert's symbol." },
  signal_cooldown: { label: 'Seconds between executed signals', kind: 'int', section: 'Limits', hint: '0 = no cooldown.' },
  max_signals_per_session: { label: 'Max signals per trading day', kind: 'int', section: 'Limits', hint: '0 = unlimited.' },
  max_daily_loss: { label: 'Max daily loss ($)', kind: 'decimal', section: 'Limits', hint: '0 = off. A breach flattens the account for the day.' },
  stale_after_secs: { label: 'Skip signals older than (seconds)', kind: 'int', section: 'Limits' },
  time_filter_1: { label: 'Trading window 1', kind: 'window', section: 'Trading hours' },
  time_filter_2: { label: 'Trading window 2', kind: 'window', section: 'Trading hours' },
  time_zone: { label: 'Time zone of the windows', kind: 'text', section: 'Trading hours', hint: 'An IANA name, e.g. America/Chicago.' },
  auto_flat_after_cutoff: { label: 'Flatten when a window closes', kind: 'bool', section: 'Trading hours' },
  recording_enabled: { label: 'Keep the paper record', kind: 'bool', section: 'Mode' },
  simulation_mode: { label: 'Paper only (never send orders)', kind: 'bool', section: 'Mode' },
};

/** The setting's catalogue entry, or one guessed from its value. */
export function describe(name, value) {
  if (CATALOGUE[name]) return CATALOGUE[name];
  let kind = 'json';
  if (typeof value === 'boolean') kind = 'bool';
  else if (typeof value === 'number') kind = 'int';
  else if (typeof value === 'string') kind = 'text';
  return { label: name.replace(/_/g, ' '), kind, section: 'Other' };
}

/** The settings' names grouped by section, in the catalogue's order, then any unknown ones. */
export function sections(settings) {
  const names = [...Object.keys(CATALOGUE).filter((n) => n in settings),
    ...Object.keys(settings).filter((n) => !(n in CATALOGUE)).sort()];
  const out = new Map();
  for (const n of names) {
    const s = describe(n, settings[n]).section;
    if (!out.has(s)) out.set(s, []);
    out.get(s).push(n);
  }
  return out;
}

const DECIMAL = /^-?\d+(\.\d+)?$/;

/** A value in words (for tables): legs and windows read as a trader would say them. */
export function valueText(name, value) {
  const d = describe(name, value);
  if (value === null || value === undefined) return '—';
  if (d.kind === 'bool') return value ? 'on' : 'off';
  if (d.kind === 'legs') return value.length ? value.map((l) => `${l.value} → ${l.trim}`).join(', ') : 'none';
  if (d.kind === 'window') return value.enabled ? `${value.start}–${value.stop}` : 'off';
  if (d.kind === 'enum') { const c = d.choices.find(([v]) => v === value); return c ? c[1] : String(value); }
  if (typeof value === 'object') return JSON.stringify(value);
  return String(value);
}

/**
 * An input for setting `name` holding `value`: `{ el, focus, read }`, where `read()` answers
 * the setting's JSON value or throws an Error whose message says what to fix. `id` labels it.
 */
export function input(name, value, id) {
  const d = describe(name, value);
  switch (d.kind) {
    case 'bool': {
      const el = h('input', { type: 'checkbox', id, checked: Boolean(value) });
      return { el, focus: () => el.focus(), read: () => el.checked };
    }
    case 'int': {
      const el = h('input', { type: 'number', id, min: 0, step: 1, inputmode: 'numeric', value: String(value ?? 0) });
      return {
        el, focus: () => el.focus(),
        read: () => {
          const v = el.value.trim();
          if (!/^\d+$/.test(v)) throw new Error('Enter a whole number, 0 or more.');
          return Number(v);
        },
      };
    }
    case 'decimal': {
      const el = h('input', { type: 'text', id, inputmode: 'decimal', value: String(value ?? '0'), autocomplete: 'off' });
      return {
        el, focus: () => el.focus(),
        read: () => {
          const v = el.value.trim();
          if (!DECIMAL.test(v)) throw new Error('Enter a number such as 2 or 0.25.');
          return v;
        },
      };
    }
    case 'enum': {
      const choices = d.choices.some(([v]) => v === value) ? d.choices : [...d.choices, [value, String(value)]];
      const el = h('select', { id }, choices.map(([v, label]) => h('option', { value: v, selected: v === value }, label)));
      return { el, focus: () => el.focus(), read: () => el.value };
    }
    case 'text': {
      const el = h('input', { type: 'text', id, value: value ?? '', autocomplete: 'off' });
      return {
        el, focus: () => el.focus(),
        read: () => { if (!el.value.trim()) throw new Error('This cannot be empty.'); return el.value.trim(); },
      };
    }
    case 'optional': {
      const el = h('input', { type: 'text', id, value: value ?? '', autocomplete: 'off' });
      return { el, focus: () => el.focus(), read: () => (el.value.trim() ? el.value.trim() : null) };
    }
    case 'window': return windowInput(value || { enabled: false, start: '00:00', stop: '00:00' }, id, d.label);
    case 'legs': return legsInput(value || [], id, d.label);
    default: {
      const el = h('textarea', { id, rows: 3 }, JSON.stringify(value, null, 1));
      return {
        el, focus: () => el.focus(),
        read: () => { try { return JSON.parse(el.value); } catch { throw new Error('This must be JSON.'); } },
      };
    }
  }
}

function windowInput(value, id, label) {
  const on = h('input', { type: 'checkbox', id, checked: Boolean(value.enabled) });
  const start = h('input', { type: 'time', value: value.start.slice(0, 5), 'aria-label': `${label} start` });
  const stop = h('input', { type: 'time', value: value.stop.slice(0, 5), 'aria-label': `${label} end` });
  const el = h('div', { class: 'row' }, h('label', { class: 'check' }, on, 'on'), h('span', {}, 'from'), start, h('span', {}, 'to'), stop);
  return {
    el, focus: () => on.focus(),
    read: () => {
      if (!start.value || !stop.value) throw new Error('Enter both times (HH:MM).');
      return { enabled: on.checked, start: start.value, stop: stop.value };
    },
  };
}

function legsInput(value, id, label) {
  const rows = h('div', {});
  const addLeg = (leg) => {
    const n = rows.children.length + 1;
    const dist = h('input', { type: 'text', inputmode: 'decimal', value: leg.value ?? '', 'aria-label': `${label}: leg ${n} distance` });
    const trim = h('input', { type: 'text', inputmode: 'decimal', value: leg.trim ?? '', 'aria-label': `${label}: leg ${n} size` });
    const row = h('div', { class: 'row leg' }, h('span', {}, `Leg ${n}`), dist, trim,
      h('button', { type: 'button', class: 'secondary', 'aria-label': `Remove leg ${n}`, onclick: () => row.remove() }, 'Remove'));
    row.read = () => {
      if (!DECIMAL.test(dist.value.trim()) || !DECIMAL.test(trim.value.trim())) throw new Error(`Leg ${n}: enter a distance and a size, such as 20 and 1.`);
      return { value: dist.value.trim(), trim: trim.value.trim() };
    };
    rows.appendChild(row);
  };
  value.forEach(addLeg);
  const add = h('button', { type: 'button', class: 'secondary', id, onclick: () => addLeg({}) }, 'Add a leg');
  const el = h('div', {}, rows, add);
  return { el, focus: () => add.focus(), read: () => [...rows.children].map((r) => r.read()) };
}

/**
 * A labelled form field for setting `name`: the wrapper element with `name`, `read()`,
 * `focus()` and `setError(message|null)`. Composite settings (windows, legs) are fieldsets.
 */
export function settingField(name, value, idPrefix) {
  const d = describe(name, value);
  const id = `${idPrefix}-${name}`;
  const inp = input(name, value, id);
  const hint = d.hint ? h('div', { class: 'hint', id: `${id}-hint` }, d.hint) : null;
  const err = h('div', { class: 'error', id: `${id}-error`, hidden: true });
  const described = [hint && hint.id, err.id].filter(Boolean).join(' ');
  let wrap;
  if (d.kind === 'window' || d.kind === 'legs') {
    wrap = h('fieldset', { class: 'field', 'aria-describedby': described }, h('legend', {}, d.label), inp.el, hint, err);
  } else {
    inp.el.setAttribute('aria-describedby', described);
    wrap = d.kind === 'bool'
      ? h('div', { class: 'field' }, h('label', { class: 'check', for: id }, inp.el, d.label), hint, err)
      : h('div', { class: 'field' }, h('label', { for: id }, d.label), inp.el, hint, err);
  }
  wrap.dataset.setting = name;
  wrap.settingName = name;
  wrap.read = inp.read;
  wrap.focus = inp.focus;
  wrap.setError = (msg) => {
    err.textContent = msg || '';
    err.hidden = !msg;
    wrap.classList.toggle('invalid', Boolean(msg));
  };
  return wrap;
}

/** The setting a field path of an API error names (`settings.tp_targets[0].value` → `tp_targets`). */
export function settingOf(field) {
  if (!field) return null;
  const m = /^settings\.([a-z0-9_]+)/.exec(field);
  return m ? m[1] : null;
}

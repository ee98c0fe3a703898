// Small helpers every page uses. Text is always inserted as text: `h` turns strings into text
// nodes and never sets innerHTML, so a recorder named `<img onerror=…>` shows as those
// characters. Nothing in the dashboard writes HTML from a string.

/**
 * Builds an element. `attrs`: `class`, `text`, `on<event>` (a function), `dataset` (an
 * object), booleans (set when true), anything else as an attribute. Children: nodes, strings
 * (text), numbers, arrays (flattened), null/undefined/false (skipped).
 */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = v;
    else if (k === 'text') el.textContent = String(v);
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else if (k === 'value' && 'value' in el) el.value = v;
    else if (k === 'checked' || k === 'disabled' || k === 'selected') el[k] = Boolean(v);
    else if (v === true) el.setAttribute(k, '');
    else el.setAttribute(k, String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === undefined || c === null || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else if (c instanceof Node) el.appendChild(c);
    else el.appendChild(document.createTextNode(String(c)));
  }
}

/** Replaces an element's children. */
export function mount(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

/** A link handled by the router (no reload). */
export function link(href, ...children) {
  return h('a', { href, dataset: { link: '' } }, ...children);
}

/**
 * A table. `columns`: `[{label, render(row) → node|string, num?}]`; `empty`: what to say when
 * there are no rows.
 */
export function table(columns, rows, { empty = 'Nothing yet.', caption } = {}) {
  if (!rows.length) return h('p', { class: 'muted' }, empty);
  return h('div', { class: 'table-wrap' },
    h('table', {},
      caption ? h('caption', { class: 'muted' }, caption) : null,
      h('thead', {}, h('tr', {}, columns.map((c) => h('th', { scope: 'col', class: c.num ? 'num' : null }, c.label)))),
      h('tbody', {}, rows.map((r) => h('tr', {}, columns.map((c) => h('td', { class: c.num ? 'num' : null }, c.render(r))))))));
}

/** A badge: `kind` is ok, bad, warn or neutral. */
export function badge(text, kind = 'neutral') {
  return h('span', { class: `badge ${kind}` }, text);
}

/** A message box: `kind` is error, ok or warn. Errors are announced to screen readers. */
export function alertBox(text, kind = 'error') {
  return h('div', { class: `alert ${kind}`, role: kind === 'error' ? 'alert' : 'status' }, text);
}

let fieldSeq = 0;

/**
 * A labelled form field around `input` (which gets an id and `aria-describedby`). Returns the
 * wrapper with `setError(message|null)`.
 */
export function field(label, input, hint) {
  const id = input.id || `f${++fieldSeq}`;
  input.id = id;
  const hintEl = hint ? h('div', { class: 'hint', id: `${id}-hint` }, hint) : null;
  const errEl = h('div', { class: 'error', id: `${id}-error`, hidden: true });
  input.setAttribute('aria-describedby', [hintEl && hintEl.id, errEl.id].filter(Boolean).join(' '));
  const isCheck = input.type === 'checkbox';
  const wrap = isCheck
    ? h('div', { class: 'field' }, h('label', { class: 'check', for: id }, input, label), hintEl, errEl)
    : h('div', { class: 'field' }, h('label', { for: id }, label), input, hintEl, errEl);
  wrap.setError = (msg) => {
    errEl.textContent = msg || '';
    errEl.hidden = !msg;
    wrap.classList.toggle('invalid', Boolean(msg));
    if (msg) input.setAttribute('aria-invalid', 'true');
    else input.removeAttribute('aria-invalid');
  };
  wrap.input = input;
  return wrap;
}

/** A modal confirmation; resolves true when confirmed. Escape and Cancel resolve false. */
export function confirmDialog(message, { title = 'Are you sure?', confirm = 'Confirm', danger = false } = {}) {
  return new Promise((resolve) => {
    const ok = h('button', { type: 'button', class: danger ? 'danger' : null }, confirm);
    const cancel = h('button', { type: 'button', class: 'secondary' }, 'Cancel');
    const dlg = h('dialog', { 'aria-labelledby': 'dlg-title' },
      h('h2', { id: 'dlg-title' }, title), h('p', {}, message), h('div', { class: 'row' }, ok, cancel));
    const done = (v) => { dlg.close(); dlg.remove(); resolve(v); };
    ok.addEventListener('click', () => done(true));
    cancel.addEventListener('click', () => done(false));
    dlg.addEventListener('cancel', (e) => { e.preventDefault(); done(false); });
    document.body.appendChild(dlg);
    dlg.showModal();
    cancel.focus();
  });
}

/** A short message in the corner; errors stay longer. */
export function toast(text, kind = 'info') {
  const box = document.getElementById('toasts');
  if (!box) return;
  const t = h('div', { class: `toast ${kind}` }, text);
  box.appendChild(t);
  // A few at a time: older ones make way rather than covering the page.
  while (box.children.length > 3) box.firstChild.remove();
  setTimeout(() => t.remove(), kind === 'error' ? 8000 : 3500);
}

/** A button that copies `value()` to the clipboard and says so. */
export function copyButton(value, label = 'Copy') {
  return h('button', {
    type: 'button', class: 'secondary',
    onclick: async () => {
      try {
        await navigator.clipboard.writeText(value());
        toast('Copied to the clipboard');
      } catch {
        toast('Copying is not allowed here: select the text and copy it by hand', 'error');
      }
    },
  }, label);
}

/** A time as the user's locale shows it (with seconds), or an em dash. */
export function fmtTime(iso) {
  if (!iso) return '—';
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? String(iso) : d.toLocaleString(undefined, {
    year: 'numeric', month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit', second: '2-digit',
  });
}

/** A value as text: exact decimals arrive as strings and are shown as they are (never parsed to floats). */
export function fmtValue(v) {
  if (v === null || v === undefined) return '—';
  if (typeof v === 'boolean') return v ? 'on' : 'off';
  if (typeof v === 'object') return JSON.stringify(v);
  return String(v);
}

// Live updates for the pages: one EventSource on `/api/v1/events` per page (the API shares
// one store poll between a user's streams), reconnected with back-off when it drops. Events:
// `ready` (first, and again after every reconnect: reload what the page shows, since nothing
// missed while disconnected is replayed), `signal`, `positions`, `pnl`, `lagged` (reload).
//
// An admin viewing as another user gets no live stream: EventSource cannot send the
// `X-View-As` header, so the stream would carry the admin's own changes. The page says so.

import { viewingAs } from './api.js';
import { h } from './ui.js';

/**
 * Subscribes for the life of a page (`signal` aborts it). `on`: handlers by event name; a
 * `reload` handler is called on `ready` and `lagged`. Returns a badge element that shows the
 * stream's state (`Live`, `Reconnecting…`, `Live updates off`).
 */
export function subscribe(signal, on) {
  const badge = h('span', { class: 'badge neutral', role: 'status', 'data-testid': 'live' }, 'Connecting…');
  const show = (text, kind) => { badge.textContent = text; badge.className = `badge ${kind}`; };
  if (viewingAs()) {
    show('Live updates off while viewing as another user', 'warn');
    return badge;
  }
  if (typeof EventSource === 'undefined') {
    show('Live updates unavailable in this browser', 'warn');
    return badge;
  }
  let es = null;
  let timer = null;
  let delay = 1000;
  let opened = false;
  const open = () => {
    if (signal.aborted) return;
    es = new EventSource('/api/v1/events');
    es.addEventListener('ready', () => {
      delay = 1000;
      show('Live', 'ok');
      // The first `ready` follows the page's own first load: only a reconnect reloads.
      if (opened && on.reload) on.reload();
      opened = true;
    });
    for (const kind of ['signal', 'positions', 'pnl', 'lagged']) {
      es.addEventListener(kind, (e) => {
        let data = {};
        try { data = JSON.parse(e.data); } catch { /* an empty event still means "changed" */ }
        if (kind === 'lagged') { if (on.reload) on.reload(); } else if (on[kind]) on[kind](data);
      });
    }
    es.onerror = () => {
      show('Reconnecting…', 'warn');
      // The browser retries a dropped connection by itself; an answer that is not a stream
      // (a 429, 503, or the API restarting) closes it for good, so retry here with back-off.
      if (es.readyState === EventSource.CLOSED) {
        es.close();
        clearTimeout(timer);
        timer = setTimeout(open, delay);
        delay = Math.min(delay * 2, 30000);
      }
    };
  };
  open();
  signal.addEventListener('abort', () => { clearTimeout(timer); if (es) es.close(); });
  return badge;
}

/**
 * `fn` made safe to call often: at most one run at a time, and a call during a run makes one
 * more run after it (bursts of events collapse into one reload).
 */
export function coalesce(fn) {
  let running = false;
  let again = false;
  const run = async () => {
    if (running) { again = true; return; }
    running = true;
    try {
      do {
        again = false;
        await fn();
      } while (again);
    } finally {
      running = false;
    }
  };
  return run;
}

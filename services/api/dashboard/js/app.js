// The dashboard's entry point: the layout (top bar, nav, sign-out), the client-side router
// (links with `data-link` and same-origin links move without a reload; back/forward work),
// sign-in gating, and the error shown when a page fails to draw. Each page is its own module
// under pages/ and registers itself with router.js.

import * as api from './api.js';
import { match, navItems } from './router.js';
import { h, mount, alertBox, link } from './ui.js';

import './pages/signin.js';
import './pages/tokens.js';
import './pages/recorders.js';
import './pages/signals.js';
import './pages/accounts.js';
import './pages/copy.js';
import './pages/charts.js';
import './pages/admin.js';

const state = { me: undefined, controller: null };
const HOME = '/recorders';

function here() {
  return window.location.pathname + window.location.search;
}

/** Moves to `href` (pushState) and draws it. */
export function navigate(href, { replace = false } = {}) {
  if (replace) window.history.replaceState(null, '', href);
  else window.history.pushState(null, '', href);
  draw();
}

function signInFirst() {
  const next = here();
  navigate(next.startsWith('/signin') ? '/signin' : `/signin?next=${encodeURIComponent(next)}`, { replace: true });
}

api.onUnauthenticated(() => {
  if (state.me) state.me = null;
  if (!window.location.pathname.startsWith('/signin')) signInFirst();
});

function drawTop() {
  const top = document.getElementById('top');
  const me = state.me;
  const path = window.location.pathname;
  const nav = me ? navItems(me).map((item) => {
    const a = link(item.href, item.label);
    if (path === item.href || path.startsWith(`${item.href}/`)) a.setAttribute('aria-current', 'page');
    return a;
  }) : [];
  const who = me ? h('div', { class: 'whoami' },
    link('/tokens', 'API tokens'),
    h('span', { 'data-testid': 'whoami' }, me.user.email),
    h('button', { type: 'button', class: 'secondary', onclick: signOut }, 'Sign out')) : null;
  mount(top,
    me && me.viewing_as ? h('div', { class: 'banner', role: 'status' },
      'Read-only: you are viewing the platform as another user. ',
      h('button', { type: 'button', class: 'link', onclick: () => { api.setViewAs(null); refreshMe().then(draw); } }, 'Stop viewing')) : null,
    h('div', { class: 'top-inner' },
      h('a', { href: me ? HOME : '/signin', class: 'brand', 'data-link': '', 'aria-label': 'jt: start page' }, 'jt'),
      h('nav', { class: 'nav', 'aria-label': 'Main' }, nav),
      who));
}

async function signOut() {
  await api.logout().catch(() => {});
  state.me = null;
  navigate('/signin', { replace: true });
}

async function refreshMe() {
  state.me = await api.me();
  return state.me;
}

/** Draws the page of the current URL. */
export async function draw() {
  if (state.controller) state.controller.abort();
  const controller = new AbortController();
  state.controller = controller;
  const main = document.getElementById('main');
  if (state.me === undefined) {
    try {
      await refreshMe();
    } catch (e) {
      state.me = null;
      mount(main, alertBox(e.message));
      return;
    }
  }
  if (controller.signal.aborted) return;
  const path = window.location.pathname;
  if (path === '/' || path === '') {
    navigate(state.me ? HOME : '/signin', { replace: true });
    return;
  }
  const found = match(path);
  // Each page draws into its own element: a draw still awaiting the API after the user moved
  // on writes into a detached element, never over the next page.
  const root = h('div', { class: 'page' });
  mount(main, root);
  drawTop();
  if (!found) {
    document.title = 'Page not found · jt';
    mount(root, h('h1', {}, 'Page not found'),
      h('p', {}, 'There is no page at this address. '), link(state.me ? HOME : '/signin', 'Go to the start page'));
    return;
  }
  const { route, params } = found;
  if (!route.public && !state.me) {
    signInFirst();
    return;
  }
  document.title = `${route.title} · jt`;
  const ctx = {
    params,
    query: new URLSearchParams(window.location.search),
    me: state.me,
    signal: controller.signal,
    navigate,
    setTitle: (t) => { document.title = `${t} · jt`; },
    signedIn: async () => { await refreshMe(); drawTop(); },
  };
  try {
    await route.render(root, ctx);
  } catch (e) {
    if (controller.signal.aborted) return;
    if (e instanceof api.ApiError && e.status === 401) return;
    mount(root, h('h1', {}, route.title), alertBox(e instanceof api.ApiError ? e.message : `This page failed to draw: ${e.message}`));
  }
  if (!controller.signal.aborted) {
    const heading = root.querySelector('h1');
    if (heading) { heading.tabIndex = -1; heading.focus({ preventScroll: true }); }
  }
}

document.addEventListener('click', (e) => {
  if (e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
  const a = e.target.closest('a[href]');
  if (!a || a.target || a.hasAttribute('download')) return;
  const url = new URL(a.href, window.location.href);
  if (url.origin !== window.location.origin || url.pathname.startsWith('/api/')) return;
  e.preventDefault();
  navigate(url.pathname + url.search + url.hash);
});
window.addEventListener('popstate', () => draw());

draw();

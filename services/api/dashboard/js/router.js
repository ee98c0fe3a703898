// The page registry. Each page module calls `page({...})` once when imported (app.js imports
// them all); the app draws the matching page for the URL. A page is
//
//   page({
//     path: '/recorders/:id',         // `:name` segments become ctx.params.name
//     title: 'Recorder',              // the document title
//     nav: { label: 'Recorders', order: 10, admin: false },  // optional: a nav link
//     public: false,                  // true: shown without signing in (sign-in, reset)
//     render: async (root, ctx) => {  // draw into `root` (an empty element)
//       // ctx.params, ctx.query (URLSearchParams), ctx.me (GET /me answer or null),
//       // ctx.signal (AbortSignal: aborted when the user leaves the page — close
//       //   EventSources and clear timers on it), ctx.navigate(href), ctx.setTitle(text)
//     },
//   });
//
// Pages use the REST API only (js/api.js).

const routes = [];

/** Registers a page. */
export function page(def) {
  const keys = [];
  const pattern = def.path.replace(/\/+$/, '') || '/';
  const re = new RegExp(`^${pattern.split('/').map((seg) => {
    if (seg.startsWith(':')) { keys.push(seg.slice(1)); return '([^/]+)'; }
    return seg.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  }).join('/')}/?$`);
  routes.push({ ...def, re, keys });
}

/** The page for a path and its parameters, or null. */
export function match(pathname) {
  for (const r of routes) {
    const m = r.re.exec(pathname);
    if (m) {
      const params = {};
      r.keys.forEach((k, i) => { params[k] = decodeURIComponent(m[i + 1]); });
      return { route: r, params };
    }
  }
  return null;
}

/** The nav links for this user, in order. */
export function navItems(me) {
  const admin = me && me.user && me.user.role === 'admin';
  return routes.filter((r) => r.nav && (!r.nav.admin || admin))
    .sort((a, b) => (a.nav.order || 0) - (b.nav.order || 0))
    .map((r) => ({ href: r.path, label: r.nav.label }));
}

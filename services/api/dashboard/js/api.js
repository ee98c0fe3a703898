// The REST API client of every page: same-origin fetch with the session cookie, the CSRF token
// on writes, and the API's error body (`{"error": {code, message, field}}`) turned into an
// `ApiError` whose `message` is written for a trader, with `field` kept so a form can mark the
// input it is about.

const BASE = '/api/v1';
let csrf = null;
let unauthenticated = () => {};

/** An error answer (or no answer) from the API. */
export class ApiError extends Error {
  constructor(status, code, message, field, detail) {
    super(message);
    this.status = status;
    this.code = code;
    this.field = field || null;
    this.detail = detail || '';
  }
}

/** What to do on a 401 (the app shows the sign-in page). */
export function onUnauthenticated(fn) { unauthenticated = fn; }

const VIEW_AS_KEY = 'jt.viewAs';

/**
 * An admin's read-only view as another user (`X-View-As` on every read; the API refuses
 * writes with it). Kept for the browser tab's session; null stops it.
 */
export function setViewAs(userId) {
  if (userId) sessionStorage.setItem(VIEW_AS_KEY, userId);
  else sessionStorage.removeItem(VIEW_AS_KEY);
}

/** The user an admin is viewing as, or null. */
export function viewingAs() { return sessionStorage.getItem(VIEW_AS_KEY); }

/** Remembers the CSRF token from a login or `/me` answer. */
export function setCsrf(token) { csrf = token || null; }

function cookie(name) {
  const hit = document.cookie.split(';').map((c) => c.trim()).find((c) => c.startsWith(`${name}=`));
  return hit ? decodeURIComponent(hit.slice(name.length + 1)) : null;
}

/** A field path (`settings.tp_targets[0].value`) as words (`tp targets 1 value`). */
export function fieldWords(field) {
  if (!field) return '';
  return field.replace(/^settings\./, '')
    .replace(/\[(\d+)\]/g, (_, i) => ` ${Number(i) + 1}`)
    .replace(/[._-]+/g, ' ').trim();
}

// The API's message often starts with the field path ("settings.sl_amount: must be > 0"):
// the words after it are what the trader needs, the field is shown by the form.
function bare(message, field) {
  if (field && message.startsWith(`${field}:`)) return message.slice(field.length + 1).trim();
  return message;
}

/** The API's error as a sentence for a trader. */
export function explain(status, code, message, field) {
  const msg = message || '';
  switch (code) {
    case 'invalid':
    case 'malformed':
      return field ? `Please check ${fieldWords(field)}: ${bare(msg, field)}` : `Please check the input: ${msg}`;
    case 'unauthenticated':
      return 'Your session has ended. Please sign in again.';
    case 'csrf':
      return 'The page is out of date with your session. Reload the page and try again.';
    case 'forbidden':
      return msg ? `Not allowed: ${msg}` : 'You are not allowed to do that.';
    case 'plan_limit':
      return `Your plan does not allow more: ${msg}`;
    case 'not_found':
      return 'Not found. It may have been deleted, or it belongs to another user.';
    case 'conflict':
      return `That clashes with what is already there: ${msg}`;
    case 'rate_limited':
      return 'Too many attempts in a short time. Wait a minute, then try again.';
    case 'broker':
      return `The broker refused: ${msg}`;
    case 'unavailable':
      return 'The platform is briefly unavailable (its database or message bus). Try again in a moment.';
    case 'payload_too_large':
      return 'That is too large to send.';
    case 'internal':
      return 'Something went wrong on our side. It has been logged; please try again.';
    case 'network':
      return 'The platform cannot be reached. Check your connection and try again.';
    default:
      return msg || `The request failed (HTTP ${status}).`;
  }
}

/**
 * Calls `path` under `/api/v1`. Resolves the JSON answer (null when empty); rejects with an
 * `ApiError`. A 401 also calls the unauthenticated hook unless `quiet401` is set (the sign-in
 * form handles its own).
 */
export async function call(method, path, body, { headers = {}, quiet401 = false } = {}) {
  const opts = { method, credentials: 'same-origin', headers: { Accept: 'application/json', ...headers } };
  if (body !== undefined) {
    opts.headers['Content-Type'] = 'application/json';
    opts.body = JSON.stringify(body);
  }
  const viewAs = viewingAs();
  if (viewAs && (method === 'GET' || method === 'HEAD')) opts.headers['X-View-As'] = viewAs;
  if (method !== 'GET' && method !== 'HEAD') {
    const token = csrf || cookie('jt_csrf');
    if (token) opts.headers['X-CSRF-Token'] = token;
  }
  let r;
  try {
    r = await fetch(BASE + path, opts);
  } catch {
    throw new ApiError(0, 'network', explain(0, 'network'));
  }
  const text = await r.text();
  let data = null;
  if (text) {
    try { data = JSON.parse(text); } catch { data = null; }
  }
  if (!r.ok) {
    const e = (data && data.error) || {};
    const err = new ApiError(r.status, e.code || `http_${r.status}`, explain(r.status, e.code, e.message, e.field), e.field, e.message);
    if (r.status === 401 && !quiet401) unauthenticated();
    throw err;
  }
  return data;
}

export const get = (path, opts) => call('GET', path, undefined, opts);
export const post = (path, body, opts) => call('POST', path, body === undefined ? {} : body, opts);
export const patch = (path, body, opts) => call('PATCH', path, body, opts);
export const put = (path, body, opts) => call('PUT', path, body, opts);
export const del = (path, opts) => call('DELETE', path, undefined, opts);

/** The signed-in user (`GET /me`), or null when nobody is signed in. */
export async function me() {
  try {
    const m = await get('/me', { quiet401: true });
    setCsrf(m.csrf_token);
    return m;
  } catch (e) {
    if (e.status === 401) return null;
    throw e;
  }
}

/** Signs in; resolves the login answer. */
export async function login(email, password) {
  const a = await post('/auth/login', { email, password }, { quiet401: true });
  setCsrf(a.csrf_token);
  return a;
}

/** Signs out (the server drops the session and its cookies). */
export async function logout() {
  try { await post('/auth/logout', {}, { quiet401: true }); } finally { setCsrf(null); }
}

/** Query string from an object, skipping empty values. */
export function qs(params) {
  const u = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== '') u.set(k, v);
  const s = u.toString();
  return s ? `?${s}` : '';
}

// Sign-in, and the password reset: the request form (`/reset-password`) and the form the
// mailed link opens (`/reset-password?token=…`).

import * as api from '../api.js';
import { page } from '../router.js';
import { h, mount, field, alertBox, link } from '../ui.js';

// Only paths of this dashboard are followed after signing in (never another site).
function safeNext(next) {
  return next && next.startsWith('/') && !next.startsWith('//') && !next.startsWith('/signin') ? next : '/recorders';
}

page({
  path: '/signin',
  title: 'Sign in',
  public: true,
  render: async (root, ctx) => {
    if (ctx.me) { ctx.navigate(safeNext(ctx.query.get('next')), { replace: true }); return; }
    const email = field('E-mail', h('input', { type: 'email', name: 'email', autocomplete: 'username', required: true }));
    const password = field('Password', h('input', { type: 'password', name: 'password', autocomplete: 'current-password', required: true }));
    const status = h('div', { 'aria-live': 'assertive' });
    const submit = h('button', { type: 'submit' }, 'Sign in');
    const form = h('form', { novalidate: true }, email, password, status, submit);
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      email.setError(null); password.setError(null); mount(status);
      if (!email.input.value.trim()) { email.setError('Enter your e-mail address.'); email.input.focus(); return; }
      if (!password.input.value) { password.setError('Enter your password.'); password.input.focus(); return; }
      submit.disabled = true;
      try {
        await api.login(email.input.value.trim(), password.input.value);
        await ctx.signedIn();
        ctx.navigate(safeNext(ctx.query.get('next')), { replace: true });
      } catch (err) {
        let msg = err.message;
        if (err.status === 401) msg = 'Wrong e-mail or password. Check both and try again.';
        else if (err.status === 403) msg = `You cannot sign in yet: ${err.detail || 'your account waits for an administrator\'s approval.'}`;
        mount(status, alertBox(msg));
        password.input.select();
        password.input.focus();
      } finally {
        submit.disabled = false;
      }
    });
    mount(root, h('div', { class: 'panel narrow' },
      h('h1', {}, 'Sign in'),
      form,
      h('p', {}, link('/reset-password', 'Forgot your password?'))));
  },
});

page({
  path: '/reset-password',
  title: 'Reset your password',
  public: true,
  render: async (root, ctx) => {
    const token = ctx.query.get('token');
    const status = h('div', { 'aria-live': 'assertive' });
    const panel = h('div', { class: 'panel narrow' });
    mount(root, panel);
    if (!token) {
      const email = field('E-mail', h('input', { type: 'email', name: 'email', autocomplete: 'username', required: true }),
        'We mail a link to choose a new password. It works once, for one hour.');
      const submit = h('button', { type: 'submit' }, 'Send the link');
      const form = h('form', { novalidate: true }, email, status, submit);
      form.addEventListener('submit', async (e) => {
        e.preventDefault();
        email.setError(null);
        if (!email.input.value.includes('@')) { email.setError('Enter the e-mail address you sign in with.'); email.input.focus(); return; }
        submit.disabled = true;
        try {
          await api.post('/auth/password-reset', { email: email.input.value.trim() }, { quiet401: true });
          // The API answers the same whether the address exists (no account discovery).
          mount(status, alertBox('If an account uses this address, a link to reset its password is on its way. Check your mail.', 'ok'));
        } catch (err) {
          mount(status, alertBox(err.message));
        } finally {
          submit.disabled = false;
        }
      });
      mount(panel, h('h1', {}, 'Reset your password'), form, h('p', {}, link('/signin', 'Back to sign in')));
      return;
    }
    const pw = field('New password', h('input', { type: 'password', autocomplete: 'new-password', required: true }));
    const again = field('New password again', h('input', { type: 'password', autocomplete: 'new-password', required: true }));
    const submit = h('button', { type: 'submit' }, 'Set the password');
    const form = h('form', { novalidate: true }, pw, again, status, submit);
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      pw.setError(null); again.setError(null); mount(status);
      if (!pw.input.value) { pw.setError('Choose a password.'); pw.input.focus(); return; }
      if (pw.input.value !== again.input.value) { again.setError('The two passwords differ.'); again.input.focus(); return; }
      submit.disabled = true;
      try {
        await api.post('/auth/password-reset/confirm', { token, password: pw.input.value }, { quiet401: true });
        mount(panel, h('h1', {}, 'Password changed'),
          alertBox('Your password is set, and every session of your account has been signed out.', 'ok'),
          h('p', {}, link('/signin', 'Sign in with the new password')));
      } catch (err) {
        if (err.field === 'password') pw.setError(err.message);
        else if (err.field === 'token' || err.status === 404 || err.status === 401) {
          mount(status, alertBox('This reset link is invalid, used or expired. Ask for a new one.'));
        } else mount(status, alertBox(err.message));
      } finally {
        submit.disabled = false;
      }
    });
    mount(panel, h('h1', {}, 'Choose a new password'), form, h('p', {}, link('/reset-password', 'Ask for a new link')));
  },
});

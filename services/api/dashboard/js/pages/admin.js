// The Admin page (issue #24). A placeholder in the frame until its page is built: it only
// registers its path and nav link with the router.

import { page } from '../router.js';
import { h, mount } from '../ui.js';

page({
  path: '/admin',
  title: 'Admin',
  nav: { label: 'Admin', order: 90, admin: true },
  render: async (root) => {
    mount(root, h('h1', {}, 'Admin'), h('p', { class: 'muted' }, 'This page is coming soon.'));
  },
});

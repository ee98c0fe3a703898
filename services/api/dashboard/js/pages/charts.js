// The Charts page (issue #24). A placeholder in the frame until its page is built: it only
// registers its path and nav link with the router.

import { page } from '../router.js';
import { h, mount } from '../ui.js';

page({
  path: '/charts',
  title: 'Charts',
  nav: { label: 'Charts', order: 50 },
  render: async (root) => {
    mount(root, h('h1', {}, 'Charts'), h('p', { class: 'muted' }, 'This page is coming soon.'));
  },
});

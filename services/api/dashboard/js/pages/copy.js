// The Copy trading page (issue #24). A placeholder in the frame until its page is built: it only
// registers its path and nav link with the router.

import { page } from '../router.js';
import { h, mount } from '../ui.js';

page({
  path: '/copy',
  title: 'Copy trading',
  nav: { label: 'Copy', order: 40 },
  render: async (root) => {
    mount(root, h('h1', {}, 'Copy trading'), h('p', { class: 'muted' }, 'This page is coming soon.'));
  },
});

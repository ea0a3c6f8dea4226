// meshfs web UI: one page, routed by the URL fragment, built from the JSON API.
// Every name from a share goes into the DOM as text (textContent / text nodes), never as
// markup, so a file called "<img src=x onerror=…>" is shown, not run.
'use strict';

const state = {
  nodes: [],          // last /api/nodes (or `nodes` event)
  route: null,        // {view: 'nodes'|'ls'|'file', node, path}
  listing: null,      // last listing shown
  sort: { key: 'name', dir: 1 },
  filter: '',
  live: false,        // is any node's event feed live?
  session: null,      // a promise of the last /api/session
};

// ---- small DOM helpers -------------------------------------------------------------------

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') e.className = v;
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

function show(...children) {
  const view = document.getElementById('view');
  view.replaceChildren(...children);
}

function crumbs(route) {
  const nav = document.getElementById('crumbs');
  nav.replaceChildren();
  if (!route || route.view === 'nodes') return;
  nav.append(el('a', { href: '#/ls/' + enc(route.node) + '/' }, route.node));
  const parts = route.path ? route.path.split('/') : [];
  let acc = '';
  parts.forEach((p, i) => {
    acc = acc ? acc + '/' + p : p;
    nav.append(el('span', { class: 'muted' }, '/'));
    if (i === parts.length - 1) nav.append(el('span', {}, p));
    else nav.append(el('a', { href: '#/ls/' + enc(route.node) + '/' + encPath(acc) + '/' }, p));
  });
}

// ---- paths and formats ----------------------------------------------------------------

const enc = encodeURIComponent;
const encPath = (p) => p.split('/').filter((s) => s !== '').map(enc).join('/');
const join = (dir, name) => (dir ? dir + '/' + name : name);
const parent = (p) => (p.includes('/') ? p.slice(0, p.lastIndexOf('/')) : '');
const fileUrl = (node, path) => '/files/' + enc(node) + '/' + encPath(path);

function size(n) {
  if (n < 1024) return n + ' B';
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let u = -1;
  do { v /= 1024; u++; } while (v >= 1024 && u < units.length - 1);
  return v.toFixed(v < 10 ? 1 : 0) + ' ' + units[u];
}

const date = (ms) => new Date(ms).toLocaleString();

function typeOf(entry) {
  if (entry.type === 'dir') return 'folder';
  return (entry.content_type || 'application/octet-stream').split(';')[0];
}

function parseRoute() {
  const h = location.hash.replace(/^#\/?/, '');
  const segs = h.split('/');
  const view = segs.shift();
  if ((view === 'ls' || view === 'file') && segs.length && segs[0] !== '') {
    try {
      const node = decodeURIComponent(segs.shift());
      const path = segs.filter((s) => s !== '').map(decodeURIComponent).join('/');
      return { view, node, path };
    } catch (_) {
      return { view: 'nodes' };
    }
  }
  return { view: 'nodes' };
}

// A failed API call; `login` is set on 401 (a password would unlock it).
function apiError(r, body) {
  const e = new Error((body && body.error) || r.status + ' ' + r.statusText);
  e.login = r.status === 401;
  return e;
}

async function getJson(url) {
  const r = await fetch(url, { cache: 'no-store' });
  let body = null;
  try { body = await r.json(); } catch (_) { /* not JSON */ }
  if (!r.ok) throw apiError(r, body);
  return body;
}

async function postJson(url, value) {
  const r = await fetch(url, {
    method: 'POST',
    cache: 'no-store',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify(value),
  });
  let body = null;
  try { body = await r.json(); } catch (_) { /* not JSON */ }
  if (!r.ok) throw apiError(r, body);
  return body;
}

function findNode(key) {
  return state.nodes.find((n) => n.name === key) || state.nodes.find((n) => n.addr === key);
}

function badge(text) {
  return el('span', { class: 'badge ' + text }, text);
}

function failure(err) {
  return el('p', { class: 'error', role: 'alert' }, String(err.message || err));
}

// ---- password login -----------------------------------------------------------------

// The login form shown in place of what a password protects (on this node or, through it, on
// another node); on success the view reloads. Over plain HTTP there is no form: passwords are
// taken over HTTPS only, and the page says where to go instead.
async function loginForm(route, err) {
  const s = await state.session;
  if (!sameRoute(route)) return;
  if (!s.secure) {
    loginOverHttps(route, err, s);
    return;
  }
  const message = el('p', { id: 'login-error', class: 'error', role: 'alert' });
  const password = el('input', {
    id: 'password', type: 'password', autocomplete: 'current-password', required: true,
    'aria-label': 'Password',
  });
  const form = el('form', {
    id: 'login',
    onsubmit: async (ev) => {
      ev.preventDefault();
      message.textContent = '';
      try {
        await postJson('/api/login', { password: password.value, node: route.node });
      } catch (e) {
        password.value = '';
        message.textContent = e.message;
        password.focus();
        return;
      }
      await loadSession();
      if (sameRoute(route)) renderRoute(route);
    },
  },
  // Lets password managers file the password under this node.
  el('input', { type: 'text', name: 'username', autocomplete: 'username', value: route.node, hidden: true }),
  el('label', { for: 'password' }, 'Password '),
  password,
  ' ',
  el('button', { type: 'submit' }, 'Log in'),
  message);
  show(
    el('h1', {}, route.node + ':/' + route.path),
    el('p', { class: 'muted' }, String(err.message || err)),
    form);
  password.focus();
}

// Why a plain HTTP page shows no login form, and the way to the HTTPS one (same address and
// port) with the node's ID to compare.
function loginOverHttps(route, err, s) {
  const https = 'https://' + location.host + location.pathname + location.search + location.hash;
  const why = s.https
    ? [
      'Passwords are taken over HTTPS only: anyone on the network can read plain HTTP. ',
      el('a', { id: 'https-link', href: https }, 'Log in over HTTPS'),
      '. Your browser will warn that it does not know the certificate: it is the node\'s own, ' +
      'made by the node itself. Before going on, check that the node ID below is the one ' +
      '`meshfs id --node` prints on the node.',
    ]
    : [
      'This node serves its web page without HTTPS (it was started with --no-web-tls), and ' +
      'passwords are never taken over plain HTTP: use the meshfs commands, or restart the node ' +
      'without --no-web-tls.',
    ];
  show(
    el('h1', {}, route.node + ':/' + route.path),
    el('p', { class: 'muted' }, String(err.message || err)),
    el('p', { id: 'login-https', class: 'notice' }, ...why),
    s.node_id ? el('p', {}, 'Node ID: ', el('code', { class: 'node-id' }, s.node_id)) : null);
}

// Is this browser logged in? Shows the Log out button when it is, and this node's ID.
function loadSession() {
  state.session = (async () => {
    let s = { logged_in: false, secure: location.protocol === 'https:', https: false };
    try { s = await getJson('/api/session'); } catch (_) { /* keep the button hidden */ }
    document.getElementById('logout').hidden = !s.logged_in;
    const id = document.getElementById('node-id');
    id.hidden = !s.node_id;
    if (s.node_id) {
      document.getElementById('node-id-value').textContent = s.node_id;
      id.title = "This node's ID (the hash of its key): compare it with `meshfs id --node` on the node. " +
        'curl checks it with --pinnedpubkey ' + s.pin;
    }
    return s;
  })();
  return state.session;
}

async function logout() {
  try {
    await postJson('/api/logout', {});
  } finally {
    await loadSession();
    route();
  }
}

// ---- views ---------------------------------------------------------------------------

function renderNodes() {
  const rows = state.nodes.map((n) =>
    el('tr', { 'data-node': n.name },
      el('td', {}, el('a', { href: '#/ls/' + enc(n.name) + '/' }, n.name), n.local ? ' (this node)' : ''),
      el('td', {}, n.addr),
      el('td', {}, badge(n.status)),
      el('td', {}, badge(n.events)),
      el('td', {}, n.version || ''),
      el('td', {}, n.id ? el('code', { class: 'node-id', title: n.id }, n.id.slice(0, 9) + '…') : '',
        n.conflict ? el('span', { class: 'conflict', title: 'other nodes announce this name with another ID: pin one with meshfs trust ' + n.conflict + ' ID' }, ' ⚠ ' + n.conflict + ' claimed twice') : ''),
      el('td', { class: 'muted' }, n.error || '')));
  show(
    el('h1', {}, 'Nodes'),
    el('table', { id: 'nodes' },
      el('thead', {}, el('tr', {}, ['Name', 'Address', 'Status', 'Events', 'Version', 'ID', ''].map((h) => el('th', {}, h)))),
      el('tbody', {}, rows)));
}

async function loadNodes() {
  try {
    state.nodes = await getJson('/api/nodes');
    updateFeedStatus();
    if (state.route && state.route.view === 'nodes') renderNodes();
  } catch (e) {
    if (state.route && state.route.view === 'nodes') show(failure(e));
  }
}

const COLUMNS = [
  { key: 'name', label: 'Name' },
  { key: 'size', label: 'Size', num: true },
  { key: 'mtime_ms', label: 'Modified', num: true },
  { key: 'type', label: 'Type' },
];

function sortedEntries(entries) {
  const { key, dir } = state.sort;
  const val = (e) => (key === 'type' ? typeOf(e) : e[key]);
  return entries.slice().sort((a, b) => {
    if ((a.type === 'dir') !== (b.type === 'dir')) return a.type === 'dir' ? -1 : 1;
    const x = val(a);
    const y = val(b);
    const c = typeof x === 'number' ? x - y : String(x).localeCompare(String(y));
    return c * dir || a.name.localeCompare(b.name);
  });
}

function renderRows() {
  const tbody = document.getElementById('rows');
  if (!tbody || !state.listing) return;
  const { node, path, entries } = state.listing;
  const f = state.filter.toLowerCase();
  const shown = sortedEntries(entries).filter((e) => !f || e.name.toLowerCase().includes(f));
  tbody.replaceChildren(...shown.map((e) => {
    const target = join(path, e.name);
    const href = e.type === 'dir'
      ? '#/ls/' + enc(node) + '/' + encPath(target) + '/'
      : '#/file/' + enc(node) + '/' + encPath(target);
    return el('tr', { 'data-name': e.name },
      el('td', {}, el('a', { href }, e.name + (e.type === 'dir' ? '/' : ''))),
      el('td', { class: 'num' }, e.type === 'dir' ? '' : size(e.size)),
      el('td', { class: 'num' }, date(e.mtime_ms)),
      el('td', {}, typeOf(e)));
  }));
  const count = document.getElementById('count');
  if (count) count.textContent = shown.length + ' of ' + entries.length + (state.listing.truncated ? ' (cut)' : '');
  for (const c of COLUMNS) {
    const th = document.getElementById('sort-' + c.key);
    if (th) th.setAttribute('aria-sort', state.sort.key === c.key ? (state.sort.dir > 0 ? 'ascending' : 'descending') : 'none');
  }
}

function eventsNote(nodeKey) {
  const n = findNode(nodeKey);
  if (n && n.events === 'live') return el('span', { class: 'badge live', id: 'live-note' }, 'live');
  return el('span', { class: 'badge unavailable', id: 'live-note' }, 'events unavailable: use Refresh');
}

async function renderListing(route, keepScroll) {
  let listing;
  try {
    listing = await getJson('/api/ls/' + enc(route.node) + '/' + encPath(route.path));
  } catch (e) {
    if (!sameRoute(route)) return;
    if (e.login) loginForm(route, e);
    else show(el('h1', {}, route.path || '/'), failure(e));
    return;
  }
  if (!sameRoute(route)) return;
  listing.node = route.node; // keep the URL's key (name or address)
  state.listing = listing;
  if (keepScroll && document.getElementById('rows')) {
    renderRows();
    return;
  }
  const filter = el('input', {
    id: 'filter', type: 'search', placeholder: 'Filter by name', 'aria-label': 'Filter by name',
    value: state.filter,
    oninput: (ev) => { state.filter = ev.target.value; renderRows(); },
  });
  const head = el('tr', {}, COLUMNS.map((c) =>
    el('th', { id: 'sort-' + c.key, class: c.num ? 'num' : '' },
      el('button', {
        type: 'button',
        onclick: () => {
          state.sort = { key: c.key, dir: state.sort.key === c.key ? -state.sort.dir : 1 };
          renderRows();
        },
      }, c.label))));
  show(
    el('h1', {}, route.node + ':/' + route.path),
    el('div', { class: 'toolbar' }, filter,
      el('button', { id: 'refresh', type: 'button', onclick: () => renderListing(route, true) }, 'Refresh'),
      eventsNote(route.node),
      el('span', { id: 'count', class: 'muted' })),
    el('table', { id: 'listing' }, el('thead', {}, head), el('tbody', { id: 'rows' })));
  renderRows();
}

async function renderFile(route) {
  let st;
  try {
    st = await getJson('/api/stat/' + enc(route.node) + '/' + encPath(route.path));
  } catch (e) {
    if (!sameRoute(route)) return;
    if (e.login) loginForm(route, e);
    else show(el('h1', {}, route.path), failure(e));
    return;
  }
  if (!sameRoute(route)) return;
  if (st.type === 'dir') {
    location.hash = '#/ls/' + enc(route.node) + '/' + encPath(route.path) + '/';
    return;
  }
  const url = fileUrl(route.node, route.path);
  // A file may have its own password (an offered file): ask for it before showing a player.
  let head = null;
  try { head = await fetch(url, { method: 'HEAD', cache: 'no-store' }); } catch (_) { /* the player says */ }
  if (!sameRoute(route)) return;
  if (head && head.status === 401) {
    loginForm(route, new Error('this file is protected by a password'));
    return;
  }
  const type = typeOf(st);
  let viewer = null;
  if (type.startsWith('video/')) viewer = el('video', { id: 'player', src: url, controls: true, preload: 'metadata' });
  else if (type.startsWith('audio/')) viewer = el('audio', { id: 'player', src: url, controls: true, preload: 'metadata' });
  else if (type.startsWith('image/')) viewer = el('img', { class: 'preview', src: url, alt: st.name });
  show(
    el('h1', { id: 'file-name' }, st.name),
    el('p', {},
      el('a', { id: 'download', href: url + '?download=1', download: st.name }, 'Download'),
      ' · ',
      el('a', { href: url, target: '_blank', rel: 'noopener' }, 'Open')),
    viewer,
    el('dl', {},
      el('dt', {}, 'Node'), el('dd', {}, route.node),
      el('dt', {}, 'Path'), el('dd', {}, route.path),
      el('dt', {}, 'Size'), el('dd', { id: 'file-size' }, size(st.size) + ' (' + st.size + ' bytes)'),
      el('dt', {}, 'Modified'), el('dd', {}, date(st.mtime_ms)),
      el('dt', {}, 'Type'), el('dd', {}, type),
      el('dt', {}, 'Mode'), el('dd', {}, st.mode)));
}

function sameRoute(r) {
  const c = state.route;
  return c && c.view === r.view && c.node === r.node && c.path === r.path;
}

function route() {
  const r = parseRoute();
  const moved = !state.route || state.route.node !== r.node || state.route.path !== r.path;
  if (moved) state.filter = '';
  state.route = r;
  renderRoute(r);
}

function renderRoute(r) {
  state.listing = null;
  crumbs(r);
  if (r.view === 'ls') {
    show(el('p', { class: 'muted' }, 'Loading…'));
    renderListing(r, false);
  } else if (r.view === 'file') {
    show(el('p', { class: 'muted' }, 'Loading…'));
    renderFile(r);
  } else {
    renderNodes();
    loadNodes();
  }
}

// ---- live events ---------------------------------------------------------------------

let refreshTimer = null;
function refreshSoon() {
  if (refreshTimer) return;
  refreshTimer = setTimeout(() => {
    refreshTimer = null;
    const r = state.route;
    if (r && r.view === 'ls') renderListing(r, true);
  }, 100);
}

// A file being recorded grows: keep its size current on the file page (the player itself
// asks the server again as it plays, so it sees the new bytes on its own).
async function refreshFileSize() {
  const r = state.route;
  try {
    const st = await getJson('/api/stat/' + enc(r.node) + '/' + encPath(r.path));
    const dd = document.getElementById('file-size');
    if (dd && sameRoute(r)) dd.textContent = size(st.size) + ' (' + st.size + ' bytes)';
  } catch (_) {
    // Deleted or unreachable: the next navigation shows why.
  }
}

function updateFeedStatus() {
  const live = state.nodes.some((n) => n.events === 'live');
  state.live = live;
  const s = document.getElementById('feed-status');
  s.textContent = live ? 'live' : 'events unavailable';
  s.className = 'badge ' + (live ? 'live' : 'unavailable');
  const note = document.getElementById('live-note');
  if (note && state.route && state.route.view === 'ls') note.replaceWith(eventsNote(state.route.node));
}

// Is the page showing `view` ('ls' or 'file') of the node an event came from?
function showsNode(eventNode, view) {
  const r = state.route;
  if (!r || r.view !== view) return false;
  const n = findNode(r.node);
  return r.node === eventNode || (n && n.name === eventNode);
}

// ---- group chat ----------------------------------------------------------------------

const CHAT_KEEP = 200;

function chatMessage(m) {
  const log = document.getElementById('chat-log');
  log.append(el('li', { 'data-id': m.id },
    el('span', { class: 'muted' }, new Date(m.time_ms).toLocaleTimeString() + ' '),
    el('span', { class: 'chat-text' }, m.lines.join('\n'))));
  while (log.children.length > CHAT_KEEP) log.firstChild.remove();
  log.scrollTop = log.scrollHeight;
}

// Show the chat panel when the node is in the group chat; messages come with the event feed.
async function setupChat() {
  let info;
  try { info = await getJson('/api/chat'); } catch (_) { return; }
  if (!info.enabled) return;
  document.getElementById('chat-group').textContent = info.group;
  const text = document.getElementById('chat-text');
  const error = document.getElementById('chat-error');
  document.getElementById('chat-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    error.textContent = '';
    if (new TextEncoder().encode(text.value).length > info.max_bytes) {
      error.textContent = 'at most ' + info.max_bytes + ' bytes';
      return;
    }
    try {
      await postJson('/api/chat', { text: text.value });
      text.value = '';
    } catch (e) {
      error.textContent = e.message;
    }
  });
  document.getElementById('chat').hidden = false;
}

function connectFeed() {
  const es = new EventSource('/api/events');
  // Every connection starts with the chat's recent messages: rebuild the log from them.
  es.addEventListener('open', () => document.getElementById('chat-log').replaceChildren());
  es.addEventListener('chat', (m) => chatMessage(JSON.parse(m.data)));
  es.addEventListener('nodes', (m) => {
    state.nodes = JSON.parse(m.data);
    updateFeedStatus();
    if (state.route && state.route.view === 'nodes') renderNodes();
  });
  es.addEventListener('file', (m) => {
    const ev = JSON.parse(m.data);
    const list = document.getElementById('events');
    list.prepend(el('li', { 'data-kind': ev.kind },
      el('span', { class: 'muted' }, new Date().toLocaleTimeString() + ' '),
      ev.node + ' ', el('b', {}, ev.kind), ' ', ev.path));
    while (list.children.length > 200) list.lastChild.remove();
    if (showsNode(ev.node, 'ls') && parent(ev.path) === state.route.path) refreshSoon();
    if (showsNode(ev.node, 'file') && ev.path === state.route.path) refreshFileSize();
  });
  es.addEventListener('resync', (m) => {
    const ev = JSON.parse(m.data);
    if (ev.node === null || showsNode(ev.node, 'ls')) refreshSoon();
  });
  es.onerror = () => {
    const s = document.getElementById('feed-status');
    s.textContent = 'reconnecting';
    s.className = 'badge offline';
  };
}

window.addEventListener('hashchange', route);
window.addEventListener('DOMContentLoaded', () => {
  document.getElementById('logout').addEventListener('click', logout);
  loadSession();
  route();
  setupChat();
  connectFeed();
});

// meshfs web UI: one page, routed by the URL fragment, built from the JSON API.
// Every name from a share goes into the DOM as text (textContent / text nodes), never as
// markup, so a file called "<img src=x onerror=…>" is shown, not run.
'use strict';

const state = {
  nodes: [],          // last /api/nodes (or `nodes` event)
  route: null,        // {view: 'nodes'|'ls'|'file', node, path}
  listing: null,      // last listing shown
  sort: { key: 'name', dir: 1 },
  sorted: null,       // state.listing.entries in the current sort order (made once per sort)
  shown: [],          // state.sorted narrowed by the filter: what the rows show
  filter: '',
  selected: new Set(), // names ticked in the folder shown (for a zip of the selection)
  mode: localStorage.getItem('meshfs-mode') === 'gallery' ? 'gallery' : 'table',
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
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

// Replace the view. Absent parts (null: a file that is neither video, audio, image nor text)
// are skipped: replaceChildren would write them as the text "null".
function show(...children) {
  const view = document.getElementById('view');
  view.replaceChildren(...children.filter((c) => c !== null && c !== undefined && c !== false));
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

const NODE_COLUMNS = ['Name', 'Address', 'Status', 'Events', 'Version', 'ID', 'Last error'];

function renderNodes() {
  const rows = state.nodes.map((n) => {
    const cells = [
      [el('a', { href: '#/ls/' + enc(n.name) + '/' }, n.name), n.local ? ' (this node)' : ''],
      n.addr,
      [badge(n.status), n.disk_full ? [' ', el('span', { class: 'badge offline disk-full' }, 'disk full')] : null],
      [badge(n.events), n.events === 'live' ? null : el('div', { class: 'muted events-why' }, eventsWhy(n))],
      n.version || '',
      [n.id ? el('code', { class: 'node-id', title: n.id }, n.id.slice(0, 9) + '…') : '',
        n.conflict ? el('span', { class: 'conflict', title: 'other nodes announce this name with another ID: pin one with meshfs trust ' + n.conflict + ' ID' }, ' ⚠ ' + n.conflict + ' claimed twice') : null],
      n.error || '',
    ];
    // data-label: the column's name, shown before each value on a phone (no header there).
    return el('tr', { 'data-node': n.name },
      cells.map((c, i) => el('td', { 'data-label': i ? NODE_COLUMNS[i] : null, class: i === 6 ? 'muted col-error' : null }, c)));
  });
  show(
    el('h1', {}, 'Nodes'),
    el('table', { id: 'nodes' },
      el('thead', {}, el('tr', {}, NODE_COLUMNS.map((h) => el('th', {}, h)))),
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
  { key: 'mtime_ms', label: 'Modified', num: true, cls: 'col-date' },
  { key: 'type', label: 'Type', cls: 'col-type' },
];

// One collator for every comparison: String.localeCompare builds one per call, which made a
// 20,000-name sort take seconds.
const collator = new Intl.Collator(undefined, { numeric: true, sensitivity: 'base' });

// The listing in the current order. Keys are read once per entry (decorate, sort, undecorate):
// no per-comparison work beyond one compare.
function sortEntries(entries) {
  const { key, dir } = state.sort;
  const keyed = entries.map((e) => ({
    e,
    dir: e.type === 'dir' ? 0 : 1,
    k: key === 'type' ? e._type : e[key],
  }));
  const num = key === 'size' || key === 'mtime_ms';
  keyed.sort((a, b) => {
    if (a.dir !== b.dir) return a.dir - b.dir;
    const c = num ? a.k - b.k : collator.compare(a.k, b.k);
    return c * dir || collator.compare(a.e.name, b.e.name);
  });
  return keyed.map((x) => x.e);
}

// Sort (only when the listing or the order changed), filter, then draw what is on screen.
function renderRows(resort) {
  if (!state.listing) return;
  if (resort || !state.sorted) state.sorted = sortEntries(state.listing.entries);
  const f = state.filter.toLowerCase();
  state.shown = f ? state.sorted.filter((e) => e._lower.includes(f)) : state.sorted;
  const count = document.getElementById('count');
  if (count) count.textContent = state.shown.length + ' of ' + state.listing.entries.length + (state.listing.truncated ? ' (cut)' : '');
  for (const c of COLUMNS) {
    const th = document.getElementById('sort-' + c.key);
    if (th) th.setAttribute('aria-sort', state.sort.key === c.key ? (state.sort.dir > 0 ? 'ascending' : 'descending') : 'none');
  }
  if (state.mode === 'gallery') renderTiles(true);
  else drawWindow(true);
}

function entryHref(node, path, e) {
  const target = join(path, e.name);
  return e.type === 'dir'
    ? '#/ls/' + enc(node) + '/' + encPath(target) + '/'
    : '#/file/' + enc(node) + '/' + encPath(target);
}

function selectBox(e) {
  return el('input', {
    type: 'checkbox', class: 'pick', 'aria-label': 'Select ' + e.name,
    checked: state.selected.has(e.name),
    onchange: (ev) => {
      if (ev.target.checked) state.selected.add(e.name);
      else state.selected.delete(e.name);
      updateSelection();
    },
  });
}

function row(node, path, e) {
  const type = e._type;
  return el('tr', { 'data-name': e.name },
    el('td', { class: 'col-pick' }, selectBox(e)),
    el('td', { class: 'col-name' },
      el('a', { href: entryHref(node, path, e) }, e.name + (e.type === 'dir' ? '/' : '')),
      // Shown on narrow screens, where the date and type columns are not.
      el('div', { class: 'sub muted' }, date(e.mtime_ms) + ' · ' + type)),
    el('td', { class: 'num' }, e.type === 'dir' ? '' : size(e.size)),
    el('td', { class: 'num col-date' }, date(e.mtime_ms)),
    el('td', { class: 'col-type' }, type));
}

// ---- a big folder: only the rows on screen exist ---------------------------------------

const OVERSCAN = 30;     // rows drawn above and below the screen
let rowHeight = 0;       // measured from the first rows drawn
let drawn = { first: -1, last: -1 };

// Draw the rows that intersect the window (plus OVERSCAN); the two padding bodies stand for
// the rest, so the scroll bar is the whole listing's. Cost per call: the rows drawn, never
// the listing's length.
function drawWindow(force) {
  const tbody = document.getElementById('rows');
  const table = document.getElementById('listing');
  if (!tbody || !table) return;
  const { node, path } = state.listing;
  const total = state.shown.length;
  const h = rowHeight || 32;
  const top = table.getBoundingClientRect().top + window.scrollY
    + (table.tHead ? table.tHead.getBoundingClientRect().height : 0);
  let first = Math.floor((window.scrollY - top) / h) - OVERSCAN;
  first = Math.max(0, Math.min(first, Math.max(0, total - 1)));
  const count = Math.ceil(window.innerHeight / h) + 2 * OVERSCAN;
  const last = Math.min(total, first + count);
  if (!force && first === drawn.first && last === drawn.last) return;
  drawn = { first, last };
  tbody.replaceChildren(...state.shown.slice(first, last).map((e) => row(node, path, e)));
  if (!rowHeight && tbody.rows.length) {
    rowHeight = tbody.getBoundingClientRect().height / tbody.rows.length || 32;
  }
  const ph = rowHeight || h;
  setPad('pad-top', first * ph);
  setPad('pad-bottom', (total - last) * ph);
}

function setPad(id, px) {
  const body = document.getElementById(id);
  if (body) body.firstChild.firstChild.style.height = Math.round(px) + 'px';
}

let scrollQueued = false;
window.addEventListener('scroll', () => {
  if (scrollQueued) return;
  scrollQueued = true;
  requestAnimationFrame(() => {
    scrollQueued = false;
    if (state.route && state.route.view === 'ls') {
      if (state.mode === 'gallery') renderTiles(false);
      else drawWindow(false);
    }
  });
}, { passive: true });
window.addEventListener('resize', () => {
  rowHeight = 0;
  if (state.route && state.route.view === 'ls' && state.mode === 'table') drawWindow(true);
});

// ---- gallery ------------------------------------------------------------------------------
//
// Poster frames are drawn in the browser, from the file itself: a muted <video> loads only
// what its first frame needs (the container's header and first key frame, fetched with
// Range requests) and is stopped as soon as that frame is on a canvas. The recording node
// does no work beyond serving those ranges (no ffmpeg, no cache on its small disk), a tile
// off screen costs nothing, and at most POSTER_JOBS posters are made at once, each given
// POSTER_TIMEOUT before it is abandoned. Posters are kept in memory per file version
// (size and mtime), so sorting or coming back redraws without fetching.

const POSTER_JOBS = 3;
const POSTER_TIMEOUT = 10000;
const POSTER_WIDTH = 320;
const IMAGE_MAX = 20 << 20;  // bigger images get a label, not a thumbnail
const TILE_BATCH = 120;      // tiles added per step as the gallery scrolls
const posters = new Map();   // url|size|mtime -> canvas
const posterQueue = [];
let posterRunning = 0;
let tilesShown = 0;
let tileObserver = null;

function mediaKind(e) {
  if (e.type === 'dir') return 'dir';
  if (e._type.startsWith('video/')) return 'video';
  if (e._type.startsWith('image/')) return 'image';
  return 'other';
}

function renderTiles(reset) {
  const grid = document.getElementById('gallery');
  if (!grid) return;
  if (reset) {
    grid.replaceChildren();
    tilesShown = 0;
    if (tileObserver) tileObserver.disconnect();
    tileObserver = new IntersectionObserver((seen) => {
      for (const s of seen) {
        if (s.isIntersecting) {
          tileObserver.unobserve(s.target);
          s.target.__poster && s.target.__poster();
        }
      }
    }, { rootMargin: '200px' });
  }
  // Add tiles while the end of the grid is near the screen.
  const { node, path } = state.listing;
  while (tilesShown < state.shown.length
    && grid.getBoundingClientRect().bottom < window.innerHeight * 2) {
    const batch = state.shown.slice(tilesShown, tilesShown + TILE_BATCH);
    tilesShown += batch.length;
    grid.append(...batch.map((e) => tile(node, path, e)));
  }
}

function tile(node, path, e) {
  const kind = mediaKind(e);
  const url = fileUrl(node, join(path, e.name));
  const frame = el('div', { class: 'frame' });
  const t = el('figure', { class: 'tile ' + kind, 'data-name': e.name },
    el('a', { href: entryHref(node, path, e) }, frame,
      el('figcaption', {}, e.name + (e.type === 'dir' ? '/' : ''))),
    el('div', { class: 'tile-info muted' }, selectBox(e), e.type === 'dir' ? ' folder' : ' ' + size(e.size)));
  if (kind === 'image' && e.size <= IMAGE_MAX) {
    frame.append(el('img', { src: url, alt: '', loading: 'lazy', decoding: 'async' }));
  } else if (kind === 'video') {
    const key = url + '|' + e.size + '|' + e.mtime_ms;
    const cached = posters.get(key);
    if (cached) frame.append(copyCanvas(cached));
    else {
      frame.append(el('span', { class: 'label' }, 'video'));
      t.__poster = () => queuePoster(key, url, frame);
      tileObserver.observe(t);
    }
  } else {
    frame.append(el('span', { class: 'label' }, kind === 'dir' ? '📁' : e._type.split('/')[1] || e._type));
  }
  return t;
}

function copyCanvas(src) {
  const c = el('canvas', { class: 'poster', width: src.width, height: src.height });
  c.getContext('2d').drawImage(src, 0, 0);
  return c;
}

function queuePoster(key, url, frame) {
  posterQueue.push({ key, url, frame });
  pumpPosters();
}

function pumpPosters() {
  while (posterRunning < POSTER_JOBS && posterQueue.length) {
    const job = posterQueue.shift();
    if (!job.frame.isConnected) continue;
    posterRunning++;
    makePoster(job.url).then((canvas) => {
      posters.set(job.key, canvas);
      if (job.frame.isConnected) job.frame.replaceChildren(copyCanvas(canvas));
    }, (err) => {
      job.frame.replaceChildren(el('span', { class: 'label', title: String(err.message || err) }, 'video'));
    }).finally(() => {
      posterRunning--;
      pumpPosters();
    });
  }
}

// The first frame of a video, on a canvas POSTER_WIDTH wide.
function makePoster(url) {
  return new Promise((resolve, reject) => {
    const v = document.createElement('video');
    v.muted = true;
    v.preload = 'auto';
    v.playsInline = true;
    let timer = null;
    const stop = () => {
      clearTimeout(timer);
      v.removeAttribute('src');
      v.load(); // aborts whatever is still being fetched
    };
    timer = setTimeout(() => { stop(); reject(new Error('no frame within ' + POSTER_TIMEOUT / 1000 + ' s')); }, POSTER_TIMEOUT);
    v.addEventListener('loadeddata', () => {
      const w = POSTER_WIDTH;
      const h = Math.max(1, Math.round(w * (v.videoHeight || 9) / (v.videoWidth || 16)));
      const c = el('canvas', { class: 'poster', width: w, height: h });
      c.getContext('2d').drawImage(v, 0, 0, w, h);
      stop();
      resolve(c);
    }, { once: true });
    v.addEventListener('error', () => { stop(); reject(new Error('cannot decode')); }, { once: true });
    v.src = url;
  });
}

// ---- the folder view ------------------------------------------------------------------

function zipUrl(node, path, names) {
  const base = '/api/zip/' + enc(node) + '/' + encPath(path);
  if (!names) return base;
  return base + '?' + names.map((n) => 'name=' + enc(n)).join('&');
}

function updateSelection() {
  const link = document.getElementById('zip-selection');
  if (!link || !state.listing) return;
  const names = [...state.selected];
  link.hidden = names.length === 0;
  link.textContent = 'Download ' + names.length + ' selected (zip)';
  link.href = zipUrl(state.listing.node, state.listing.path, names);
}

function setMode(mode) {
  state.mode = mode;
  localStorage.setItem('meshfs-mode', mode);
  const r = state.route;
  if (r && r.view === 'ls' && state.listing) drawFolder(r);
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
  // Marks for bench/web_listing.mjs: the listing has arrived (parsed); it is drawn.
  performance.mark('meshfs-listing-json');
  listing.node = route.node; // keep the URL's key (name or address)
  for (const e of listing.entries) {
    e._type = typeOf(e);
    e._lower = e.name.toLowerCase();
  }
  const names = new Set(listing.entries.map((e) => e.name));
  for (const n of state.selected) if (!names.has(n)) state.selected.delete(n);
  state.listing = listing;
  state.sorted = null;
  if (keepScroll && (document.getElementById('rows') || document.getElementById('gallery'))) {
    renderRows(true);
    updateSelection();
    return;
  }
  drawFolder(route);
  performance.mark('meshfs-listing-drawn');
}

function drawFolder(route) {
  const filter = el('input', {
    id: 'filter', type: 'search', placeholder: 'Filter by name', 'aria-label': 'Filter by name',
    value: state.filter,
    oninput: (ev) => { state.filter = ev.target.value; renderRows(false); },
  });
  const sortButtons = COLUMNS.map((c) => ({
    c,
    onclick: () => {
      state.sort = { key: c.key, dir: state.sort.key === c.key ? -state.sort.dir : 1 };
      renderRows(true);
    },
  }));
  const modes = el('span', { class: 'modes', role: 'group', 'aria-label': 'View' },
    el('button', { id: 'mode-table', type: 'button', 'aria-pressed': String(state.mode === 'table'), onclick: () => setMode('table') }, 'Table'),
    el('button', { id: 'mode-gallery', type: 'button', 'aria-pressed': String(state.mode === 'gallery'), onclick: () => setMode('gallery') }, 'Gallery'));
  const toolbar = el('div', { class: 'toolbar' }, filter,
    el('button', { id: 'refresh', type: 'button', onclick: () => renderListing(route, true) }, 'Refresh'),
    modes,
    el('a', { id: 'zip-folder', href: zipUrl(route.node, route.path), download: '' }, 'Download folder (zip)'),
    el('a', { id: 'zip-selection', href: '#', download: '', hidden: true }),
    eventsNote(route.node),
    el('span', { id: 'count', class: 'muted' }));
  let body;
  if (state.mode === 'gallery') {
    body = [
      el('div', { class: 'sorts muted' }, 'Sort: ', sortButtons.map(({ c, onclick }) =>
        el('span', { id: 'sort-' + c.key }, el('button', { type: 'button', onclick }, c.label)))),
      el('div', { id: 'gallery' }),
    ];
  } else {
    const head = el('tr', {}, el('th', { class: 'col-pick' }),
      sortButtons.map(({ c, onclick }) =>
        el('th', { id: 'sort-' + c.key, class: [c.num ? 'num' : '', c.cls || ''].join(' ').trim() },
          el('button', { type: 'button', onclick }, c.label))));
    const pad = (id) => el('tbody', { id, 'aria-hidden': 'true' }, el('tr', { class: 'pad' }, el('td', { colspan: 5 })));
    body = [el('table', { id: 'listing' }, el('thead', {}, head), pad('pad-top'), el('tbody', { id: 'rows' }), pad('pad-bottom'))];
  }
  show(el('h1', {}, route.node + ':/' + route.path), toolbar, ...body);
  rowHeight = 0;
  drawn = { first: -1, last: -1 };
  renderRows(!state.sorted);
  updateSelection();
}

// Why a node's events are not live, in words for the page.
function eventsWhy(n) {
  if (!n) return 'the node is not in the node list';
  if (n.status === 'offline') return 'the node does not answer' + (n.error ? ' (' + n.error + ')' : '');
  if (n.events === 'unknown') return 'not connected to the node yet';
  const why = n.events_why || 'the node does not offer events';
  if (/password/i.test(why)) {
    return "the node's share is protected by a password, and its events are not shown on pages anyone can open (" + why + ')';
  }
  return why;
}

function eventsNote(nodeKey) {
  const n = findNode(nodeKey);
  if (n && n.events === 'live') return el('span', { class: 'badge live', id: 'live-note' }, 'live');
  const why = eventsWhy(n);
  return el('span', { class: 'badge unavailable', id: 'live-note', title: why },
    'events unavailable: ' + why + '; use Refresh');
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
  else if (type.startsWith('image/')) viewer = el('img', { id: 'player', class: 'preview', src: url, alt: st.name });
  else if (isText(type)) viewer = el('pre', { id: 'text-preview', class: 'muted' }, 'Loading…');
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
  if (viewer && viewer.id === 'text-preview') textPreview(route, url, st.size, viewer);
}

// Media types shown as text on a file's page.
function isText(type) {
  return type.startsWith('text/') || /^application\/(json|xml|x-sh|x-yaml|toml|javascript)$/.test(type);
}

const PREVIEW_BYTES = 64 << 10;

// The first PREVIEW_BYTES of a text file (one Range request: a big log is never read whole),
// as text, never as markup.
async function textPreview(route, url, total, pre) {
  try {
    const r = await fetch(url, { headers: { Range: 'bytes=0-' + (PREVIEW_BYTES - 1) }, cache: 'no-store' });
    if (!r.ok) throw new Error(r.status + ' ' + r.statusText);
    const bytes = new Uint8Array(await r.arrayBuffer());
    if (!sameRoute(route)) return;
    // fatal: false: a cut multi-byte character at the end shows as one replacement mark.
    pre.textContent = new TextDecoder('utf-8').decode(bytes.subarray(0, PREVIEW_BYTES));
    pre.className = '';
    if (total > PREVIEW_BYTES) {
      pre.after(el('p', { id: 'preview-cut', class: 'muted' }, 'The first ' + size(PREVIEW_BYTES) + ' of ' + size(total) + ': download for the rest.'));
    }
  } catch (e) {
    if (sameRoute(route)) pre.textContent = 'No preview: ' + (e.message || e);
  }
}

function sameRoute(r) {
  const c = state.route;
  return c && c.view === r.view && c.node === r.node && c.path === r.path;
}

function route() {
  const r = parseRoute();
  const moved = !state.route || state.route.node !== r.node || state.route.path !== r.path;
  if (moved) {
    state.filter = '';
    state.selected.clear();
  }
  state.route = r;
  renderRoute(r);
}

function renderRoute(r) {
  state.listing = null;
  state.sorted = null;
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
  s.title = live ? '' : state.nodes.map((n) => n.name + ': ' + eventsWhy(n)).join('\n');
  // A full disk stops recordings: say it on every view, naming the nodes.
  const full = state.nodes.filter((n) => n.disk_full).map((n) => n.name);
  const banner = document.getElementById('disk-full');
  banner.hidden = full.length === 0;
  banner.textContent = full.length
    ? 'Disk full on ' + full.join(', ') + ': it keeps serving, but new recordings cannot be written ' +
      'until space is freed (delete files, or give the node a retention rule: --keep-free, --retain, --max-size).'
    : '';
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

// A chat line as `<name> :> text` when the node list knows the sender's address.
function named(m, line) {
  const prefix = m.from + ' :> ';
  return m.name && line.startsWith(prefix) ? m.name + ' :> ' + line.slice(prefix.length) : line;
}

function chatMessage(m) {
  const log = document.getElementById('chat-log');
  log.append(el('li', { 'data-id': m.id },
    el('span', { class: 'muted' }, new Date(m.time_ms).toLocaleTimeString() + ' '),
    el('span', { class: 'chat-text', title: 'from ' + m.from }, m.lines.map((l) => named(m, l)).join('\n'))));
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
  // Every connection starts with the recent file events too (kept by the node): rebuild the
  // events list from them, so a reload keeps what just happened.
  es.addEventListener('open', () => {
    document.getElementById('chat-log').replaceChildren();
    document.getElementById('events').replaceChildren();
  });
  es.addEventListener('chat', (m) => chatMessage(JSON.parse(m.data)));
  es.addEventListener('nodes', (m) => {
    state.nodes = JSON.parse(m.data);
    updateFeedStatus();
    if (state.route && state.route.view === 'nodes') renderNodes();
  });
  es.addEventListener('file', (m) => {
    const ev = JSON.parse(m.data);
    const list = document.getElementById('events');
    // A deleted file's link goes to its folder (the file page would only say "not found").
    const href = ev.kind === 'deleted'
      ? '#/ls/' + enc(ev.node) + '/' + encPath(parent(ev.path)) + '/'
      : '#/file/' + enc(ev.node) + '/' + encPath(ev.path);
    list.prepend(el('li', { 'data-kind': ev.kind },
      el('span', { class: 'muted' }, new Date(ev.time_ms || Date.now()).toLocaleTimeString() + ' '),
      ev.node + ' ', el('b', {}, ev.kind), ' ', el('a', { href, class: 'event-path' }, ev.path)));
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

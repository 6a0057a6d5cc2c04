// The gallery's front end: no build step, no inline script, every name rendered with textContent.
import PhotoSwipeLightbox from './vendor/photoswipe-lightbox.esm.min.js';

const shareMatch = location.pathname.match(/^\/s\/([A-Za-z0-9_-]{43})$/);
const BASE = shareMatch ? `/s/${shareMatch[1]}` : '';
const SHARED = Boolean(shareMatch);
const PAGE = 200;
const $ = (id) => document.getElementById(id);
let csrf = '';
let view = null;  // {url, items, total, groups}
let observer = null;

function el(tag, attrs = {}, text) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
}

async function api(path, options = {}) {
  const r = await fetch(BASE + path, { credentials: 'same-origin', ...options });
  if (!r.ok) throw new Error(`${r.status} ${await r.text()}`);
  return r.json();
}

function monthLabel(t) {
  if (!t) return 'Undated';
  const d = new Date(`${t.slice(0, 7)}-01T00:00:00Z`);
  return isNaN(d) ? t.slice(0, 7) : d.toLocaleDateString(undefined, { year: 'numeric', month: 'long', timeZone: 'UTC' });
}

// -- grid ------------------------------------------------------------------------------------------------
function ratio(it) { return it.w && it.h ? it.w / it.h : 1.5; }

function tile(it, index) {
  const a = el('a', { href: '#', class: 'tile', 'data-index': String(index), 'data-id': it.id });
  a.setAttribute('aria-label', it.name);
  const placeholder = () => { a.replaceChildren(el('span', { class: 'placeholder' }, it.name)); };
  if (it.rs === 'failed') placeholder();
  else {
    const img = el('img', { src: `${BASE}/media/${it.id}/320`, loading: 'lazy', decoding: 'async', alt: it.name });
    img.addEventListener('error', placeholder, { once: true });
    a.append(img);
  }
  if (it.k === 'v') a.append(el('span', { class: 'badge' }, '▶ video'));
  a.addEventListener('click', (ev) => { ev.preventDefault(); openViewer(index); });
  return a;
}

function layoutGroup(group) {
  const width = group.grid.clientWidth || document.documentElement.clientWidth - 32;
  const jl = window.require ? window.require('justified-layout') : null;
  const rowHeight = width < 600 ? 110 : 180;
  const boxes = group.items.map(({ it }) => ratio(it));
  const geometry = jl
    ? jl(boxes, { containerWidth: width, targetRowHeight: rowHeight, boxSpacing: 4, containerPadding: 0 })
    : { boxes: boxes.map((r, i) => ({ left: (i % 4) * (width / 4), top: Math.floor(i / 4) * rowHeight, width: width / 4 - 4, height: rowHeight - 4 })),
        containerHeight: Math.ceil(boxes.length / 4) * rowHeight };
  group.grid.style.height = `${geometry.containerHeight}px`;
  geometry.boxes.forEach((b, i) => {
    const t = group.items[i].node;
    t.style.left = `${b.left}px`; t.style.top = `${b.top}px`;
    t.style.width = `${b.width}px`; t.style.height = `${b.height}px`;
  });
}

function append(items, grouped) {
  for (const it of items) {
    const index = view.items.length;
    view.items.push(it);
    view.slides.push(slide(it));  // the viewer's live data source: pages loaded while it is open join it
    const key = grouped ? it.t.slice(0, 7) : '';
    let g = view.groups[view.groups.length - 1];
    if (!g || g.key !== key) {
      const section = el('section');
      if (grouped) section.append(el('h2', {}, monthLabel(it.t)));
      const grid = el('div', { class: 'grid' });
      section.append(grid);
      $('content').append(section);
      g = { key, grid, items: [] };
      view.groups.push(g);
    }
    const node = tile(it, index);
    g.grid.append(node);
    g.items.push({ it, node });
  }
  const touched = new Set(view.groups.slice(-Math.max(1, new Set(items.map((i) => i.t.slice(0, 7))).size + 1)));
  touched.forEach(layoutGroup);
}

async function loadMore() {
  if (!view || view.loading || view.items.length + view.offset >= view.total) return;
  view.loading = true;
  try {
    const sep = view.url.includes('?') ? '&' : '?';
    const page = await api(`${view.url}${sep}offset=${view.offset + view.items.length}&limit=${PAGE}`);
    view.total = page.total;
    append(page.items, view.grouped);
    $('status').textContent = view.total ? `${view.total} items` : 'Nothing here yet.';
  } catch (err) {
    $('status').textContent = `Could not load: ${err.message}`;
  } finally {
    view.loading = false;
  }
  if (sentinelVisible()) loadMore();
}

function sentinelVisible() {
  return $('sentinel').getBoundingClientRect().top < window.innerHeight + 800;
}

async function showGrid(title, url, { grouped = false, offset = 0 } = {}) {
  $('title').textContent = title;
  $('content').replaceChildren();
  view = { url, items: [], slides: [], groups: [], total: Infinity, offset, grouped, loading: false };
  await loadMore();
}

// -- views -----------------------------------------------------------------------------------------------
async function timeline(offset = 0) {
  await showGrid('Timeline', '/api/timeline', { grouped: true, offset });
  const data = await api('/api/timeline?limit=1');
  const sel = $('years');
  sel.replaceChildren(el('option', { value: '' }, 'year…'));
  for (const y of data.years) sel.append(el('option', { value: String(y.offset) }, y.year));
  $('jump').hidden = data.years.length < 1;
}

async function folders() {
  $('jump').hidden = true;
  $('title').textContent = 'Folders';
  const data = await api('/api/folders');
  const ul = el('ul', { class: 'list' });
  for (const f of data.folders) {
    const li = el('li');
    li.append(el('a', { href: `#/folder/${encodeURIComponent(f.folder)}` }, f.folder || '(top level)'),
      document.createTextNode(` · ${f.count}`));
    ul.append(li);
  }
  view = null;
  $('content').replaceChildren(ul);
  $('status').textContent = `${data.folders.length} folders`;
}

async function albums() {
  $('jump').hidden = true;
  $('title').textContent = 'Albums';
  const data = await api('/api/albums');
  const ul = el('ul', { class: 'list' });
  for (const a of data.albums) {
    const li = el('li');
    const out = el('span', { class: 'share-url' });
    const button = el('button', { type: 'button' }, 'Share for 7 days');
    button.addEventListener('click', async () => {
      try {
        const s = await api('/api/shares', {
          method: 'POST', headers: { 'content-type': 'application/json', 'x-csrf-token': csrf },
          body: JSON.stringify({ kind: 'album', selector: a.name, expires: '7d' }),
        });
        out.textContent = s.url;
      } catch (err) { out.textContent = `Could not share: ${err.message}`; }
    });
    li.append(el('a', { href: `#/album/${encodeURIComponent(a.name)}` }, a.name), document.createTextNode(` · ${a.count}`),
      button, out);
    ul.append(li);
  }
  view = null;
  $('content').replaceChildren(ul);
  $('status').textContent = `${data.albums.length} albums`;
}

async function route() {
  const h = decodeURIComponent(location.hash.slice(1));
  if (SHARED) {
    const first = await api('/api/items?limit=1');
    document.title = first.title;
    return showGrid(first.title, '/api/items');
  }
  $('jump').hidden = true;
  if (h.startsWith('/folder/')) return showGrid(h.slice(8) || '(top level)', `/api/folder?path=${encodeURIComponent(h.slice(8))}`);
  if (h.startsWith('/album/')) return showGrid(h.slice(7), `/api/album?name=${encodeURIComponent(h.slice(7))}`);
  if (h === '/folders') return folders();
  if (h === '/albums') return albums();
  return timeline();
}

// -- viewer ----------------------------------------------------------------------------------------------
function slide(it) {
  const long = 1600;
  const r = ratio(it);
  const w = it.w && it.h ? Math.min(it.w, r >= 1 ? long : long * r) : 1600;
  const h = Math.round(w / r);
  const type = it.k === 'v' ? 'video' : it.rs === 'failed' ? 'placeholder' : 'image';
  return { src: `${BASE}/media/${it.id}/1600`, width: Math.round(w), height: h, alt: it.name, type, item: it };
}

function detailRows(d) {
  const rows = [
    ['File', d.path],
    ['Taken', d.t ? `${d.t}${d.tm ? ' (file time: no capture date recorded)' : ''}` : 'unknown'],
    ['Camera', d.camera || '—'],
    ['Size', `${(d.size / 1048576).toFixed(2)} MB${d.w ? ` · ${d.w}×${d.h}` : ''}${d.dur ? ` · ${d.dur.toFixed(1)} s` : ''}`],
    ['SHA-256', d.sha256],
  ];
  if (!SHARED) rows.push(['Verified', d.verdict ? `${d.verdict} on ${d.verified_at || 'unknown date'}` : 'not verified yet']);
  if (d.reason) rows.push(['Preview', `not available: ${d.reason}`]);
  return rows;
}

async function showInfo(box, it) {
  box.replaceChildren(el('span', {}, it.name));
  box.dataset.item = it.id;
  const d = await api(`/api/items/${it.id}`);
  if (box.dataset.item !== it.id) return;  // moved on while this was fetched
  const dl = el('dl');
  for (const [k, v] of detailRows(d)) {
    const dd = el('dd', {}, v);
    if (k === 'Verified') dd.className = d.verdict === 'ok' ? 'verdict-ok' : 'verdict-bad';
    dl.append(el('dt', {}, k), dd);
  }
  const link = el('a', { href: `${BASE}/media/${it.id}/original`, target: '_blank', rel: 'noopener' }, 'Open original');
  const row = el('dd');
  row.append(link);
  dl.append(el('dt', {}, 'Original'), row);
  box.replaceChildren(dl);
  if (!SHARED) box.append(albumForm(it));
}

function albumForm(it) {
  const form = el('form', { class: 'album-add' });
  const input = el('input', { type: 'text', name: 'album', placeholder: 'album name', 'aria-label': 'Album name', maxlength: '200' });
  const out = el('span', { role: 'status' });
  form.append(input, el('button', { type: 'submit' }, 'Add to album'), out);
  form.addEventListener('keydown', (ev) => ev.stopPropagation());  // typing is not viewer navigation
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    try {
      const r = await api('/api/album/edit', {
        method: 'POST', headers: { 'content-type': 'application/json', 'x-csrf-token': csrf },
        body: JSON.stringify({ name: input.value, add: [it.id], remove: [] }),
      });
      out.textContent = `added: ${r.name} has ${r.count}`;
    } catch (err) { out.textContent = `Could not add: ${err.message}`; }
  });
  return form;
}

let lightbox = null;
function openViewer(index) {
  if (lightbox) lightbox.destroy();
  lightbox = new PhotoSwipeLightbox({
    dataSource: view.slides,
    pswpModule: () => import('./vendor/photoswipe.esm.min.js'),
    bgOpacity: 0.95,
    wheelToZoom: true,
  });
  lightbox.on('contentLoad', (e) => {
    const { content } = e;
    if (content.type !== 'video' && content.type !== 'placeholder') return;
    e.preventDefault();
    const it = content.data.item;
    content.element = el('div', { class: 'pswp-media' });
    if (content.type === 'video') {
      const v = el('video', { controls: '', preload: 'metadata', playsinline: '', poster: `${BASE}/media/${it.id}/1600` });
      v.src = `${BASE}/media/${it.id}/original`;
      content.element.append(v);
    } else {
      content.element.append(el('span', { class: 'placeholder' }, it.name));
    }
    content.state = 'loaded';
  });
  lightbox.on('contentDeactivate', ({ content }) => {
    const v = content.element && content.element.querySelector && content.element.querySelector('video');
    if (v) v.pause();
  });
  lightbox.on('uiRegister', () => {
    lightbox.pswp.ui.registerElement({
      name: 'info', appendTo: 'root', order: 9, isButton: false,
      onInit: (box, pswp) => {
        box.classList.add('pswp__info');
        box.setAttribute('aria-live', 'polite');
        pswp.on('change', () => { showInfo(box, pswp.currSlide.data.item).catch(() => {}); });
      },
    });
  });
  // The viewer answers keys only once open: say so (tests and assistive tools wait for it).
  lightbox.on('openingAnimationEnd', () => { document.body.dataset.viewer = 'open'; });
  lightbox.on('close', () => { delete document.body.dataset.viewer; });
  lightbox.on('change', () => {
    const i = lightbox.pswp.currIndex;
    if (i >= view.items.length - 5) loadMore();
  });
  lightbox.init();
  lightbox.loadAndOpen(index);
}

// -- start -----------------------------------------------------------------------------------------------
async function start() {
  if (SHARED) {
    $('nav').hidden = true;
  } else {
    const s = await api('/api/session');
    csrf = s.csrf;
  }
  $('years').addEventListener('change', (ev) => { if (ev.target.value !== '') showGrid('Timeline', '/api/timeline', { grouped: true, offset: Number(ev.target.value) }); });
  observer = new IntersectionObserver((entries) => { if (entries.some((e) => e.isIntersecting)) loadMore(); }, { rootMargin: '800px' });
  observer.observe($('sentinel'));
  let resizeTimer = 0;
  window.addEventListener('resize', () => {
    clearTimeout(resizeTimer);
    resizeTimer = setTimeout(() => { if (view) view.groups.forEach(layoutGroup); }, 150);
  });
  window.addEventListener('hashchange', () => { route(); });
  await route();
  document.body.dataset.ready = '1';
}

start().catch((err) => { $('status').textContent = `Could not start: ${err.message}`; });

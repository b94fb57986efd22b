// pacsbox viewer: series scroll and cine, window/level (drag and presets), zoom, pan, rotate,
// flip, invert, brightness/contrast, edge/sharpen/emboss, reset, touch gestures, measurements
// (length, angle, ellipse and rectangle ROI) and orientation markers. The page's DOM is
// web-ui/templates/viewer.html; the URLs are docs/web-api.md.
//
// Why plain canvas + JS and not a vendored viewer library (cornerstone3D, OHIF, dwv):
// - the server already decodes every accepted transfer syntax (JPEG family, JPEG-LS, JPEG 2000,
//   RLE, deflate, big endian) to plain 16-bit or RGB pixels, so the browser needs no codecs —
//   which is most of what those libraries (and their WASM decoders) bring;
// - cornerstone3D is several MB of modules that need a bundler (a build step, node in the
//   firmware build, a vendored dist to keep current); these files are small ES modules with no
//   dependencies, loaded by the browser as they are (no bundler), embedded in the binary,
//   auditable, and run under our CSP (`default-src 'self'`, no eval, no workers from blobs, no
//   inline code);
// - every tool the issue lists is a few lines over a 16-bit array: a lookup table for the
//   window, a 3×3 convolution for the filters, one canvas transform for the geometry.
//
// The modules: viewer-pixels.js (the pure pixel maths, tested with node: web-ui/tests/),
// viewer-net.js (URLs, fetch, error wording), viewer-cache.js (per-frame info/preview/pixels,
// LRU), viewer-view.js (zoom, pan, rotation, flips), viewer-input.js (pointer, wheel, keys),
// viewer-measure.js (lengths, angles, ROI statistics, orientation letters: pure, tested with node),
// viewer-compare.js (a prior study in a second pane, scrolled together by viewer-sync.js),
// viewer-keys.js (key images: the set, its saves as Key Object Selections, the filter's list).
// This one holds what is on screen and draws it, and the series strip.
//
// Rendering pipeline for the current image (all in image space, then one transform to screen):
//   1. first paint: /frames/{n}/preview.png (8-bit, the file's own window, server-cached);
//   2. /frames/{n}/pixels: gray16u/gray16s stored values → modality values (rescale slope and
//      intercept from /info) → linear window (PS3.3 C.11.2.1.2.1) → 8 bit, MONOCHROME1 inverted;
//      rgb8 is drawn as is with the window applied per channel (identity until the user moves it);
//   3. brightness/contrast and invert (one 256-entry table), then the 3×3 filter on the 8-bit
//      image, into an offscreen canvas of the image's size;
//   4. drawn on the visible canvas with zoom, pan, rotation and flips (nearest neighbour when
//      magnified, smoothed when minified).
// `window.pacsboxViewer` is the hook of the browser tests (tests/browser/) and of the other pane of
// "Compare" (viewer-compare.js): state read-only; `show(i)` and `positions()` for scrolling together.

import { num, t } from './i18n.js';
import { ImageCache, imageDims, keyOf, settled } from './viewer-cache.js';
import { initCompare } from './viewer-compare.js';
import { bindInput } from './viewer-input.js';
import {
  angle, calibration, describeMeasurement, edgeLabels, length, roiStats,
} from './viewer-measure.js';
import { KeySet, isKey, keyList } from './viewer-keys.js';
import { HttpError, api, describe, get } from './viewer-net.js';
import {
  KERNELS, PRESETS, convolve, defaultWindow, renderGray, renderPreview, renderRgb, toneTable, valueRange,
} from './viewer-pixels.js';
import { View } from './viewer-view.js';

const FIRST_FRAME = 1; // frames/{n} counts from 1, like DICOM's frame numbers
const CINE_MS = 100; // 10 images per second
const CACHE_BYTES = 384 * 1024 * 1024;
/**
 * Images shown less than this apart are being scrolled through: each gets its preview, and
 * full pixels wait until the user has stayed on one image this long.
 */
const SCROLL_SETTLE_MS = 150;
const PREFETCH = 3; // images each side: full pixels for the nearest two, previews for the third

// ---------------------------------------------------------------- DOM
const root = document.getElementById('viewer');
if (!root) throw new Error('viewer.js needs the #viewer element of viewer.html');
const $ = (id) => document.getElementById(id);
const canvas = $('canvas');
const ctx = canvas.getContext('2d');
const stage = $('stage');
const slice = $('slice');
const seriesSel = $('series-select');
const strip = $('series-strip'); // absent in the compare pane (embed)
const presetSel = $('preset');
const filterSel = $('filter');
const brightIn = $('brightness');
const contrastIn = $('contrast');
const ovBl = $('ov-bl');
const ovBr = $('ov-br');
const verror = $('verror');
const marksList = $('measurements');
const edges = { left: $('ov-left'), right: $('ov-right'), top: $('ov-top'), bottom: $('ov-bottom') };
const cineBtn = document.querySelector('[data-act="cine"]');
const moreBtn = $('more-btn');
const moreTools = $('more-tools');
const off = document.createElement('canvas'); // the image, rendered at its own size
const offCtx = off.getContext('2d');

// ---------------------------------------------------------------- state
/** Which images: the study's series, the one shown, its images and the current one. */
const nav = {
  study: root.dataset.study || '',
  seriesList: [],
  series: null, // element of seriesList
  images: [], // [{sop, frame, frames}] for the series; frames of multi-frame instances expanded
  index: 0,
  playing: false,
};
/** How pixels become grey levels: the window while the user has set one, tone and filter. */
const look = {
  wc: null, // else each image's own default window
  ww: null,
  wlUser: false,
  brightness: 0,
  contrast: 0,
  invert: false,
  filter: 'none',
};
const view = new View();
/** What the canvas shows. */
const shown = {
  source: 'none', // none | loading (previous picture) | preview | pixels | error
  error: '',
  renders: 0,
  matrix: new DOMMatrix(),
  dims: { w: 0, h: 0 },
  timings: { script: performance.now(), firstPaint: null, pixelsPaint: null },
  orientation: null, // letters at the screen's edges, or null
};
let tool = 'wl';
let seriesToken = 0;
let renderScheduled = false;
let renderedKey = ''; // what is in `off`
let waiters = [];
let cineTimer = 0;
let lastShow = -Infinity;
let settleTimer = 0;
/**
 * Measurements per image (key of sop + frame), kept for the page's life so that they are there
 * again when the user scrolls back; `draft` is the one being drawn on the current image.
 */
const marks = new Map();
let draft = null;
let markSeq = 0;

const currentImage = () => nav.images[nav.index] || null;
const cache = new ImageCache(CACHE_BYTES, () => {
  const cur = currentImage();
  return cur ? keyOf(cur) : '';
});

// ---------------------------------------------------------------- windows
function currentWindow(e) {
  if (look.wlUser && look.wc !== null) return { center: look.wc, width: look.ww };
  return e ? defaultWindow(e.info, e.pixels) : null;
}

// ---------------------------------------------------------------- 8-bit rendering (image space)
/** Fill `off` with the current image, 8-bit, tone and filter applied. Returns its source. */
function renderImage(e) {
  const win = currentWindow(e);
  const src = e.pixels ? 'pixels' : e.preview ? 'preview' : null;
  if (!src) return null;
  const key = [e.key, src, win ? `${win.center}/${win.width}` : '', look.brightness, look.contrast, look.invert, look.filter].join('|');
  if (key === renderedKey) return src;
  const tone = toneTable(look);
  let img;
  if (src === 'pixels') {
    const p = e.pixels;
    img = new ImageData(p.cols, p.rows);
    if (p.kind === 'rgb8') renderRgb(p, win, tone, img.data);
    else renderGray(p, e.info, win, tone, new Uint32Array(img.data.buffer));
  } else {
    img = new ImageData(e.preview.width, e.preview.height);
    renderPreview(e.preview.data, tone, img.data);
  }
  if (KERNELS[look.filter]) {
    const gray = src === 'pixels' && e.pixels.kind !== 'rgb8';
    const out = new ImageData(img.width, img.height);
    convolve(img.data, img.width, img.height, KERNELS[look.filter], look.filter === 'edge', gray, out.data);
    img = out;
  }
  off.width = img.width;
  off.height = img.height;
  offCtx.putImageData(img, 0, 0);
  renderedKey = key;
  return src;
}

// ---------------------------------------------------------------- drawing (screen space)
const fitScale = (dims) => view.fitScale(stage.clientWidth || 1, stage.clientHeight || 1, dims);

function draw(e) {
  const dpr = window.devicePixelRatio || 1;
  const cw = Math.max(1, stage.clientWidth);
  const ch = Math.max(1, stage.clientHeight);
  const W = Math.round(cw * dpr);
  const H = Math.round(ch * dpr);
  if (canvas.width !== W || canvas.height !== H) {
    canvas.width = W;
    canvas.height = H;
  }
  ctx.setTransform(1, 0, 0, 1, 0, 0);
  ctx.fillStyle = '#000';
  ctx.fillRect(0, 0, W, H);
  if (!e || shown.source === 'none' || shown.source === 'error') return;
  const dims = imageDims(e);
  shown.dims = dims;
  const scale = fitScale(dims) * view.zoom * dpr;
  const m = view.matrix(W, H, dpr, scale, dims);
  shown.matrix = m;
  ctx.setTransform(m);
  const onScreen = scale * (dims.w / off.width);
  ctx.imageSmoothingEnabled = onScreen < 1;
  ctx.imageSmoothingQuality = 'high';
  ctx.drawImage(off, 0, 0, dims.w, dims.h);
  ctx.setTransform(1, 0, 0, 1, 0, 0);
  drawMarks(e, dpr);
}

// ---------------------------------------------------------------- measurements
const MIN_DRAG_PX = 3; // a click without a drag draws nothing

/** CSS pixel on the stage → image coordinates. */
function toImage(p) {
  const dpr = window.devicePixelRatio || 1;
  const q = shown.matrix.inverse().transformPoint(new DOMPoint(p.x * dpr, p.y * dpr));
  return { x: q.x, y: q.y };
}

function toScreen(q) {
  const p = shown.matrix.transformPoint(new DOMPoint(q.x, q.y));
  return { x: p.x, y: p.y };
}

/** Results of a measurement on entry `e` (lengths in the image's calibration). */
function evaluate(m, e) {
  const cal = calibration(e && e.info);
  const [a, b, c] = m.pts;
  const r = { kind: m.kind, id: m.id, points: m.pts.map((q) => ({ x: q.x, y: q.y })) };
  if (m.kind === 'length') r.length = length(a, b, cal);
  else if (m.kind === 'angle') r.angle = c ? angle(a, b, c, cal) : NaN;
  else r.stats = e && e.pixels ? roiStats(m.kind, a, b, e.pixels, e.info, cal) : null;
  r.unit = m.kind === 'angle' ? '°' : cal.unit;
  r.text = r.stats === null ? t('waiting for full pixels…') : describeMeasurement(r, cal, e && e.info && e.info.value_unit);
  return r;
}

function currentMarks() {
  const img = currentImage();
  return img ? marks.get(keyOf(img)) || [] : [];
}

function strokeOutlined(dpr, path) {
  ctx.lineJoin = 'round';
  ctx.strokeStyle = '#000';
  ctx.lineWidth = 3.5 * dpr;
  ctx.stroke(path);
  ctx.strokeStyle = '#ffd84d';
  ctx.lineWidth = 1.5 * dpr;
  ctx.stroke(path);
}

function label(dpr, at, text) {
  ctx.font = `${12 * dpr}px ui-monospace, monospace`;
  ctx.textBaseline = 'bottom';
  ctx.lineWidth = 3 * dpr;
  ctx.strokeStyle = '#000';
  ctx.strokeText(text, at.x + 6 * dpr, at.y - 4 * dpr);
  ctx.fillStyle = '#ffd84d';
  ctx.fillText(text, at.x + 6 * dpr, at.y - 4 * dpr);
}

function drawMarks(e, dpr) {
  const list = draft ? [...currentMarks(), draft] : currentMarks();
  for (const m of list) {
    const s = m.pts.map(toScreen);
    const path = new Path2D();
    if (m.kind === 'length' || m.kind === 'angle') {
      path.moveTo(s[0].x, s[0].y);
      for (const q of s.slice(1)) path.lineTo(q.x, q.y);
    } else {
      // rotations are quarter turns, so the image's box stays a box on screen
      const x0 = Math.min(s[0].x, s[1].x);
      const y0 = Math.min(s[0].y, s[1].y);
      const w = Math.abs(s[1].x - s[0].x);
      const h = Math.abs(s[1].y - s[0].y);
      if (m.kind === 'rect') path.rect(x0, y0, w, h);
      else path.ellipse(x0 + w / 2, y0 + h / 2, w / 2, h / 2, 0, 0, 2 * Math.PI);
    }
    strokeOutlined(dpr, path);
    if (m !== draft || m.kind !== 'angle' || m.pts.length === 3) label(dpr, s[s.length - 1], evaluate(m, e).text);
  }
}

/** A measuring tool's name in the page's language (the toolbar's word). */
function kindLabel(kind) {
  return { length: t('Length'), angle: t('Angle'), ellipse: t('Ellipse'), rect: t('Rect') }[kind] || kind;
}

function listMarks() {
  const img = currentImage();
  const e = img ? cache.peek(img) : null;
  const list = currentMarks();
  marksList.textContent = '';
  list.forEach((m, i) => {
    const li = document.createElement('li');
    li.dataset.id = String(m.id);
    li.append(`${kindLabel(m.kind)}: ${evaluate(m, e).text}`); // text, never HTML
    const rm = document.createElement('button');
    rm.type = 'button';
    rm.textContent = '×';
    rm.title = t('Remove this measurement');
    rm.setAttribute('aria-label', t('Remove {} {}', kindLabel(m.kind), i + 1));
    rm.addEventListener('click', () => removeMark(m.id));
    li.append(rm);
    marksList.append(li);
  });
  marksList.hidden = list.length === 0;
}

function removeMark(id) {
  const img = currentImage();
  if (!img) return;
  const k = keyOf(img);
  const rest = (marks.get(k) || []).filter((m) => m.id !== id);
  if (rest.length) marks.set(k, rest);
  else marks.delete(k);
  schedule();
}

/** Pointer events of a measuring tool, in CSS pixels on the stage (from viewer-input.js). */
function measure(phase, p) {
  const img = currentImage();
  if (!img || shown.source === 'none' || shown.source === 'error') return;
  const q = toImage(p);
  if (phase === 'cancel') {
    draft = null;
  } else if (phase === 'start') {
    if (draft && draft.kind === 'angle' && draft.pts.length === 3 && draft.key === keyOf(img)) {
      draft.pts[2] = q; // the second arm: from the vertex to here
      draft.screen = p;
    } else {
      draft = { id: ++markSeq, kind: tool, key: keyOf(img), pts: [q, q], screen: p };
    }
  } else if (draft) {
    draft.pts[draft.pts.length - 1] = q;
    if (phase === 'end') {
      const moved = Math.hypot(p.x - draft.screen.x, p.y - draft.screen.y) >= MIN_DRAG_PX;
      if (draft.kind === 'angle' && draft.pts.length === 2) {
        // first arm drawn: the vertex is its end; the second arm follows the next click or drag
        if (moved) draft.pts.push({ ...q });
        else draft = null;
      } else if (moved || (draft.kind === 'angle' && draft.pts.length === 3)) {
        const k = draft.key;
        const done = { id: draft.id, kind: draft.kind, pts: draft.pts };
        marks.set(k, [...(marks.get(k) || []), done]);
        draft = null;
      } else {
        draft = null;
      }
    }
  }
  schedule();
}

function overlays(e) {
  const n = nav.images.length;
  const img = currentImage();
  const s = nav.series;
  // Patient and study (top corners) come with the page; these change with the image.
  const bl = [];
  if (s) bl.push(t('Series {}', `${s.number ?? ''} ${s.modality || ''} ${s.description || ''}`).replace(/\s+/g, ' ').trim());
  if (n) bl.push(t('Image {} / {}', num(nav.index + 1), num(n)) + (img && img.frames > 1 ? t(' (frame {})', num(img.frame)) : ''));
  const inf = e && e.info;
  // values read off the image are written as reading tools write them (no grouping): counts are grouped
  const mm = (v) => `${Math.round(v * 100) / 100} mm`;
  if (inf && (inf.slice_location != null || inf.slice_thickness != null)) {
    bl.push([inf.slice_location != null ? t('Loc {}', mm(inf.slice_location)) : '',
      inf.slice_thickness != null ? t('Thk {}', mm(inf.slice_thickness)) : ''].filter(Boolean).join('  '));
  }
  if (inf && (inf.kvp != null || inf.exposure_mas != null)) {
    bl.push([inf.kvp != null ? `${Math.round(inf.kvp)} kVp` : '',
      inf.exposure_mas != null ? `${Math.round(inf.exposure_mas * 10) / 10} mAs` : ''].filter(Boolean).join('  '));
  }
  if (e && e.pixels) bl.push(`${e.pixels.cols} × ${e.pixels.rows}`);
  ovBl.textContent = bl.join('\n');
  const br = [];
  const win = e ? currentWindow(e) : null;
  if (win && !(e && e.pixels && e.pixels.kind === 'rgb8' && !look.wlUser)) {
    br.push(t('W {}  L {}', Math.round(win.width), Math.round(win.center)));
  }
  const scale = e ? fitScale(shown.dims) * view.zoom : 1;
  br.push(t('Zoom {}%', Math.round(scale * 100)) + (view.rotation ? `  ⟳${view.rotation}°` : '') +
    (view.flipH ? '  ⇋' : '') + (view.flipV ? '  ⇵' : '') + (look.invert ? `  ${t('inv')}` : ''));
  if (look.filter !== 'none') br.push({ edge: t('Edge'), sharpen: t('Sharpen'), emboss: t('Emboss') }[look.filter] || look.filter);
  if (shown.source === 'preview') br.push(t('preview'));
  ovBr.textContent = br.join('\n');
  const lab = e && e.info && shown.source !== 'none' && shown.source !== 'error'
    ? edgeLabels(e.info, (dx, dy) => {
      // a step on screen, back through the view's rotation and flips, into the image
      const inv = shown.matrix.inverse();
      const x = inv.a * dx + inv.c * dy;
      const y = inv.b * dx + inv.d * dy;
      const n = Math.hypot(x, y) || 1;
      return { x: x / n, y: y / n };
    })
    : null;
  for (const side of Object.keys(edges)) edges[side].textContent = lab ? lab[side] : '';
  shown.orientation = lab;
  listMarks();
  keyState();
}

/** `soft`: the image is on screen anyway (a preview), so the note sits below it. */
function showError(msg, soft = false) {
  verror.classList.toggle('soft', !!soft);
  if (msg) {
    verror.textContent = msg; // never innerHTML: server text is text
    verror.hidden = false;
  } else {
    verror.textContent = '';
    verror.hidden = true;
  }
  shown.error = msg || '';
}

function render() {
  renderScheduled = false;
  const img = currentImage();
  const e = img ? cache.entry(img) : null;
  let src = null;
  if (e) {
    try {
      src = renderImage(e);
    } catch (err) {
      src = null;
      e.pixelsErr = e.pixelsErr || err;
    }
  }
  if (src) {
    shown.source = src;
    const now = performance.now(); // ms since navigation start
    if (shown.timings.firstPaint === null) shown.timings.firstPaint = now;
    if (src === 'pixels' && shown.timings.pixelsPaint === null) shown.timings.pixelsPaint = now;
    // an image without full pixels but with a preview still shows; say why it is only a preview
    const previewOnly = e.pixelsErr && e.pixels === null && settled(e);
    const why = previewOnly && e.pixelsErr instanceof HttpError ? `${e.pixelsErr.status}: ${e.pixelsErr.text}` : describe(e.pixelsErr);
    showError(previewOnly ? t('Preview only, no window/level here ({})', why) : '', true);
  } else if (e && settled(e) && (e.previewErr || e.pixelsErr)) {
    shown.source = 'error';
    showError(describe(e.pixelsErr || e.previewErr));
  } else if (!e) {
    shown.source = shown.error ? 'error' : 'none';
  } else {
    // still loading: keep the previous picture on the canvas (no black flash while scrolling)
    shown.source = 'loading';
  }
  if (shown.source !== 'loading') draw(e);
  overlays(e);
  shown.renders++;
  settle();
}

function isReady() {
  if (renderScheduled) return false;
  const img = currentImage();
  if (!img) return shown.source === 'error' || (seriesToken > 0 && nav.images.length === 0 && !!shown.error);
  const e = cache.peek(img);
  if (!e) return false;
  if (shown.source === 'pixels') return true;
  return !!settled(e) && (shown.source === 'preview' || shown.source === 'error');
}

function settle() {
  if (!isReady() || !waiters.length) return;
  const w = waiters;
  waiters = [];
  for (const f of w) f(snapshot());
}

function schedule() {
  if (renderScheduled) return;
  renderScheduled = true;
  requestAnimationFrame(render);
}

// ---------------------------------------------------------------- images and series
function show(index) {
  const n = nav.images.length;
  if (!n) return;
  const i = Math.max(0, Math.min(n - 1, index | 0));
  if (i !== nav.index) draft = null;
  nav.index = i;
  slice.value = String(i);
  const img = nav.images[i];
  const e = cache.entry(img);
  const token = seriesToken;
  const again = () => {
    if (token === seriesToken && currentImage() && keyOf(currentImage()) === e.key) schedule();
  };
  const now = performance.now();
  const scrolling = !nav.playing && now - lastShow < SCROLL_SETTLE_MS;
  lastShow = now;
  clearTimeout(settleTimer);
  // what was scrolled past stops loading: the image on screen comes first
  cache.cancelExcept(neighbourKeys(i));
  if (!e.pixels && !e.preview) cache.loadPreview(e).then(again);
  if (!e.info) cache.info(e.sop).then((inf) => { e.info = inf; again(); }, () => {});
  const full = () => {
    if (token !== seriesToken || currentImage() !== img) return;
    // Also when a prefetch already brought the pixels during the scroll's settle time: the
    // screen still shows the preview, and only a render puts the pixels there (and tells
    // `whenReady` waiters).
    cache.loadPixels(e).then(again);
    prefetch(i);
  };
  if (scrolling) settleTimer = setTimeout(full, SCROLL_SETTLE_MS);
  else full();
  schedule();
  // for the other pane of "Compare" (viewer-compare.js): dispatched synchronously, so that a
  // pane moved by the other can tell its own move from the user's
  window.dispatchEvent(new CustomEvent('pacsbox:image', { detail: { index: i } }));
}

/** Keys of the image `i` and of those `prefetch(i)` may load. */
function neighbourKeys(i) {
  const n = nav.images.length;
  const keep = new Set();
  for (let d = -PREFETCH; d <= PREFETCH; d++) {
    const j = nav.playing ? (((i + d) % n) + n) % n : i + d;
    if (j >= 0 && j < n) keep.add(keyOf(nav.images[j]));
  }
  return keep;
}

/**
 * Neighbouring images: previews (cheap) for a few, full pixels for the next ones. Only cine
 * wraps from the last image to the first; a reader on image 1 will not look at image 300 next.
 */
function prefetch(i) {
  const n = nav.images.length;
  const step = nav.playing ? 1 : 0;
  for (let d = 1; d <= PREFETCH; d++) {
    for (const j of step ? [i + d] : [i + d, i - d]) {
      if (!step && (j < 0 || j >= n)) continue;
      const k = ((j % n) + n) % n;
      if (k === i) continue;
      const e = cache.entry(nav.images[k]);
      if (d <= 2) cache.loadPixels(e);
      else cache.loadPreview(e);
    }
  }
}

function setImages(list, keep) {
  nav.images = list;
  let idx = 0;
  if (keep) {
    const k = list.findIndex((x) => x.sop === keep.sop && x.frame === keep.frame);
    idx = k >= 0 ? k : 0;
  }
  nav.index = idx;
  slice.max = String(Math.max(0, list.length - 1));
  slice.value = String(idx);
  slice.disabled = list.length < 2;
}

/** Rebuild the image list when /info shows that an instance has several frames. */
function expandFrames(series, sop, frames) {
  if (series !== nav.series || !(frames > 1)) return;
  if (nav.images.some((x) => x.sop === sop && x.frame === FIRST_FRAME + 1)) return;
  const list = [];
  for (const img of nav.images) {
    if (img.sop === sop) {
      for (let f = 0; f < frames; f++) list.push({ sop, frame: FIRST_FRAME + f, frames });
    } else list.push(img);
  }
  setImages(list, currentImage());
  show(nav.index);
}

async function loadSeries(s) {
  seriesToken++;
  const token = seriesToken;
  stopCine();
  nav.series = s;
  renderedKey = '';
  showError('');
  const list = (s.instances || []).map((x) => ({ sop: x.sop, frame: FIRST_FRAME, frames: 1 }));
  setImages(list, null);
  if (!list.length) {
    shown.source = 'error';
    showError(t('This series has no images.'));
    schedule();
    return;
  }
  // the first image of a one-instance series decides whether it is a multi-frame series;
  // frame 1 exists either way, so its preview and pixels load meanwhile (first paint sooner)
  if (list.length === 1) {
    const first = cache.entry(list[0]);
    cache.loadPreview(first).then(() => { if (token === seriesToken) schedule(); });
    cache.loadPixels(first);
    try {
      const inf = await cache.info(list[0].sop);
      if (token !== seriesToken) return;
      if (inf.frames > 1) {
        const frames = [];
        for (let f = 0; f < inf.frames; f++) frames.push({ sop: list[0].sop, frame: FIRST_FRAME + f, frames: inf.frames });
        setImages(frames, null);
      }
    } catch (_e) {
      /* shown when the image loads */
    }
  }
  show(0);
  // the other instances' frame counts, a few requests at a time, in the background
  const sops = list.length > 1 ? list.map((x) => x.sop) : [];
  let next = 0;
  const worker = async () => {
    while (next < sops.length && token === seriesToken) {
      const sop = sops[next++];
      try {
        const inf = await cache.info(sop);
        if (token === seriesToken && inf.frames > 1) expandFrames(s, sop, inf.frames);
      } catch (_e) {
        /* that image shows its own error */
      }
    }
  };
  // after the first image's pixels, so that these small requests never delay it
  const first = cache.peek(nav.images[0]);
  Promise.resolve(first && first.pixelsP).then(() => {
    for (let w = 0; w < 2; w++) worker();
  });
}

async function start() {
  let list;
  try {
    list = await (await get(api.series(nav.study), 'application/json')).json();
  } catch (err) {
    seriesToken++;
    shown.source = 'error';
    showError(t('Cannot list the series of this study: {}', describe(err)));
    schedule();
    return;
  }
  nav.seriesList = Array.isArray(list) ? list : [];
  seriesSel.textContent = '';
  for (const s of nav.seriesList) {
    const o = document.createElement('option');
    o.value = s.uid;
    const n = (s.instances || []).length;
    o.textContent = `${s.number ?? ''} ${s.modality || ''} ${s.description || ''} (${num(n)})`.replace(/\s+/g, ' ').trim();
    seriesSel.appendChild(o);
  }
  if (!nav.seriesList.length) {
    seriesToken++;
    shown.source = 'error';
    showError(t('This study has no series.'));
    schedule();
    return;
  }
  buildStrip();
  await keysLoaded;
  keyOption();
  if (new URLSearchParams(location.search).get('keys') === '1' && keys.all.length) {
    showKeyImages();
    return;
  }
  const want = root.dataset.series || new URLSearchParams(location.search).get('series') || '';
  const s = nav.seriesList.find((x) => x.uid === want) || nav.seriesList[0];
  seriesSel.value = s.uid;
  markStrip(s.uid);
  loadSeries(s);
}

/**
 * The series strip: a server-rendered thumbnail (the middle image, `/api/series/{uid}/thumbnail.png`)
 * of every series with its number, modality, description and image count; a click shows it.
 */
function buildStrip() {
  if (!strip) return;
  strip.textContent = '';
  for (const s of nav.seriesList) {
    const b = document.createElement('button');
    b.type = 'button';
    b.className = 'thumb';
    b.dataset.series = s.uid;
    const n = (s.instances || []).length;
    const label = `${s.number ?? ''} ${s.modality || ''} ${s.description || ''}`.replace(/\s+/g, ' ').trim();
    b.title = n === 1 ? t('{} (1 image)', label) : t('{} ({} images)', label, num(n));
    const img = document.createElement('img');
    img.loading = 'lazy';
    img.decoding = 'async';
    img.alt = '';
    img.width = 64;
    img.height = 64;
    if (n) img.src = api.thumbnail(s.uid);
    const cap = document.createElement('span');
    cap.className = 'cap';
    const name = document.createElement('span');
    name.className = 'name';
    name.textContent = label; // text, never HTML
    const count = document.createElement('span');
    count.className = 'count';
    count.textContent = num(n);
    cap.append(name, count);
    b.append(img, cap);
    b.addEventListener('click', () => selectSeries(s.uid));
    strip.append(b);
  }
}

function markStrip(uid) {
  if (!strip) return;
  for (const b of strip.querySelectorAll('button.thumb')) {
    const on = b.dataset.series === uid;
    b.classList.toggle('on', on);
    if (on) b.setAttribute('aria-current', 'true');
    else b.removeAttribute('aria-current');
  }
  // the shown one in view, scrolling the strip only (scrollIntoView may move the page too)
  const cur = strip.querySelector('button.thumb.on');
  if (!cur) return;
  const sr = strip.getBoundingClientRect();
  const cr = cur.getBoundingClientRect();
  if (strip.scrollWidth > strip.clientWidth) strip.scrollLeft += cr.left - sr.left - (sr.width - cr.width) / 2;
  else strip.scrollTop += cr.top - sr.top - (sr.height - cr.height) / 2;
}

function selectSeries(uid) {
  const s = nav.seriesList.find((x) => x.uid === uid);
  if (!s) return;
  seriesSel.value = s.uid;
  markStrip(s.uid);
  const url = new URL(location.href);
  url.searchParams.set('series', s.uid);
  history.replaceState(null, '', url);
  loadSeries(s);
  window.dispatchEvent(new CustomEvent('pacsbox:series', { detail: { series: s.uid } }));
}

seriesSel.addEventListener('change', () => {
  if (seriesSel.value === KEY_FILTER) {
    showKeyImages();
    return;
  }
  selectSeries(seriesSel.value);
});

// ---------------------------------------------------------------- key images (viewer-keys.js)
/** The series menu's entry for the filter: every key image of the study, across series. */
const KEY_FILTER = 'key-images';
const keyBtn = $('key-btn');
const csrfInput = document.querySelector('input[name="csrf"]');
const keys = new KeySet(`/api/studies/${encodeURIComponent(nav.study)}/key-images`,
  csrfInput ? csrfInput.value : '', () => { keyOption(); keyState(); });
const keysLoaded = keys.load().catch((err) => { keys.error = t('Key images: {}', describe(err)); });
// marks not yet saved (the quiet time of viewer-keys.js) go out when the page is hidden or left
window.addEventListener('pagehide', () => keys.flush(true));
document.addEventListener('visibilitychange', () => {
  if (document.visibilityState === 'hidden') keys.flush(true);
});

function keyState() {
  const on = isKey(keys.ours, currentImage());
  keyBtn.textContent = on ? '★' : '☆';
  keyBtn.classList.toggle('on', on);
  keyBtn.setAttribute('aria-pressed', String(on));
  keyBtn.classList.toggle('muted', !keys.mayMark);
  keyBtn.title = keys.error || (keys.mayMark ? t('Key image (K)') : t('Key image (K): needs the report role'));
}

function keyOption() {
  let o = seriesSel.querySelector(`option[value="${KEY_FILTER}"]`);
  if (!keys.all.length) {
    if (o && seriesSel.value !== KEY_FILTER) o.remove();
    return;
  }
  if (!o) {
    o = document.createElement('option');
    o.value = KEY_FILTER;
    seriesSel.prepend(o);
  }
  o.textContent = `★ ${t('Key images')} (${num(keys.all.length)})`;
}

function showKeyImages() {
  seriesToken++;
  stopCine();
  nav.series = { uid: KEY_FILTER, description: t('Key images'), modality: '', number: '' };
  renderedKey = '';
  showError('');
  seriesSel.value = KEY_FILTER;
  markStrip(KEY_FILTER);
  setImages(keyList(keys.all), null);
  show(0);
}

// ---------------------------------------------------------------- tools
function setTool(t) {
  if (t !== tool) draft = null;
  tool = t;
  for (const b of document.querySelectorAll('[data-tool]')) b.classList.toggle('on', b.dataset.tool === t);
}

function step(d) {
  const n = nav.images.length;
  if (n) show(Math.max(0, Math.min(n - 1, nav.index + d)));
}

function startCine() {
  if (nav.images.length < 2 || nav.playing) return;
  nav.playing = true;
  cineBtn.classList.add('on');
  cineBtn.textContent = '⏸';
  cineBtn.title = t('Stop cine');
  // every image is shown: a tick while the current one is still loading waits for it
  cineTimer = setInterval(() => {
    if (shown.source !== 'loading' && !renderScheduled) show((nav.index + 1) % nav.images.length);
  }, CINE_MS);
}

function stopCine() {
  if (!nav.playing) return;
  nav.playing = false;
  clearInterval(cineTimer);
  cineBtn.classList.remove('on');
  cineBtn.textContent = '▶';
  cineBtn.title = t('Cine');
}

function setWindow(center, width) {
  look.wc = center;
  look.ww = Math.max(1, width);
  look.wlUser = true;
  schedule();
}

function fileWindow() {
  look.wlUser = false;
  look.wc = null;
  look.ww = null;
}

function reset() {
  view.reset();
  look.invert = false;
  look.brightness = 0;
  look.contrast = 0;
  look.filter = 'none';
  fileWindow();
  brightIn.value = '0';
  contrastIn.value = '0';
  filterSel.value = 'none';
  presetSel.value = '';
  for (const b of document.querySelectorAll('[data-act="invert"]')) b.classList.remove('on');
  schedule();
}

/** The phone's panel of less used tools (on a desktop they are always in the bar). */
function showMore(open) {
  moreTools.classList.toggle('open', open);
  moreBtn.setAttribute('aria-expanded', String(open));
  moreBtn.classList.toggle('on', open);
}

function act(a) {
  switch (a) {
    case 'rotate':
      view.rotation = (view.rotation + 90) % 360;
      break;
    case 'fliph':
      view.flipH = !view.flipH;
      break;
    case 'flipv':
      view.flipV = !view.flipV;
      break;
    case 'invert':
      look.invert = !look.invert;
      break;
    case 'cine':
      if (nav.playing) stopCine();
      else startCine();
      break;
    case 'reset':
      reset();
      break;
    case 'more':
      showMore(!moreTools.classList.contains('open'));
      return;
    case 'key':
      keys.toggle(currentImage());
      return;
    case 'unmeasure': {
      // Delete/Backspace: the half-drawn one, else this image's last
      const list = currentMarks();
      if (draft) draft = null;
      else if (list.length) removeMark(list[list.length - 1].id);
      break;
    }
    default:
      return;
  }
  for (const b of document.querySelectorAll(`[data-act="${a}"]`)) {
    if (a === 'fliph') b.classList.toggle('on', view.flipH);
    if (a === 'flipv') b.classList.toggle('on', view.flipV);
    if (a === 'invert') b.classList.toggle('on', look.invert);
  }
  schedule();
}

document.getElementById('toolbar').addEventListener('click', (ev) => {
  const b = ev.target.closest('button');
  if (!b) return;
  if (b.dataset.tool) setTool(b.dataset.tool);
  else if (b.dataset.act) act(b.dataset.act);
});

presetSel.addEventListener('change', () => {
  const v = presetSel.value;
  if (v === 'default') {
    fileWindow();
    schedule();
  } else if (PRESETS[v]) {
    setWindow(PRESETS[v].center, PRESETS[v].width);
  }
});
filterSel.addEventListener('change', () => {
  look.filter = KERNELS[filterSel.value] ? filterSel.value : 'none';
  schedule();
});
brightIn.addEventListener('input', () => {
  look.brightness = Number(brightIn.value) || 0;
  schedule();
});
contrastIn.addEventListener('input', () => {
  look.contrast = Number(contrastIn.value) || 0;
  schedule();
});
slice.addEventListener('input', () => show(Number(slice.value)));

bindInput(canvas, stage, {
  view,
  tool: () => tool,
  /** The window the user starts from when adjusting: the one on screen. */
  baseWindow: () => currentWindow(cache.peek(currentImage())) || { center: 0, width: 1 },
  valueRange: () => {
    const e = cache.peek(currentImage());
    return e ? valueRange(e.info, e.pixels) : valueRange(null, null);
  },
  setWindow,
  step,
  show,
  count: () => nav.images.length,
  act,
  schedule,
  measure,
});

// touching the image closes the panel, so that it never hides what the finger works on
canvas.addEventListener('pointerdown', () => showMore(false));

if (window.ResizeObserver) new ResizeObserver(() => schedule()).observe(stage);
else window.addEventListener('resize', schedule);
document.addEventListener('visibilitychange', () => { if (document.hidden) stopCine(); });

// ---------------------------------------------------------------- the test hook (read-only)
function snapshot() {
  const img = currentImage();
  const e = cache.peek(img);
  const win = e ? currentWindow(e) : null;
  const m = shown.matrix;
  return {
    ready: isReady(),
    index: nav.index,
    count: nav.images.length,
    sop: img ? img.sop : null,
    frame: img ? img.frame : null,
    series: nav.series ? nav.series.uid : null,
    seriesCount: nav.seriesList.length,
    windowCenter: win ? win.center : null,
    windowWidth: win ? win.width : null,
    windowUser: look.wlUser,
    zoom: view.zoom,
    scale: e ? fitScale(shown.dims) * view.zoom : null,
    panX: view.panX,
    panY: view.panY,
    rotation: view.rotation,
    flipH: view.flipH,
    flipV: view.flipV,
    invert: look.invert,
    brightness: look.brightness,
    contrast: look.contrast,
    filter: look.filter,
    tool,
    playing: nav.playing,
    source: shown.source,
    kind: e && e.pixels ? e.pixels.kind : null,
    photometric: e && e.info ? e.info.photometric : null,
    imageWidth: shown.dims.w,
    imageHeight: shown.dims.h,
    error: shown.error,
    renders: shown.renders,
    measurements: currentMarks().map((m) => evaluate(m, e)),
    drafting: draft ? draft.kind : null,
    orientation: shown.orientation ? { ...shown.orientation } : null,
    matrix: [m.a, m.b, m.c, m.d, m.e, m.f],
    timings: { ...shown.timings },
    key: isKey(keys.ours, img),
    keyImages: keys.all.length,
    keySaves: keys.saves,
    keySaving: keys.saving,
    keyPending: keys.pending,
    keyError: keys.error,
  };
}

const hook = {
  get state() { return snapshot(); },
  get ready() { return isReady(); },
  /** Resolves with the state once the current image is drawn from its full pixels (or settled). */
  whenReady() {
    return new Promise((resolve) => {
      waiters.push(resolve);
      settle();
    });
  },
  /** Shows image `i` of the series (clamped), as scrolling there would. */
  show(i) {
    show(i);
  },
  /**
   * Where each image of the series lies, `[{position, orientation}]` (Image Position and
   * Orientation (Patient) from /info, null when missing; frames of a multi-frame image have no
   * position of their own here), for viewer-sync.js. Resolves once every /info has answered.
   */
  async positions() {
    const list = nav.images;
    return Promise.all(list.map(async (img) => {
      try {
        const inf = await cache.info(img.sop);
        const single = img.frames <= 1;
        return {
          position: single && Array.isArray(inf.image_position) ? inf.image_position : null,
          orientation: Array.isArray(inf.image_orientation) ? inf.image_orientation : null,
        };
      } catch (_e) {
        return { position: null, orientation: null };
      }
    }));
  },
  /**
   * SHA-256 (hex) of the current image's samples as decoded here, little-endian bytes in row
   * order (null before its full pixels): the tests compare it with pydicom's pixel_array.
   */
  async samplesDigest() {
    const img = currentImage();
    const e = img ? cache.peek(img) : null;
    if (!e || !e.pixels) return null;
    const d = e.pixels.data;
    const h = await crypto.subtle.digest('SHA-256', new Uint8Array(d.buffer, d.byteOffset, d.byteLength));
    return [...new Uint8Array(h)].map((b) => b.toString(16).padStart(2, '0')).join('');
  },
  /** Canvas pixel (device pixels) that shows the centre of image pixel (x, y). */
  imageToCanvas(x, y) {
    const p = shown.matrix.transformPoint(new DOMPoint(x + 0.5, y + 0.5));
    return { x: Math.floor(p.x), y: Math.floor(p.y) };
  },
};
Object.defineProperty(window, 'pacsboxViewer', { value: Object.freeze(hook), writable: false, configurable: false });

if (!root.dataset.embed) initCompare(nav.study, hook);
start();

// pacsbox viewer: series scroll and cine, window/level (drag and presets), zoom, pan, rotate,
// flip, invert, brightness/contrast, edge/sharpen/emboss, reset, touch gestures. The page's DOM is
// web-ui/templates/viewer.html; the URLs are docs/web-api.md.
//
// Why plain canvas + JS and not a vendored viewer library (cornerstone3D, OHIF, dwv):
// - the server already decodes every accepted transfer syntax (JPEG family, JPEG-LS, JPEG 2000,
//   RLE, deflate, big endian) to plain 16-bit or RGB pixels, so the browser needs no codecs —
//   which is most of what those libraries (and their WASM decoders) bring;
// - cornerstone3D is several MB of modules that need a bundler (a build step, node in the
//   firmware build, a vendored dist to keep current); this file is one small script with no
//   dependencies, embedded in the binary as is, auditable, and runs under our CSP
//   (`default-src 'self'`, no eval, no workers from blobs, no inline code);
// - every tool the issue lists is a few lines over a 16-bit array: a lookup table for the
//   window, a 3×3 convolution for the filters, one canvas transform for the geometry.
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
// `window.pacsboxViewer` is a read-only hook for the browser tests (tests/browser/).
'use strict';

(() => {
  const root = document.getElementById('viewer');
  if (!root) return;

  // ---------------------------------------------------------------- constants
  const PRESETS = {
    lung: { center: -600, width: 1500 },
    bone: { center: 300, width: 2000 },
    brain: { center: 40, width: 80 },
    abdomen: { center: 50, width: 400 },
  };
  const KERNELS = {
    edge: [-1, -1, -1, -1, 8, -1, -1, -1, -1],
    sharpen: [0, -1, 0, -1, 5, -1, 0, -1, 0],
    emboss: [-2, -1, 0, -1, 1, 1, 0, 1, 2],
  };
  const FIRST_FRAME = 1; // frames/{n} counts from 1, like DICOM's frame numbers
  const PREVIEW_MAX = 512;
  const CINE_MS = 100; // 10 images per second
  const CACHE_BYTES = 384 * 1024 * 1024;
  const ZOOM_MIN = 0.05;
  const ZOOM_MAX = 40;

  // ---------------------------------------------------------------- DOM
  const $ = (id) => document.getElementById(id);
  const canvas = $('canvas');
  const ctx = canvas.getContext('2d');
  const stage = $('stage');
  const slice = $('slice');
  const seriesSel = $('series-select');
  const presetSel = $('preset');
  const filterSel = $('filter');
  const brightIn = $('brightness');
  const contrastIn = $('contrast');
  const ovTl = $('ov-tl');
  const ovBr = $('ov-br');
  const verror = $('verror');
  const cineBtn = document.querySelector('[data-act="cine"]');
  const off = document.createElement('canvas'); // the image, rendered at its own size
  const offCtx = off.getContext('2d');
  const scratch = document.createElement('canvas'); // decoding previews
  const scratchCtx = scratch.getContext('2d', { willReadFrequently: true });

  // ---------------------------------------------------------------- state
  const st = {
    study: root.dataset.study || '',
    seriesList: [],
    series: null, // element of seriesList
    images: [], // [{sop, frame}] for the series; frames of multi-frame instances expanded
    index: 0,
    tool: 'wl',
    wc: null, // window while the user has set one (else each image's own default)
    ww: null,
    wlUser: false,
    zoom: 1, // relative to "fit in the stage"
    panX: 0, // CSS pixels
    panY: 0,
    rotation: 0, // 0, 90, 180, 270 clockwise
    flipH: false,
    flipV: false,
    invert: false,
    brightness: 0,
    contrast: 0,
    filter: 'none',
    playing: false,
    source: 'none', // what the canvas shows: none | loading (previous picture) | preview | pixels | error
    error: '',
    renders: 0,
    matrix: new DOMMatrix(),
    dims: { w: 0, h: 0 },
    timings: { script: performance.now(), firstPaint: null, pixelsPaint: null },
  };
  let seriesToken = 0;
  let renderScheduled = false;
  let renderedKey = ''; // cache key of what is in `off`
  let waiters = [];
  let cineTimer = 0;

  const infoCache = new Map(); // sop -> Promise<info>
  const entries = new Map(); // "sop#frame" -> entry (LRU order)
  let cachedBytes = 0;

  // ---------------------------------------------------------------- fetch helpers
  class HttpError extends Error {
    constructor(status, text, url) {
      super(`${status} ${text}`.trim());
      this.status = status;
      this.text = text;
      this.url = url;
    }
  }

  async function get(url, what) {
    let r;
    try {
      r = await fetch(url, { credentials: 'same-origin', headers: { Accept: what } });
    } catch (e) {
      throw new HttpError(0, `network error: ${e.message}`, url);
    }
    if (!r.ok) {
      let text = '';
      try {
        text = (await r.text()).trim().slice(0, 400);
      } catch (_e) {
        /* body unreadable */
      }
      if (r.status === 401) text = 'your session has ended — log in again';
      throw new HttpError(r.status, text || r.statusText, url);
    }
    return r;
  }

  const api = {
    series: (study) => `/api/studies/${encodeURIComponent(study)}/series`,
    info: (sop) => `/api/instances/${encodeURIComponent(sop)}/info`,
    preview: (sop, f) => `/api/instances/${encodeURIComponent(sop)}/frames/${f}/preview.png?max=${PREVIEW_MAX}`,
    pixels: (sop, f) => `/api/instances/${encodeURIComponent(sop)}/frames/${f}/pixels`,
  };

  function info(sop) {
    let p = infoCache.get(sop);
    if (!p) {
      p = get(api.info(sop), 'application/json').then((r) => r.json());
      p.catch(() => infoCache.delete(sop)); // retry later
      infoCache.set(sop, p);
    }
    return p;
  }

  // ---------------------------------------------------------------- image entries (cache)
  const keyOf = (img) => `${img.sop}#${img.frame}`;

  function entry(img) {
    const k = keyOf(img);
    let e = entries.get(k);
    if (e) {
      entries.delete(k); // LRU: most recent last
      entries.set(k, e);
      return e;
    }
    e = { key: k, sop: img.sop, frame: img.frame, info: null, preview: null, pixels: null,
      previewErr: null, pixelsErr: null, previewP: null, pixelsP: null, bytes: 0 };
    entries.set(k, e);
    return e;
  }

  function account(e, bytes) {
    e.bytes += bytes;
    cachedBytes += bytes;
    const cur = currentImage();
    const curKey = cur ? keyOf(cur) : '';
    for (const [k, old] of entries) {
      if (cachedBytes <= CACHE_BYTES) break;
      if (k === curKey || old === e) continue;
      cachedBytes -= old.bytes;
      entries.delete(k);
    }
  }

  function loadPreview(e) {
    if (!e.previewP) {
      e.previewP = get(api.preview(e.sop, e.frame), 'image/png')
        .then((r) => r.blob())
        .then((b) => createImageBitmap(b))
        .then((bmp) => {
          scratch.width = bmp.width;
          scratch.height = bmp.height;
          scratchCtx.clearRect(0, 0, bmp.width, bmp.height);
          scratchCtx.drawImage(bmp, 0, 0);
          if (bmp.close) bmp.close();
          e.preview = scratchCtx.getImageData(0, 0, scratch.width, scratch.height);
          account(e, e.preview.data.length);
          return e;
        })
        .catch((err) => {
          e.previewErr = err;
          return e;
        });
    }
    return e.previewP;
  }

  function loadPixels(e) {
    if (!e.pixelsP) {
      e.pixelsP = Promise.all([info(e.sop), get(api.pixels(e.sop, e.frame), 'application/octet-stream')])
        .then(async ([inf, r]) => {
          e.info = inf;
          const kind = (r.headers.get('X-Pixel-Kind') || '').trim();
          const rows = parseInt(r.headers.get('X-Rows'), 10) || inf.rows;
          const cols = parseInt(r.headers.get('X-Columns'), 10) || inf.columns;
          const buf = await r.arrayBuffer();
          const n = rows * cols;
          let data;
          if (kind === 'gray16u' || kind === 'gray16s') {
            if (buf.byteLength < n * 2) throw new HttpError(422, `pixel data too short: ${buf.byteLength} bytes for ${cols}×${rows}`);
            data = kind === 'gray16s' ? new Int16Array(buf, 0, n) : new Uint16Array(buf, 0, n);
          } else if (kind === 'rgb8') {
            if (buf.byteLength < n * 3) throw new HttpError(422, `pixel data too short: ${buf.byteLength} bytes for ${cols}×${rows} RGB`);
            data = new Uint8Array(buf, 0, n * 3);
          } else {
            throw new HttpError(415, `unknown pixel kind "${kind}"`);
          }
          let min = Infinity;
          let max = -Infinity;
          if (kind !== 'rgb8') {
            for (let i = 0; i < n; i++) {
              const v = data[i];
              if (v < min) min = v;
              if (v > max) max = v;
            }
          }
          e.pixels = { kind, rows, cols, data, min, max };
          account(e, buf.byteLength);
          return e;
        })
        .catch((err) => {
          e.pixelsErr = err;
          return e;
        });
    }
    return e.pixelsP;
  }

  // ---------------------------------------------------------------- windows
  function slopeIntercept(inf) {
    const s = Number(inf && inf.rescale_slope);
    const b = Number(inf && inf.rescale_intercept);
    return [Number.isFinite(s) && s !== 0 ? s : 1, Number.isFinite(b) ? b : 0];
  }

  /** The window an image shows unless the user chose one: the file's first, else min/max. */
  function defaultWindow(e) {
    const p = e.pixels;
    if (p && p.kind === 'rgb8') return { center: 127.5, width: 255 };
    const inf = e.info;
    const w = inf && Array.isArray(inf.windows) ? inf.windows.find((x) => Number(x.width) > 0) : null;
    if (w) return { center: Number(w.center), width: Number(w.width) };
    if (p) {
      const [s, b] = slopeIntercept(inf);
      const lo = Math.min(p.min * s + b, p.max * s + b);
      const hi = Math.max(p.min * s + b, p.max * s + b);
      return { center: (lo + hi) / 2, width: Math.max(1, hi - lo) };
    }
    return null;
  }

  function currentWindow(e) {
    if (st.wlUser && st.wc !== null) return { center: st.wc, width: st.ww };
    return e ? defaultWindow(e) : null;
  }

  // ---------------------------------------------------------------- 8-bit rendering (image space)
  /** brightness/contrast then invert: 256 entries. */
  function toneTable() {
    const t = new Uint8Array(256);
    const f = st.contrast >= 0 ? 1 + st.contrast / 25 : 1 + st.contrast / 125; // 0.2 … 5
    const off8 = st.brightness * 1.28;
    for (let v = 0; v < 256; v++) {
      let y = v;
      if (st.contrast !== 0 || st.brightness !== 0) {
        y = Math.round((v - 127.5) * f + 127.5 + off8);
        y = y < 0 ? 0 : y > 255 ? 255 : y;
      }
      t[v] = st.invert ? 255 - y : y;
    }
    return t;
  }

  /** DICOM linear VOI function (PS3.3 C.11.2.1.2.1) to 0..255. */
  function windowed(x, c, w) {
    if (w <= 1) return x <= c - 0.5 ? 0 : 255;
    const y = ((x - (c - 0.5)) / (w - 1) + 0.5) * 255;
    return y <= 0 ? 0 : y >= 255 ? 255 : Math.round(y);
  }

  function renderGray(p, inf, win, tone, out32) {
    const [s, b] = slopeIntercept(inf);
    const mono1 = String((inf && inf.photometric) || '').toUpperCase() === 'MONOCHROME1';
    // one table entry per possible stored value in the image's range
    const lo = p.min;
    const n = p.max - p.min + 1;
    const lut = new Uint32Array(n);
    for (let i = 0; i < n; i++) {
      let v = windowed((lo + i) * s + b, win.center, win.width);
      if (mono1) v = 255 - v;
      v = tone[v];
      lut[i] = 0xff000000 | (v << 16) | (v << 8) | v;
    }
    const d = p.data;
    for (let i = 0, len = d.length; i < len; i++) out32[i] = lut[d[i] - lo];
  }

  function renderRgb(p, win, tone, out8) {
    const t = new Uint8Array(256);
    const identity = win.center === 127.5 && win.width === 255;
    for (let v = 0; v < 256; v++) {
      let y = v;
      if (!identity) {
        y = Math.round(((v - win.center) / win.width + 0.5) * 255);
        y = y < 0 ? 0 : y > 255 ? 255 : y;
      }
      t[v] = tone[y];
    }
    const d = p.data;
    for (let i = 0, j = 0, len = p.rows * p.cols; i < len; i++, j += 3) {
      const o = i * 4;
      out8[o] = t[d[j]];
      out8[o + 1] = t[d[j + 1]];
      out8[o + 2] = t[d[j + 2]];
      out8[o + 3] = 255;
    }
  }

  /** 3×3 convolution of the 8-bit image (edges repeat the border pixels); one channel for grey. */
  function convolve(img, kernel, absolute, gray) {
    const w = img.width;
    const h = img.height;
    const src = img.data;
    const out = new ImageData(w, h);
    const dst = out.data; // Uint8ClampedArray: stores clamp to 0..255
    const [k0, k1, k2, k3, k4, k5, k6, k7, k8] = kernel;
    const chans = gray ? 1 : 3;
    const row = w * 4;
    for (let y = 0; y < h; y++) {
      const up = y > 0 ? -row : 0;
      const dn = y < h - 1 ? row : 0;
      for (let x = 0; x < w; x++) {
        const o = (y * w + x) * 4;
        const l = x > 0 ? -4 : 0;
        const r = x < w - 1 ? 4 : 0;
        for (let c = 0; c < chans; c++) {
          const p = o + c;
          let sum = k0 * src[p + up + l] + k1 * src[p + up] + k2 * src[p + up + r] +
            k3 * src[p + l] + k4 * src[p] + k5 * src[p + r] +
            k6 * src[p + dn + l] + k7 * src[p + dn] + k8 * src[p + dn + r];
          if (absolute && sum < 0) sum = -sum;
          dst[p] = sum;
        }
        if (gray) {
          dst[o + 1] = dst[o];
          dst[o + 2] = dst[o];
        }
        dst[o + 3] = 255;
      }
    }
    return out;
  }

  /** Fill `off` with the current image, 8-bit, tone and filter applied. Returns its source. */
  function renderImage(e) {
    const win = currentWindow(e);
    const src = e.pixels ? 'pixels' : e.preview ? 'preview' : null;
    if (!src) return null;
    const key = [e.key, src, win ? `${win.center}/${win.width}` : '', st.brightness, st.contrast, st.invert, st.filter].join('|');
    if (key === renderedKey) return src;
    const tone = toneTable();
    let img;
    if (src === 'pixels') {
      const p = e.pixels;
      img = new ImageData(p.cols, p.rows);
      if (p.kind === 'rgb8') renderRgb(p, win, tone, img.data);
      else renderGray(p, e.info, win, tone, new Uint32Array(img.data.buffer));
    } else {
      const pv = e.preview;
      img = new ImageData(pv.width, pv.height);
      const s = pv.data;
      const d = img.data;
      for (let i = 0; i < s.length; i += 4) {
        d[i] = tone[s[i]];
        d[i + 1] = tone[s[i + 1]];
        d[i + 2] = tone[s[i + 2]];
        d[i + 3] = 255;
      }
    }
    if (KERNELS[st.filter]) {
      const gray = src === 'pixels' && e.pixels.kind !== 'rgb8';
      img = convolve(img, KERNELS[st.filter], st.filter === 'edge', gray);
    }
    off.width = img.width;
    off.height = img.height;
    offCtx.putImageData(img, 0, 0);
    renderedKey = key;
    return src;
  }

  // ---------------------------------------------------------------- drawing (screen space)
  function imageDims(e) {
    if (e.pixels) return { w: e.pixels.cols, h: e.pixels.rows };
    if (e.info) return { w: e.info.columns, h: e.info.rows };
    if (e.preview) return { w: e.preview.width, h: e.preview.height };
    return { w: 1, h: 1 };
  }

  function fitScale(dims) {
    const cw = stage.clientWidth || 1;
    const ch = stage.clientHeight || 1;
    const quarter = st.rotation === 90 || st.rotation === 270;
    const w = quarter ? dims.h : dims.w;
    const h = quarter ? dims.w : dims.h;
    return Math.min(cw / w, ch / h);
  }

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
    if (!e || st.source === 'none' || st.source === 'error') return;
    const dims = imageDims(e);
    st.dims = dims;
    const scale = fitScale(dims) * st.zoom * dpr;
    const m = new DOMMatrix()
      .translate(W / 2 + st.panX * dpr, H / 2 + st.panY * dpr)
      .scale(st.flipH ? -1 : 1, st.flipV ? -1 : 1)
      .rotate(st.rotation)
      .scale(scale)
      .translate(-dims.w / 2, -dims.h / 2);
    st.matrix = m;
    ctx.setTransform(m);
    const onScreen = scale * (dims.w / off.width);
    ctx.imageSmoothingEnabled = onScreen < 1;
    ctx.imageSmoothingQuality = 'high';
    ctx.drawImage(off, 0, 0, dims.w, dims.h);
    ctx.setTransform(1, 0, 0, 1, 0, 0);
  }

  function overlays(e) {
    const n = st.images.length;
    const img = currentImage();
    const s = st.series;
    const tl = [];
    if (s) tl.push(`Series ${s.number ?? ''} ${s.modality || ''} ${s.description || ''}`.replace(/\s+/g, ' ').trim());
    if (n) tl.push(`Image ${st.index + 1} / ${n}` + (img && img.frames > 1 ? ` (frame ${img.frame})` : ''));
    if (e && e.pixels) tl.push(`${e.pixels.cols} × ${e.pixels.rows}`);
    ovTl.textContent = tl.join('\n');
    const br = [];
    const win = e ? currentWindow(e) : null;
    if (win && !(e && e.pixels && e.pixels.kind === 'rgb8' && !st.wlUser)) {
      br.push(`W ${Math.round(win.width)}  L ${Math.round(win.center)}`);
    }
    const scale = e ? fitScale(st.dims) * st.zoom : 1;
    br.push(`Zoom ${Math.round(scale * 100)}%` + (st.rotation ? `  ⟳${st.rotation}°` : '') +
      (st.flipH ? '  ⇋' : '') + (st.flipV ? '  ⇵' : '') + (st.invert ? '  inv' : ''));
    if (st.filter !== 'none') br.push(st.filter);
    if (st.source === 'preview') br.push('preview');
    ovBr.textContent = br.join('\n');
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
    st.error = msg || '';
  }

  function describe(err) {
    if (!err) return '';
    if (err instanceof HttpError) {
      if (err.status === 415) return `This image cannot be decoded here (415): ${err.text}`;
      if (err.status === 422) return `This image has no usable pixel data (422): ${err.text}`;
      if (err.status === 0) return `The server did not answer: ${err.text}`;
      return `Error ${err.status}: ${err.text}`;
    }
    return String(err.message || err);
  }

  function render() {
    renderScheduled = false;
    const img = currentImage();
    const e = img ? entry(img) : null;
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
      st.source = src;
      const now = performance.now(); // ms since navigation start
      if (st.timings.firstPaint === null) st.timings.firstPaint = now;
      if (src === 'pixels' && st.timings.pixelsPaint === null) st.timings.pixelsPaint = now;
      // an image without full pixels but with a preview still shows; say why it is only a preview
      const previewOnly = e.pixelsErr && e.pixels === null && settled(e);
      const why = previewOnly && e.pixelsErr instanceof HttpError ? `${e.pixelsErr.status}: ${e.pixelsErr.text}` : describe(e.pixelsErr);
      showError(previewOnly ? `Preview only, no window/level here (${why})` : '', true);
    } else if (e && settled(e) && (e.previewErr || e.pixelsErr)) {
      st.source = 'error';
      showError(describe(e.pixelsErr || e.previewErr));
    } else if (!e) {
      st.source = st.error ? 'error' : 'none';
    } else {
      // still loading: keep the previous picture on the canvas (no black flash while scrolling)
      st.source = 'loading';
    }
    if (st.source !== 'loading') draw(e);
    overlays(e);
    st.renders++;
    settle();
  }

  /** Both loads of the entry have finished (successfully or not). */
  function settled(e) {
    return (e.pixels || e.pixelsErr) && (e.preview || e.previewErr || e.pixels);
  }

  function isReady() {
    if (renderScheduled) return false;
    const img = currentImage();
    if (!img) return st.source === 'error' || (seriesToken > 0 && st.images.length === 0 && !!st.error);
    const e = entries.get(keyOf(img));
    if (!e) return false;
    if (st.source === 'pixels') return true;
    return !!settled(e) && (st.source === 'preview' || st.source === 'error');
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
  function currentImage() {
    return st.images[st.index] || null;
  }

  function show(index) {
    const n = st.images.length;
    if (!n) return;
    const i = Math.max(0, Math.min(n - 1, index | 0));
    st.index = i;
    slice.value = String(i);
    const img = st.images[i];
    const e = entry(img);
    const token = seriesToken;
    const again = () => {
      if (token === seriesToken && currentImage() && keyOf(currentImage()) === e.key) schedule();
    };
    if (!e.pixels && !e.preview) loadPreview(e).then(again);
    if (!e.pixels) loadPixels(e).then(again);
    if (!e.info) info(e.sop).then((inf) => { e.info = inf; again(); }, () => {});
    schedule();
    prefetch(i);
  }

  /** Neighbouring images: previews (cheap) for a few, full pixels for the next ones. */
  function prefetch(i) {
    const n = st.images.length;
    const step = st.playing ? 1 : 0;
    for (let d = 1; d <= 3; d++) {
      for (const j of step ? [i + d] : [i + d, i - d]) {
        const k = ((j % n) + n) % n;
        if (k === i) continue;
        const e = entry(st.images[k]);
        if (d <= 2) loadPixels(e);
        else loadPreview(e);
      }
    }
  }

  function setImages(list, keep) {
    st.images = list;
    let idx = 0;
    if (keep) {
      const k = list.findIndex((x) => x.sop === keep.sop && x.frame === keep.frame);
      idx = k >= 0 ? k : 0;
    }
    st.index = idx;
    slice.max = String(Math.max(0, list.length - 1));
    slice.value = String(idx);
    slice.disabled = list.length < 2;
  }

  /** Rebuild the image list when /info shows that an instance has several frames. */
  function expandFrames(series, sop, frames) {
    if (series !== st.series || !(frames > 1)) return;
    if (st.images.some((x) => x.sop === sop && x.frame === FIRST_FRAME + 1)) return;
    const list = [];
    for (const img of st.images) {
      if (img.sop === sop) {
        for (let f = 0; f < frames; f++) list.push({ sop, frame: FIRST_FRAME + f, frames });
      } else list.push(img);
    }
    setImages(list, currentImage());
    show(st.index);
  }

  async function loadSeries(s) {
    seriesToken++;
    const token = seriesToken;
    stopCine();
    st.series = s;
    renderedKey = '';
    showError('');
    const list = (s.instances || []).map((x) => ({ sop: x.sop, frame: FIRST_FRAME, frames: 1 }));
    setImages(list, null);
    if (!list.length) {
      st.source = 'error';
      showError('This series has no images.');
      schedule();
      return;
    }
    // the first image of a one-instance series decides whether it is a multi-frame series;
    // frame 1 exists either way, so its preview and pixels load meanwhile (first paint sooner)
    if (list.length === 1) {
      const first = entry(list[0]);
      loadPreview(first).then(() => { if (token === seriesToken) schedule(); });
      loadPixels(first);
      try {
        const inf = await info(list[0].sop);
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
          const inf = await info(sop);
          if (token === seriesToken && inf.frames > 1) expandFrames(s, sop, inf.frames);
        } catch (_e) {
          /* that image shows its own error */
        }
      }
    };
    for (let w = 0; w < 3; w++) worker();
  }

  async function start() {
    let list;
    try {
      list = await (await get(api.series(st.study), 'application/json')).json();
    } catch (err) {
      seriesToken++;
      st.source = 'error';
      showError(`Cannot list the series of this study: ${describe(err)}`);
      schedule();
      return;
    }
    st.seriesList = Array.isArray(list) ? list : [];
    seriesSel.textContent = '';
    for (const s of st.seriesList) {
      const o = document.createElement('option');
      o.value = s.uid;
      const n = (s.instances || []).length;
      o.textContent = `${s.number ?? ''} ${s.modality || ''} ${s.description || ''} (${n})`.replace(/\s+/g, ' ').trim();
      seriesSel.appendChild(o);
    }
    if (!st.seriesList.length) {
      seriesToken++;
      st.source = 'error';
      showError('This study has no series.');
      schedule();
      return;
    }
    const want = root.dataset.series || new URLSearchParams(location.search).get('series') || '';
    const s = st.seriesList.find((x) => x.uid === want) || st.seriesList[0];
    seriesSel.value = s.uid;
    loadSeries(s);
  }

  seriesSel.addEventListener('change', () => {
    const s = st.seriesList.find((x) => x.uid === seriesSel.value);
    if (!s) return;
    const url = new URL(location.href);
    url.searchParams.set('series', s.uid);
    history.replaceState(null, '', url);
    loadSeries(s);
  });

  // ---------------------------------------------------------------- tools
  function setTool(t) {
    st.tool = t;
    for (const b of document.querySelectorAll('[data-tool]')) b.classList.toggle('on', b.dataset.tool === t);
  }

  function step(d) {
    const n = st.images.length;
    if (n) show(Math.max(0, Math.min(n - 1, st.index + d)));
  }

  function startCine() {
    if (st.images.length < 2 || st.playing) return;
    st.playing = true;
    cineBtn.classList.add('on');
    cineBtn.textContent = '⏸';
    cineBtn.title = 'Stop cine';
    // every image is shown: a tick while the current one is still loading waits for it
    cineTimer = setInterval(() => {
      if (st.source !== 'loading' && !renderScheduled) show((st.index + 1) % st.images.length);
    }, CINE_MS);
  }

  function stopCine() {
    if (!st.playing) return;
    st.playing = false;
    clearInterval(cineTimer);
    cineBtn.classList.remove('on');
    cineBtn.textContent = '▶';
    cineBtn.title = 'Cine';
  }

  /** The window the user starts from when adjusting: the one on screen. */
  function baseWindow() {
    const img = currentImage();
    const e = img ? entries.get(keyOf(img)) : null;
    return currentWindow(e) || { center: 0, width: 1 };
  }

  function setWindow(center, width) {
    st.wc = center;
    st.ww = Math.max(1, width);
    st.wlUser = true;
    schedule();
  }

  /** Modality value range of the current image (for drag sensitivity). */
  function valueRange() {
    const img = currentImage();
    const e = img ? entries.get(keyOf(img)) : null;
    if (e && e.pixels && e.pixels.kind !== 'rgb8') {
      const [s] = slopeIntercept(e.info);
      return Math.max(64, Math.abs((e.pixels.max - e.pixels.min) * s));
    }
    return 256;
  }

  function reset() {
    st.zoom = 1;
    st.panX = 0;
    st.panY = 0;
    st.rotation = 0;
    st.flipH = false;
    st.flipV = false;
    st.invert = false;
    st.brightness = 0;
    st.contrast = 0;
    st.filter = 'none';
    st.wlUser = false;
    st.wc = null;
    st.ww = null;
    brightIn.value = '0';
    contrastIn.value = '0';
    filterSel.value = 'none';
    presetSel.value = '';
    for (const b of document.querySelectorAll('[data-act="invert"]')) b.classList.remove('on');
    schedule();
  }

  function act(a) {
    switch (a) {
      case 'rotate':
        st.rotation = (st.rotation + 90) % 360;
        break;
      case 'fliph':
        st.flipH = !st.flipH;
        break;
      case 'flipv':
        st.flipV = !st.flipV;
        break;
      case 'invert':
        st.invert = !st.invert;
        break;
      case 'cine':
        if (st.playing) stopCine();
        else startCine();
        break;
      case 'reset':
        reset();
        break;
      default:
        return;
    }
    for (const b of document.querySelectorAll(`[data-act="${a}"]`)) {
      if (a === 'fliph') b.classList.toggle('on', st.flipH);
      if (a === 'flipv') b.classList.toggle('on', st.flipV);
      if (a === 'invert') b.classList.toggle('on', st.invert);
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
      st.wlUser = false;
      st.wc = null;
      st.ww = null;
      schedule();
    } else if (PRESETS[v]) {
      setWindow(PRESETS[v].center, PRESETS[v].width);
    }
  });
  filterSel.addEventListener('change', () => {
    st.filter = KERNELS[filterSel.value] ? filterSel.value : 'none';
    schedule();
  });
  brightIn.addEventListener('input', () => {
    st.brightness = Number(brightIn.value) || 0;
    schedule();
  });
  contrastIn.addEventListener('input', () => {
    st.contrast = Number(contrastIn.value) || 0;
    schedule();
  });
  slice.addEventListener('input', () => show(Number(slice.value)));

  // ---------------------------------------------------------------- pointer: mouse, pen, touch
  const pointers = new Map(); // pointerId -> {x, y}
  let drag = null; // one-pointer drag: {tool, x0, y0, x, y, ...}
  let pinch = null; // two-pointer gesture

  function localPoint(ev) {
    const r = canvas.getBoundingClientRect();
    return { x: ev.clientX - r.left, y: ev.clientY - r.top };
  }

  /** Zoom by factor f keeping the stage point q (CSS px) where it is. */
  function zoomAbout(f, q, fromZoom = st.zoom, fromPan = { x: st.panX, y: st.panY }) {
    const z = Math.max(ZOOM_MIN, Math.min(ZOOM_MAX, fromZoom * f));
    const g = z / fromZoom;
    const cx = stage.clientWidth / 2;
    const cy = stage.clientHeight / 2;
    st.panX = (1 - g) * (q.x - cx) + g * fromPan.x;
    st.panY = (1 - g) * (q.y - cy) + g * fromPan.y;
    st.zoom = z;
  }

  function toolFor(ev) {
    if (ev.pointerType === 'mouse') {
      if (ev.button === 1) return 'pan';
      if (ev.button === 2) return 'zoom';
    }
    return st.tool;
  }

  canvas.addEventListener('pointerdown', (ev) => {
    canvas.setPointerCapture(ev.pointerId);
    const p = localPoint(ev);
    pointers.set(ev.pointerId, p);
    ev.preventDefault();
    if (pointers.size === 2) {
      drag = null; // a second finger turns the gesture into pinch/pan
      const [a, b] = [...pointers.values()];
      pinch = {
        d0: Math.hypot(a.x - b.x, a.y - b.y) || 1,
        m0: { x: (a.x + b.x) / 2, y: (a.y + b.y) / 2 },
        zoom: st.zoom,
        pan: { x: st.panX, y: st.panY },
      };
      return;
    }
    if (pointers.size > 2) return;
    const tool = toolFor(ev);
    drag = { tool, x0: p.x, y0: p.y, x: p.x, y: p.y, acc: 0, win: tool === 'wl' ? baseWindow() : null,
      range: valueRange(), zoom: st.zoom, pan: { x: st.panX, y: st.panY } };
  });

  canvas.addEventListener('pointermove', (ev) => {
    if (!pointers.has(ev.pointerId)) return;
    const p = localPoint(ev);
    pointers.set(ev.pointerId, p);
    if (pinch && pointers.size >= 2) {
      const [a, b] = [...pointers.values()];
      const d = Math.hypot(a.x - b.x, a.y - b.y) || 1;
      const m = { x: (a.x + b.x) / 2, y: (a.y + b.y) / 2 };
      zoomAbout(d / pinch.d0, pinch.m0, pinch.zoom, pinch.pan);
      st.panX += m.x - pinch.m0.x;
      st.panY += m.y - pinch.m0.y;
      schedule();
      return;
    }
    if (!drag) return;
    const dx = p.x - drag.x;
    const dy = p.y - drag.y;
    drag.x = p.x;
    drag.y = p.y;
    switch (drag.tool) {
      case 'wl': {
        // horizontal = width, vertical = center (down = higher center = darker)
        const k = drag.range / 400;
        const tx = p.x - drag.x0;
        const ty = p.y - drag.y0;
        setWindow(drag.win.center + ty * k, drag.win.width + tx * k);
        break;
      }
      case 'pan':
        st.panX += dx;
        st.panY += dy;
        schedule();
        break;
      case 'zoom':
        zoomAbout(Math.exp(-(p.y - drag.y0) / 150), { x: drag.x0, y: drag.y0 }, drag.zoom, drag.pan);
        schedule();
        break;
      case 'scroll': {
        drag.acc += dy;
        const stepPx = 8;
        while (Math.abs(drag.acc) >= stepPx) {
          const s = Math.sign(drag.acc);
          drag.acc -= s * stepPx;
          step(s);
        }
        break;
      }
      default:
        break;
    }
  });

  function endPointer(ev) {
    pointers.delete(ev.pointerId);
    if (pointers.size < 2) pinch = null;
    if (pointers.size === 0) drag = null;
    else if (pointers.size === 1 && !drag) {
      // lifting one finger of two: continue as a pan with the other, never as W/L
      const [p] = [...pointers.values()];
      drag = { tool: 'pan', x0: p.x, y0: p.y, x: p.x, y: p.y, acc: 0 };
    }
  }
  canvas.addEventListener('pointerup', endPointer);
  canvas.addEventListener('pointercancel', endPointer);
  canvas.addEventListener('contextmenu', (ev) => ev.preventDefault());

  let wheelAcc = 0;
  canvas.addEventListener('wheel', (ev) => {
    ev.preventDefault();
    const unit = ev.deltaMode === 1 ? 33 : ev.deltaMode === 2 ? 400 : 1;
    const dy = ev.deltaY * unit;
    if (ev.ctrlKey || ev.metaKey) {
      zoomAbout(Math.exp(-dy / 300), localPoint(ev));
      schedule();
      return;
    }
    wheelAcc += dy;
    if (Math.abs(wheelAcc) < 40) return;
    step(Math.sign(wheelAcc));
    wheelAcc = 0;
  }, { passive: false });

  document.addEventListener('keydown', (ev) => {
    const t = ev.target;
    if (t && (t.isContentEditable || /^(INPUT|SELECT|TEXTAREA)$/.test(t.tagName))) return;
    if (ev.altKey || ev.ctrlKey || ev.metaKey) return;
    const n = st.images.length;
    let handled = true;
    switch (ev.key) {
      case 'ArrowDown': case 'ArrowRight': step(1); break;
      case 'ArrowUp': case 'ArrowLeft': step(-1); break;
      case 'PageDown': step(10); break;
      case 'PageUp': step(-10); break;
      case 'Home': show(0); break;
      case 'End': show(n - 1); break;
      case ' ': act('cine'); break;
      case 'i': act('invert'); break;
      case 'r': act('rotate'); break;
      case 'Escape': act('reset'); break;
      default: handled = false;
    }
    if (handled) ev.preventDefault();
  });

  if (window.ResizeObserver) new ResizeObserver(() => schedule()).observe(stage);
  else window.addEventListener('resize', schedule);
  document.addEventListener('visibilitychange', () => { if (document.hidden) stopCine(); });

  // ---------------------------------------------------------------- the test hook (read-only)
  function snapshot() {
    const img = currentImage();
    const e = img ? entries.get(keyOf(img)) : null;
    const win = e ? currentWindow(e) : null;
    const m = st.matrix;
    return {
      ready: isReady(),
      index: st.index,
      count: st.images.length,
      sop: img ? img.sop : null,
      frame: img ? img.frame : null,
      series: st.series ? st.series.uid : null,
      seriesCount: st.seriesList.length,
      windowCenter: win ? win.center : null,
      windowWidth: win ? win.width : null,
      windowUser: st.wlUser,
      zoom: st.zoom,
      scale: e ? fitScale(st.dims) * st.zoom : null,
      panX: st.panX,
      panY: st.panY,
      rotation: st.rotation,
      flipH: st.flipH,
      flipV: st.flipV,
      invert: st.invert,
      brightness: st.brightness,
      contrast: st.contrast,
      filter: st.filter,
      tool: st.tool,
      playing: st.playing,
      source: st.source,
      kind: e && e.pixels ? e.pixels.kind : null,
      photometric: e && e.info ? e.info.photometric : null,
      imageWidth: st.dims.w,
      imageHeight: st.dims.h,
      error: st.error,
      renders: st.renders,
      matrix: [m.a, m.b, m.c, m.d, m.e, m.f],
      timings: { ...st.timings },
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
    /** Canvas pixel (device pixels) that shows the centre of image pixel (x, y). */
    imageToCanvas(x, y) {
      const p = st.matrix.transformPoint(new DOMPoint(x + 0.5, y + 0.5));
      return { x: Math.floor(p.x), y: Math.floor(p.y) };
    },
  };
  Object.defineProperty(window, 'pacsboxViewer', { value: Object.freeze(hook), writable: false, configurable: false });

  start();
})();

// The viewer's image cache: one entry per frame ("sop#frame") holding its /info, its decoded
// preview and its 16-bit or RGB pixels, loaded at most once each and dropped least recently
// used first when over the byte budget (never the image on screen). A load still running for an
// image the user has scrolled past can be cancelled (`cancelExcept`), so that on a slow link the
// image on screen does not queue behind images nobody looks at any more.

import { HttpError, api, get, isAbort } from './viewer-net.js';
import { valueBounds } from './viewer-pixels.js';

export const keyOf = (img) => `${img.sop}#${img.frame}`;

export class ImageCache {
  /** `onScreen()`: the key of the image on screen, which is never evicted. */
  constructor(limitBytes, onScreen) {
    this.limit = limitBytes;
    this.onScreen = onScreen;
    this.infos = new Map(); // sop -> Promise<info>
    this.entries = new Map(); // key -> entry (LRU order)
    this.bytes = 0;
    this.scratch = document.createElement('canvas'); // decoding previews
    this.scratchCtx = this.scratch.getContext('2d', { willReadFrequently: true });
  }

  info(sop) {
    let p = this.infos.get(sop);
    if (!p) {
      p = get(api.info(sop), 'application/json').then((r) => r.json());
      p.catch(() => this.infos.delete(sop)); // retry later
      this.infos.set(sop, p);
    }
    return p;
  }

  /** The entry of an image if it has one, without touching its LRU place. */
  peek(img) {
    return img ? this.entries.get(keyOf(img)) || null : null;
  }

  /** The entry of an image, made if absent, now the most recently used. */
  entry(img) {
    const k = keyOf(img);
    let e = this.entries.get(k);
    if (e) {
      this.entries.delete(k);
      this.entries.set(k, e);
      return e;
    }
    e = { key: k, sop: img.sop, frame: img.frame, info: null, preview: null, pixels: null,
      previewErr: null, pixelsErr: null, previewP: null, pixelsP: null, bytes: 0,
      previewAbort: null, pixelsAbort: null };
    this.entries.set(k, e);
    return e;
  }

  account(e, bytes) {
    e.bytes += bytes;
    this.bytes += bytes;
    const curKey = this.onScreen();
    for (const [k, old] of this.entries) {
      if (this.bytes <= this.limit) break;
      if (k === curKey || old === e) continue;
      this.bytes -= old.bytes;
      this.entries.delete(k);
    }
  }

  /** Cancel the loads still running for every entry whose key is not in `keep`. */
  cancelExcept(keep) {
    for (const e of this.entries.values()) {
      if (keep.has(e.key)) continue;
      if (e.previewAbort) e.previewAbort.abort();
      if (e.pixelsAbort) e.pixelsAbort.abort();
    }
  }

  loadPreview(e) {
    if (!e.previewP) {
      const { scratch, scratchCtx } = this;
      const abort = new AbortController();
      e.previewAbort = abort;
      e.previewP = get(api.preview(e.sop, e.frame), 'image/png', abort.signal)
        .then((r) => r.blob())
        .then((b) => createImageBitmap(b))
        .then((bmp) => {
          scratch.width = bmp.width;
          scratch.height = bmp.height;
          scratchCtx.clearRect(0, 0, bmp.width, bmp.height);
          scratchCtx.drawImage(bmp, 0, 0);
          if (bmp.close) bmp.close();
          e.preview = scratchCtx.getImageData(0, 0, scratch.width, scratch.height);
          e.previewAbort = null;
          this.account(e, e.preview.data.length);
          return e;
        })
        .catch((err) => {
          e.previewAbort = null;
          if (isAbort(err)) e.previewP = null; // cancelled: loaded again if it comes back on screen
          else e.previewErr = err;
          return e;
        });
    }
    return e.previewP;
  }

  loadPixels(e) {
    if (!e.pixelsP) {
      const abort = new AbortController();
      e.pixelsAbort = abort;
      e.pixelsP = Promise.all([this.info(e.sop), get(api.pixels(e.sop, e.frame), 'application/octet-stream', abort.signal)])
        .then(async ([inf, r]) => {
          e.info = inf;
          const kind = (r.headers.get('X-Pixel-Kind') || '').trim();
          const rows = parseInt(r.headers.get('X-Rows'), 10) || inf.rows;
          const cols = parseInt(r.headers.get('X-Columns'), 10) || inf.columns;
          let buf = await r.arrayBuffer();
          const layout = (r.headers.get('X-Pixel-Layout') || '').trim();
          if (layout === 'planes') buf = interleave(buf);
          else if (layout === 'med') buf = unMed(buf, cols, kind === 'gray16s');
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
          const { min, max } = kind === 'rgb8' ? { min: Infinity, max: -Infinity } : valueBounds(data, n);
          e.pixels = { kind, rows, cols, data, min, max };
          e.pixelsAbort = null;
          this.account(e, buf.byteLength);
          return e;
        })
        .catch((err) => {
          e.pixelsAbort = null;
          if (isAbort(err)) e.pixelsP = null;
          else e.pixelsErr = err;
          return e;
        });
    }
    return e.pixelsP;
  }
}

/** Byte planes (every low byte, then every high byte) back to little-endian 16-bit samples. */
export function interleave(buf) {
  const src = new Uint8Array(buf);
  const n = src.length >> 1;
  const out = new Uint8Array(n * 2);
  for (let i = 0; i < n; i++) {
    out[2 * i] = src[i];
    out[2 * i + 1] = src[n + i];
  }
  return out.buffer;
}

/**
 * `?layout=med` back to little-endian 16-bit samples: planes of zigzagged residuals of the
 * median edge detector's prediction (firmware/web/src/pixels.rs, `med_residual_planes`), the
 * prediction made again from the samples already restored; `signed` samples were offset by
 * 2¹⁵. Exact: everything is modulo 2¹⁶.
 */
export function unMed(buf, cols, signed) {
  const src = new Uint8Array(buf);
  const n = src.length >> 1;
  const x = new Uint16Array(n);
  const w = Math.max(1, cols);
  for (let i = 0; i < n; i++) {
    const zz = src[i] | (src[n + i] << 8);
    const d = (zz >>> 1) ^ -(zz & 1);
    let pred;
    if (i === 0) {
      pred = 0;
    } else if (i < w) {
      pred = x[i - 1];
    } else if (i % w === 0) {
      pred = x[i - w];
    } else {
      const a = x[i - 1];
      const b = x[i - w];
      const c = x[i - w - 1];
      const hi = a > b ? a : b;
      const lo = a > b ? b : a;
      pred = c >= hi ? lo : c <= lo ? hi : a + b - c;
    }
    x[i] = (pred + d) & 0xffff;
  }
  if (signed) for (let i = 0; i < n; i++) x[i] ^= 0x8000;
  // Uint16Array is the platform's byte order: little endian on every browser's platform,
  // as the Int16Array/Uint16Array views of the plain layouts already assume
  return x.buffer;
}

/** Both loads of the entry have finished (successfully or not). */
export function settled(e) {
  return (e.pixels || e.pixelsErr) && (e.preview || e.previewErr || e.pixels);
}

/** Size of an entry's image as far as it is known. */
export function imageDims(e) {
  if (e.pixels) return { w: e.pixels.cols, h: e.pixels.rows };
  if (e.info) return { w: e.info.columns, h: e.info.rows };
  if (e.preview) return { w: e.preview.width, h: e.preview.height };
  return { w: 1, h: 1 };
}

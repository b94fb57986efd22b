// The viewer's pixel maths: modality values, window/level, the tone table, 3×3 kernels. Pure
// functions over typed arrays (no DOM, no state), so node checks them without a browser
// (`node --test web-ui/tests/*.test.mjs`); viewer.js calls them with ImageData buffers.

/** Window presets for CT (modality values, HU). */
export const PRESETS = Object.freeze({
  lung: Object.freeze({ center: -600, width: 1500 }),
  bone: Object.freeze({ center: 300, width: 2000 }),
  brain: Object.freeze({ center: 40, width: 80 }),
  abdomen: Object.freeze({ center: 50, width: 400 }),
});

/** 3×3 filters, row by row. */
export const KERNELS = Object.freeze({
  edge: Object.freeze([-1, -1, -1, -1, 8, -1, -1, -1, -1]),
  sharpen: Object.freeze([0, -1, 0, -1, 5, -1, 0, -1, 0]),
  emboss: Object.freeze([-2, -1, 0, -1, 1, 1, 0, 1, 2]),
});

/** The window an RGB image shows untouched: every value maps to itself. */
export const RGB_IDENTITY = Object.freeze({ center: 127.5, width: 255 });

/** Rescale slope and intercept from /info, with the defaults DICOM implies when absent. */
export function slopeIntercept(inf) {
  const s = Number(inf && inf.rescale_slope);
  const b = Number(inf && inf.rescale_intercept);
  return [Number.isFinite(s) && s !== 0 ? s : 1, Number.isFinite(b) ? b : 0];
}

/** Smallest and largest stored value of the first `n` samples. */
export function valueBounds(data, n) {
  let min = Infinity;
  let max = -Infinity;
  for (let i = 0; i < n; i++) {
    const v = data[i];
    if (v < min) min = v;
    if (v > max) max = v;
  }
  return { min, max };
}

/**
 * The window an image shows unless the user chose one: the file's first, else min/max of its
 * modality values. `pixels` is `{kind, min, max}` or null (only /info known yet).
 */
export function defaultWindow(inf, pixels) {
  if (pixels && pixels.kind === 'rgb8') return { ...RGB_IDENTITY };
  const w = inf && Array.isArray(inf.windows) ? inf.windows.find((x) => Number(x.width) > 0) : null;
  if (w) return { center: Number(w.center), width: Number(w.width) };
  if (pixels) {
    const [s, b] = slopeIntercept(inf);
    const lo = Math.min(pixels.min * s + b, pixels.max * s + b);
    const hi = Math.max(pixels.min * s + b, pixels.max * s + b);
    return { center: (lo + hi) / 2, width: Math.max(1, hi - lo) };
  }
  return null;
}

/** Modality value range of grey pixels, for drag sensitivity (256 for RGB or nothing yet). */
export function valueRange(inf, pixels) {
  if (pixels && pixels.kind !== 'rgb8') {
    const [s] = slopeIntercept(inf);
    return Math.max(64, Math.abs((pixels.max - pixels.min) * s));
  }
  return 256;
}

/** DICOM linear VOI function (PS3.3 C.11.2.1.2.1) to 0..255. */
export function windowed(x, c, w) {
  if (w <= 1) return x <= c - 0.5 ? 0 : 255;
  const y = ((x - (c - 0.5)) / (w - 1) + 0.5) * 255;
  return y <= 0 ? 0 : y >= 255 ? 255 : Math.round(y);
}

/** Brightness/contrast (−100..100 each) then invert, as 256 entries. */
export function toneTable({ brightness, contrast, invert }) {
  const t = new Uint8Array(256);
  const f = contrast >= 0 ? 1 + contrast / 25 : 1 + contrast / 125; // 0.2 … 5
  const off8 = brightness * 1.28;
  for (let v = 0; v < 256; v++) {
    let y = v;
    if (contrast !== 0 || brightness !== 0) {
      y = Math.round((v - 127.5) * f + 127.5 + off8);
      y = y < 0 ? 0 : y > 255 ? 255 : y;
    }
    t[v] = invert ? 255 - y : y;
  }
  return t;
}

/**
 * Grey stored values → opaque RGBA words (little-endian ABGR, as ImageData's buffer seen as
 * Uint32Array): modality values, window, MONOCHROME1 inverted, then the tone table.
 * `p` is `{data, min, max}`.
 */
export function renderGray(p, inf, win, tone, out32) {
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

/** Packed RGB → RGBA with the window applied per channel (identity window: untouched). */
export function renderRgb(p, win, tone, out8) {
  const t = new Uint8Array(256);
  const identity = win.center === RGB_IDENTITY.center && win.width === RGB_IDENTITY.width;
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

/** An 8-bit RGBA preview through the tone table. */
export function renderPreview(src, tone, out8) {
  for (let i = 0; i < src.length; i += 4) {
    out8[i] = tone[src[i]];
    out8[i + 1] = tone[src[i + 1]];
    out8[i + 2] = tone[src[i + 2]];
    out8[i + 3] = 255;
  }
}

/**
 * 3×3 convolution of a `w`×`h` RGBA image into `dst` (a Uint8ClampedArray: stores clamp to
 * 0..255); edges repeat the border pixels; one channel for grey. `absolute`: |sum| (edges).
 */
export function convolve(src, w, h, kernel, absolute, gray, dst) {
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
  return dst;
}

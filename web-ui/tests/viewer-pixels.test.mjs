// The viewer's pixel maths (web-ui/static/viewer-pixels.js) without a browser:
// `node --test web-ui/tests/*.test.mjs`. Expected values are worked out by hand from the
// standard's formulas, not by calling the code under test.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  KERNELS, PRESETS, convolve, defaultWindow, renderGray, renderPreview, renderRgb, slopeIntercept,
  toneTable, valueBounds, valueRange, windowed,
} from '../static/viewer-pixels.js';

const IDENTITY_TONE = toneTable({ brightness: 0, contrast: 0, invert: false });
const grey = (word) => word & 0xff; // R of an opaque ABGR word

describe('windowed (PS3.3 C.11.2.1.2.1 linear VOI)', () => {
  it('maps below, inside and above the window', () => {
    // c = 40, w = 80: x <= c - 0.5 - (w-1)/2 = 0 → 0; x > c - 0.5 + (w-1)/2 = 79 → 255
    assert.equal(windowed(-1000, 40, 80), 0);
    assert.equal(windowed(0, 40, 80), 0);
    assert.equal(windowed(79.5, 40, 80), 255);
    assert.equal(windowed(3000, 40, 80), 255);
    // centre: ((39.5 - 39.5) / 79 + 0.5) * 255 = 127.5 → 128
    assert.equal(windowed(39.5, 40, 80), 128);
    // x = 20: ((20 - 39.5) / 79 + 0.5) * 255 = 64.55… → 65
    assert.equal(windowed(20, 40, 80), 65);
  });

  it('a width of 1 is a threshold at c - 0.5', () => {
    assert.equal(windowed(99.5, 100, 1), 0);
    assert.equal(windowed(99.6, 100, 1), 255);
  });
});

describe('slopeIntercept and defaultWindow', () => {
  it('defaults to 1 and 0 and refuses a zero slope', () => {
    assert.deepEqual(slopeIntercept(null), [1, 0]);
    assert.deepEqual(slopeIntercept({ rescale_slope: 0, rescale_intercept: 'x' }), [1, 0]);
    assert.deepEqual(slopeIntercept({ rescale_slope: '2', rescale_intercept: '-1024' }), [2, -1024]);
  });

  it("takes the file's first usable window, else the modality value range", () => {
    const inf = { windows: [{ center: 1, width: 0 }, { center: '40', width: '400' }] };
    assert.deepEqual(defaultWindow(inf, null), { center: 40, width: 400 });
    const ct = { rescale_slope: 1, rescale_intercept: -1024, windows: [] };
    // stored 0..2048 → HU -1024..1024
    assert.deepEqual(defaultWindow(ct, { kind: 'gray16u', min: 0, max: 2048 }), { center: 0, width: 2048 });
    // a negative slope flips the range
    assert.deepEqual(defaultWindow({ rescale_slope: -1 }, { kind: 'gray16s', min: 10, max: 20 }), { center: -15, width: 10 });
    assert.deepEqual(defaultWindow(inf, { kind: 'rgb8' }), { center: 127.5, width: 255 });
    assert.equal(defaultWindow(null, null), null);
  });

  it('drag sensitivity follows the modality value range, at least 64', () => {
    assert.equal(valueRange({ rescale_slope: 2 }, { kind: 'gray16u', min: 0, max: 1000 }), 2000);
    assert.equal(valueRange(null, { kind: 'gray16u', min: 0, max: 10 }), 64);
    assert.equal(valueRange(null, { kind: 'rgb8' }), 256);
    assert.equal(valueRange(null, null), 256);
  });

  it('bounds of the first n samples', () => {
    assert.deepEqual(valueBounds(new Int16Array([5, -3, 9, 100]), 3), { min: -3, max: 9 });
  });
});

describe('toneTable', () => {
  it('is the identity untouched and reversed when inverted', () => {
    for (let v = 0; v < 256; v++) assert.equal(IDENTITY_TONE[v], v);
    const inv = toneTable({ brightness: 0, contrast: 0, invert: true });
    assert.equal(inv[0], 255);
    assert.equal(inv[255], 0);
  });

  it('brightness shifts by 1.28 per step and clamps; contrast scales about 127.5', () => {
    const b = toneTable({ brightness: 50, contrast: 0, invert: false });
    assert.equal(b[0], 64);
    assert.equal(b[200], 255);
    const c = toneTable({ brightness: 0, contrast: 25, invert: false }); // factor 2
    assert.equal(c[100], 73); // (100 - 127.5) * 2 + 127.5 = 72.5 → 73
    assert.equal(c[200], 255);
    const low = toneTable({ brightness: 0, contrast: -100, invert: false }); // factor 0.2
    assert.equal(low[0], 102); // -127.5 * 0.2 + 127.5 = 102
  });
});

describe('renderGray', () => {
  it('applies rescale, window, MONOCHROME1 and the tone table, opaque', () => {
    const p = { data: new Uint16Array([0, 1024, 1064, 4095]), min: 0, max: 4095 };
    const inf = { rescale_slope: 1, rescale_intercept: -1024 };
    const out = new Uint32Array(4);
    renderGray(p, inf, { center: 40, width: 80 }, IDENTITY_TONE, out);
    // HU -1024, 0, 40, 3071
    assert.deepEqual([...out].map(grey), [0, 0, windowed(40, 40, 80), 255]);
    for (const w of out) assert.equal(w >>> 24, 0xff);
    renderGray(p, { ...inf, photometric: 'monochrome1' }, { center: 40, width: 80 }, IDENTITY_TONE, out);
    assert.deepEqual([...out].map(grey), [255, 255, 255 - windowed(40, 40, 80), 0]);
  });

  it('handles signed stored values', () => {
    const p = { data: new Int16Array([-100, 0, 100]), min: -100, max: 100 };
    const out = new Uint32Array(3);
    renderGray(p, null, { center: 0.5, width: 201 }, IDENTITY_TONE, out);
    assert.deepEqual([...out].map(grey), [0, 128, 255]);
  });
});

describe('renderRgb and renderPreview', () => {
  it('leaves colours alone under the identity window and stretches otherwise', () => {
    const p = { rows: 1, cols: 2, data: new Uint8Array([10, 20, 30, 200, 100, 0]) };
    const out = new Uint8Array(8);
    renderRgb(p, { center: 127.5, width: 255 }, IDENTITY_TONE, out);
    assert.deepEqual([...out], [10, 20, 30, 255, 200, 100, 0, 255]);
    renderRgb(p, { center: 100, width: 100 }, IDENTITY_TONE, out);
    // ((v - 100) / 100 + 0.5) * 255: 10 → <0 → 0, 30 → -51 → 0, 100 → 127.5 → 128, 200 → 255
    assert.deepEqual([...out], [0, 0, 0, 255, 255, 128, 0, 255]);
  });

  it('a preview goes through the tone table only', () => {
    const inv = toneTable({ brightness: 0, contrast: 0, invert: true });
    const out = new Uint8Array(4);
    renderPreview(new Uint8Array([0, 100, 255, 7]), inv, out);
    assert.deepEqual([...out], [255, 155, 0, 255]);
  });
});

describe('convolve (3×3, border repeated)', () => {
  const rgba = (values) => {
    const a = new Uint8ClampedArray(values.length * 4);
    values.forEach((v, i) => { a.set([v, v, v, 255], i * 4); });
    return a;
  };

  it('a flat image stays flat under sharpen and is zero under edge', () => {
    const src = rgba(new Array(9).fill(77));
    const sharp = convolve(src, 3, 3, KERNELS.sharpen, false, true, new Uint8ClampedArray(36));
    assert.deepEqual([...sharp], [...src]);
    const edge = convolve(src, 3, 3, KERNELS.edge, true, true, new Uint8ClampedArray(36));
    for (let i = 0; i < 9; i++) assert.deepEqual([...edge.slice(i * 4, i * 4 + 4)], [0, 0, 0, 255]);
  });

  it('one bright pixel: edge is |8·v| clamped in the centre, v at its neighbours', () => {
    const src = rgba([0, 0, 0, 0, 20, 0, 0, 0, 0]);
    const edge = convolve(src, 3, 3, KERNELS.edge, true, true, new Uint8ClampedArray(36));
    assert.equal(edge[4 * 4], 160);
    assert.equal(edge[0], 20); // -1 · 20, absolute
    const emboss = convolve(src, 3, 3, KERNELS.emboss, false, true, new Uint8ClampedArray(36));
    assert.equal(emboss[0], 40); // the top-left pixel sees 20 at its bottom-right (weight 2)
    assert.equal(emboss[8 * 4], 0); // the bottom-right one sees it at its top-left (weight -2), clamped
  });

  it('colour channels are filtered each on their own', () => {
    const src = new Uint8ClampedArray([10, 20, 30, 255]);
    const out = convolve(src, 1, 1, KERNELS.sharpen, false, false, new Uint8ClampedArray(4));
    // a 1×1 image repeats itself on every side: sum of the kernel (1) times the value
    assert.deepEqual([...out], [10, 20, 30, 255]);
  });
});

describe('presets', () => {
  it('are the CT windows the toolbar offers', () => {
    assert.deepEqual(Object.keys(PRESETS), ['lung', 'bone', 'brain', 'abdomen']);
    assert.deepEqual(PRESETS.brain, { center: 40, width: 80 });
  });
});

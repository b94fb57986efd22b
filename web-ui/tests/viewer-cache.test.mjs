// Pieces of the viewer's cache that run without a browser (web-ui/static/viewer-cache.js).
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { interleave, unMed } from '../static/viewer-cache.js';

describe('byte planes', () => {
  it('are put back into little-endian 16-bit samples', () => {
    // planes of the samples 0x0201, 0x0403, 0xFF05: low bytes 01 03 05, high bytes 02 04 FF
    const buf = Uint8Array.from([1, 3, 5, 2, 4, 0xff]).buffer;
    assert.deepEqual([...new Uint16Array(interleave(buf))], [0x0201, 0x0403, 0xff05]);
    assert.deepEqual([...new Int16Array(interleave(buf))], [0x0201, 0x0403, -251]);
  });
});

/** The server's encoding (firmware/web/src/pixels.rs `med_residual_planes`), written again here. */
function med(samples, cols, signed) {
  const n = samples.length;
  const x = samples.map((v) => (v & 0xffff) ^ (signed ? 0x8000 : 0));
  const out = new Uint8Array(2 * n);
  for (let i = 0; i < n; i++) {
    let pred;
    if (i === 0) pred = 0;
    else if (i < cols) pred = x[i - 1];
    else if (i % cols === 0) pred = x[i - cols];
    else {
      const [a, b, c] = [x[i - 1], x[i - cols], x[i - cols - 1]];
      pred = c >= Math.max(a, b) ? Math.min(a, b) : c <= Math.min(a, b) ? Math.max(a, b) : a + b - c;
    }
    const d = ((x[i] - pred) << 16) >> 16; // modulo 2^16, as a signed residual
    const zz = d >= 0 ? 2 * d : -2 * d - 1;
    out[i] = zz & 0xff;
    out[n + i] = zz >> 8;
  }
  return out.buffer;
}

describe('median-predictor residuals', () => {
  it('are undone exactly, unsigned and signed, across the extremes', () => {
    const cols = 7;
    const u = Array.from({ length: 35 }, (_, i) => 1000 + 3 * i + ((i * 7919) % 5));
    u[9] = 0;
    u[10] = 0xffff;
    u[20] = 0x8000;
    assert.deepEqual([...new Uint16Array(unMed(med(u, cols, false), cols, false))], u);
    const s = Array.from({ length: 35 }, (_, i) => ((i * 9173) % 4000) - 2000);
    s[3] = -32768;
    s[4] = 32767;
    assert.deepEqual([...new Int16Array(unMed(med(s, cols, true), cols, true))], s);
  });
  it('match the bytes the server sends for a known case', () => {
    // samples 10 12 / 11 40 (2 columns): residuals 10, 2, 1, and 40 − MED(11, 12, 10) = 40 − 12 = 28
    const planes = Uint8Array.from([20, 4, 2, 56, 0, 0, 0, 0]).buffer;
    assert.deepEqual([...new Uint16Array(unMed(planes, 2, false))], [10, 12, 11, 40]);
  });
});

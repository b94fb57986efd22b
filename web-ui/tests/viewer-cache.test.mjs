// Pieces of the viewer's cache that run without a browser (web-ui/static/viewer-cache.js).
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { interleave } from '../static/viewer-cache.js';

describe('byte planes', () => {
  it('are put back into little-endian 16-bit samples', () => {
    // planes of the samples 0x0201, 0x0403, 0xFF05: low bytes 01 03 05, high bytes 02 04 FF
    const buf = Uint8Array.from([1, 3, 5, 2, 4, 0xff]).buffer;
    assert.deepEqual([...new Uint16Array(interleave(buf))], [0x0201, 0x0403, 0xff05]);
    assert.deepEqual([...new Int16Array(interleave(buf))], [0x0201, 0x0403, -251]);
  });
});

// Which image of a prior follows an image of the current series (web-ui/static/viewer-sync.js),
// without a browser. Expected indices are worked out by hand from the positions below.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { nearestIndex, seriesNormal, sliceNormal, syncIndex } from '../static/viewer-sync.js';

const AXIAL = [1, 0, 0, 0, 1, 0]; // normal +z
const axial = (zs, x = 0) => zs.map((z) => ({ position: [x, -10, z], orientation: AXIAL }));

describe('slice normal', () => {
  it('is row × column, unit length', () => {
    assert.deepEqual(sliceNormal(AXIAL), [0, 0, 1]);
    // coronal: rows along x, columns along −z → normal (1,0,0)×(0,0,−1) = (0,1,0)
    assert.deepEqual(sliceNormal([1, 0, 0, 0, 0, -1]).map((c) => c + 0), [0, 1, 0]); // + 0: no −0
    const n = sliceNormal([2, 0, 0, 0, 2, 0]);
    assert.deepEqual(n, [0, 0, 1]);
  });
  it('is null for missing or degenerate orientations', () => {
    assert.equal(sliceNormal(null), null);
    assert.equal(sliceNormal([1, 0, 0]), null);
    assert.equal(sliceNormal([1, 0, 0, 1, 0, 0]), null);
    assert.equal(sliceNormal([1, 0, 0, 0, NaN, 0]), null);
  });
  it('of a series needs every image placed and the planes parallel', () => {
    assert.deepEqual(seriesNormal(axial([0, 5, 10])), [0, 0, 1]);
    assert.equal(seriesNormal([...axial([0, 5]), { position: null, orientation: AXIAL }]), null);
    assert.equal(seriesNormal([...axial([0]), { position: [0, 0, 5], orientation: [1, 0, 0, 0, 0, -1] }]), null);
    assert.equal(seriesNormal([]), null);
  });
});

describe('nearest index', () => {
  it('takes the smallest distance, the first of equals', () => {
    assert.equal(nearestIndex(4.9, [0, 2.5, 5, 7.5]), 2);
    assert.equal(nearestIndex(3.75, [0, 2.5, 5, 7.5]), 1);
    assert.equal(nearestIndex(-100, [0, 2.5]), 0);
    assert.equal(nearestIndex(100, [0, 2.5]), 1);
    assert.equal(nearestIndex(1, []), -1);
  });
});

describe('synchronised scrolling', () => {
  it('follows slice position, whichever way each series is ordered', () => {
    const current = axial([0, 2.5, 5, 7.5, 10, 12.5, 15]);
    // the prior: 3 mm apart from 1.3 mm, stored head first (descending z), shifted sideways
    const prior = axial([19.3, 16.3, 13.3, 10.3, 7.3, 4.3, 1.3], 40);
    // current image 3 is at z 7.5: the prior's nearest is 7.3 (index 4)
    assert.deepEqual(syncIndex(3, current, prior), { index: 4, by: 'position' });
    // z 0 → 1.3 (index 6); z 15 → 16.3 (1.3 away, 13.3 is 1.7 away: index 1)
    assert.equal(syncIndex(0, current, prior).index, 6);
    assert.equal(syncIndex(6, current, prior).index, 1);
    // and back: prior z 19.3 → current 15 (index 6); prior 10.3 → current 10 (index 4)
    assert.equal(syncIndex(0, prior, current).index, 6);
    assert.equal(syncIndex(3, prior, current).index, 4);
  });
  it('projects on the normal: an oblique stack compares along its own axis', () => {
    const s = Math.SQRT1_2;
    const tilt = [1, 0, 0, 0, s, -s]; // normal (0, s, s)
    const along = (ds) => ds.map((d) => ({ position: [0, d * s, d * s], orientation: tilt }));
    // positions 0, 4, 8 and 1, 5, 9, 13 along the normal: 8 is nearest 9
    assert.deepEqual(syncIndex(2, along([0, 4, 8]), along([1, 5, 9, 13])), { index: 2, by: 'position' });
  });
  it('falls back to instance order without positions or with planes that are not parallel', () => {
    const current = axial([0, 5, 10, 15]);
    const coronal = [0, 1, 2].map((y) => ({ position: [0, y, 0], orientation: [1, 0, 0, 0, 0, -1] }));
    assert.deepEqual(syncIndex(1, current, coronal), { index: 1, by: 'order' });
    assert.deepEqual(syncIndex(3, current, coronal), { index: 2, by: 'order' }, 'clamped to the shorter series');
    const unplaced = [{ position: null, orientation: null }, { position: null, orientation: null }];
    assert.deepEqual(syncIndex(0, current, unplaced), { index: 0, by: 'order' });
    assert.deepEqual(syncIndex(1, unplaced, current), { index: 1, by: 'order' });
    assert.deepEqual(syncIndex(0, current, []), { index: -1, by: 'order' });
  });
});

describe('offset lock', () => {
  it('keeps the distance between the two images the user lined up', () => {
    const cur = axial([0, 2.5, 5, 7.5, 10, 12.5, 15]);
    const pri = axial([40, 43, 46, 49, 52, 55]); // the same anatomy 40 mm further up the table
    // without the lock: nearest to z = 5 is the prior's first (40)
    assert.deepEqual(syncIndex(2, cur, pri), { index: 0, by: 'position' });
    // locked with current 0 (z 0) ↔ prior 0 (z 40): current 2 (z 5) → z 45 → prior 2 (46)
    const lock = { from: 0, to: 0 };
    assert.deepEqual(syncIndex(2, cur, pri, lock), { index: 2, by: 'position' });
    assert.deepEqual(syncIndex(6, cur, pri, lock), { index: 5, by: 'position' }); // z 55
    // and the other way round, with the lock's ends swapped
    assert.deepEqual(syncIndex(3, pri, cur, { from: 0, to: 0 }), { index: 4, by: 'position' }); // 49 → 9 → 10
  });
  it('shifts the instance number when positions are missing', () => {
    const a = [{}, {}, {}, {}, {}];
    const b = [{}, {}, {}, {}, {}, {}, {}];
    assert.deepEqual(syncIndex(1, a, b, { from: 0, to: 3 }), { index: 4, by: 'order' });
    assert.deepEqual(syncIndex(4, a, b, { from: 0, to: 3 }), { index: 6, by: 'order' }); // clamped
    assert.deepEqual(syncIndex(1, a, b, { from: 9, to: 3 }), { index: 1, by: 'order' }); // no such image: no lock
  });
});

// The viewer's measurement maths and orientation markers (web-ui/static/viewer-measure.js)
// without a browser. Expected values are worked out by hand, not by calling the code under test.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  angle, calibration, describeMeasurement, directionLetters, edgeLabels, forEachPixel, length, roiStats,
} from '../static/viewer-measure.js';

const near = (a, b, eps = 1e-9) => assert.ok(Math.abs(a - b) <= eps, `${a} ≠ ${b}`);

describe('calibration and length', () => {
  it('uses Pixel Spacing as (row, column) = (vertical, horizontal)', () => {
    const cal = calibration({ pixel_spacing: [0.5, 2], spacing_source: 'patient' });
    assert.equal(cal.unit, 'mm');
    assert.equal(cal.note, '');
    // 3 columns right (3 × 2 mm) and 8 rows down (8 × 0.5 mm): a 6-4 hypotenuse... 6, 4 → √52
    near(length({ x: 1, y: 1 }, { x: 4, y: 9 }, cal), Math.sqrt(36 + 16));
  });

  it('marks detector spacing and falls back to pixels without any', () => {
    assert.equal(calibration({ pixel_spacing: [0.1, 0.1], spacing_source: 'detector' }).note, 'at detector');
    const none = calibration({});
    assert.equal(none.unit, 'px');
    assert.equal(none.calibrated, false);
    near(length({ x: 0, y: 0 }, { x: 3, y: 4 }, none), 5);
    assert.equal(describeMeasurement({ kind: 'length', length: 5 }, none), '5 px (uncalibrated)');
    assert.equal(calibration({ pixel_spacing: [0, 1] }).calibrated, false);
  });
});

describe('angle', () => {
  it('is measured in the patient, not in pixels', () => {
    const iso = calibration({ pixel_spacing: [1, 1] });
    near(angle({ x: 10, y: 0 }, { x: 0, y: 0 }, { x: 0, y: 10 }, iso), 90);
    near(angle({ x: 10, y: 10 }, { x: 0, y: 0 }, { x: 10, y: 0 }, iso), 45);
    // with rows twice as tall as columns are wide, the pixel diagonal is at atan(2) ≈ 63.43°
    const tall = calibration({ pixel_spacing: [2, 1] });
    near(angle({ x: 10, y: 10 }, { x: 0, y: 0 }, { x: 10, y: 0 }, tall), (Math.atan(2) * 180) / Math.PI);
    assert.ok(Number.isNaN(angle({ x: 0, y: 0 }, { x: 0, y: 0 }, { x: 1, y: 0 }, iso)));
  });
});

describe('ROI', () => {
  it('a rectangle takes the pixels whose centres are inside it', () => {
    const seen = [];
    const n = forEachPixel('rect', { x: 0.6, y: 0.4 }, { x: 3.4, y: 1.6 }, 10, 10, (i, j) => seen.push([i, j]));
    // centres x ∈ {1.5, 2.5}, y ∈ {0.5, 1.5}
    assert.equal(n, 4);
    assert.deepEqual(seen, [[1, 0], [2, 0], [1, 1], [2, 1]]);
  });

  it('an ellipse inscribed in a 4×4 box leaves the corners out', () => {
    const seen = new Set();
    forEachPixel('ellipse', { x: 0, y: 0 }, { x: 4, y: 4 }, 10, 10, (i, j) => seen.add(`${i},${j}`));
    // centre (2,2), radius 2: (0.5,0.5) is √4.5 ≈ 2.12 away → out; (1.5,0.5) is √2.5 → in
    assert.equal(seen.has('0,0'), false);
    assert.equal(seen.has('3,3'), false);
    assert.equal(seen.has('1,0'), true);
    assert.equal(seen.size, 12);
  });

  it('clips to the image', () => {
    assert.equal(forEachPixel('rect', { x: -5, y: -5 }, { x: 2, y: 1 }, 3, 3, () => {}), 2);
  });

  it('gives modality values: stored × slope + intercept (HU for a CT)', () => {
    // 2×2 image, stored 1000, 1010, 1020, 1030; slope 1, intercept −1024 → −24, −14, −4, 6
    const p = { kind: 'gray16s', cols: 2, rows: 2, data: Int16Array.from([1000, 1010, 1020, 1030]) };
    const inf = { rescale_slope: 1, rescale_intercept: -1024, pixel_spacing: [0.5, 0.5] };
    const s = roiStats('rect', { x: 0, y: 0 }, { x: 2, y: 2 }, p, inf, calibration(inf));
    assert.equal(s.n, 4);
    near(s.mean, -9);
    near(s.min, -24);
    near(s.max, 6);
    near(s.sd, Math.sqrt((15 * 15 + 5 * 5 + 5 * 5 + 15 * 15) / 4));
    near(s.area, 1); // 1 mm × 1 mm
    assert.equal(
      describeMeasurement({ kind: 'rect', stats: s }, calibration(inf), 'HU'),
      'mean -9.0 HU SD 11.2 min -24.0 max 6.0 · 0.01 cm²',
    );
  });

  it('an empty shape says so instead of dividing by zero', () => {
    const p = { kind: 'gray16u', cols: 2, rows: 2, data: Uint16Array.from([1, 2, 3, 4]) };
    const s = roiStats('ellipse', { x: 1, y: 1 }, { x: 1, y: 1 }, p, {}, calibration({}));
    assert.equal(s.n, 0);
    assert.ok(Number.isNaN(s.mean));
  });
});

describe('orientation markers', () => {
  const identity = (x, y) => ({ x, y });
  it('an axial CT: left of the patient on the right of the screen, anterior at the top', () => {
    const axial = { image_orientation: [1, 0, 0, 0, 1, 0] };
    assert.deepEqual(edgeLabels(axial, identity), { right: 'L', left: 'R', bottom: 'P', top: 'A' });
  });

  it('turns with a 90° clockwise rotation and with a horizontal flip', () => {
    const axial = { image_orientation: [1, 0, 0, 0, 1, 0] };
    // rotated 90° clockwise: a step right on screen is a step up (−y) in the image
    const rot90 = (x, y) => ({ x: y, y: -x });
    assert.deepEqual(edgeLabels(axial, rot90), { right: 'A', left: 'P', bottom: 'L', top: 'R' });
    const flipH = (x, y) => ({ x: -x, y });
    assert.deepEqual(edgeLabels(axial, flipH), { right: 'R', left: 'L', bottom: 'P', top: 'A' });
  });

  it('a coronal and an oblique plane', () => {
    const coronal = { image_orientation: [1, 0, 0, 0, 0, -1] };
    assert.deepEqual(edgeLabels(coronal, identity), { right: 'L', left: 'R', bottom: 'F', top: 'H' });
    assert.equal(directionLetters([0.8, 0.6, 0]), 'LP');
    assert.equal(directionLetters([0.2, -0.98, 0]), 'A');
  });

  it('Patient Orientation when there is no Image Orientation, and nothing without either', () => {
    const pa = { patient_orientation: ['L', 'F'] };
    assert.deepEqual(edgeLabels(pa, identity), { right: 'L', left: 'R', bottom: 'F', top: 'H' });
    assert.equal(edgeLabels({}, identity), null);
  });
});

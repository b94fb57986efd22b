// The viewer's measurements and orientation markers, as pure functions of image coordinates
// and /info (tested with node: web-ui/tests/viewer-measure.test.mjs).
//
// Image coordinates: x to the right along a row, y down along a column, in pixels, with pixel
// (i, j) covering [i, i+1) × [j, j+1) — its centre is (i + 0.5, j + 0.5). Pixel Spacing is
// (row spacing, column spacing): the vertical and the horizontal size of a pixel in mm.

import { t } from './i18n.js';
import { slopeIntercept } from './viewer-pixels.js';

/** How a length is calibrated: mm in the patient, mm at the detector, or pixels only. */
export function calibration(inf) {
  const ps = inf && inf.pixel_spacing;
  if (!Array.isArray(ps) || ps.length < 2 || !(ps[0] > 0) || !(ps[1] > 0)) {
    return { sx: 1, sy: 1, unit: 'px', calibrated: false, note: 'uncalibrated' };
  }
  const detector = inf.spacing_source === 'detector';
  return {
    sx: Number(ps[1]),
    sy: Number(ps[0]),
    unit: 'mm',
    calibrated: true,
    note: detector ? 'at detector' : '',
  };
}

/** Length of the segment a–b in the calibration's unit. */
export function length(a, b, cal) {
  return Math.hypot((b.x - a.x) * cal.sx, (b.y - a.y) * cal.sy);
}

/** The angle at `v` between v→a and v→b, in degrees (0–180), measured in the patient. */
export function angle(a, v, b, cal) {
  const ux = (a.x - v.x) * cal.sx;
  const uy = (a.y - v.y) * cal.sy;
  const wx = (b.x - v.x) * cal.sx;
  const wy = (b.y - v.y) * cal.sy;
  const nu = Math.hypot(ux, uy);
  const nw = Math.hypot(wx, wy);
  if (!nu || !nw) return NaN;
  const c = Math.max(-1, Math.min(1, (ux * wx + uy * wy) / (nu * nw)));
  return (Math.acos(c) * 180) / Math.PI;
}

/**
 * The pixels whose centres lie inside the shape: `rect` (the box a–b) or `ellipse` (inscribed
 * in that box). Calls `visit(i, j)` for each; returns how many.
 */
export function forEachPixel(kind, a, b, cols, rows, visit) {
  const x0 = Math.min(a.x, b.x);
  const x1 = Math.max(a.x, b.x);
  const y0 = Math.min(a.y, b.y);
  const y1 = Math.max(a.y, b.y);
  const cx = (x0 + x1) / 2;
  const cy = (y0 + y1) / 2;
  const rx = (x1 - x0) / 2;
  const ry = (y1 - y0) / 2;
  let n = 0;
  const jFrom = Math.max(0, Math.ceil(y0 - 0.5));
  const jTo = Math.min(rows - 1, Math.floor(y1 - 0.5));
  const iFrom = Math.max(0, Math.ceil(x0 - 0.5));
  const iTo = Math.min(cols - 1, Math.floor(x1 - 0.5));
  for (let j = jFrom; j <= jTo; j++) {
    for (let i = iFrom; i <= iTo; i++) {
      if (kind === 'ellipse') {
        if (!(rx > 0 && ry > 0)) continue;
        const dx = (i + 0.5 - cx) / rx;
        const dy = (j + 0.5 - cy) / ry;
        if (dx * dx + dy * dy > 1) continue;
      }
      visit(i, j);
      n++;
    }
  }
  return n;
}

/**
 * Mean, standard deviation (population), min and max of the modality values (stored × slope +
 * intercept) inside the shape, and its area. `p` is the viewer's `{kind, cols, rows, data}`;
 * RGB images are measured on their luminance (Rec. 601), which is all an RGB value can say.
 */
export function roiStats(kind, a, b, p, inf, cal) {
  const [s, k] = slopeIntercept(inf);
  const rgb = p.kind === 'rgb8';
  let n = 0;
  let sum = 0;
  let sum2 = 0;
  let min = Infinity;
  let max = -Infinity;
  forEachPixel(kind, a, b, p.cols, p.rows, (i, j) => {
    const at = j * p.cols + i;
    let v;
    if (rgb) v = 0.299 * p.data[at * 3] + 0.587 * p.data[at * 3 + 1] + 0.114 * p.data[at * 3 + 2];
    else v = p.data[at] * s + k;
    n++;
    sum += v;
    sum2 += v * v;
    if (v < min) min = v;
    if (v > max) max = v;
  });
  const w = Math.abs(b.x - a.x) * cal.sx;
  const h = Math.abs(b.y - a.y) * cal.sy;
  const area = kind === 'ellipse' ? (Math.PI * w * h) / 4 : w * h;
  if (!n) return { n: 0, mean: NaN, sd: NaN, min: NaN, max: NaN, area };
  const mean = sum / n;
  const sd = Math.sqrt(Math.max(0, sum2 / n - mean * mean));
  return { n, mean, sd, min, max, area };
}

const OPPOSITE = { L: 'R', R: 'L', A: 'P', P: 'A', H: 'F', F: 'H' };

/** The patient direction of a 3-vector as up to three letters, the strongest first. */
export function directionLetters(v) {
  const parts = [
    [Math.abs(v[0]), v[0] > 0 ? 'L' : 'R'],
    [Math.abs(v[1]), v[1] > 0 ? 'P' : 'A'],
    [Math.abs(v[2]), v[2] > 0 ? 'H' : 'F'],
  ].sort((p, q) => q[0] - p[0]);
  // components under ~0.3 (an oblique of less than ~17°) would only clutter the marker
  return parts.filter(([m]) => m > 0.3).map(([, l]) => l).join('');
}

const flipLetters = (s) => [...s].map((c) => OPPOSITE[c] || c).join('');

/**
 * The letters for the four edges of the screen. `toImage` maps a screen direction (a unit step
 * right or down on screen) to a direction in image coordinates (the inverse of the view's
 * rotation and flips); `inf` gives Image Orientation (Patient) or Patient Orientation.
 * Returns null when the image has neither.
 */
export function edgeLabels(inf, toImage) {
  const right = toImage(1, 0);
  const down = toImage(0, 1);
  const iop = inf && inf.image_orientation;
  if (Array.isArray(iop) && iop.length === 6) {
    const dir = (d) => [0, 1, 2].map((c) => d.x * iop[c] + d.y * iop[3 + c]);
    const r = directionLetters(dir(right));
    const b = directionLetters(dir(down));
    return { right: r, left: flipLetters(r), bottom: b, top: flipLetters(b) };
  }
  const po = inf && inf.patient_orientation;
  if (Array.isArray(po) && po.length === 2) {
    // Patient Orientation gives the direction of increasing column (x) and row (y) index
    const along = (d) => {
      if (Math.abs(d.x) > 0.5) return d.x > 0 ? po[0] : flipLetters(po[0]);
      return d.y > 0 ? po[1] : flipLetters(po[1]);
    };
    const r = along(right);
    const b = along(down);
    return { right: r, left: flipLetters(r), bottom: b, top: flipLetters(b) };
  }
  return null;
}

/** One line of text for a measurement's result. */
export function describeMeasurement(m, cal, unitOfValues) {
  // as reading tools write values off an image (no thousands grouping, a point in both languages)
  const num = (v, d = 1) => (Number.isFinite(v) ? v.toFixed(d) : '—');
  // `cal.note` stays the English word (a value of the hook); shown in the page's language
  const note = { uncalibrated: t('uncalibrated'), 'at detector': t('at detector') }[cal.note] || cal.note;
  const star = note ? ` (${note})` : '';
  switch (m.kind) {
    case 'length':
      return `${num(m.length, cal.calibrated ? 1 : 0)} ${cal.unit}${star}`;
    case 'angle':
      return `${num(m.angle)}°`;
    default: {
      const s = m.stats;
      const u = unitOfValues ? ` ${unitOfValues}` : '';
      const area = cal.calibrated ? `${num(s.area / 100, 2)} cm²` : `${num(s.area, 0)} px²`;
      return `${t('mean {} SD {} min {} max {}', num(s.mean) + u, num(s.sd), num(s.min), num(s.max))} · ${area}${star}`;
    }
  }
}

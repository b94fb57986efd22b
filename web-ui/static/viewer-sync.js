// pacsbox viewer: which image of one series lies nearest to an image of another, for scrolling
// a study and its prior together (viewer-compare.js). Pure functions, tested with node
// (web-ui/tests/viewer-sync.test.mjs).
//
// Position of a slice: its Image Position (Patient) projected on the slice normal (row × column
// direction cosines of Image Orientation (Patient)), PS3.3 C.7.6.2.1.1. Two series compare by
// position only when every image has both attributes and all planes are parallel (within
// PARALLEL_TOL); otherwise by instance order (the same index, clamped to the shorter series).

/** |cos| of the angle between two normals at or above which planes count as parallel (~2.6°). */
export const PARALLEL_TOL = 0.999;

const dot = (a, b) => a[0] * b[0] + a[1] * b[1] + a[2] * b[2];

/** Unit normal of an Image Orientation (Patient) `[rx, ry, rz, cx, cy, cz]`, or null. */
export function sliceNormal(o) {
  if (!Array.isArray(o) || o.length < 6 || !o.every(Number.isFinite)) return null;
  const n = [o[1] * o[5] - o[2] * o[4], o[2] * o[3] - o[0] * o[5], o[0] * o[4] - o[1] * o[3]];
  const len = Math.hypot(n[0], n[1], n[2]);
  return len > 1e-6 ? n.map((c) => c / len) : null;
}

/**
 * The common normal of a series' images `[{position, orientation}]`, or null when an image
 * lacks either attribute or the planes are not parallel.
 */
export function seriesNormal(geoms) {
  if (!Array.isArray(geoms) || !geoms.length) return null;
  let first = null;
  for (const g of geoms) {
    const n = g && sliceNormal(g.orientation);
    const p = g && g.position;
    if (!n || !Array.isArray(p) || p.length < 3 || !p.slice(0, 3).every(Number.isFinite)) return null;
    if (!first) first = n;
    else if (Math.abs(dot(first, n)) < PARALLEL_TOL) return null;
  }
  return first;
}

/** Index of the value in `list` nearest to `x` (the first of equals); -1 for an empty list. */
export function nearestIndex(x, list) {
  let best = -1;
  let bestD = Infinity;
  list.forEach((v, i) => {
    const d = Math.abs(v - x);
    if (d < bestD) {
      bestD = d;
      best = i;
    }
  });
  return best;
}

/**
 * The image of series `to` to show when series `from` shows image `i`: the one whose slice
 * position (on `to`'s normal) is nearest to that of `from`'s image `i`; by instance order when
 * positions are missing or the planes of the two series are not parallel.
 * `lock` (optional, the offset lock): `{ from: k, to: j }`, two images the user lined up; then
 * the target is `from`'s image `i` moved by the distance between those two (or, by instance
 * order, `i + j − k`), so a prior lying elsewhere on the table keeps that alignment.
 * Returns `{ index, by: 'position' | 'order' }`.
 */
export function syncIndex(i, from, to, lock = null) {
  const nTo = Array.isArray(to) ? to.length : 0;
  if (!nTo) return { index: -1, by: 'order' };
  const a = seriesNormal(from);
  const b = seriesNormal(to);
  const locked = lock && from[lock.from] && to[lock.to] ? lock : null;
  if (!a || !b || Math.abs(dot(a, b)) < PARALLEL_TOL || !from[i]) {
    const shift = locked ? locked.to - locked.from : 0;
    return { index: Math.max(0, Math.min(nTo - 1, i + shift)), by: 'order' };
  }
  const shift = locked ? dot(to[locked.to].position, b) - dot(from[locked.from].position, b) : 0;
  const x = dot(from[i].position, b) + shift;
  return { index: nearestIndex(x, to.map((g) => dot(g.position, b))), by: 'position' };
}

// Shared helpers for the browser tests: Debian's chromium through playwright-core, the server
// started by run.sh (PACSBOX_URL, PACSBOX_ADMIN_PASSWORD, PACSBOX_MANIFEST), logging in, and
// reading what the viewer's canvas shows (computed inside the page; only numbers come back).
import { mkdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import assert from 'node:assert/strict';
import { chromium } from 'playwright-core';

export const BASE = process.env.PACSBOX_URL || 'https://127.0.0.1:8443';
/** Plain HTTP of the same box: it only redirects to BASE (and serves /status.json). */
export const PLAIN = process.env.PACSBOX_PLAIN_URL || 'http://127.0.0.1:8080';
export const ADMIN_PASSWORD = process.env.PACSBOX_ADMIN_PASSWORD || '';
/** The password the first test chooses; every later login uses it. */
export const NEW_PASSWORD = process.env.PACSBOX_NEW_PASSWORD || 'browser-test-Pa55word!';
export const ARTIFACTS = process.env.PACSBOX_ARTIFACTS || path.join(path.dirname(fileURLToPath(import.meta.url)), 'artifacts');
export const MANIFEST = process.env.PACSBOX_MANIFEST
  ? JSON.parse(readFileSync(process.env.PACSBOX_MANIFEST, 'utf8'))
  : null;
mkdirSync(ARTIFACTS, { recursive: true });

export const CHROMIUM_ARGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
];

/** playwright's launch() gives every browser a fresh temporary --user-data-dir of its own. */
export async function launch() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: CHROMIUM_ARGS,
    timeout: 60_000,
  });
}

/** A page that fails the test on any dialog (alert = script injection) or page error. */
export async function newPage(browser, opts = {}) {
  // The box's certificate is self-signed (made at first start); staff accept it once after
  // comparing its fingerprint, which 01-pages checks against the status document.
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 }, ignoreHTTPSErrors: true, ...opts });
  const page = await context.newPage();
  page.problems = [];
  page.on('dialog', async (d) => {
    page.problems.push(`dialog fired: ${d.type()} ${d.message()}`);
    await d.dismiss();
  });
  page.on('pageerror', (e) => page.problems.push(`page error: ${e.message}`));
  page.on('console', (m) => {
    if (m.type() === 'error' && /Content Security Policy|Refused to/.test(m.text())) page.problems.push(`CSP: ${m.text()}`);
  });
  return page;
}

export function noProblems(page) {
  assert.deepEqual(page.problems, [], 'the page raised dialogs, script errors or CSP violations');
}

export async function shot(page, name) {
  await page.screenshot({ path: path.join(ARTIFACTS, `${name}.png`) });
}

/** Log in through the form; if the server forces a password change, do it (to NEW_PASSWORD). */
export async function login(page, { user = 'admin', password = NEW_PASSWORD, next = '/search' } = {}) {
  if (process.env.PACSBOX_NO_LOGIN) return; // developing against a mock of the API
  await page.goto(`${BASE}/login?next=${encodeURIComponent(next)}`);
  await page.fill('#login input[name=user]', user);
  await page.fill('#login input[name=password]', password);
  await Promise.all([page.waitForLoadState('load'), page.click('#login button[type=submit]')]);
  if (new URL(page.url()).pathname === '/login' && password === NEW_PASSWORD && ADMIN_PASSWORD) {
    // the first test has not changed it yet (running a file on its own): do it here
    return loginAndChange(page, next);
  }
  if (new URL(page.url()).pathname === '/account/password') {
    await changePassword(page, password, NEW_PASSWORD);
    await page.goto(`${BASE}${next}`);
  }
  assert.notEqual(new URL(page.url()).pathname, '/login', 'still on the login page after logging in');
}

async function loginAndChange(page, next) {
  await page.goto(`${BASE}/login?next=${encodeURIComponent(next)}`);
  await page.fill('#login input[name=user]', 'admin');
  await page.fill('#login input[name=password]', ADMIN_PASSWORD);
  await Promise.all([page.waitForLoadState('load'), page.click('#login button[type=submit]')]);
  if (new URL(page.url()).pathname === '/account/password') await changePassword(page, ADMIN_PASSWORD, NEW_PASSWORD);
  await page.goto(`${BASE}${next}`);
}

export async function changePassword(page, current, fresh) {
  await page.fill('#password input[name=current]', current);
  await page.fill('#password input[name=new]', fresh);
  await page.fill('#password input[name=confirm]', fresh);
  await Promise.all([page.waitForLoadState('load'), page.click('#password button[type=submit]')]);
}

// ---------------------------------------------------------------- the viewer

export async function openViewer(page, study, series) {
  const q = series ? `?series=${series}` : '';
  await page.goto(`${BASE}/viewer/${study}${q}`);
  return ready(page);
}

/** Wait until the viewer shows the current image from its full pixels (or has settled). */
export async function ready(page, timeout = 30_000) {
  await page.waitForFunction(() => window.pacsboxViewer !== undefined, null, { timeout });
  const s = await page.evaluate(
    (t) => Promise.race([
      window.pacsboxViewer.whenReady(),
      new Promise((_r, rej) => setTimeout(() => rej(new Error('viewer not ready')), t)),
    ]),
    timeout,
  );
  // one more frame so that what the hook reports is on the canvas
  await page.evaluate(() => new Promise((r) => requestAnimationFrame(() => r())));
  return s;
}

export const state = (page) => page.evaluate(() => window.pacsboxViewer.state);

/**
 * What cine shows: every change of the current image as `[from, to]`, sampled every 5 ms inside
 * the page, until `changes` changes were seen or `ms` milliseconds passed (in the tests only a
 * hang guard; bench/viewer_timing.mjs counts the changes in a fixed time instead).
 */
export function watchCine(page, { changes = 1e9, ms }) {
  return page.evaluate(async ({ changes, ms }) => {
    const out = [];
    const t0 = performance.now();
    let last = window.pacsboxViewer.state.index;
    while (out.length < changes && performance.now() - t0 < ms) {
      await new Promise((r) => setTimeout(r, 5));
      const now = window.pacsboxViewer.state.index;
      if (now !== last) {
        out.push([last, now]);
        last = now;
      }
    }
    return { changes: out, ms: performance.now() - t0 };
  }, { changes, ms });
}

/** Keep a copy of the canvas inside the page under `name`. */
export async function snap(page, name) {
  return page.evaluate((n) => {
    const c = document.getElementById('canvas');
    const img = c.getContext('2d').getImageData(0, 0, c.width, c.height);
    window.__snaps = window.__snaps || {};
    window.__snaps[n] = { img, state: window.pacsboxViewer.state };
    let h = 0x811c9dc5; // FNV-1a of the bytes: "same image" checks
    const d = img.data;
    for (let i = 0; i < d.length; i++) { h ^= d[i]; h = Math.imul(h, 0x01000193) >>> 0; }
    return { width: c.width, height: c.height, hash: h.toString(16) };
  }, name);
}

/**
 * Statistics of a snapshot over the canvas area that shows the image (from the snapshot's
 * transform), shrunk by `inset` image pixels: mean, std, histogram (16 bins) of the red channel,
 * fraction of pixels at 0 or 255.
 */
export async function stats(page, name, { inset = 1, rect = null } = {}) {
  return page.evaluate(([name, inset, rect]) => {
    const { img, state } = window.__snaps[name];
    const [a, b, c, d, e, f] = state.matrix;
    const m = new DOMMatrix([a, b, c, d, e, f]);
    const W = state.imageWidth;
    const H = state.imageHeight;
    const r = rect || [inset, inset, W - inset, H - inset];
    const pts = [[r[0], r[1]], [r[2], r[1]], [r[0], r[3]], [r[2], r[3]]].map(([x, y]) => m.transformPoint(new DOMPoint(x, y)));
    const x0 = Math.max(0, Math.ceil(Math.min(...pts.map((p) => p.x))));
    const x1 = Math.min(img.width, Math.floor(Math.max(...pts.map((p) => p.x))));
    const y0 = Math.max(0, Math.ceil(Math.min(...pts.map((p) => p.y))));
    const y1 = Math.min(img.height, Math.floor(Math.max(...pts.map((p) => p.y))));
    const hist = new Array(16).fill(0);
    let n = 0, sum = 0, sum2 = 0, clipped = 0;
    for (let y = y0; y < y1; y++) {
      for (let x = x0; x < x1; x++) {
        const v = img.data[(y * img.width + x) * 4];
        n++; sum += v; sum2 += v * v; hist[v >> 4]++;
        if (v === 0 || v === 255) clipped++;
      }
    }
    const mean = sum / n;
    return { n, mean, std: Math.sqrt(sum2 / n - mean * mean), hist: hist.map((h) => h / n), clipped: clipped / n, box: [x0, y0, x1, y1] };
  }, [name, inset, rect]);
}

/**
 * Compare two snapshots through a canvas→canvas mapping (2×3 matrix [a,b,c,d,e,f]): for the
 * centre u of every `step`-th image pixel, q = where `from` drew it; the pixel of `to` at map(q)
 * must equal the pixel of `from` at q (or 255 − it, fn 'invert'), within `tol`. Sampling at image
 * pixel centres (not canvas pixel centres) makes this exact for nearest-neighbour magnification.
 */
export async function compareMapped(page, from, to, mapping, { tol = 1, step = 3, channel = 0, fn = 'same' } = {}) {
  return page.evaluate(([from, to, mapping, tol, step, channel, fn]) => {
    const A = window.__snaps[from];
    const B = window.__snaps[to];
    const [a, b, c, d, e, f] = A.state.matrix;
    const MA = new DOMMatrix([a, b, c, d, e, f]);
    const M = new DOMMatrix(mapping);
    const W = A.state.imageWidth;
    const H = A.state.imageHeight;
    let n = 0, ok = 0;
    const bad = [];
    for (let j = 1; j < H - 1; j += step) {
      for (let i = 1; i < W - 1; i += step) {
        const q = MA.transformPoint(new DOMPoint(i + 0.5, j + 0.5));
        const px = Math.floor(q.x);
        const py = Math.floor(q.y);
        if (px < 0 || py < 0 || px >= A.img.width || py >= A.img.height) continue;
        const r = M.transformPoint(q);
        const qx = Math.floor(r.x);
        const qy = Math.floor(r.y);
        if (qx < 0 || qy < 0 || qx >= B.img.width || qy >= B.img.height) continue;
        const va = A.img.data[(py * A.img.width + px) * 4 + channel];
        const vb = B.img.data[(qy * B.img.width + qx) * 4 + channel];
        const want = fn === 'invert' ? 255 - va : va;
        n++;
        if (Math.abs(vb - want) <= tol) ok++;
        else if (bad.length < 5) bad.push({ i, j, va, vb });
      }
    }
    return { n, fraction: n ? ok / n : 0, bad };
  }, [from, to, mapping, tol, step, channel, fn]);
}

/** Mean absolute difference of two snapshots over the whole canvas (same size). */
export async function meanAbsDiff(page, a, b) {
  return page.evaluate(([a, b]) => {
    const A = window.__snaps[a].img.data;
    const B = window.__snaps[b].img.data;
    let s = 0;
    for (let i = 0; i < A.length; i += 4) s += Math.abs(A[i] - B[i]) + Math.abs(A[i + 1] - B[i + 1]) + Math.abs(A[i + 2] - B[i + 2]);
    return s / (A.length / 4) / 3;
  }, [a, b]);
}

/** RGBA of the canvas pixel that shows image pixel (x, y), from a snapshot. */
export async function pixelAt(page, name, x, y) {
  return page.evaluate(([n, x, y]) => {
    const { img, state } = window.__snaps[n];
    const [a, b, c, d, e, f] = state.matrix;
    const p = new DOMMatrix([a, b, c, d, e, f]).transformPoint(new DOMPoint(x + 0.5, y + 0.5));
    const i = (Math.floor(p.y) * img.width + Math.floor(p.x)) * 4;
    return [...img.data.slice(i, i + 4)];
  }, [name, x, y]);
}

/** The canvas's bounding rectangle in page coordinates, and its centre. */
export async function canvasBox(page) {
  const b = await page.locator('#canvas').boundingBox();
  return { ...b, cx: b.x + b.width / 2, cy: b.y + b.height / 2 };
}

/** A mouse drag on the canvas with intermediate moves (pointer events fire on each). */
export async function drag(page, from, to, { steps = 12, button = 'left' } = {}) {
  await page.mouse.move(from.x, from.y);
  await page.mouse.down({ button });
  await page.mouse.move(to.x, to.y, { steps });
  await page.mouse.up({ button });
}

/** 2×3 matrix [a,b,c,d,e,f] of the affine map p → c0 + R (p − c0) for canvas centre c0. */
export function aboutCentre(w, h, [a, b, c, d]) {
  const cx = w / 2;
  const cy = h / 2;
  return [a, b, c, d, cx - a * cx - c * cy, cy - b * cx - d * cy];
}

/**
 * Check a snapshot against the server's full-fidelity pixels: for image pixels on a grid, the
 * canvas shows stored → rescale (slope/intercept from /info) → linear window (center, width) →
 * 8 bit (MONOCHROME1 inverted), or for rgb8 the stored bytes. Only pixels drawn at scale ≥ 1
 * (nearest neighbour) are comparable; the snapshot must be taken at such a zoom.
 */
export async function checkAgainstServer(page, name, sop, frame, { center = null, width = null, step = 5, tol = 1 } = {}) {
  return page.evaluate(async ([name, sop, frame, center, width, step, tol]) => {
    const { img, state } = window.__snaps[name];
    const inf = await (await fetch(`/api/instances/${sop}/info`)).json();
    const r = await fetch(`/api/instances/${sop}/frames/${frame}/pixels`);
    const kind = r.headers.get('X-Pixel-Kind');
    const cols = Number(r.headers.get('X-Columns'));
    const rows = Number(r.headers.get('X-Rows'));
    const buf = await r.arrayBuffer();
    const data = kind === 'gray16s' ? new Int16Array(buf) : kind === 'gray16u' ? new Uint16Array(buf) : new Uint8Array(buf);
    const [a, b, c, d, e, f] = state.matrix;
    const M = new DOMMatrix([a, b, c, d, e, f]);
    const slope = Number(inf.rescale_slope) || 1;
    const icpt = Number(inf.rescale_intercept) || 0;
    const mono1 = inf.photometric === 'MONOCHROME1';
    let n = 0, ok = 0;
    const bad = [];
    for (let y = 0; y < rows; y += step) {
      for (let x = 0; x < cols; x += step) {
        const p = M.transformPoint(new DOMPoint(x + 0.5, y + 0.5));
        const px = Math.floor(p.x), py = Math.floor(p.y);
        if (px < 0 || py < 0 || px >= img.width || py >= img.height) continue;
        const o = (py * img.width + px) * 4;
        n++;
        if (kind === 'rgb8') {
          const s = (y * cols + x) * 3;
          if ([0, 1, 2].every((k) => Math.abs(img.data[o + k] - data[s + k]) <= tol)) ok++;
          else if (bad.length < 5) bad.push({ x, y, want: [...data.slice(s, s + 3)], got: [...img.data.slice(o, o + 3)] });
          continue;
        }
        const m = data[y * cols + x] * slope + icpt;
        let v;
        if (width <= 1) v = m <= center - 0.5 ? 0 : 255;
        else v = Math.min(255, Math.max(0, Math.round(((m - (center - 0.5)) / (width - 1) + 0.5) * 255)));
        if (mono1) v = 255 - v;
        if (Math.abs(img.data[o] - v) <= tol) ok++;
        else if (bad.length < 5) bad.push({ x, y, stored: data[y * cols + x], want: v, got: img.data[o] });
      }
    }
    return { kind, photometric: inf.photometric, n, fraction: n ? ok / n : 0, bad };
  }, [name, sop, frame, center, width, step, tol]);
}

/**
 * Check that snapshot `out` is `base` convolved with a 3×3 kernel (sum clamped to 0..255, or its
 * absolute value for edge), per image pixel, reading both through their transforms.
 */
export async function checkKernel(page, base, out, kernel, { absolute = false, step = 4, tol = 1 } = {}) {
  return page.evaluate(([base, out, kernel, absolute, step, tol]) => {
    const A = window.__snaps[base];
    const B = window.__snaps[out];
    const mat = (s) => { const [a, b, c, d, e, f] = s.state.matrix; return new DOMMatrix([a, b, c, d, e, f]); };
    const MA = mat(A);
    const MB = mat(B);
    const W = A.state.imageWidth;
    const H = A.state.imageHeight;
    const at = (S, M, x, y) => {
      const p = M.transformPoint(new DOMPoint(x + 0.5, y + 0.5));
      const px = Math.floor(p.x), py = Math.floor(p.y);
      if (px < 0 || py < 0 || px >= S.img.width || py >= S.img.height) return null;
      return S.img.data[(py * S.img.width + px) * 4];
    };
    let n = 0, ok = 0;
    const bad = [];
    for (let y = 1; y < H - 1; y += step) {
      for (let x = 1; x < W - 1; x += step) {
        let sum = 0;
        let missing = false;
        for (let k = 0; k < 9; k++) {
          const v = at(A, MA, x + (k % 3) - 1, y + Math.floor(k / 3) - 1);
          if (v === null) { missing = true; break; }
          sum += kernel[k] * v;
        }
        const got = at(B, MB, x, y);
        if (missing || got === null) continue;
        if (absolute) sum = Math.abs(sum);
        const want = Math.max(0, Math.min(255, sum));
        n++;
        if (Math.abs(got - want) <= tol) ok++;
        else if (bad.length < 5) bad.push({ x, y, want, got });
      }
    }
    return { n, fraction: n ? ok / n : 0, bad };
  }, [base, out, kernel, absolute, step, tol]);
}

/** Bounding box of the canvas pixels that are not black (any channel > thr), from a snapshot. */
export async function litBox(page, name, thr = 8) {
  return page.evaluate(([name, thr]) => {
    const { img } = window.__snaps[name];
    let x0 = img.width, y0 = img.height, x1 = -1, y1 = -1;
    for (let y = 0; y < img.height; y++) {
      for (let x = 0; x < img.width; x++) {
        const o = (y * img.width + x) * 4;
        if (img.data[o] > thr || img.data[o + 1] > thr || img.data[o + 2] > thr) {
          if (x < x0) x0 = x; if (x > x1) x1 = x; if (y < y0) y0 = y; if (y > y1) y1 = y;
        }
      }
    }
    return { x0, y0, x1, y1, width: x1 - x0 + 1, height: y1 - y0 + 1 };
  }, [name, thr]);
}

/** Fills the Register page's form: `fields` by input name (`sex` is the select). */
export async function fillRegister(page, fields) {
  for (const [name, value] of Object.entries(fields)) {
    if (name === 'sex') await page.selectOption('#register select[name=sex]', value);
    else await page.fill(`#register input[name=${name}]`, value);
  }
}

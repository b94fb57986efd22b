// The viewer, desktop size, mouse and keyboard: every tool and filter checked on what the canvas
// shows (getImageData), against the server's own 16-bit pixels where the value is computable.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import {
  BASE, MANIFEST, aboutCentre, canvasBox, checkAgainstServer, checkKernel, compareMapped,
  drag, launch, litBox, login, meanAbsDiff, newPage, noProblems, openViewer, ready, shot, snap, state, stats, watchCine,
} from './lib.mjs';

const K = MANIFEST.kim;
const CT = K.series.ct; // 693_UNCR: 512×512 CT, window 40/100, rescale −1024
const MF = K.series.mf; // emri_small: 10 frames
const CR = K.series.cr; // RG1_UNCR: 1841×1955 MONOCHROME1
const RGB = K.series.rgb; // US1_UNCR: 640×480 RGB
const MIXED = K.series.mixed; // RLE, JPEG 2000, explicit LE, 12-bit JPEG Extended, JPEG-LS
const EDGE = MANIFEST.edge; // dose32: 32-bit RT dose (preview only); clip: 120-frame JPEG colour
const IDENTITY = [1, 0, 0, 1, 0, 0];

async function click(page, selector) {
  await page.click(selector);
  return ready(page);
}

async function setRange(page, selector, value) {
  await page.locator(selector).fill(String(value)); // fires input + change
  return ready(page);
}

async function selectPreset(page, value) {
  await page.selectOption('#preset', value);
  return ready(page);
}

describe('viewer (desktop, mouse and keyboard)', () => {
  let browser;
  let page;

  before(async () => {
    browser = await launch();
    page = await newPage(browser);
    await login(page, { next: '/search' });
  });

  after(async () => {
    await browser?.close();
  });

  it('opens from the study page, lists every series, paints the CT from its 16-bit pixels', async () => {
    await page.goto(`${BASE}/study/${K.study}`);
    await Promise.all([page.waitForURL(/\/viewer\//), page.click(`a[href="/viewer/${K.study}"]`)]);
    const s = await ready(page);
    assert.equal(s.seriesCount, 5);
    const options = await page.$$eval('#series-select option', (os) => os.map((o) => o.value));
    assert.deepEqual(options, [CT.uid, MF.uid, CR.uid, RGB.uid, MIXED.uid]);
    assert.equal(s.series, CT.uid);
    assert.equal(s.source, 'pixels');
    assert.equal(s.kind, 'gray16s');
    assert.equal(s.error, '');
    assert.equal(await page.locator('#verror').isHidden(), true);
    assert.match(await page.textContent('#ov-bl'), /Image 1 \/ 1/);
    // Whose images these are, on the image and in the tab.
    const who = await page.textContent('#ov-tl');
    assert.match(who, /Kim Minsu = 김민수/);
    assert.match(who, /ID BRW-KIM/);
    assert.match(await page.textContent('#ov-tr'), /2026-01-01/);
    assert.match(await page.title(), /^Kim Minsu = 김민수 \(ID BRW-KIM\) · Viewer/);
    // The CT carries its slice geometry and exposure.
    assert.match(await page.textContent('#ov-bl'), /Loc -?[\d.]+ mm {2}Thk 5 mm/);
    assert.match(await page.textContent('#ov-bl'), /\d+ kVp {2}[\d.]+ mAs/);
    assert.match(await page.textContent('#ov-br'), /W 100 {2}L 40/);
    await shot(page, 'viewer-ct');
    noProblems(page);
  });

  it('shows the file window (40/100) with the rescale applied, pixel for pixel', async () => {
    const s = await openViewer(page, K.study, CT.uid);
    assert.equal(s.windowCenter, 40);
    assert.equal(s.windowWidth, 100);
    assert.ok(s.scale >= 1, `CT drawn at scale ${s.scale} (needs ≥ 1 for exact pixels)`);
    await snap(page, 'ct');
    const r = await checkAgainstServer(page, 'ct', CT.instances[0].sop, 1, { center: 40, width: 100 });
    assert.ok(r.n > 5000 && r.fraction >= 0.999, JSON.stringify(r));
  });

  it('invert turns every pixel p into 255 − p, and back', async () => {
    const s0 = await openViewer(page, K.study, CT.uid);
    const base = await snap(page, 'base');
    const s = await click(page, '[data-act=invert]');
    assert.equal(s.invert, true);
    await snap(page, 'inv');
    const r = await compareMapped(page, 'base', 'inv', IDENTITY, { fn: 'invert', tol: 0, step: 2 });
    assert.ok(r.n > 10000 && r.fraction === 1, JSON.stringify(r));
    await shot(page, 'viewer-invert');
    await click(page, '[data-act=invert]');
    assert.equal((await snap(page, 'back')).hash, base.hash);
    assert.equal(s0.invert, false);
  });

  it('flip horizontal and vertical mirror the image about its centre', async () => {
    await openViewer(page, K.study, CT.uid);
    const base = await snap(page, 'base');
    for (const [act, lin] of [['fliph', [-1, 0, 0, 1]], ['flipv', [1, 0, 0, -1]]]) {
      const s = await click(page, `[data-act=${act}]`);
      assert.equal(act === 'fliph' ? s.flipH : s.flipV, true);
      await snap(page, act);
      const mirrored = await compareMapped(page, 'base', act, aboutCentre(base.width, base.height, lin), { tol: 0 });
      const unmoved = await compareMapped(page, 'base', act, IDENTITY, { tol: 0 });
      assert.ok(mirrored.fraction >= 0.995, `${act}: mirrored ${JSON.stringify(mirrored)}`);
      assert.ok(unmoved.fraction < 0.9, `${act}: the image is not asymmetric enough to tell (${unmoved.fraction})`);
      await shot(page, `viewer-${act}`);
      await click(page, `[data-act=${act}]`);
      assert.equal((await snap(page, 'back')).hash, base.hash, `${act} twice is the original`);
    }
  });

  it('rotate turns the image 90° clockwise; four turns are the original', async () => {
    await openViewer(page, K.study, CT.uid);
    const base = await snap(page, 'base');
    let s = await click(page, '[data-act=rotate]');
    assert.equal(s.rotation, 90);
    await snap(page, 'rot');
    // square image: same scale; canvas point c + d goes to c + (−d.y, d.x)
    const r = await compareMapped(page, 'base', 'rot', aboutCentre(base.width, base.height, [0, 1, -1, 0]), { tol: 0 });
    assert.ok(r.fraction >= 0.995, JSON.stringify(r));
    await shot(page, 'viewer-rotate');
    for (let i = 0; i < 3; i++) s = await click(page, '[data-act=rotate]');
    assert.equal(s.rotation, 0);
    assert.equal((await snap(page, 'back')).hash, base.hash);
  });

  it('rotate swaps width and height of a non-square image (US 640×480)', async () => {
    await openViewer(page, K.study, RGB.uid);
    await snap(page, 'wide');
    await click(page, '[data-act=rotate]');
    await snap(page, 'tall');
    const a = await litBox(page, 'wide');
    const b = await litBox(page, 'tall');
    assert.ok(a.width > a.height * 1.15, `before: ${JSON.stringify(a)}`);
    assert.ok(b.height > b.width * 1.15, `after: ${JSON.stringify(b)}`);
  });

  it('W/L drag: down raises the centre (darker), right widens the window (fewer clipped pixels)', async () => {
    const s0 = await openViewer(page, K.study, CT.uid);
    await snap(page, 'base');
    const st0 = await stats(page, 'base');
    const box = await canvasBox(page);
    await drag(page, { x: box.cx, y: box.cy }, { x: box.cx, y: box.cy + 80 });
    const s1 = await ready(page);
    assert.ok(s1.windowCenter > s0.windowCenter + 10, `centre ${s0.windowCenter} → ${s1.windowCenter}`);
    assert.equal(s1.windowWidth, s0.windowWidth);
    await snap(page, 'down');
    const st1 = await stats(page, 'down');
    assert.ok(st1.mean < st0.mean - 2, `mean ${st0.mean} → ${st1.mean}`);
    const r = await checkAgainstServer(page, 'down', CT.instances[0].sop, 1, { center: s1.windowCenter, width: s1.windowWidth });
    assert.ok(r.fraction >= 0.999, JSON.stringify(r));

    await drag(page, { x: box.cx, y: box.cy }, { x: box.cx + 150, y: box.cy });
    const s2 = await ready(page);
    assert.ok(s2.windowWidth > s1.windowWidth + 20, `width ${s1.windowWidth} → ${s2.windowWidth}`);
    assert.equal(s2.windowCenter, s1.windowCenter);
    await snap(page, 'wide');
    const st2 = await stats(page, 'wide');
    assert.ok(st2.clipped < st1.clipped, `clipped ${st1.clipped} → ${st2.clipped}`);
    assert.match(await page.textContent('#ov-br'), new RegExp(`W ${Math.round(s2.windowWidth)}  L ${Math.round(s2.windowCenter)}`));

    await drag(page, { x: box.cx, y: box.cy }, { x: box.cx, y: box.cy - 160 });
    const s3 = await ready(page);
    assert.ok(s3.windowCenter < s2.windowCenter, 'up lowers the centre');
    await snap(page, 'up');
    assert.ok((await stats(page, 'up')).mean > st2.mean, 'up is brighter');
    await shot(page, 'viewer-wl-drag');
  });

  it('presets: lung, bone, brain, abdomen set their windows; lung and bone differ as expected', async () => {
    await openViewer(page, K.study, CT.uid);
    const base = await snap(page, 'base');
    const want = { lung: [-600, 1500], bone: [300, 2000], brain: [40, 80], abdomen: [50, 400] };
    const st = {};
    for (const [name, [c, w]] of Object.entries(want)) {
      const s = await selectPreset(page, name);
      assert.deepEqual([s.windowCenter, s.windowWidth], [c, w], name);
      await snap(page, name);
      st[name] = await stats(page, name);
      const r = await checkAgainstServer(page, name, CT.instances[0].sop, 1, { center: c, width: w });
      assert.ok(r.fraction >= 0.999, `${name}: ${JSON.stringify(r)}`);
      await shot(page, `viewer-preset-${name}`);
    }
    const l1 = st.lung.hist.reduce((acc, h, i) => acc + Math.abs(h - st.bone.hist[i]), 0);
    assert.ok(l1 > 0.3, `lung vs bone histograms too alike (L1 ${l1})`);
    // air (−1000 HU) is grey in the lung window (low end −1350) and black in the bone window (−700)
    assert.ok(st.lung.mean > st.bone.mean, `lung mean ${st.lung.mean} vs bone ${st.bone.mean}`);
    assert.ok(st.bone.hist[0] > st.lung.hist[0], 'more black in the bone window');
    const s = await selectPreset(page, 'default');
    assert.deepEqual([s.windowCenter, s.windowWidth], [40, 100]);
    assert.equal((await snap(page, 'default')).hash, base.hash, 'file default is the first image');
  });

  it('brightness raises the mean, contrast spreads the values', async () => {
    await openViewer(page, K.study, CT.uid);
    await selectPreset(page, 'abdomen'); // a mid-grey picture, little clipping
    await snap(page, 'base');
    const b0 = await stats(page, 'base');
    let s = await setRange(page, '#brightness', 50);
    assert.equal(s.brightness, 50);
    await snap(page, 'bright');
    const b1 = await stats(page, 'bright');
    assert.ok(b1.mean > b0.mean + 20, `mean ${b0.mean} → ${b1.mean}`);
    s = await setRange(page, '#brightness', -50);
    await snap(page, 'dark');
    assert.ok((await stats(page, 'dark')).mean < b0.mean - 20);
    await setRange(page, '#brightness', 0);
    // contrast over soft tissue in the middle of the body (mid-grey in the abdomen window)
    const body = { rect: [200, 200, 312, 312] };
    const t0 = await stats(page, 'base', body);
    s = await setRange(page, '#contrast', 60);
    assert.equal(s.contrast, 60);
    await snap(page, 'contrast');
    const c1 = await stats(page, 'contrast', body);
    assert.ok(c1.std > t0.std * 1.5, `std ${t0.std} → ${c1.std}`);
    s = await setRange(page, '#contrast', -60);
    await snap(page, 'flat');
    const c2 = await stats(page, 'flat', body);
    assert.ok(c2.std < t0.std * 0.8, `std ${t0.std} → ${c2.std}`);
    await shot(page, 'viewer-contrast-low');
  });

  it('filters: edge, sharpen and emboss are their 3×3 kernels on the 8-bit image; edge of a flat region is 0', async () => {
    await openViewer(page, K.study, CT.uid);
    await selectPreset(page, 'abdomen');
    await click(page, '[data-act=invert]'); // air becomes a flat white region
    await snap(page, 'base');
    const corner = { rect: [2, 2, 40, 40] }; // image pixels: air outside the body
    const flat = await stats(page, 'base', corner);
    assert.ok(flat.std === 0 && flat.mean === 255, `corner not flat white: ${JSON.stringify(flat)}`);
    const kernels = {
      edge: [[-1, -1, -1, -1, 8, -1, -1, -1, -1], true],
      sharpen: [[0, -1, 0, -1, 5, -1, 0, -1, 0], false],
      emboss: [[-2, -1, 0, -1, 1, 1, 0, 1, 2], false],
    };
    for (const [name, [k, absolute]] of Object.entries(kernels)) {
      await page.selectOption('#filter', name);
      const s = await ready(page);
      assert.equal(s.filter, name);
      await snap(page, name);
      const r = await checkKernel(page, 'base', name, k, { absolute });
      assert.ok(r.n > 5000 && r.fraction >= 0.999, `${name}: ${JSON.stringify(r)}`);
      assert.ok((await meanAbsDiff(page, 'base', name)) > 1, `${name} changed nothing`);
      await shot(page, `viewer-filter-${name}`);
    }
    const edgeFlat = await stats(page, 'edge', corner);
    assert.ok(edgeFlat.mean <= 0.5, `edge of a flat region: ${JSON.stringify(edgeFlat)}`);
    const edgeAll = await stats(page, 'edge');
    assert.ok(edgeAll.hist.slice(8).reduce((a, b) => a + b, 0) > 0.001, 'edge finds the body outline');
    await page.selectOption('#filter', 'none');
    await ready(page);
    assert.equal((await snap(page, 'none')).hash, (await snap(page, 'base')).hash);
  });

  it('zoom (ctrl+wheel and the zoom tool) enlarges the body; pan moves it', async () => {
    await openViewer(page, K.study, CT.uid);
    await selectPreset(page, 'abdomen');
    const base = await snap(page, 'base');
    const box = await canvasBox(page);
    const bodyWidth = (name) => page.evaluate((n) => {
      const { img } = window.__snaps[n];
      const y = Math.floor(img.height / 2);
      let c = 0;
      for (let x = 0; x < img.width; x++) if (img.data[(y * img.width + x) * 4] > 40) c++;
      return c;
    }, name);
    const w0 = await bodyWidth('base');
    await page.mouse.move(box.cx, box.cy);
    await page.keyboard.down('Control');
    await page.mouse.wheel(0, -120);
    await page.keyboard.up('Control');
    let s = await ready(page);
    assert.ok(s.zoom > 1.3, `zoom ${s.zoom}`);
    await snap(page, 'zoom');
    const w1 = await bodyWidth('zoom');
    assert.ok(w1 > w0 * 1.25, `body ${w0} px → ${w1} px at zoom ${s.zoom}`);
    // zoom about the cursor at the centre: the centre shows the same image pixel, scaled
    const r = await compareMapped(page, 'base', 'zoom', aboutCentre(base.width, base.height, [s.zoom, 0, 0, s.zoom]), { tol: 0, step: 5 });
    assert.ok(r.fraction >= 0.99, `zoomed about the centre: ${JSON.stringify(r)}`);
    await shot(page, 'viewer-zoom');

    await click(page, '[data-tool=zoom]');
    const z0 = s.zoom;
    await drag(page, { x: box.cx, y: box.cy }, { x: box.cx, y: box.cy - 60 });
    s = await ready(page);
    assert.ok(s.zoom > z0 * 1.2, `zoom tool: ${z0} → ${s.zoom}`);

    await click(page, '[data-tool=pan]');
    await snap(page, 'prepan');
    await drag(page, { x: box.cx, y: box.cy }, { x: box.cx + 120, y: box.cy + 60 });
    s = await ready(page);
    assert.ok(Math.abs(s.panX - 120) < 2 && Math.abs(s.panY - 60) < 2, `pan ${s.panX},${s.panY}`);
    await snap(page, 'pan');
    const moved = await compareMapped(page, 'prepan', 'pan', [1, 0, 0, 1, 120, 60], { tol: 0, step: 5 });
    assert.ok(moved.fraction >= 0.99, `panned: ${JSON.stringify(moved)}`);
    await click(page, '[data-tool=wl]');
  });

  it('reset returns every setting and the exact first image', async () => {
    await openViewer(page, K.study, CT.uid);
    const base = await snap(page, 'base');
    const box = await canvasBox(page);
    await drag(page, { x: box.cx, y: box.cy }, { x: box.cx + 40, y: box.cy + 30 });
    await click(page, '[data-act=rotate]');
    await click(page, '[data-act=fliph]');
    await click(page, '[data-act=invert]');
    await setRange(page, '#brightness', 30);
    await setRange(page, '#contrast', -20);
    await page.selectOption('#filter', 'emboss');
    await click(page, '[data-tool=pan]');
    await drag(page, { x: box.cx, y: box.cy }, { x: box.cx - 50, y: box.cy + 20 });
    await page.mouse.move(box.cx, box.cy);
    await page.keyboard.down('Control');
    await page.mouse.wheel(0, -200);
    await page.keyboard.up('Control');
    await ready(page);
    assert.notEqual((await snap(page, 'messy')).hash, base.hash);
    const s = await click(page, '[data-act=reset]');
    assert.deepEqual(
      [s.zoom, s.panX, s.panY, s.rotation, s.flipH, s.flipV, s.invert, s.brightness, s.contrast, s.filter, s.windowUser],
      [1, 0, 0, 0, false, false, false, 0, 0, 'none', false],
    );
    assert.equal((await snap(page, 'reset')).hash, base.hash);
    assert.equal(await page.inputValue('#brightness'), '0');
    assert.equal(await page.inputValue('#filter'), 'none');
    await click(page, '[data-tool=wl]');
  });

  it('multi-frame: 10 frames scroll by wheel, arrow keys, the slider and the scroll tool', async () => {
    let s = await openViewer(page, K.study, MF.uid);
    assert.equal(s.count, 10);
    assert.equal(s.index, 0);
    assert.equal(s.frame, 1);
    const f0 = await snap(page, 'f0');
    const box = await canvasBox(page);
    await page.mouse.move(box.cx, box.cy);
    await page.mouse.wheel(0, 100);
    s = await ready(page);
    assert.equal(s.index, 1);
    assert.equal(s.frame, 2);
    await snap(page, 'f1');
    assert.ok((await meanAbsDiff(page, 'f0', 'f1')) > 1, 'frame 2 looks like frame 1');
    assert.match(await page.textContent('#ov-bl'), /Image 2 \/ 10/);
    await page.keyboard.press('ArrowDown');
    s = await ready(page);
    assert.equal(s.index, 2);
    await page.keyboard.press('ArrowUp');
    await page.keyboard.press('ArrowUp');
    s = await ready(page);
    assert.equal(s.index, 0);
    assert.equal((await snap(page, 'again')).hash, f0.hash, 'back at frame 1: the same picture');
    s = await setRange(page, '#slice', 7);
    assert.equal(s.index, 7);
    await snap(page, 'f7');
    assert.ok((await meanAbsDiff(page, 'f0', 'f7')) > 1);
    await page.keyboard.press('Home');
    await click(page, '[data-tool=scroll]');
    await drag(page, { x: box.cx, y: box.cy - 40 }, { x: box.cx, y: box.cy + 40 }, { steps: 20 });
    s = await ready(page);
    assert.ok(s.index >= 5, `scroll tool: index ${s.index}`);
    await click(page, '[data-tool=wl]');
    await shot(page, 'viewer-multiframe');
  });

  // How fast cine runs and how soon the first picture appears are figures of bench/viewer.sh;
  // the tests check what is shown and in which order (speed on a shared CI machine proves nothing).
  it('cine shows every image in order, wraps round, and stops on a complete image', async () => {
    let s = await openViewer(page, K.study, MF.uid);
    const n = s.count;
    await page.click('[data-act=cine]');
    const seen = await watchCine(page, { changes: n + 3, ms: 120_000 }); // the time is a hang guard
    s = await state(page);
    assert.equal(s.playing, true);
    assert.equal(await page.textContent('[data-act=cine]'), '⏸');
    assert.equal(seen.changes.length, n + 3, `cine advanced only ${seen.changes.length} times`);
    for (const [from, to] of seen.changes) {
      assert.equal(to, (from + 1) % n, `cine went from ${from} to ${to}: ${JSON.stringify(seen.changes)}`);
    }
    assert.ok(seen.changes.some(([from, to]) => from === n - 1 && to === 0), 'cine wraps round');
    await page.click('[data-act=cine]');
    s = await ready(page);
    assert.equal(s.playing, false);
    assert.equal(await page.textContent('[data-act=cine]'), '▶');
    const i0 = s.index;
    const stopped = await snap(page, 'cine-stopped');
    await page.waitForTimeout(400); // four cine periods: nothing may move any more
    assert.equal((await state(page)).index, i0);
    // the picture cine stopped on is that image's, as stepping to it shows it
    await setRange(page, '#slice', (i0 + n / 2) % n);
    s = await setRange(page, '#slice', i0);
    assert.equal(s.index, i0);
    assert.equal((await snap(page, 'cine-stepped')).hash, stopped.hash, `image ${i0 + 1} after cine differs`);
  });

  it('2K MONOCHROME1 CR: preview first, then full pixels, inverted greyscale', async () => {
    await page.goto(`${BASE}/search`); // leave the viewer so the next load is a fresh page
    const seen = [];
    const onRequest = (r) => seen.push(new URL(r.url()).pathname);
    page.on('request', onRequest);
    await page.goto(`${BASE}/viewer/${K.study}?series=${CR.uid}`);
    let s = await ready(page, 60_000);
    page.off('request', onRequest);
    const sop = CR.instances[0].sop;
    const iPreview = seen.indexOf(`/api/instances/${sop}/frames/1/preview.png`);
    const iPixels = seen.indexOf(`/api/instances/${sop}/frames/1/pixels`);
    assert.ok(iPreview >= 0 && iPixels >= 0 && iPreview < iPixels, `preview first, then pixels: ${seen.join(' ')}`);
    assert.equal(s.photometric, 'MONOCHROME1');
    assert.equal(s.kind, 'gray16u');
    assert.equal(s.source, 'pixels');
    assert.ok(s.timings.firstPaint !== null && s.timings.pixelsPaint !== null, JSON.stringify(s.timings));
    await shot(page, 'viewer-cr');
    // magnify to ≥ 1 canvas pixel per image pixel, then compare with the server's pixels
    const box = await canvasBox(page);
    await page.mouse.move(box.cx, box.cy);
    await page.keyboard.down('Control');
    while ((await state(page)).scale < 1) await page.mouse.wheel(0, -100);
    await page.keyboard.up('Control');
    s = await ready(page);
    await snap(page, 'cr');
    const r = await checkAgainstServer(page, 'cr', CR.instances[0].sop, 1, { center: s.windowCenter, width: s.windowWidth, step: 3 });
    assert.ok(r.n > 5000 && r.fraction >= 0.999, JSON.stringify(r));
  });

  it('RGB: the canvas shows the stored bytes', async () => {
    const s = await openViewer(page, K.study, RGB.uid);
    assert.equal(s.kind, 'rgb8');
    assert.ok(s.scale >= 1);
    await snap(page, 'rgb');
    const r = await checkAgainstServer(page, 'rgb', RGB.instances[0].sop, 1, { step: 3, tol: 0 });
    assert.ok(r.n > 10000 && r.fraction === 1, JSON.stringify(r));
    await shot(page, 'viewer-rgb');
  });

  it('every transfer syntax of the mixed series displays from full pixels (RLE, JPEG 2000, explicit LE, JPEG 12-bit, JPEG-LS)', async () => {
    let s = await openViewer(page, K.study, MIXED.uid);
    assert.equal(s.count, MIXED.instances.length);
    const hashes = new Map();
    for (let i = 0; i < s.count; i++) {
      if (i) {
        await page.keyboard.press('ArrowDown');
        s = await ready(page);
      }
      const inst = MIXED.instances[i];
      assert.equal(s.sop, inst.sop);
      assert.equal(s.error, '', `${inst.file} (${inst.ts}): ${s.error}`);
      assert.equal(s.source, 'pixels', `${inst.file} (${inst.ts})`);
      assert.deepEqual([s.imageWidth, s.imageHeight], [inst.columns, inst.rows]);
      hashes.set(inst.file, (await snap(page, `m${i}`)).hash);
      await shot(page, `viewer-mixed-${i + 1}`);
    }
    // MR_small in RLE and in JPEG-LS (both lossless) must look the same; the others differ
    assert.equal(hashes.get('MR_small_RLE.dcm'), hashes.get('MR_small_jpeg_ls_lossless.dcm'));
    assert.equal(new Set(hashes.values()).size, MIXED.instances.length - 1);
  });

  it('the samples the viewer decodes are pydicom\'s, bit for bit (2K CR, signed CT, RLE, JPEG 2000, JPEG-LS)', async () => {
    // pydicom's pixel_array of the same test files, as little-endian bytes in row order
    const files = ['RG1_UNCR.dcm', '693_UNCR.dcm', 'MR_small_RLE.dcm', 'MR2_J2KR.dcm', 'CT_small.dcm', 'MR_small_jpeg_ls_lossless.dcm'];
    const py = [
      'import hashlib, json, sys, pydicom',
      'from pydicom.data import get_testdata_file',
      'out = {}',
      'for f in sys.argv[1:]:',
      '    a = pydicom.dcmread(get_testdata_file(f)).pixel_array',
      '    out[f] = hashlib.sha256(a.astype(a.dtype.newbyteorder("<")).tobytes()).hexdigest()',
      'print(json.dumps(out))',
    ].join('\n');
    const want = JSON.parse(execFileSync('python3', ['-c', py, ...files], { encoding: 'utf8', timeout: 120_000 }));
    const where = [[CR, 0], [CT, 0], ...MIXED.instances.map((_, i) => [MIXED, i])];
    let checked = 0;
    for (const [series, i] of where) {
      const inst = series.instances[i];
      if (!files.includes(inst.file)) continue; // JPEG 12-bit is lossy: decoders may differ
      let s = await openViewer(page, K.study, series.uid);
      for (let k = 0; k < i; k++) {
        await page.keyboard.press('ArrowDown');
        s = await ready(page);
      }
      assert.equal(s.sop, inst.sop);
      assert.equal(s.source, 'pixels', inst.file);
      const got = await page.evaluate(() => window.pacsboxViewer.samplesDigest());
      assert.equal(got, want[inst.file], `${inst.file}: decoded samples differ from pydicom's`);
      checked++;
    }
    assert.equal(checked, files.length);
  });

  it('an image the server can only preview (32-bit RT dose: pixels 415) shows the preview and says why', async () => {
    const s = await openViewer(page, EDGE.study, EDGE.series.dose32.uid);
    assert.equal(s.source, 'preview');
    assert.equal(await page.locator('#verror').isVisible(), true);
    const text = await page.textContent('#verror');
    assert.match(text, /^Preview only, no window\/level here \(415: /);
    await snap(page, 'dose');
    const lit = await litBox(page, 'dose', 0);
    assert.ok(lit.width > 100 && lit.height > 100, `the preview is on the canvas: ${JSON.stringify(lit)}`);
    await shot(page, 'viewer-preview-only');
  });

  it('cine through a 120-frame JPEG colour clip shows each image in turn, none skipped', async () => {
    let s = await openViewer(page, EDGE.study, EDGE.series.clip.uid);
    assert.equal(s.count, 120);
    assert.equal(s.kind, 'rgb8');
    await page.click('[data-act=cine]');
    // cine waits for each image rather than skipping to one that has arrived; the time is a hang guard
    const seen = await watchCine(page, { changes: 15, ms: 120_000 });
    await page.click('[data-act=cine]');
    assert.equal(seen.changes.length, 15, `cine advanced only ${seen.changes.length} times`);
    for (const [from, to] of seen.changes) {
      assert.equal(to, from + 1, `cine went from ${from} to ${to}: ${JSON.stringify(seen.changes)}`);
    }
    s = await ready(page);
    assert.equal(s.playing, false);
    assert.equal(s.source, 'pixels');
    assert.equal(s.error, '');
    await shot(page, 'viewer-clip');
  });

  it('a 415 from the server is shown as text in #verror, never as markup', async () => {
    const body = '<img src=x onerror=alert(1)>transfer syntax 1.2.840.10008.1.2.4.80 (JPEG-LS) cannot be decoded here';
    const ctx = page.context();
    const pattern = /\/api\/instances\/[0-9.]+\/frames\/\d+\/(preview\.png|pixels)/;
    await ctx.route(pattern, (route) => route.fulfill({ status: 415, contentType: 'text/plain; charset=utf-8', body }));
    try {
      const s = await openViewer(page, K.study, CT.uid);
      assert.equal(s.source, 'error');
      assert.equal(await page.locator('#verror').isVisible(), true);
      const text = await page.textContent('#verror');
      assert.ok(text.includes(body), text);
      assert.match(text, /415/);
      assert.equal(await page.locator('#verror *').count(), 0, 'server text became markup');
      await shot(page, 'viewer-error-415');
    } finally {
      await ctx.unroute(pattern);
    }
    noProblems(page);
  });
});

// The viewer on a phone: 390×844 CSS px, device pixel ratio 2, touch only. Touches are real
// touch events from the browser's input pipeline (CDP Input.dispatchTouchEvent), so the page
// sees what a finger produces: touch → pointer events, no mouse.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  BASE, MANIFEST, aboutCentre, canvasBox, compareMapped, launch, login, newPage, noProblems, openViewer, ready, shot, snap,
} from './lib.mjs';

const K = MANIFEST.kim;
const CT = K.series.ct;
const MF = K.series.mf;

/** Move fingers from `from` to `to` (arrays of {x, y}, page CSS px) in `steps` moves. */
async function gesture(cdp, from, to, steps = 10) {
  const pts = (k) => from.map((p, i) => ({
    x: p.x + ((to[i].x - p.x) * k) / steps, y: p.y + ((to[i].y - p.y) * k) / steps, id: i, radiusX: 5, radiusY: 5, force: 1,
  }));
  await cdp.send('Input.dispatchTouchEvent', { type: 'touchStart', touchPoints: pts(0) });
  for (let k = 1; k <= steps; k++) await cdp.send('Input.dispatchTouchEvent', { type: 'touchMove', touchPoints: pts(k) });
  await cdp.send('Input.dispatchTouchEvent', { type: 'touchEnd', touchPoints: [] });
}

/** The phone toolbar never scrolls sideways, and every control showing in it is on the
 * 390 px screen and big enough for a finger (in either language). */
async function assertPhoneToolbar(page) {
  assert.equal(await page.evaluate(() => {
    const t = document.getElementById('toolbar');
    return t.scrollWidth - t.clientWidth;
  }), 0, 'toolbar scrolls sideways');
  const shown = await page.$$eval('#toolbar button, #toolbar select', (els) => els
    .filter((el) => el.getClientRects().length && getComputedStyle(el).visibility !== 'hidden')
    .map((el) => { const r = el.getBoundingClientRect(); return { what: el.title || el.id, x: r.x, r: r.right, h: r.height }; }));
  assert.ok(shown.length >= 10, `${shown.length} controls in the bar`);
  for (const c of shown) {
    assert.ok(c.x >= 0 && c.r <= 390, `${c.what} is off screen (${c.x}–${c.r})`);
    assert.ok(c.h >= 36, `${c.what} is ${c.h} px tall: too small for a finger`);
  }
}

describe('viewer on a phone (touch)', () => {
  let browser;
  let page;
  let cdp;

  before(async () => {
    browser = await launch();
    page = await newPage(browser, {
      viewport: { width: 390, height: 844 }, deviceScaleFactor: 2, isMobile: true, hasTouch: true,
    });
    cdp = await page.context().newCDPSession(page);
    await login(page);
  });
  after(async () => {
    await browser?.close();
  });

  it('fits the phone and draws at device resolution', async () => {
    const s = await openViewer(page, K.study, CT.uid);
    assert.equal(s.source, 'pixels');
    // Under load chromium may lay the page out once at its 980 px default before the meta
    // viewport applies; the viewer follows its stage (ResizeObserver), so wait for that.
    let box = await canvasBox(page);
    for (let i = 0; i < 100 && box.width > 390; i++) {
      await page.waitForTimeout(100);
      box = await canvasBox(page);
    }
    assert.ok(box.width <= 390 && box.width > 300, `canvas ${box.width} px wide`);
    const measure = () => page.evaluate(() => [document.getElementById('canvas').width, document.documentElement.scrollWidth]);
    let size = await measure();
    for (let i = 0; i < 20 && size[0] !== Math.round(box.width * 2); i++) {
      await page.waitForTimeout(100); // the redraw after a resize comes on the next frame
      size = await measure();
    }
    assert.equal(size[0], Math.round(box.width * 2), 'canvas backing store at 2× for a sharp image');
    assert.ok(size[1] <= 390, `page scrolls sideways (${size[1]} px)`);
    await shot(page, 'phone-viewer');
  });

  it('one finger adjusts window/level (the default tool)', async () => {
    const s0 = await openViewer(page, K.study, CT.uid);
    const box = await canvasBox(page);
    await gesture(cdp, [{ x: box.cx, y: box.cy }], [{ x: box.cx + 60, y: box.cy + 60 }]);
    const s = await ready(page);
    assert.equal(s.windowUser, true);
    assert.ok(s.windowCenter > s0.windowCenter, `centre ${s0.windowCenter} → ${s.windowCenter}`);
    assert.ok(s.windowWidth > s0.windowWidth, `width ${s0.windowWidth} → ${s.windowWidth}`);
    assert.equal(s.zoom, 1);
    assert.equal(s.index, 0);
  });

  it('two-finger pinch zooms about the fingers, two-finger drag pans', async () => {
    await openViewer(page, K.study, CT.uid);
    const base = await snap(page, 'base');
    const box = await canvasBox(page);
    const c = { x: box.cx, y: box.cy };
    await gesture(cdp, [{ x: c.x - 40, y: c.y }, { x: c.x + 40, y: c.y }], [{ x: c.x - 100, y: c.y }, { x: c.x + 100, y: c.y }]);
    let s = await ready(page);
    assert.ok(Math.abs(s.zoom - 2.5) < 0.1, `pinch 80 → 200 px: zoom ${s.zoom}`);
    assert.ok(Math.abs(s.panX) < 1 && Math.abs(s.panY) < 1, `zoom about the fingers' midpoint (centre): pan ${s.panX},${s.panY}`);
    assert.equal(s.windowUser, false, 'a pinch is not a W/L drag');
    await snap(page, 'pinch');
    const r = await compareMapped(page, 'base', 'pinch', aboutCentre(base.width, base.height, [s.zoom, 0, 0, s.zoom]), { tol: 0, step: 4 });
    assert.ok(r.fraction >= 0.98, `zoomed picture: ${JSON.stringify(r)}`);
    await shot(page, 'phone-pinch');

    await gesture(cdp, [{ x: c.x - 50, y: c.y }, { x: c.x + 50, y: c.y }], [{ x: c.x - 20, y: c.y + 40 }, { x: c.x + 80, y: c.y + 40 }]);
    s = await ready(page);
    assert.ok(Math.abs(s.panX - 30) < 2 && Math.abs(s.panY - 40) < 2, `two-finger drag (30, 40): pan ${s.panX},${s.panY}`);
    assert.ok(Math.abs(s.zoom - 2.5) < 0.1, 'a parallel drag keeps the zoom');
    await snap(page, 'panned');
    const moved = await compareMapped(page, 'pinch', 'panned', [1, 0, 0, 1, 60, 80], { tol: 0, step: 4 }); // device px = 2 × CSS
    assert.ok(moved.fraction >= 0.98, `panned picture: ${JSON.stringify(moved)}`);
    noProblems(page);
  });

  it('images scroll by a swipe with the scroll tool and by the slider', async () => {
    let s = await openViewer(page, K.study, MF.uid);
    assert.equal(s.count, 10);
    await page.tap('[data-tool=scroll]');
    const box = await canvasBox(page);
    await gesture(cdp, [{ x: box.cx, y: box.cy - 50 }], [{ x: box.cx, y: box.cy + 50 }], 20);
    s = await ready(page);
    assert.ok(s.index >= 5, `swipe: image ${s.index + 1}`);
    // the slider under the image, dragged by a finger from its left end to its right end
    const sl = await page.locator('#slice').boundingBox();
    await gesture(cdp, [{ x: sl.x + 8, y: sl.y + sl.height / 2 }], [{ x: sl.x + sl.width - 4, y: sl.y + sl.height / 2 }], 15);
    s = await ready(page);
    assert.equal(s.index, 9, 'slider at its right end shows the last image');
    await shot(page, 'phone-scroll');
    noProblems(page);
  });

  it('keeps the tools under the thumb: a bottom bar of icons, the rest behind ⋯', async () => {
    let s = await openViewer(page, K.study, CT.uid);
    const bar = await page.locator('#toolbar').boundingBox();
    const canvas = await canvasBox(page);
    assert.ok(bar.y > 844 / 2, `toolbar starts at ${bar.y}: not in the lower half`);
    assert.ok(bar.y + bar.height <= 844 + 0.5, 'toolbar runs off the bottom');
    assert.ok(canvas.y < bar.y, 'the image is above the toolbar');
    assert.ok(canvas.height >= 0.6 * 844, `image ${canvas.height} px tall: it should fill the screen`);
    await assertPhoneToolbar(page);
    // the less used tools wait behind ⋯; one tap opens them above the bar
    assert.ok(await page.locator('[data-act=invert]').isHidden());
    await page.tap('#more-btn');
    assert.equal(await page.getAttribute('#more-btn', 'aria-expanded'), 'true');
    for (const sel of ['[data-act=invert]', '[data-act=rotate]', '#preset', '#brightness', '[data-act=reset]', '[data-act=cine]']) {
      const b = await page.locator(sel).boundingBox();
      assert.ok(b && b.x >= 0 && b.x + b.width <= 390 && b.y + b.height <= bar.y + 0.5, `${sel} not reachable: ${JSON.stringify(b)}`);
    }
    await page.tap('[data-act=invert]');
    s = await ready(page);
    assert.equal(s.invert, true);
    await shot(page, 'phone-more-tools');
    // touching the image closes the panel again
    await page.tap('#canvas');
    assert.ok(await page.locator('[data-act=invert]').isHidden());
    // a measuring tool from the bar works with a finger
    await page.tap('[data-tool=length]');
    await gesture(cdp, [{ x: canvas.cx - 80, y: canvas.cy }], [{ x: canvas.cx + 80, y: canvas.cy }]);
    s = await ready(page);
    assert.equal(s.measurements.length, 1);
    assert.equal(s.measurements[0].unit, 'mm');
    noProblems(page);
  });
});

describe('viewer on a phone in Korean', () => {
  let browser;
  before(async () => {
    browser = await launch();
  });
  after(async () => {
    await browser?.close();
  });

  it('keeps the Korean toolbar in the phone\'s width, every control reachable', async () => {
    const page = await newPage(browser, {
      viewport: { width: 390, height: 844 }, deviceScaleFactor: 2, isMobile: true, hasTouch: true, locale: 'ko-KR',
    });
    await login(page);
    await openViewer(page, K.study, CT.uid);
    assert.equal(await page.getAttribute('html', 'lang'), 'ko');
    const bar = await page.locator('#toolbar').boundingBox();
    const canvas = await canvasBox(page);
    assert.ok(canvas.height >= 0.6 * 844, `image ${canvas.height} px tall`);
    await assertPhoneToolbar(page);
    assert.match(await page.getAttribute('[data-tool=length]', 'title'), /^길이/);
    await page.tap('#more-btn');
    for (const sel of ['[data-act=invert]', '[data-act=rotate]', '#preset', '#brightness', '#contrast', '#filter', '[data-act=reset]', '[data-act=cine]']) {
      const box = await page.locator(sel).boundingBox();
      assert.ok(box && box.x >= 0 && box.x + box.width <= 390 && box.y + box.height <= bar.y + 0.5, `${sel} not reachable: ${JSON.stringify(box)}`);
    }
    await shot(page, 'phone-more-tools-ko');
    noProblems(page);
    await page.context().close();
  });
});

describe('search and header on a phone', () => {
  let browser;
  let page;

  before(async () => {
    browser = await launch();
    page = await newPage(browser, {
      viewport: { width: 390, height: 844 }, deviceScaleFactor: 2, isMobile: true, hasTouch: true,
    });
    await login(page);
  });
  after(async () => {
    await browser?.close();
  });

  /** How far the page runs past the screen's width (0: nothing to scroll sideways). */
  const overflow = (p) => p.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);

  it('shows results as cards on the first screen, with every field, nothing sideways', async () => {
    await page.goto(`${BASE}/search`);
    assert.equal(await page.locator('#more-filters').getAttribute('open'), null, 'rarer filters folded');
    assert.ok(await page.locator('input[name=modality]').isHidden());
    const card = page.locator('#results tbody tr', { hasText: '김민수' }).first();
    const box = await card.boundingBox();
    assert.ok(box.y < 844, `first card starts at ${box.y}, below the first screen`);
    assert.ok(box.x >= 0 && box.x + box.width <= 390, `card ${JSON.stringify(box)} is wider than the phone`);
    const text = await card.innerText();
    for (const want of ['BRW-KIM', '2026-01-01', 'CT, MR', 'browser test', '5 / 9']) {
      assert.ok(text.includes(want), `${want} missing from the card: ${text}`);
    }
    // One field a line, each named (the column heads are hidden on a phone).
    assert.ok(await page.locator('#results thead').isHidden());
    const label = await card.locator('td[data-label=ID]').evaluate((td) => getComputedStyle(td, '::before').content);
    assert.ok(label.includes('ID') || label.includes('attr(data-label)'), `ID cell's label: ${label}`);
    assert.ok((await overflow(page)) <= 0, 'search page scrolls sideways');
    await shot(page, 'phone-search');
    // A filter in use opens the fold again.
    await page.goto(`${BASE}/search?modality=CT`);
    assert.notEqual(await page.locator('#more-filters').getAttribute('open'), null);
    noProblems(page);
  });

  it('shows the DICOM header with its values in the width of the phone', async () => {
    const sop = K.series.ct.instances[0].sop;
    await page.goto(`${BASE}/instance/${sop}/header`);
    const value = page.locator('#header td.value').first();
    assert.ok(await value.isVisible());
    const vb = await value.boundingBox();
    assert.ok(vb.x >= 0 && vb.x + vb.width <= 390, `value cell ${JSON.stringify(vb)} off screen`);
    assert.ok((await overflow(page)) <= 0, 'header page scrolls sideways');
    await shot(page, 'phone-header');
    noProblems(page);
  });
});

// The series strip and "Compare with prior" (issue 20): every series of the study as a
// thumbnail that switches the viewer to it; another study of the same patient opened beside the
// current one (stacked on a phone), its own window/level, scrolled together by slice position.
// The studies are made here (compare_fixtures.py: one patient, three CT studies at offset slice
// positions); the expected image of the other pane is worked out from each image's own
// /api/instances/{sop}/info, not taken from the viewer's code.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { BASE, canvasBox, drag, launch, login, newPage, noProblems, openViewer, ready, shot, state } from './lib.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
let M; // the manifest compare_fixtures.py prints
let WORK;

before(() => {
  assert.ok(process.env.PACSBOX_DICOM_PORT, 'run through tests/browser/run.sh (PACSBOX_DICOM_PORT)');
  WORK = fs.mkdtempSync(path.join(os.tmpdir(), 'pacsbox-compare-'));
  const out = execFileSync('python3', [path.join(HERE, 'compare_fixtures.py'), '--port', process.env.PACSBOX_DICOM_PORT, '--work', WORK],
    { encoding: 'utf8', timeout: 120_000 });
  M = JSON.parse(out.trim().split('\n').pop());
});
after(() => {
  if (WORK) fs.rmSync(WORK, { recursive: true, force: true });
});

/** The prior pane's viewer hook, once its page has loaded and its image is drawn. */
async function priorReady(page, timeout = 30_000) {
  await page.waitForFunction(() => {
    const f = document.getElementById('prior-frame');
    return !!(f && f.contentWindow && f.contentWindow.pacsboxViewer && window.pacsboxCompare.state.attached);
  }, null, { timeout });
  return page.evaluate(() => document.getElementById('prior-frame').contentWindow.pacsboxViewer.whenReady());
}
const priorState = (page) => page.evaluate(() => document.getElementById('prior-frame').contentWindow.pacsboxViewer.state);

/** Slice positions of a series' images (in its instance order): IPP · (row × column), from /info. */
async function slicePositions(page, series) {
  return page.evaluate(async (sops) => {
    const out = [];
    for (const sop of sops) {
      const inf = await (await fetch(`/api/instances/${sop}/info`)).json();
      const o = inf.image_orientation;
      const n = [o[1] * o[5] - o[2] * o[4], o[2] * o[3] - o[0] * o[5], o[0] * o[4] - o[1] * o[3]];
      const p = inf.image_position;
      out.push(p[0] * n[0] + p[1] * n[1] + p[2] * n[2]);
    }
    return out;
  }, series.instances.map((i) => i.sop));
}

function nearest(x, list) {
  let best = 0;
  for (let j = 1; j < list.length; j++) if (Math.abs(list[j] - x) < Math.abs(list[best] - x)) best = j;
  return best;
}

/** Moves the main pane's image slider to `k` as a drag of it would. */
async function scrollMainTo(page, k) {
  await page.evaluate((i) => {
    const s = document.getElementById('slice');
    s.value = String(i);
    s.dispatchEvent(new Event('input', { bubbles: true }));
  }, k);
}

async function openPrior(page, uid) {
  await page.click('#compare-btn');
  await page.waitForSelector('#prior-list button.prior');
  await page.click(`#prior-list button.prior[data-study="${uid}"]`);
  return priorReady(page);
}

describe('series strip and compare with prior (desktop)', () => {
  let browser;
  let page;

  before(async () => {
    browser = await launch();
    page = await newPage(browser);
    await login(page);
  });
  after(async () => {
    await browser?.close();
  });

  it('shows every series as a thumbnail with its image count; a click switches to it', async () => {
    const cur = M.current;
    let s = await openViewer(page, cur.study);
    assert.equal(s.series, cur.series[0].uid);
    const thumbs = await page.$$eval('#series-strip button.thumb', (bs) => bs.map((b) => ({
      series: b.dataset.series, count: b.querySelector('.count').textContent, on: b.classList.contains('on'),
      lazy: b.querySelector('img').loading, src: b.querySelector('img').getAttribute('src'), title: b.title,
    })));
    assert.deepEqual(thumbs.map((t) => t.series), cur.series.map((x) => x.uid));
    assert.deepEqual(thumbs.map((t) => Number(t.count)), cur.series.map((x) => x.instances.length));
    assert.deepEqual(thumbs.map((t) => t.on), [true, false]);
    for (const [i, t] of thumbs.entries()) {
      assert.equal(t.lazy, 'lazy');
      assert.equal(t.src, `/api/series/${cur.series[i].uid}/thumbnail.png`);
      assert.match(t.title, new RegExp(`CT ${cur.series[i].description}`));
    }
    // the thumbnails are real images from the server
    await page.waitForFunction(() => [...document.querySelectorAll('#series-strip img')].every((i) => i.complete && i.naturalWidth > 0));
    // the strip is a column at the side of the image on a desktop
    const strip = await page.locator('#series-strip').boundingBox();
    const canvas = await canvasBox(page);
    assert.ok(strip.x + strip.width <= canvas.x + 1, 'strip left of the image');
    await page.click(`#series-strip button.thumb[data-series="${cur.series[1].uid}"]`);
    s = await ready(page);
    assert.equal(s.series, cur.series[1].uid);
    assert.equal(s.count, 3);
    assert.equal(await page.inputValue('#series-select'), cur.series[1].uid, 'the series select follows');
    assert.deepEqual(await page.$$eval('#series-strip button.thumb', (bs) => bs.map((b) => b.classList.contains('on'))), [false, true]);
    assert.match(page.url(), new RegExp(`series=${cur.series[1].uid}`));
    // and the select still switches (the strip follows it)
    await page.selectOption('#series-select', cur.series[0].uid);
    s = await ready(page);
    assert.equal(s.series, cur.series[0].uid);
    assert.deepEqual(await page.$$eval('#series-strip button.thumb', (bs) => bs.map((b) => b.classList.contains('on'))), [true, false]);
    await shot(page, 'strip-desktop');
    noProblems(page);
  });

  it('lists the other studies of the patient, newest first, and opens one beside the current', async () => {
    await openViewer(page, M.current.study, M.current.series[0].uid);
    await page.click('#compare-btn');
    await page.waitForSelector('#prior-list button.prior');
    const listed = await page.$$eval('#prior-list button.prior', (bs) => bs.map((b) => ({ uid: b.dataset.study, text: b.textContent })));
    assert.deepEqual(listed.map((x) => x.uid), [M.prior.study, M.older.study]);
    assert.match(listed[0].text, /2025-03-01.*CT.*CT chest baseline/);
    assert.match(listed[1].text, /2024-01-01/);
    await page.click(`#prior-list button.prior[data-study="${M.prior.study}"]`);
    const p = await priorReady(page);
    assert.equal(p.series, M.prior.series[0].uid);
    assert.equal(p.count, M.prior.series[0].instances.length);
    // side by side: the prior's frame to the right of the current image, at the same height
    const left = await page.locator('#stage').boundingBox();
    const right = await page.locator('#prior-frame').boundingBox();
    assert.ok(right.x >= left.x + left.width - 1, `prior at x ${right.x}, current ends at ${left.x + left.width}`);
    assert.ok(Math.abs(right.y - left.y) < 60 && right.height > 200, `prior ${JSON.stringify(right)} vs ${JSON.stringify(left)}`);
    assert.equal(await page.isHidden('#compare-menu'), true);
    // opening the prior is recorded like opening it directly (the trail is written behind)
    const viewed = await page.evaluate(async ({ pid, uid }) => {
      for (let i = 0; i < 100; i++) {
        const csv = await (await fetch(`/admin/audit?action=study.viewer&patient=${encodeURIComponent(pid)}&format=csv`)).text();
        if (csv.includes(uid)) return true;
        await new Promise((r) => setTimeout(r, 100));
      }
      return false;
    }, { pid: M.patient_id, uid: M.prior.study });
    assert.ok(viewed, 'no study.viewer record of the prior in the audit trail');
    noProblems(page);
  });

  it('scrolls together: the other pane shows the image nearest in slice position', async () => {
    const cur = await slicePositions(page, M.current.series[0]);
    const pri = await slicePositions(page, M.prior.series[0]);
    for (const k of [0, 3, 7, 11]) {
      await scrollMainTo(page, k);
      const want = nearest(cur[k], pri);
      await page.waitForFunction((w) => document.getElementById('prior-frame').contentWindow.pacsboxViewer.state.index === w, want, { timeout: 15_000 });
      assert.equal((await state(page)).index, k, 'the pane scrolled stays where the user put it');
      assert.equal((await page.evaluate(() => window.pacsboxCompare.state)).by, 'position');
    }
    // the mouse wheel on the current image (one image back per notch up)
    const before = (await state(page)).index;
    const box = await canvasBox(page);
    await page.mouse.move(box.cx, box.cy);
    await page.mouse.wheel(0, -120);
    await page.mouse.wheel(0, -120);
    await page.waitForFunction((b) => window.pacsboxViewer.state.index !== b, before);
    const k = (await state(page)).index;
    await page.waitForFunction((w) => document.getElementById('prior-frame').contentWindow.pacsboxViewer.state.index === w, nearest(cur[k], pri));
    // and the other way: scrolling the prior moves the current
    await page.evaluate(() => {
      const s = document.getElementById('prior-frame').contentDocument.getElementById('slice');
      s.value = '2';
      s.dispatchEvent(new Event('input', { bubbles: true }));
    });
    await page.waitForFunction((w) => window.pacsboxViewer.state.index === w, nearest(pri[2], cur));
    assert.equal((await priorState(page)).index, 2);
    // with sync off the prior stays
    await page.uncheck('#sync');
    const held = (await priorState(page)).index;
    await scrollMainTo(page, 11);
    await ready(page);
    assert.equal((await priorState(page)).index, held, 'sync off: the prior did not follow');
    await page.check('#sync');
    await page.waitForFunction((w) => document.getElementById('prior-frame').contentWindow.pacsboxViewer.state.index === w, nearest(cur[11], pri));
    await shot(page, 'compare-desktop');
    noProblems(page);
  });

  it('locks the offset: lined up by hand, either pane moves the other by the same distance', async () => {
    const cur = await slicePositions(page, M.current.series[0]);
    const pri = await slicePositions(page, M.prior.series[0]);
    const priorTo = async (j) => {
      await page.evaluate((i) => {
        const s = document.getElementById('prior-frame').contentDocument.getElementById('slice');
        s.value = String(i);
        s.dispatchEvent(new Event('input', { bubbles: true }));
      }, j);
    };
    // line the panes up by hand: current image 2 against prior image 5 (not the nearest by position)
    await page.uncheck('#sync');
    await scrollMainTo(page, 2);
    await ready(page);
    await priorTo(5);
    await page.waitForFunction(() => document.getElementById('prior-frame').contentWindow.pacsboxViewer.state.index === 5);
    assert.notEqual(nearest(cur[2], pri), 5, 'the hand-made alignment differs from the table position');
    assert.equal(await page.getAttribute('#lock-offset', 'aria-pressed'), 'false');
    await page.click('#lock-offset');
    assert.equal(await page.getAttribute('#lock-offset', 'aria-pressed'), 'true');
    assert.equal(await page.isChecked('#sync'), true, 'locking scrolls together');
    assert.deepEqual((await page.evaluate(() => window.pacsboxCompare.state)).lock, { main: 2, prior: 5 });
    assert.equal((await priorState(page)).index, 5, 'pressing the lock moves nothing');
    const shift = pri[5] - cur[2];
    let differs = 0;
    for (const k of [0, 6, 10, 3]) {
      await scrollMainTo(page, k);
      const want = nearest(cur[k] + shift, pri);
      if (want !== nearest(cur[k], pri)) differs++;
      await page.waitForFunction((w) => document.getElementById('prior-frame').contentWindow.pacsboxViewer.state.index === w, want, { timeout: 15_000 });
      assert.equal((await state(page)).index, k);
    }
    assert.ok(differs > 0, 'the lock changed which prior image follows');
    // the prior drives: the current moves by the same distance back
    await priorTo(1);
    await page.waitForFunction((w) => window.pacsboxViewer.state.index === w, nearest(pri[1] - shift, cur), { timeout: 15_000 });
    assert.equal((await priorState(page)).index, 1);
    // pressing it again releases it: back to the nearest position
    await page.click('#lock-offset');
    assert.equal(await page.getAttribute('#lock-offset', 'aria-pressed'), 'false');
    assert.equal((await page.evaluate(() => window.pacsboxCompare.state)).lock, null);
    await scrollMainTo(page, 6);
    await page.waitForFunction((w) => document.getElementById('prior-frame').contentWindow.pacsboxViewer.state.index === w, nearest(cur[6], pri), { timeout: 15_000 });
    noProblems(page);
  });

  it('keeps each pane\'s window/level its own', async () => {
    await ready(page);
    const p0 = await priorState(page);
    const s0 = await state(page);
    const box = await canvasBox(page);
    await page.click('[data-tool=wl]');
    await drag(page, { x: box.cx, y: box.cy }, { x: box.cx + 40, y: box.cy + 60 });
    const s1 = await ready(page);
    assert.equal(s1.windowUser, true);
    assert.ok(s1.windowCenter !== s0.windowCenter || s1.windowWidth !== s0.windowWidth, 'the drag changed the window');
    const p1 = await priorState(page);
    assert.equal(p1.windowUser, false, 'the prior keeps its own window');
    assert.deepEqual([p1.windowCenter, p1.windowWidth], [p0.windowCenter, p0.windowWidth]);
    // a preset in the prior's own bar (a narrow pane: behind its ⋯) leaves the current alone
    const bar = page.frameLocator('#prior-frame');
    if (await bar.locator('#preset').isHidden()) await bar.locator('#more-btn').click();
    await bar.locator('#preset').selectOption('lung');
    await page.waitForFunction(() => document.getElementById('prior-frame').contentWindow.pacsboxViewer.state.windowCenter === -600);
    const s2 = await state(page);
    assert.deepEqual([s2.windowCenter, s2.windowWidth], [s1.windowCenter, s1.windowWidth]);
    // closing the prior gives the whole width back
    await page.click('#prior-close');
    assert.equal(await page.isHidden('#pane-prior'), true);
    noProblems(page);
  });
});

describe('compare with prior on a phone (390×844)', () => {
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

  it('keeps the image large with the strip, stacks the panes and keeps the controls reachable', async () => {
    await openViewer(page, M.current.study, M.current.series[0].uid);
    let canvas = await canvasBox(page);
    for (let i = 0; i < 50 && canvas.width > 390; i++) { // the meta viewport may apply late
      await page.waitForTimeout(100);
      canvas = await canvasBox(page);
    }
    const strip = await page.locator('#series-strip').boundingBox();
    assert.ok(strip.x >= 0 && strip.x + strip.width <= 390.5, `strip ${JSON.stringify(strip)} wider than the phone`);
    assert.ok(strip.y >= canvas.y + canvas.height - 1, 'strip under the image');
    assert.ok(canvas.height >= 0.6 * 844, `image ${canvas.height} px tall with the strip`);
    await page.tap(`#series-strip button.thumb[data-series="${M.current.series[1].uid}"]`);
    let s = await ready(page);
    assert.equal(s.series, M.current.series[1].uid);
    await page.tap(`#series-strip button.thumb[data-series="${M.current.series[0].uid}"]`);
    s = await ready(page);
    assert.equal(s.series, M.current.series[0].uid);

    await page.tap('#compare-btn');
    await page.waitForSelector('#prior-list button.prior');
    const item = await page.locator(`#prior-list button.prior[data-study="${M.prior.study}"]`).boundingBox();
    assert.ok(item.x >= 0 && item.x + item.width <= 390.5 && item.y >= 0 && item.y + item.height <= 844, `prior item off screen: ${JSON.stringify(item)}`);
    await page.tap(`#prior-list button.prior[data-study="${M.prior.study}"]`);
    await priorReady(page);
    const top = await page.locator('#stage').boundingBox();
    const bottom = await page.locator('#prior-frame').boundingBox();
    assert.ok(bottom.y >= top.y + top.height - 1, `panes not stacked: ${JSON.stringify(top)} / ${JSON.stringify(bottom)}`);
    assert.ok(top.width <= 390.5 && bottom.width <= 390.5);
    assert.ok(top.height > 120 && bottom.height > 200, `panes too small: ${top.height}, ${bottom.height}`);
    for (const sel of ['#compare-btn', '#sync', '#lock-offset', '#prior-close', '#series-select', '#slice']) {
      const b = await page.locator(sel).boundingBox();
      assert.ok(b && b.x >= 0 && b.x + b.width <= 390.5 && b.y >= 0 && b.y + b.height <= 844.5, `${sel} not reachable: ${JSON.stringify(b)}`);
    }
    // the prior's own bar, inside its pane, on screen
    const fbar = await page.frameLocator('#prior-frame').locator('#toolbar').boundingBox();
    assert.ok(fbar && fbar.y >= bottom.y - 0.5 && fbar.y + fbar.height <= bottom.y + bottom.height + 0.5 && fbar.y + fbar.height <= 844.5,
      `prior's toolbar ${JSON.stringify(fbar)} outside its pane ${JSON.stringify(bottom)}`);
    const fslice = await page.frameLocator('#prior-frame').locator('#slice').boundingBox();
    assert.ok(fslice && fslice.y >= bottom.y - 0.5 && fslice.y + fslice.height <= bottom.y + bottom.height + 0.5,
      `prior's slider ${JSON.stringify(fslice)} outside its pane ${JSON.stringify(bottom)}`);
    // scrolling stays together on the phone too
    const cur = await slicePositions(page, M.current.series[0]);
    const pri = await slicePositions(page, M.prior.series[0]);
    await scrollMainTo(page, 5);
    await page.waitForFunction((w) => document.getElementById('prior-frame').contentWindow.pacsboxViewer.state.index === w, nearest(cur[5], pri));
    await shot(page, 'compare-phone');
    noProblems(page);
  });
});

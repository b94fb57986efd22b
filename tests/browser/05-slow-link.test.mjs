// The viewer on a slow link (chromium throttled to 10 Mbit/s with 20 ms latency, as a clinic's
// remote reader might have): the image on screen comes first. Scrolled-past images stop
// loading, full pixels wait until the wheel stops, and prefetching never wraps to the far end
// of a series. Checked on what the browser actually requested, not on the viewer's own state.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { MANIFEST, canvasBox, launch, login, newPage, noProblems, openViewer, ready } from './lib.mjs';

const EDGE = MANIFEST.edge;
const CLIP = EDGE.series.clip; // color3d_jpeg_baseline: 120 frames of 640×480 colour, 0.9 MB each as pixels
const MBIT = 1e6 / 8;

/** Every frame request of the page: frame number, kind, and how it ended. */
function recorder(page) {
  const log = [];
  const of = (r) => log.find((x) => x.request === r);
  page.on('request', (r) => {
    const m = /\/frames\/(\d+)\/(pixels|preview\.png)/.exec(r.url());
    if (m) log.push({ request: r, frame: Number(m[1]), kind: m[2] === 'pixels' ? 'pixels' : 'preview', end: null });
  });
  page.on('requestfinished', (r) => { const x = of(r); if (x) x.end = 'finished'; });
  page.on('requestfailed', (r) => { const x = of(r); if (x) x.end = r.failure()?.errorText || 'failed'; });
  return log;
}

describe('viewer on a slow link (10 Mbit/s, 20 ms)', () => {
  let browser;
  let page;
  let cdp;

  before(async () => {
    browser = await launch();
    page = await newPage(browser);
    cdp = await page.context().newCDPSession(page);
    await login(page);
  });
  after(async () => {
    await browser?.close();
  });

  it('opening image 1 prefetches its neighbours, not the end of the series', async () => {
    const log = recorder(page);
    const s = await openViewer(page, EDGE.study, CLIP.uid);
    assert.equal(s.count, 120);
    assert.equal(s.index, 0);
    await page.waitForTimeout(500); // let the prefetches start
    const frames = [...new Set(log.map((x) => x.frame))].sort((a, b) => a - b);
    assert.ok(frames.includes(2), `the next image is prefetched: ${frames}`);
    assert.ok(frames.every((f) => f <= 4), `frames requested on opening image 1: ${frames}`);
  });

  it('scrolling through 60 images fetches full pixels where the wheel stops, not on the way', async () => {
    await openViewer(page, EDGE.study, CLIP.uid);
    await page.waitForTimeout(500);
    await cdp.send('Network.emulateNetworkConditions', {
      offline: false, latency: 20, downloadThroughput: 10 * MBIT, uploadThroughput: 10 * MBIT,
    });
    const log = recorder(page);
    const box = await canvasBox(page);
    await page.mouse.move(box.cx, box.cy);
    for (let i = 0; i < 60; i++) await page.mouse.wheel(0, 100); // one image per notch
    const s = await ready(page, 60_000);
    await cdp.send('Network.emulateNetworkConditions', { offline: false, latency: 0, downloadThroughput: -1, uploadThroughput: -1 });
    assert.equal(s.index, 60);
    assert.equal(s.source, 'pixels', 'the image where the wheel stopped shows its full pixels');
    const fullOnTheWay = log.filter((x) => x.kind === 'pixels' && x.end === 'finished' && x.frame > 4 && x.frame < 58);
    assert.ok(fullOnTheWay.length <= 2, `full pixels downloaded for images scrolled past: ${fullOnTheWay.map((x) => x.frame)}`);
    const landed = log.filter((x) => x.kind === 'pixels' && x.frame === 61);
    assert.equal(landed.length, 1, 'the image on screen was fetched once');
    assert.equal(landed[0].end, 'finished');
    const passed = log.filter((x) => x.frame > 4 && x.frame < 58 && x.end === 'finished').length;
    console.log(`# slow link: ${log.length} frame requests, ${passed} completed for images scrolled past, ` +
      `${log.filter((x) => x.end && x.end !== 'finished').length} cancelled`);
    noProblems(page);
  });
});

// Figures, not assertions (bench/viewer_peers.sh runs this through tests/browser/run.sh, with an
// Orthanc at ORTHANC_URL and the studies in PEERS_STUDIES): stores the 2K CR (as PEERS_CR, and
// the JPEG-lossless copy viewer_peers.sh made) and the CT into pacsbox and Orthanc, then, per
// viewport (desktop; phone: 3 device pixels per CSS pixel, touch), viewer and run, in a fresh browser context
// whose HTTP cache already holds the viewer's own code (it opened the other study first,
// unthrottled) but none of this study's images, on a link throttled by DevTools:
//   - first image: the first animation frame in which a canvas of the page is not uniform
//     (an in-page watcher, every frame, on a 32×32 copy of each canvas);
//   - full fidelity: pacsbox — its hook's `pixelsPaint` (the full pixels drawn); Orthanc's web
//     viewer — once no image request was made for 1.5 s, the later of the end of its last
//     /web-viewer/instances/ response and the canvas's last change (it decodes in JS); OHIF — it draws nothing but full pixels, so its first image;
//     OHIF runs twice: at pacsbox's /ohif/ over pacsbox's DICOMweb, and the same folder and
//     configuration over Orthanc's DICOMweb (`ohif-orthanc`, bench/ohif_orthanc.py);
//   - pacsbox: its full-pixel replies' Server-Timing (box time, and "cached" when a compressed
//     image's reply was ready, decoded ahead or by an earlier open);
//   - bytes: transferSize of every resource of the page (Resource Timing) until then, and of
//     the image requests alone; and the same from DevTools' network events (`wireBytes`: what
//     finished arriving by then; on the CT also once slice 150 is on screen, prefetch included);
//   - CT: after the first image, 149 mouse-wheel ticks over the image as fast as chromium takes
//     them, then the time until slice 150 is on screen (pacsbox: index 149 drawn from its full
//     pixels, hook.whenReady; Orthanc: its slider reads 149 — it loads synchronously in
//     the wheel handler; OHIF: its overlay reads 150/300), counted from the first tick and from
//     the last.
// Orthanc's viewer runs twice: as shipped (JPEG quality 95: lossy) and with its "H" quality
// (deflated raw pixels, the full fidelity) forced before its script runs.
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { ARTIFACTS, BASE, launch, login, newPage } from '../tests/browser/lib.mjs';

const RUNS = Number(process.env.PEERS_RUNS || 3);
const MBIT = Number(process.env.VIEWER_MBIT || 10);
const LATENCY_MS = Number(process.env.VIEWER_LATENCY_MS || 20);
// a viewport under 600 px wide is a phone: 3 device pixels per CSS pixel, touch, mobile layout
const VIEWPORTS = (process.env.PEERS_VIEWPORT || '1280x800,390x844').split(',').map((v) => {
  const [width, height] = v.split('x').map(Number);
  const phone = width < 600;
  return { name: v, phone, options: { viewport: { width, height }, deviceScaleFactor: phone ? 3 : 1, isMobile: phone, hasTouch: phone } };
});
const ORTHANC = process.env.ORTHANC_URL;
const OHIF_ORTHANC = process.env.OHIF_ORTHANC_URL;
const STUDIES = process.env.PEERS_STUDIES;
const KEYS = (process.env.PEERS_KEYS || 'cr,crjl,ct').split(',');
const ONLY = (process.env.PEERS_VIEWERS || 'pacsbox,orthanc,orthanc-full,ohif,ohif-orthanc').split(',');
const median = (xs) => {
  const v = xs.filter((x) => x !== null && x !== undefined);
  return v.length ? [...v].sort((a, b) => a - b)[Math.floor(v.length / 2)] : null;
};

for (const [aec, port] of [['PACSBOX', process.env.PACSBOX_DICOM_PORT], ['ORTHANC', process.env.ORTHANC_DICOM_PORT]]) {
  const t0 = Date.now();
  // the CT with DCMTK's storescu (by path: pynetdicom's shadows it on PATH); the CR with
  // pynetdicom's, which proposes each file's own transfer syntax (PEERS_CR may be JPEG 2000)
  for (const [cmd, args] of [
    ['/usr/bin/storescu', ['-aec', aec, '+sd', '+r', '+sp', '*.dcm', '127.0.0.1', port, path.join(STUDIES, 'ct')]],
    ['python3', ['-m', 'pynetdicom', 'storescu', '-cx', '-aec', aec, '-r', '127.0.0.1', port, path.join(STUDIES, 'cr')]],
  ]) {
    const r = spawnSync(cmd, args, { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`${cmd} to ${aec} failed: ${r.stderr}`);
  }
  console.log(`stored the studies into ${aec} in ${Date.now() - t0} ms`);
}

// Orthanc's identifiers (its viewer takes its own series id) and the DICOM UIDs.
const oget = async (p) => (await fetch(`${ORTHANC}${p}`)).json();
const studies = {};
// the CR made JPEG lossless by viewer_peers.sh is `crjl`, the one PEERS_CR names `cr`
const JPEG_LOSSLESS_SV1 = '1.2.840.10008.1.2.4.70';
for (const s of await oget('/series?expand')) {
  const st = await oget(`/studies/${s.ParentStudy}`);
  let key = 'ct';
  if (s.MainDicomTags.Modality === 'CR') {
    const ts = await (await fetch(`${ORTHANC}/instances/${s.Instances[0]}/metadata/TransferSyntax`)).text();
    key = ts.trim() === JPEG_LOSSLESS_SV1 ? 'crjl' : 'cr';
  }
  studies[key] = {
    study: st.MainDicomTags.StudyInstanceUID, series: s.MainDicomTags.SeriesInstanceUID, orthanc: s.ID, count: s.Instances.length,
  };
}
console.log(JSON.stringify(studies));

const url = {
  pacsbox: (s) => `${BASE}/viewer/${s.study}?series=${s.series}`,
  orthanc: (s) => `${ORTHANC}/web-viewer/app/viewer.html?series=${s.orthanc}`,
  'orthanc-full': (s) => `${ORTHANC}/web-viewer/app/viewer.html?series=${s.orthanc}`,
  ohif: (s) => `${BASE}/ohif/viewer?StudyInstanceUIDs=${s.study}`,
  'ohif-orthanc': (s) => `${OHIF_ORTHANC}/ohif/viewer?StudyInstanceUIDs=${s.study}`,
};
const imageRequest = {
  pacsbox: /\/(preview|pixels)(\?|$)|\/frames?\//,
  orthanc: /\/web-viewer\/instances\//,
  'orthanc-full': /\/web-viewer\/instances\//,
  ohif: /\/frames\/|\/rendered|\/bulkdata|\/thumbnail/,
  'ohif-orthanc': /\/frames\/|\/rendered|\/bulkdata|\/thumbnail/,
};
const isOhif = (viewer) => viewer.startsWith('ohif');

// Runs in every page before its own scripts: notes the first frame in which a canvas of the
// page (not a thumbnail) is not uniform, and the last frame in which what it shows changed.
function watcher() {
  performance.setResourceTimingBufferSize(100000);
  window.__firstDrawn = null;
  window.__lastChange = null;
  let last = '';
  const probe = document.createElement('canvas');
  probe.width = 32;
  probe.height = 32;
  const g = probe.getContext('2d', { willReadFrequently: true });
  const tick = () => {
    const sig = [];
    let drawn = false;
    for (const c of document.querySelectorAll('canvas')) {
      if (!c.width || !c.height || !c.isConnected || c.getBoundingClientRect().width < 200) continue; // not thumbnails
      try {
        g.clearRect(0, 0, 32, 32);
        g.drawImage(c, 0, 0, 32, 32);
        const d = g.getImageData(0, 0, 32, 32).data;
        let lo = 765;
        let hi = 0;
        let sum = 0;
        for (let i = 0; i < d.length; i += 4) {
          if (d[i + 3] === 0) continue;
          const v = d[i] + d[i + 1] + d[i + 2];
          lo = Math.min(lo, v);
          hi = Math.max(hi, v);
          sum = (sum * 31 + v) % 1000000007;
        }
        sig.push(sum);
        if (hi - lo > 3) drawn = true; // OHIF draws the 2K CR very dark
      } catch (_e) { /* a tainted or lost canvas: the next one */ }
    }
    const now = performance.now();
    if (drawn && window.__firstDrawn === null) window.__firstDrawn = now;
    const key = sig.join(',');
    if (drawn && key !== last) window.__lastChange = now;
    last = key;
    requestAnimationFrame(tick);
  };
  requestAnimationFrame(tick);
}
// Orthanc's viewer keeps its quality in a global `var compression = 'jpeg95'`; a getter that
// always answers 'deflate' is its "H" button from the start.
function forceDeflate() {
  Object.defineProperty(window, 'compression', { get: () => 'deflate', set: () => {}, configurable: false });
}

const throttle = async (cdp, on) => cdp.send('Network.emulateNetworkConditions', on
  ? { offline: false, latency: LATENCY_MS, downloadThroughput: (MBIT * 1e6) / 8, uploadThroughput: (MBIT * 1e6) / 8 }
  : { offline: false, latency: 0, downloadThroughput: -1, uploadThroughput: -1 });

async function waitFirstImage(page, viewer, timeout = 60_000) {
  if (viewer === 'pacsbox') await page.waitForFunction(() => window.pacsboxViewer !== undefined, null, { timeout });
  await page.waitForFunction(() => window.__firstDrawn !== null, null, { timeout, polling: 20 });
}

/** ms (page clock) when full fidelity was reached, after waiting for it. */
async function fullFidelity(page, viewer, rx) {
  if (viewer === 'pacsbox') {
    const s = await page.evaluate(() => window.pacsboxViewer.whenReady());
    return s.timings.pixelsPaint;
  }
  if (isOhif(viewer)) return page.evaluate(() => window.__firstDrawn);
  // Orthanc: no image request in flight for 1.5 s, then the end of the last one.
  let last = -1;
  for (let quiet = 0; quiet < 1500;) {
    await page.waitForTimeout(250);
    const n = await page.evaluate((src) => performance.getEntriesByType('resource').filter((r) => new RegExp(src).test(r.name)).length, rx.source);
    quiet = n === last ? quiet + 250 : 0;
    last = n;
  }
  // it decodes and draws after the response: the later of that end and the canvas's last change
  return page.evaluate((src) => Math.max(window.__lastChange, ...performance.getEntriesByType('resource')
    .filter((r) => new RegExp(src).test(r.name)).map((r) => r.responseEnd)), rx.source);
}

async function bytes(page, rx, until) {
  return page.evaluate(([src, t]) => {
    const re = new RegExp(src);
    const nav = performance.getEntriesByType('navigation')[0];
    const res = performance.getEntriesByType('resource').filter((r) => r.responseEnd <= t + 1);
    const total = res.reduce((n, r) => n + r.transferSize, nav ? nav.transferSize : 0);
    const images = res.filter((r) => re.test(r.name)).reduce((n, r) => n + r.transferSize, 0);
    const ends = res.filter((r) => re.test(r.name)).map((r) => r.responseEnd);
    return { total, images, requests: res.length, lastImageResponse: ends.length ? Math.max(...ends) : null };
  }, [rx.source, until]);
}

// Bytes on the wire as DevTools' network events count them (Network.loadingFinished's
// encodedDataLength: headers and body as received, 0 from the memory cache), for the requests
// made since `start()`; `image` splits off the viewer's image requests.
function wireCounter(cdp, rx) {
  const live = new Map(); // requestId -> is an image request
  let total = 0;
  let images = 0;
  let on = false;
  cdp.on('Network.requestWillBeSent', (e) => { if (on) live.set(e.requestId, rx.test(e.request.url)); });
  cdp.on('Network.loadingFinished', (e) => {
    if (!live.has(e.requestId)) return;
    total += e.encodedDataLength;
    if (live.get(e.requestId)) images += e.encodedDataLength;
    live.delete(e.requestId);
  });
  return {
    start: () => { on = true; live.clear(); total = 0; images = 0; },
    read: () => ({ total, images, inFlight: live.size }),
  };
}

async function scrollTo150(page, viewer, count) {
  const box = await page.evaluate(() => {
    const cs = [...document.querySelectorAll('canvas')].filter((c) => c.isConnected && c.getBoundingClientRect().width > 100);
    const r = cs[0].getBoundingClientRect();
    return { x: r.x + r.width / 2, y: r.y + r.height / 2 };
  });
  // OHIF's first-visit tour ("Scrolling Through Images") would take the wheel
  if (isOhif(viewer)) await page.getByText('Skip all').click({ timeout: 3000 }).catch(() => {});
  await page.mouse.move(box.x, box.y);
  // Playwright's wheel delta arrives divided by the emulated deviceScaleFactor (33 px a tick on
  // the phone, two of them to pacsbox's 40 px a slice): 100 CSS px a tick on every viewport
  const dpr = await page.evaluate(() => window.devicePixelRatio);
  const t0 = Date.now();
  for (let i = 0; i < 149; i++) await page.mouse.wheel(0, 100 * dpr);
  const t1 = Date.now();
  if (viewer === 'pacsbox') {
    await page.waitForFunction(() => window.pacsboxViewer.state.index === 149, null, { timeout: 120_000, polling: 10 });
    await page.evaluate(() => window.pacsboxViewer.whenReady());
  } else if (isOhif(viewer)) {
    await page.waitForFunction((n) => new RegExp(`\\b150\\s*/\\s*${n}\\b`).test(document.body.innerText), count, { timeout: 120_000, polling: 10 });
  } else {
    // its index lives in a closure; the slider below the image follows it
    await page.waitForFunction(() => window.$('#slider').slider('option', 'value') === 149, null, { timeout: 120_000, polling: 10 });
  }
  await page.evaluate(() => new Promise((r) => requestAnimationFrame(() => r())));
  const t2 = Date.now();
  return { scrollMs: t1 - t0, fromFirstTickMs: t2 - t0, fromLastTickMs: t2 - t1 };
}

const browser = await launch();
const results = {};
try {
  const first = await newPage(browser);
  await login(first, { next: '/search' });
  const auth = await first.context().storageState();
  await first.context().close();
  for (const vp of VIEWPORTS) for (const viewer of ONLY) {
    for (const [key, other] of [['cr', 'ct'], ['crjl', 'ct'], ['ct', 'cr']]) {
      if (!KEYS.includes(key) || !studies[key]) continue;
      // 149 synchronous loads of deflated 512×512 slices: minutes, and the CR says it already
      if (viewer === 'orthanc-full' && key === 'ct') continue;
      const runs = [];
      for (let i = 0; i < RUNS; i++) {
        const ctx = await browser.newContext({ ...vp.options, ignoreHTTPSErrors: true, storageState: auth });
        let page = null;
        try {
          await ctx.addInitScript(watcher);
          if (viewer === 'orthanc-full') await ctx.addInitScript(forceDeflate);
          page = await ctx.newPage();
          const cdp = await ctx.newCDPSession(page);
          await cdp.send('Network.enable');
          const wire = wireCounter(cdp, imageRequest[viewer]);
          // the viewer's own code into the HTTP cache: the other study, unthrottled
          await page.goto(url[viewer](studies[other]));
          // OHIF leaves the 2K CR black (below): its code is cached once the page is idle
          if (isOhif(viewer)) await page.waitForLoadState('networkidle', { timeout: 120_000 });
          else await waitFirstImage(page, viewer);
          await page.goto('about:blank');
          await throttle(cdp, true);
          wire.start();
          await page.goto(url[viewer](studies[key]), { waitUntil: 'commit', timeout: 120_000 });
          let drawn = true;
          try {
            await waitFirstImage(page, viewer, isOhif(viewer) ? 30_000 : 60_000);
          } catch (e) {
            if (!isOhif(viewer)) throw e;
            // nothing drawn: still its bytes and when its last image response ended
            drawn = false;
            await page.waitForLoadState('networkidle', { timeout: 120_000 });
          }
          const firstMs = drawn ? await page.evaluate(() => window.__firstDrawn) : null;
          const fullMs = drawn ? await fullFidelity(page, viewer, imageRequest[viewer]) : null;
          const b = await bytes(page, imageRequest[viewer], fullMs ?? 1e9);
          const ms = (x) => (x === null ? null : Math.round(x));
          const w = wire.read();
          const run = { firstImageMs: ms(firstMs), fullFidelityMs: ms(fullMs), bytes: b.total, imageBytes: b.images, requests: b.requests, lastImageResponseMs: ms(b.lastImageResponse),
            wireBytes: w.total, wireImageBytes: w.images };
          if (viewer === 'pacsbox') {
            run.pixelsServerTiming = await page.evaluate(() => performance.getEntriesByType('resource')
              .filter((r) => /\/pixels(\?|$)/.test(r.name))
              .map((r) => `${r.serverTiming.map((t) => `${t.name} ${Math.round(t.duration)} ms ${t.description}`).join(', ')}; `
                + `request ${Math.round(r.startTime)}–${Math.round(r.responseEnd)} ms, first byte ${Math.round(r.responseStart)} ms`));
          }
          if (key === 'ct' && drawn) {
            Object.assign(run, await scrollTo150(page, viewer, studies.ct.count));
            // the study's bytes by the time slice 150 is on screen (prefetch included)
            const after = wire.read();
            run.wireBytesAfterScroll = after.total;
            run.wireImageBytesAfterScroll = after.images;
          }
          console.log(vp.name, viewer, key, JSON.stringify(run));
          runs.push(run);
        } catch (e) {
          // one viewer failing (a changed page, a timeout) does not lose the others' figures
          console.log(vp.name, viewer, key, 'failed:', e.message.split('\n')[0]);
          runs.push({ error: e.message.split('\n')[0] });
          if (page) {
            await page.screenshot({ path: path.join(ARTIFACTS, `viewer-peers-${vp.name}-${viewer}-${key}-failed.png`) }).catch(() => {});
            console.log(await page.evaluate(() => JSON.stringify([...document.querySelectorAll('canvas')]
              .map((c) => [c.width, c.height, c.getBoundingClientRect().width, c.className]))).catch(() => ''));
          }
        } finally {
          await ctx.close();
        }
      }
      const med = {};
      for (const k of Object.keys(runs.find((r) => !r.error) || {})) med[k] = median(runs.map((r) => r[k]));
      results[`${vp.name}/${viewer}/${key}`] = { runs, median: med };
    }
  }
} finally {
  await browser.close();
}
const out = { link: `${MBIT} Mbit/s, ${LATENCY_MS} ms`, viewports: VIEWPORTS, runs: RUNS, studies, results };
console.log(JSON.stringify(out, null, 1));
writeFileSync(path.join(ARTIFACTS, 'viewer-peers.json'), JSON.stringify(out, null, 2));

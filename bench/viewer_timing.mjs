// Figures, not assertions (bench/viewer.sh runs this through tests/browser/run.sh): the 2K CR's
// first paint and full-pixel paint on a fresh page (and the full pixels' bytes on the link), and
// how many images cine shows per second.
// VIEWER_MBIT / VIEWER_LATENCY_MS throttle the 2K CR runs as chromium's DevTools do (a slow
// link: issue 20 measured at 10 Mbit/s and 20 ms).
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { ARTIFACTS, BASE, MANIFEST, launch, login, newPage, openViewer, ready, watchCine } from '../tests/browser/lib.mjs';

const RUNS = Number(process.env.VIEWER_RUNS || 5);
const CINE_MS = Number(process.env.CINE_MS || 3000);
const MBIT = Number(process.env.VIEWER_MBIT || 0);
const LATENCY_MS = Number(process.env.VIEWER_LATENCY_MS || 0);
const K = MANIFEST.kim;
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

const browser = await launch();
try {
  const page = await newPage(browser);
  await login(page, { next: '/search' });
  const cdp = await page.context().newCDPSession(page);
  if (MBIT > 0) {
    const bytes = (MBIT * 1e6) / 8;
    await cdp.send('Network.emulateNetworkConditions', {
      offline: false, latency: LATENCY_MS, downloadThroughput: bytes, uploadThroughput: bytes,
    });
  }
  const cr = [];
  for (let i = 0; i < RUNS; i++) {
    await page.goto(`${BASE}/search`);
    const t0 = Date.now();
    await page.goto(`${BASE}/viewer/${K.study}?series=${K.series.cr.uid}`);
    const s = await ready(page, 120_000);
    // bytes of the full-pixel response as they crossed the link (after Content-Encoding)
    const pixelsBytes = await page.evaluate(() => performance.getEntriesByType('resource')
      .filter((r) => /\/pixels(\?|$)/.test(r.name)).reduce((n, r) => n + r.encodedBodySize, 0));
    cr.push({
      wallMs: Date.now() - t0, firstPaintMs: Math.round(s.timings.firstPaint), pixelsPaintMs: Math.round(s.timings.pixelsPaint), pixelsBytes,
    });
  }
  if (MBIT > 0) {
    await cdp.send('Network.emulateNetworkConditions', { offline: false, latency: 0, downloadThroughput: -1, uploadThroughput: -1 });
  }
  const cine = {};
  for (const [name, study, series] of [['mr10', K.study, K.series.mf.uid], ['clip120', MANIFEST.edge.study, MANIFEST.edge.series.clip.uid]]) {
    const rates = [];
    for (let i = 0; i < RUNS; i++) {
      await openViewer(page, study, series);
      await page.click('[data-act=cine]');
      const seen = await watchCine(page, { ms: CINE_MS });
      await page.click('[data-act=cine]');
      rates.push(+(seen.changes.length / (seen.ms / 1000)).toFixed(2));
    }
    cine[name] = { imagesPerSecond: rates, median: median(rates) };
  }
  const out = {
    link: MBIT > 0 ? `${MBIT} Mbit/s, ${LATENCY_MS} ms` : 'loopback',
    crFirstPaintMs: { runs: cr.map((r) => r.firstPaintMs), median: median(cr.map((r) => r.firstPaintMs)) },
    crPixelsPaintMs: { runs: cr.map((r) => r.pixelsPaintMs), median: median(cr.map((r) => r.pixelsPaintMs)) },
    crWallMs: { runs: cr.map((r) => r.wallMs), median: median(cr.map((r) => r.wallMs)) },
    crPixelsBytes: { runs: cr.map((r) => r.pixelsBytes), median: median(cr.map((r) => r.pixelsBytes)) },
    cine,
  };
  console.log(JSON.stringify(out, null, 1));
  writeFileSync(path.join(ARTIFACTS, 'viewer-timings.json'), JSON.stringify(out, null, 2));
} finally {
  await browser.close();
}

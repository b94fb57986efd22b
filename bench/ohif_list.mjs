// Figures, not assertions (bench/ohif_list.sh runs this through tests/browser/run.sh): stores
// the corpus of OHIF_CORPUS with DCMTK's storescu (by path: pynetdicom's shadows it on PATH), then times, on fresh page loads,
//   - OHIF: /ohif/ until its study list shows rows (OHIF asks QIDO-RS for 101 studies and
//     shows the first page of them);
//   - ours: /search until its result table is there (the newest studies, one page);
//   - QIDO-RS alone: /dicom-web/studies?limit=101 and ?limit=1000 fetched in the page.
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { ARTIFACTS, BASE, launch, login, newPage } from '../tests/browser/lib.mjs';

const RUNS = Number(process.env.OHIF_RUNS || 5);
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

const port = process.env.PACSBOX_DICOM_PORT;
const t0 = Date.now();
const r = spawnSync('/usr/bin/storescu', ['-aec', 'PACSBOX', '+sd', '+r', '+sp', '*.dcm', '127.0.0.1', port, process.env.OHIF_CORPUS], { encoding: 'utf8' });
if (r.status !== 0) throw new Error(`storescu failed: ${r.stderr}`);
console.log(`stored the corpus in ${Date.now() - t0} ms`);

const browser = await launch();
try {
  const page = await newPage(browser);
  await login(page, { next: '/search' });
  const total = await page.evaluate(async () => {
    const r = await fetch('/dicom-web/studies?limit=100000&includefield=00100020');
    return (await r.json()).length;
  });
  const ohif = [];
  const ours = [];
  const qido101 = [];
  const qido1000 = [];
  let shown = '';
  let asked = [];
  for (let i = 0; i < RUNS; i++) {
    // OHIF, cold page load (its bundles from the browser cache after the first run).
    await page.goto(`${BASE}/account/password`);
    asked = [];
    const onReq = (q) => { if (q.url().includes('/dicom-web/studies?')) asked.push(q.url().replace(BASE, '')); };
    page.on('request', onReq);
    let t = Date.now();
    await page.goto(`${BASE}/ohif/`);
    await page.waitForFunction(() => {
      const rows = document.querySelectorAll('tbody tr, [data-cy^="studyRow"]');
      return rows.length >= 10;
    }, null, { timeout: 300_000, polling: 50 });
    ohif.push(Date.now() - t);
    page.off('request', onReq);
    shown = await page.evaluate(() => document.querySelectorAll('tbody tr, [data-cy^="studyRow"]').length);
    // Our own search page: the newest studies.
    t = Date.now();
    await page.goto(`${BASE}/search`);
    await page.waitForSelector('#results tbody tr');
    ours.push(Date.now() - t);
    for (const [limit, out] of [[101, qido101], [1000, qido1000]]) {
      out.push(await page.evaluate(async (l) => {
        const s = performance.now();
        const r = await fetch(`/dicom-web/studies?limit=${l}&offset=0&fuzzymatching=false&includefield=00081030%2C00080060`);
        await r.json();
        return Math.round(performance.now() - s);
      }, limit));
    }
  }
  const out = {
    studies: total,
    ohifRowsShown: shown,
    ohifQido: asked,
    ohifListMs: ohif,
    oursSearchMs: ours,
    qido101Ms: qido101,
    qido1000Ms: qido1000,
    median: { ohif: median(ohif), ours: median(ours), qido101: median(qido101), qido1000: median(qido1000) },
  };
  out.ratio = { ohifOverOurs: +(out.median.ohif / out.median.ours).toFixed(2), ohifOverQido101: +(out.median.ohif / Math.max(1, out.median.qido101)).toFixed(2) };
  console.log(JSON.stringify(out, null, 2));
  writeFileSync(path.join(ARTIFACTS, 'ohif-list.json'), JSON.stringify(out, null, 2));
} finally {
  await browser.close();
}

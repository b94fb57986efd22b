// The OHIF viewer the box serves at /ohif/ (run.sh installs it with web-ui/ohif/install.sh and
// sets [web] ohif_dir): behind the same login, its study list filled from our QIDO-RS with the
// Korean names right, a CT opened from our WADO-RS and drawn — its canvas compared with our own
// preview of the same image.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { BASE, MANIFEST, launch, login, newPage, shot } from './lib.mjs';

const K = MANIFEST.kim;
const HONG = MANIFEST.hong;
const CT = K.series.ct; // 693_UNCR: 512×512 CT, window 40/100

/** 16×16 block means (grey, 0..255) of an image drawn into a canvas in the page. */
const BLOCKS = 16;

describe('OHIF at /ohif/', () => {
  let browser;
  let page;

  before(async () => {
    browser = await launch();
    page = await newPage(browser);
  });

  after(async () => {
    await browser?.close();
  });

  it('without a session: /ohif/ sends to the login, DICOMweb answers 401', async () => {
    const anon = await browser.newContext({ ignoreHTTPSErrors: true });
    const r = await anon.request.get(`${BASE}/ohif/viewer?StudyInstanceUIDs=${K.study}`, { maxRedirects: 0 });
    assert.equal(r.status(), 303);
    assert.equal(r.headers().location, `/login?next=${encodeURIComponent(`/ohif/viewer?StudyInstanceUIDs=${K.study}`)}`);
    const js = await anon.request.get(`${BASE}/ohif/app-config.js`, { maxRedirects: 0 });
    assert.equal(js.status(), 303, 'not even the configuration without a session');
    const q = await anon.request.get(`${BASE}/dicom-web/studies`, { maxRedirects: 0 });
    assert.equal(q.status(), 401);
    assert.match(q.headers()['www-authenticate'] || '', /^Bearer/);
    await anon.close();
  });

  it('after logging in from /ohif/, comes back to OHIF, which lists our studies with the Korean names', async () => {
    // The login form with next=/ohif/ is where an unauthenticated browser was sent (above).
    await login(page, { next: '/ohif/' });
    assert.equal(new URL(page.url()).pathname.replace(/\/$/, ''), '/ohif', `landed on ${page.url()}`);
    const hong = page.getByText('홍, 길동', { exact: true });
    await hong.first().waitFor({ timeout: 120_000 });
    // OHIF shows a person name's alphabetic group, "^" as ", ": Hangul there is shown as is;
    // Kim's alphabetic group is Latin (its Hangul is the ideographic group).
    await page.getByText('Kim, Minsu', { exact: true }).first().waitFor({ timeout: 10_000 });
    await shot(page, 'ohif-study-list');
    const body = await page.innerText('body');
    // Every study the box holds (our QIDO-RS count), the patient named <script> as text.
    const n = await page.evaluate(async () => (await (await fetch('/dicom-web/studies')).json()).length);
    assert.ok(n >= 4, `QIDO-RS lists ${n} studies`);
    assert.ok(body.includes(`1-${n} of ${n}`), `OHIF counts ${n} studies: ${body.slice(0, 300)}`);
    assert.ok(body.includes('<script>alert(1)</script>'), 'a name with markup is shown as text');
    assert.ok(!/�|Ã|ê°/.test(body), 'no mojibake in the study list');
    // The page's CSP held: OHIF ran without inline scripts or eval.
    assert.deepEqual(page.problems.filter((p) => p.startsWith('CSP')), []);
  });

  it('the study page offers "Open in OHIF" with the study UID', async () => {
    await page.goto(`${BASE}/study/${K.study}`);
    const href = await page.getAttribute('#open-ohif', 'href');
    assert.equal(href, `/ohif/viewer?StudyInstanceUIDs=${K.study}`);
  });

  it('opens the CT series and draws it like our own preview', async () => {
    await page.goto(`${BASE}/ohif/viewer?StudyInstanceUIDs=${K.study}&SeriesInstanceUIDs=${CT.uid}`);
    // Cornerstone draws each viewport into a 2D canvas; wait until it holds an image.
    const handle = await page.waitForFunction((blocks) => {
      const c = document.querySelector('canvas.cornerstone-canvas');
      if (!c || c.width < 64 || c.height < 64) return null;
      const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
      let lit = 0;
      for (let i = 0; i < d.length; i += 4) if (d[i] > 16) lit++;
      if (lit < (c.width * c.height) / 50) return null;
      // The image is fitted into the viewport: a square image fills the shorter side, centred.
      const side = Math.min(c.width, c.height);
      const x0 = Math.floor((c.width - side) / 2);
      const y0 = Math.floor((c.height - side) / 2);
      const sums = new Array(blocks * blocks).fill(0);
      const counts = new Array(blocks * blocks).fill(0);
      for (let y = 0; y < side; y++) {
        for (let x = 0; x < side; x++) {
          const k = Math.floor((y * blocks) / side) * blocks + Math.floor((x * blocks) / side);
          sums[k] += d[((y0 + y) * c.width + x0 + x) * 4];
          counts[k]++;
        }
      }
      return { width: c.width, height: c.height, lit, blocks: sums.map((s, k) => s / counts[k]) };
    }, BLOCKS, { timeout: 180_000, polling: 500 });
    const ohif = await handle.jsonValue();
    await shot(page, 'ohif-ct');
    const sop = CT.instances[0].sop;
    const ours = await page.evaluate(async ([url, blocks]) => {
      const r = await fetch(url);
      if (!r.ok) return { error: r.status };
      const bmp = await createImageBitmap(await r.blob());
      const c = new OffscreenCanvas(bmp.width, bmp.height);
      const g = c.getContext('2d');
      g.drawImage(bmp, 0, 0);
      const d = g.getImageData(0, 0, bmp.width, bmp.height).data;
      const sums = new Array(blocks * blocks).fill(0);
      const counts = new Array(blocks * blocks).fill(0);
      for (let y = 0; y < bmp.height; y++) {
        for (let x = 0; x < bmp.width; x++) {
          const k = Math.floor((y * blocks) / bmp.height) * blocks + Math.floor((x * blocks) / bmp.width);
          sums[k] += d[(y * bmp.width + x) * 4];
          counts[k]++;
        }
      }
      return { width: bmp.width, height: bmp.height, blocks: sums.map((s, k) => s / counts[k]) };
    }, [`${BASE}/api/instances/${sop}/frames/1/preview.png`, BLOCKS]);
    assert.equal(ours.error, undefined, `our preview: ${ours.error}`);
    const mean = (v) => v.reduce((a, b) => a + b, 0) / v.length;
    const std = (v) => Math.sqrt(mean(v.map((x) => (x - mean(v)) ** 2)));
    const ma = mean(ohif.blocks);
    const mb = mean(ours.blocks);
    const corr = mean(ohif.blocks.map((a, i) => (a - ma) * (ours.blocks[i] - mb))) / (std(ohif.blocks) * std(ours.blocks));
    const detail = `OHIF mean ${ma.toFixed(1)} std ${std(ohif.blocks).toFixed(1)}, ours mean ${mb.toFixed(1)} std ${std(ours.blocks).toFixed(1)}, correlation ${corr.toFixed(3)}`;
    console.log(`    ${detail}`);
    assert.ok(std(ohif.blocks) > 10, `OHIF's canvas shows structure, not a flat fill: ${detail}`);
    // Same window (the file's 40/100), same anatomy: block means agree in level and layout.
    assert.ok(Math.abs(ma - mb) < 25, `similar brightness: ${detail}`);
    assert.ok(corr > 0.8, `same picture: ${detail}`);
  });

  it('the Hangul-named CT opens as well (one series, one image)', async () => {
    await page.goto(`${BASE}/ohif/viewer?StudyInstanceUIDs=${HONG.study}`);
    await page.waitForFunction(() => {
      const c = document.querySelector('canvas.cornerstone-canvas');
      if (!c || c.width < 64) return false;
      const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
      let lit = 0;
      for (let i = 0; i < d.length; i += 4) if (d[i] > 16) lit++;
      return lit > (c.width * c.height) / 50;
    }, null, { timeout: 120_000, polling: 500 });
    await shot(page, 'ohif-hong');
    assert.deepEqual(page.problems.filter((p) => p.startsWith('CSP') || p.startsWith('dialog')), []);
  });
});

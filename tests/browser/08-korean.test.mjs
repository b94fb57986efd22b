// The page in Korean: a browser whose language is Korean (`locale: 'ko-KR'` sends
// `Accept-Language: ko-KR`) gets the login and search pages in Korean, and the Hangul family
// name typed into the Korean search form finds 홍길동. The viewer's toolbar and the words its
// scripts write on the image (overlay, measurements) are Korean too, and English for an
// English browser. The worklist's live refresh writes Korean states and buttons, and on a
// 390 px phone the Korean header stays within two rows.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  BASE, MANIFEST, drag, fillRegister, launch, login, newPage, noProblems, openViewer, ready, shot,
} from './lib.mjs';

const HONG = MANIFEST.hong;
const K = MANIFEST.kim;

/** Image coordinates (pixel centres) → page coordinates, through the viewer's hook. */
async function at(page, x, y) {
  const box = await page.locator('#canvas').boundingBox();
  const p = await page.evaluate(([x, y]) => window.pacsboxViewer.imageToCanvas(x - 0.5, y - 0.5), [x, y]);
  return { x: box.x + p.x + 0.5, y: box.y + p.y + 0.5 };
}

describe('korean', () => {
  let browser;
  before(async () => {
    browser = await launch();
  });
  after(async () => {
    await browser?.close();
  });

  it('a Korean browser gets Korean pages and finds 홍길동 by Hangul', async () => {
    const page = await newPage(browser, { locale: 'ko-KR' });
    await page.goto(`${BASE}/login`);
    assert.equal(await page.getAttribute('html', 'lang'), 'ko');
    assert.ok(await page.getByText('사용자 이름').isVisible(), 'the login form is in Korean');
    await login(page);
    await page.goto(`${BASE}/search`);
    assert.equal(await page.getAttribute('html', 'lang'), 'ko');
    assert.ok(await page.getByText('환자 이름', { exact: true }).isVisible(), 'the search form is in Korean');
    assert.ok(await page.getByRole('columnheader', { name: '검사일' }).isVisible());
    await page.fill('#search input[name=name]', '홍');
    await Promise.all([page.waitForLoadState('load'), page.click('#search button[type=submit]')]);
    const hong = page.locator(`#results a[href="/study/${HONG.study}"]`);
    assert.ok(await hong.isVisible(), 'the Hangul family name finds the patient');
    assert.match(await hong.innerText(), /홍.*길동/, '홍길동 shown in Hangul');
    assert.match(await page.locator('#summary').innerText(), /최신순/);
    await shot(page, 'korean-search');
    noProblems(page);
  });
  it('on a 390×844 phone the Korean header takes one or two rows, every link still reachable', async () => {
    const page = await newPage(browser, { locale: 'ko-KR', viewport: { width: 390, height: 844 } });
    await login(page);
    await page.goto(`${BASE}/search`);
    const header = page.locator('header.top');
    // Rows: the distinct tops of the header's links and buttons (an admin sees all of them).
    const rows = await header.evaluate((h) => {
      const tops = [...h.querySelectorAll('a, button')].map((e) => e.getBoundingClientRect().top).sort((a, b) => a - b);
      return tops.filter((t, i) => i === 0 || t - tops[i - 1] > 4).length;
    });
    const box = await header.boundingBox();
    const line = (await page.locator('header.top a.brand').boundingBox()).height;
    await shot(page, 'korean-phone-header');
    assert.ok(rows <= 2, `the header wraps to ${rows} rows`);
    assert.ok(box.height <= 2 * line + 24, `the header is ${box.height} px high (a line is ${line} px)`);
    assert.ok(await page.evaluate(() => document.documentElement.scrollWidth <= 390), 'the page does not scroll sideways');
    // The links that do not fit are a swipe away, the last one too.
    const logout = page.locator('header.top nav button.link');
    await logout.scrollIntoViewIfNeeded();
    assert.ok(await logout.isVisible(), 'log out is reachable');
    assert.equal((await logout.innerText()).trim(), '로그아웃');
    noProblems(page);
    await page.context().close();
  });

  it('the worklist refreshed by its script shows Korean states and buttons', async () => {
    const page = await newPage(browser, { locale: 'ko-KR' });
    await login(page, { next: '/register' });
    await page.goto(`${BASE}/register`);
    const id = `BRW-KO-${Date.now()}`;
    await fillRegister(page, {
      patient_id: id,
      family: 'Lee',
      given: 'Minji',
      birth: '1988-03-02',
      sex: 'F',
      modality: 'US',
      time: '11:30',
    });
    await Promise.all([page.waitForURL(/\/worklist\?/), page.click('#register button[type=submit]')]);
    // The table as the script rebuilds it from /worklist.json (keywords in the JSON).
    await page.waitForResponse((r) => r.url().includes('/worklist.json'), { timeout: 15_000 });
    await page.waitForTimeout(200);
    const row = page.locator('#worklist tbody tr', { hasText: id });
    assert.equal(await row.count(), 1);
    assert.equal((await row.locator('.state').textContent()).trim(), '예약됨');
    assert.equal(await row.locator('button', { hasText: '취소' }).count(), 1);
    noProblems(page);
    await page.context().close();
  });

  for (const [locale, want] of [
    ['ko-KR', {
      lang: 'ko', length: '길이', lengthTitle: /^길이 \(/, reset: '초기화', image: /영상 1 \/ 1/,
      geometry: /위치 -?[\d.]+ mm {2}두께 5 mm/, window: /윈도우 100 {2}레벨 40/, zoom: /확대 \d+%/,
      uncalibrated: /길이: 50 px \(보정 안 됨\)/, frames: /영상 1 \/ 10/, title: / · 뷰어 · pacsbox$/,
    }],
    ['en-US', {
      lang: 'en', length: 'Length', lengthTitle: /^Length \(drag/, reset: 'Reset', image: /Image 1 \/ 1/,
      geometry: /Loc -?[\d.]+ mm {2}Thk 5 mm/, window: /W 100 {2}L 40/, zoom: /Zoom \d+%/,
      uncalibrated: /Length: 50 px \(uncalibrated\)/, frames: /Image 1 \/ 10/, title: / · Viewer · pacsbox$/,
    }],
  ]) {
    it(`the viewer's toolbar, overlay and measurements follow the browser's language (${locale})`, async () => {
      const page = await newPage(browser, { locale });
      await login(page);
      let s = await openViewer(page, K.study, K.series.ct.uid);
      assert.equal(s.source, 'pixels');
      assert.equal(await page.getAttribute('html', 'lang'), want.lang);
      assert.match(await page.title(), want.title);
      // toolbar words and titles: server-rendered from the catalogue
      const len = page.locator('[data-tool="length"]');
      assert.equal((await len.innerText()).trim(), want.length);
      assert.match(await len.getAttribute('title'), want.lengthTitle);
      assert.equal((await page.locator('[data-act="reset"]').textContent()).trim(), want.reset);
      // the overlay: written by viewer.js through i18n.js
      assert.match(await page.textContent('#ov-bl'), want.image);
      assert.match(await page.textContent('#ov-bl'), want.geometry);
      assert.match(await page.textContent('#ov-br'), want.window);
      assert.match(await page.textContent('#ov-br'), want.zoom);
      // a measurement's label on an image without Pixel Spacing (emri_small: 10 frames)
      s = await openViewer(page, K.study, K.series.mf.uid);
      assert.match(await page.textContent('#ov-bl'), want.frames);
      await page.click('[data-tool="length"]');
      await drag(page, await at(page, 10, 10), await at(page, 40, 50));
      s = await ready(page);
      assert.equal(s.measurements.length, 1);
      assert.match(await page.textContent('#measurements'), want.uncalibrated);
      await shot(page, `viewer-${want.lang}`);
      noProblems(page);
      await page.context().close();
    });
  }
});

// The page in Korean: a browser whose language is Korean (`locale: 'ko-KR'` sends
// `Accept-Language: ko-KR`) gets the login and search pages in Korean, and the Hangul family
// name typed into the Korean search form finds 홍길동. The viewer's toolbar and the words its
// scripts write on the image (overlay, measurements) are Korean too, and English for an
// English browser.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  BASE, MANIFEST, drag, launch, login, newPage, noProblems, openViewer, ready, shot,
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

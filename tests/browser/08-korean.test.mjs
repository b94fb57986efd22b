// The page in Korean: a browser whose language is Korean (`locale: 'ko-KR'` sends
// `Accept-Language: ko-KR`) gets the login and search pages in Korean, and the Hangul family
// name typed into the Korean search form finds 홍길동.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { BASE, MANIFEST, launch, login, newPage, noProblems, shot } from './lib.mjs';

const HONG = MANIFEST.hong;

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
});

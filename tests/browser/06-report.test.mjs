// The physician's report on the study page: write, save a draft (it comes back after a reload
// and the search says "draft"), sign (the version list, the printable view, "reported" in the
// search results). The study is the XSS fixture's: its patient name must stay text everywhere.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { BASE, MANIFEST, launch, login, newPage, noProblems, shot } from './lib.mjs';

const X = MANIFEST.xss;
const FINDINGS = '좌측 신장에 2 cm 낭종.\nNo hydronephrosis.';
const IMPRESSION = '단순 신낭종.';

describe('report', () => {
  let browser;
  before(async () => {
    browser = await launch();
  });
  after(async () => {
    await browser?.close();
  });

  it('write, draft, sign; reported in search; printable view', async () => {
    const page = await newPage(browser);
    await login(page, { next: `/study/${X.study}` });
    await page.goto(`${BASE}/study/${X.study}`);
    const form = page.locator('#report-form');
    assert.ok(await form.isVisible(), 'the editor is open while there is no report');
    await form.locator('textarea[name=findings]').fill(FINDINGS);
    await Promise.all([page.waitForLoadState('load'), form.locator('button[value=draft]').click()]);
    assert.equal(new URL(page.url()).hash, '#report');
    await page.reload();
    assert.equal(await page.locator('#report-form textarea[name=findings]').inputValue(), FINDINGS);
    assert.match(await page.locator('#draft-note').innerText(), /Draft saved by admin/);

    await page.goto(`${BASE}/study/${X.study}`);
    await page.locator('#report-form textarea[name=impression]').fill(IMPRESSION);
    await shot(page, 'report-draft');
    await Promise.all([page.waitForLoadState('load'), page.locator('#report-form button[value=sign]').click()]);
    assert.equal(await page.locator('#report-state').innerText(), 'reported');
    assert.equal(await page.locator('#report-versions li').count(), 1);
    assert.equal(await page.locator('#current-impression').innerText(), IMPRESSION);
    assert.equal(await page.locator('#current-findings').innerText(), FINDINGS);
    await shot(page, 'report-signed');

    await page.goto(`${BASE}/search`);
    const row = page.locator('#results tbody tr', { has: page.locator(`a[href="/study/${X.study}"]`) });
    assert.equal(await row.locator('.badge').innerText(), 'reported');
    assert.equal(await row.locator('td.who a').innerText(), X.name, 'the patient name stays text');

    await page.goto(`${BASE}/study/${X.study}`);
    await Promise.all([page.waitForLoadState('load'), page.locator('#print-report').click()]);
    assert.equal(await page.locator('#report-patient').innerText(), X.name);
    assert.equal(await page.locator('#report-impression').innerText(), IMPRESSION);
    assert.equal(await page.locator('#report-signer').innerText(), 'admin');
    await page.emulateMedia({ media: 'print' });
    assert.equal(await page.locator('header.top').isVisible(), false, 'print hides the navigation');
    await shot(page, 'report-print');
    noProblems(page);
    await page.context().close();
  });
});

// The front desk in a real browser: register a patient (with the Hangul name group) and an
// exam in the Register page, land on the Worklist page and find the exam there, scheduled;
// the page's live refresh keeps it (the table is rebuilt from /worklist.json).
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { BASE, fillRegister, launch, login, newPage, noProblems, shot } from './lib.mjs';

describe('register and worklist', () => {
  let browser;
  before(async () => {
    browser = await launch();
  });
  after(async () => {
    await browser?.close();
  });

  it('an exam registered in the page is on the worklist page, scheduled', async () => {
    const page = await newPage(browser);
    await login(page);
    await page.click('header nav a[href="/register"]');
    await page.waitForLoadState('load');
    const id = `BRW-WL-${Date.now()}`;
    await fillRegister(page, {
      patient_id: id,
      family: 'Park',
      given: 'Jisoo',
      hangul_family: '박',
      hangul_given: '지수',
      birth: '1990-05-17',
      sex: 'F',
      modality: 'DX',
      time: '10:15',
      description: 'Knee AP',
    });
    await shot(page, 'register-filled');
    await Promise.all([page.waitForURL(/\/worklist\?/), page.click('#register button[type=submit]')]);
    assert.match(await page.textContent('.ok'), /Exam A\d{12} scheduled/);
    const row = page.locator('#worklist tbody tr', { hasText: id });
    assert.equal(await row.count(), 1);
    assert.match(await row.textContent(), /Park Jisoo = 박지수/);
    assert.equal((await row.locator('.state').textContent()).trim(), 'scheduled');
    // After a refresh from the JSON the row is still there, with its Cancel button.
    await page.waitForResponse((r) => r.url().includes('/worklist.json'), { timeout: 15_000 });
    await page.waitForTimeout(200);
    const again = page.locator('#worklist tbody tr', { hasText: id });
    assert.equal(await again.count(), 1);
    assert.equal(await again.locator('button', { hasText: 'Cancel' }).count(), 1);
    await shot(page, 'worklist');
    noProblems(page);
    await page.context().close();
  });
});

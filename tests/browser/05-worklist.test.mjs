// The front desk in a real browser: register a patient (with the Hangul name group) and an
// exam in the Register page, land on the Worklist page and find the exam there, scheduled;
// the page's live refresh keeps it (the table is rebuilt from /worklist.json).
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { BASE, launch, login, newPage, noProblems, shot } from './lib.mjs';

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
    await page.fill('#register input[name=patient_id]', id);
    await page.fill('#register input[name=family]', 'Park');
    await page.fill('#register input[name=given]', 'Jisoo');
    await page.fill('#register input[name=hangul_family]', '박');
    await page.fill('#register input[name=hangul_given]', '지수');
    await page.fill('#register input[name=birth]', '1990-05-17');
    await page.selectOption('#register select[name=sex]', 'F');
    await page.fill('#register input[name=modality]', 'DX');
    await page.fill('#register input[name=time]', '10:15');
    await page.fill('#register input[name=description]', 'Knee AP');
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

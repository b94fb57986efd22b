// Anonymizing a study from its page: the form's options and pseudonym, "as new study" (a job
// whose page polls its progress, then shows the result), and the copy found by the search under the pseudonym while the original keeps
// its Hangul name.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { BASE, MANIFEST, launch, login, newPage, noProblems, shot } from './lib.mjs';

const K = MANIFEST.kim;

describe('anonymize', () => {
  let browser;
  before(async () => {
    browser = await launch();
  });
  after(async () => {
    await browser?.close();
  });

  it('as a new study: result page, then the copy under the pseudonym and the original unchanged', async () => {
    const page = await newPage(browser);
    await login(page, { next: `/study/${K.study}` });
    await page.goto(`${BASE}/study/${K.study}`);
    const form = page.locator('#anonymize');
    await form.locator('summary').click();
    await form.locator('input[name=name]').fill('BROWSER^ANON');
    await form.locator('input[name=id]').fill('BRW-ANON-1');
    await form.locator('input[name=keep_descriptions]').check();
    await shot(page, 'anonymize-form');
    await Promise.all([page.waitForLoadState('load'), form.locator('button[value=archive]').click()]);
    // The run is a job: its page shows "n of total" until it ends, then the result.
    const jobPath = new URL(page.url()).pathname;
    assert.match(jobPath, /^\/anonymize\/\d+$/, 'the form leads to the job page');
    await page.waitForSelector('#counts', { timeout: 120000 });
    assert.equal(await page.locator('h1').innerText(), 'Anonymized copy');
    const counts = await page.locator('#counts').innerText();
    const total = Object.values(K.series).reduce((n, s) => n + s.instances.length, 0);
    assert.match(counts, new RegExp(`^${total} of ${total} written \\(${total} stored\\)`), counts);
    await shot(page, 'anonymize-result');
    const total2 = await page.evaluate(async (p) => (await fetch(`${p}/progress`)).json(), jobPath);
    assert.deepEqual(total2, { job: Number(jobPath.split('/')[2]), done: total, total, finished: true });

    await Promise.all([page.waitForLoadState('load'), page.locator('#new-study a').click()]);
    assert.equal(await page.locator('#patient').innerText(), 'BROWSER ANON');
    assert.notEqual(new URL(page.url()).pathname, `/study/${K.study}`);

    await page.goto(`${BASE}/search?id=BRW-ANON-1`);
    const rows = page.locator('#results tbody tr');
    assert.equal(await rows.count(), 1, 'the copy is found by its pseudonym ID');
    await page.goto(`${BASE}/study/${K.study}`);
    assert.match(await page.locator('#patient').innerText(), /김민수/, 'the original keeps its Hangul name');
    noProblems(page);
    await page.context().close();
  });
});

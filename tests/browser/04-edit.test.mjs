// Correcting a patient ID from the study page: the search page shows the new ID at once and
// not the old one; the operations page lists it and its Undo puts the old ID back; merging two
// patients from the page leaves one patient with both studies, and Undo separates them; the
// issuer is edited and undone the same way; an invalid date is refused and changes nothing.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { BASE, MANIFEST, launch, login, newPage, noProblems, shot } from './lib.mjs';

const E = MANIFEST.edge;
const X = MANIFEST.xss;

async function idsFound(page, id) {
  await page.goto(`${BASE}/search?id=${encodeURIComponent(id)}&when=any`);
  return page.$$eval('#results td[data-label="ID"]', (tds) => tds.map((td) => td.textContent.trim()));
}

// Undoes the newest operation (of kind `kind`) from the operations page.
async function undoLatest(page, kind) {
  await page.goto(`${BASE}/admin/operations`);
  const row = page.locator('#operations tbody tr').first();
  assert.match(await row.textContent(), kind);
  await Promise.all([page.waitForLoadState('load'), row.locator('button', { hasText: 'Undo' }).click()]);
  assert.match(await page.textContent('.ok'), /undone/);
}

async function submit(page, form) {
  await Promise.all([page.waitForLoadState('load'), page.click(`${form} button[type=submit]`)]);
}

describe('corrections', () => {
  let browser;
  before(async () => {
    browser = await launch();
  });
  after(async () => {
    await browser?.close();
  });

  it('a corrected patient ID is what search shows at once; Undo puts the old one back', async () => {
    const page = await newPage(browser);
    await login(page);
    assert.ok((await idsFound(page, 'BRW-EDGE')).length > 0, 'the study is found by its old ID first');

    await page.goto(`${BASE}/study/${E.study}`);
    assert.equal(await page.inputValue('#edit-patient input[name=id]'), 'BRW-EDGE');
    await page.fill('#edit-patient input[name=id]', 'BRW-FIXED');
    await submit(page, '#edit-patient');
    assert.match(await page.textContent('.ok'), /Operation \d+: \d+ instance\(s\) changed/);
    await shot(page, 'edit-patient-done');

    const found = await idsFound(page, 'BRW-FIXED');
    assert.ok(found.length > 0 && found.every((id) => id === 'BRW-FIXED'), JSON.stringify(found));
    assert.deepEqual(await idsFound(page, 'BRW-EDGE'), [], 'the old ID finds nothing');
    await shot(page, 'edit-search-new-id');

    await page.goto(`${BASE}/admin/operations`);
    const row = page.locator('#operations tbody tr').first();
    assert.match(await row.textContent(), /edit-patient/);
    assert.match(await row.textContent(), /BRW-EDGE → BRW-FIXED/);
    await Promise.all([page.waitForLoadState('load'), row.locator('button', { hasText: 'Undo' }).click()]);
    assert.match(await page.textContent('.ok'), /undone/);
    await shot(page, 'operations-undone');
    assert.ok((await idsFound(page, 'BRW-EDGE')).length > 0, 'undo: the old ID is back');
    assert.deepEqual(await idsFound(page, 'BRW-FIXED'), []);
    noProblems(page);
    await page.context().close();
  });

  it('merging two patients from the page puts both studies under one; Undo separates them', async () => {
    const page = await newPage(browser);
    await login(page);
    assert.equal((await idsFound(page, 'BRW-EDGE')).length, 1, 'one study under BRW-EDGE first');
    assert.equal((await idsFound(page, 'BRW-XSS')).length, 1);

    await page.goto(`${BASE}/study/${X.study}`);
    await page.fill('#merge-patient input[name=into]', 'BRW-EDGE');
    await submit(page, '#merge-patient');
    assert.match(await page.textContent('.ok'), /Operation \d+: \d+ instance\(s\) changed/);
    assert.equal(await page.inputValue('#edit-patient input[name=id]'), 'BRW-EDGE', 'the study is under BRW-EDGE now');
    await shot(page, 'merge-done');
    assert.deepEqual(await idsFound(page, 'BRW-EDGE'), ['BRW-EDGE', 'BRW-EDGE'], 'one patient holds both studies');
    assert.deepEqual(await idsFound(page, 'BRW-XSS'), [], 'the merged patient is gone');

    await undoLatest(page, /merge/);
    assert.deepEqual(await idsFound(page, 'BRW-XSS'), ['BRW-XSS'], 'undo: the patient is back');
    assert.deepEqual(await idsFound(page, 'BRW-EDGE'), ['BRW-EDGE']);
    noProblems(page);
    await page.context().close();
  });

  it('the Issuer of Patient ID is edited in the patient form and undone', async () => {
    const page = await newPage(browser);
    await login(page);
    await page.goto(`${BASE}/study/${E.study}`);
    const before = await page.inputValue('#edit-patient input[name=issuer]');
    await page.fill('#edit-patient input[name=issuer]', 'BRW-HOSPITAL');
    await submit(page, '#edit-patient');
    assert.match(await page.textContent('.ok'), /Operation \d+: \d+ instance\(s\) changed/);
    await page.goto(`${BASE}/study/${E.study}`);
    assert.equal(await page.inputValue('#edit-patient input[name=issuer]'), 'BRW-HOSPITAL', 'read back from the files');
    await undoLatest(page, /IssuerOfPatientID: .*→ BRW-HOSPITAL/);
    await page.goto(`${BASE}/study/${E.study}`);
    assert.equal(await page.inputValue('#edit-patient input[name=issuer]'), before, 'undo: the issuer is back');
    noProblems(page);
    await page.context().close();
  });

  it('an invalid date is refused with a message and changes nothing', async () => {
    const page = await newPage(browser);
    await login(page);
    await page.goto(`${BASE}/study/${E.study}`);
    const date = await page.inputValue('#edit-study input[name=date]');
    await page.fill('#edit-study input[name=date]', '20241345');
    const [resp] = await Promise.all([
      page.waitForResponse((r) => r.url().endsWith('/edit')),
      page.click('#edit-study button[type=submit]'),
    ]);
    await page.waitForLoadState('load');
    assert.equal(resp.status(), 400);
    assert.match(await page.textContent('.error'), /StudyDate: .*not a valid date/);
    await page.goto(`${BASE}/study/${E.study}`);
    assert.equal(await page.inputValue('#edit-study input[name=date]'), date, 'nothing changed');
    await page.context().close();
  });
});

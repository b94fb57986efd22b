// Key images: mark two images in the viewer (the `k` key on a CT image, the star button on frame
// 3 of the multi-frame MR, so across series and on a frame), reload, and the "Key images" entry of
// the series menu steps through exactly those two; the study page counts them.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { BASE, MANIFEST, launch, login, newPage, noProblems, openViewer, ready, shot, state } from './lib.mjs';

const K = MANIFEST.kim;
const EDGE = MANIFEST.edge; // clip: one instance of 120 frames

/** Resolves once the viewer has no save of the key images in flight and `n` have succeeded. */
async function saved(page, n) {
  await page.waitForFunction((want) => {
    const s = window.pacsboxViewer.state;
    return !s.keySaving && !s.keyPending && s.keySaves >= want;
  }, n, { timeout: 30_000 });
  const s = await state(page);
  assert.equal(s.keyError, '', 'the save was accepted');
}

const unfocus = (page) => page.evaluate(() => document.activeElement && document.activeElement.blur());

describe('key images', () => {
  let browser;
  before(async () => {
    browser = await launch();
  });
  after(async () => {
    await browser?.close();
  });

  it('marked images are saved, and the filter steps through exactly them after a reload', async () => {
    const page = await newPage(browser);
    await login(page, { next: `/viewer/${K.study}` });
    const ct = K.series.ct;
    const mf = K.series.mf;
    let s = await openViewer(page, K.study, ct.uid);
    assert.equal(s.key, false);
    await page.keyboard.press('k');
    await saved(page, 1);
    s = await state(page);
    assert.equal(s.key, true);
    assert.equal(await page.locator('#key-btn').getAttribute('aria-pressed'), 'true');

    await page.selectOption('#series-select', mf.uid);
    await ready(page);
    // The series' frames are listed once its frame count is known (after the first image's
    // pixels, while the series strip's thumbnails load too): step only through frames.
    await page.waitForFunction(() => window.pacsboxViewer.state.count >= 3, null, { timeout: 30_000 });
    await unfocus(page);
    await page.keyboard.press('ArrowRight');
    await page.keyboard.press('ArrowRight');
    s = await ready(page);
    assert.equal(s.frame, 3);
    assert.equal(s.key, false);
    await page.locator('#key-btn').click();
    await saved(page, 2);
    assert.equal((await state(page)).key, true);
    assert.equal((await state(page)).keyImages, 2);

    await page.reload();
    await ready(page);
    await page.selectOption('#series-select', 'key-images');
    s = await ready(page);
    await unfocus(page);
    assert.equal(s.count, 2, 'exactly the two marked images');
    assert.deepEqual([s.sop, s.frame, s.key], [ct.instances[0].sop, 1, true]);
    await page.keyboard.press('ArrowRight');
    s = await ready(page);
    assert.deepEqual([s.sop, s.frame, s.key], [mf.instances[0].sop, 3, true]);
    await page.keyboard.press('ArrowRight');
    s = await ready(page);
    assert.equal(s.index, 1, 'the filter ends at the second key image');
    await shot(page, 'key-images-filter');

    await page.goto(`${BASE}/study/${K.study}`);
    assert.equal(await page.locator('#key-images').innerText(), '2');
    await Promise.all([page.waitForURL(/keys=1/), page.locator('#key-images a').click()]);
    s = await ready(page);
    assert.equal(s.count, 2, 'the study page opens the viewer on its key images');
    noProblems(page);
    await page.context().close();
  });
  it('ten quick marks are saved as one Key Object Selection with ten references', async () => {
    const page = await newPage(browser);
    await login(page, { next: `/viewer/${EDGE.study}` });
    // stored KO instances of the study, from the series list the viewer reads
    const koInstances = () => page.evaluate(async (uid) => {
      const list = await (await fetch(`/api/studies/${uid}/series`)).json();
      return list.filter((x) => x.modality === 'KO').reduce((n, x) => n + (x.instances || []).length, 0);
    }, EDGE.study);
    const before = await koInstances();
    await openViewer(page, EDGE.study, EDGE.series.clip.uid);
    await page.waitForFunction(() => window.pacsboxViewer.state.count >= 10, null, { timeout: 30_000 });
    await unfocus(page);
    for (let i = 0; i < 10; i++) {
      await page.keyboard.press('k');
      if (i < 9) await page.keyboard.press('ArrowRight');
    }
    assert.equal((await state(page)).key, true, 'the star shows the mark at once');
    await saved(page, 1);
    const s = await state(page);
    assert.equal(s.keySaves, 1, 'one save for ten marks');
    assert.equal(await koInstances(), before + 1, 'one stored KOS instance');
    const keys = await page.evaluate(async (uid) => (await fetch(`/api/studies/${uid}/key-images`)).json(), EDGE.study);
    assert.deepEqual(keys.ours.map((r) => r.frame).sort((a, b) => a - b), [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    assert.equal(keys.all.length, 10, 'ten references');
    noProblems(page);
    await page.context().close();
  });
});

// Importing patient media from the web page: a ZIP of a CD (with a DICOMDIR written by DCMTK's
// dcmmkdir) uploaded, its studies listed, one chosen, the progress watched to the end, then
// the imported study found by the search and the other one not.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { BASE, launch, login, newPage, noProblems, shot } from './lib.mjs';

/** Writes the CD as a ZIP with pydicom, dcmmkdir and Python's zipfile; returns its path. */
function makeCdZip(dir) {
  const script = `
import sys, zipfile, subprocess, pathlib
from pydicom import dcmread
from pydicom.data import get_testdata_file
from pydicom.uid import generate_uid
root = pathlib.Path(sys.argv[1]); cd = root / "cd"; (cd / "IMAGES").mkdir(parents=True)
for n, (pid, study) in enumerate([("WEBCD-1", "1"), ("WEBCD-1", "1"), ("WEBCD-2", "2")]):
    ds = dcmread(get_testdata_file("CT_small.dcm"))
    ds.PatientID = pid; ds.PatientName = "MEDIA^" + pid[-1]
    ds.StudyInstanceUID = "2.25.9000" + study; ds.SeriesInstanceUID = generate_uid()
    ds.SOPInstanceUID = generate_uid(); ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.save_as(cd / "IMAGES" / f"IM{n:06d}", enforce_file_format=True)
subprocess.run(["dcmmkdir", "-q", "+r", "-Pgp", "+id", str(cd), "+D", str(cd / "DICOMDIR"), "IMAGES"], check=True, cwd=cd)
with zipfile.ZipFile(root / "cd.zip", "w", zipfile.ZIP_DEFLATED) as z:
    for p in sorted(cd.rglob("*")):
        if p.is_file(): z.write(p, p.relative_to(cd).as_posix())
`;
  execFileSync('python3', ['-c', script, dir]);
  return path.join(dir, 'cd.zip');
}

/** Logs in, uploads `zip` on the import page and waits for its study list; gives its rows. */
async function uploadZip(page, zip) {
  await login(page, { next: '/admin/import' });
  await page.goto(`${BASE}/admin/import`);
  await page.setInputFiles('#upload-file', zip);
  await page.click('#upload-button');
  const rows = page.locator('#studies tr');
  await rows.first().waitFor({ timeout: 30_000 });
  return rows;
}

describe('import media', () => {
  let browser;
  let dir;
  before(async () => {
    browser = await launch();
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pacsbox-import-'));
  });
  after(async () => {
    await browser?.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('upload a ZIP, choose a study, watch the progress, find it by search', async () => {
    const zip = makeCdZip(dir);
    const page = await newPage(browser);
    const rows = await uploadZip(page, zip);
    assert.equal(await rows.count(), 2);
    assert.match(await page.locator('#upload-status').innerText(), /^3 file\(s\), 2 study\(ies\) found/);
    // Only the first patient's study.
    await page.locator('#studies tr', { hasText: 'WEBCD-2' }).locator('input').uncheck();
    await shot(page, 'import-choose');
    await page.click('#import-button');
    await page.locator('#progress[data-finished="1"]').waitFor({ timeout: 60_000 });
    const progress = await page.locator('#progress').innerText();
    assert.match(progress, /^2 \/ 2 files, .* 0 failed — finished: 2 files: 2 imported/, progress);
    await shot(page, 'import-done');
    await page.goto(`${BASE}/search?id=WEBCD-1`);
    assert.equal(await page.locator('#results td.who a').count(), 1, 'the imported study is found');
    await page.goto(`${BASE}/search?id=WEBCD-2`);
    assert.equal(await page.locator('#results td.who a').count(), 0, 'the study not chosen is not imported');
    noProblems(page);
    await page.context().close();
  });
  it('a Korean user sees the progress, summary and counts in Korean', async () => {
    const own = fs.mkdtempSync(path.join(os.tmpdir(), 'pacsbox-import-ko-'));
    const zip = makeCdZip(own);
    const page = await newPage(browser, { locale: 'ko-KR' });
    await uploadZip(page, zip);
    assert.match(await page.locator('#upload-status').innerText(), /^파일 3개, 검사 2건을 찾았습니다/);
    await page.locator('#studies tr', { hasText: 'WEBCD-2' }).locator('input').uncheck();
    await page.click('#import-button');
    await page.locator('#progress[data-finished="1"]').waitFor({ timeout: 60_000 });
    const progress = await page.locator('#progress').innerText();
    // The summary the archive wrote in English ("2 files: 2 imported, …"), in Korean.
    assert.match(progress, /^파일 2 \/ 2개, .* 실패 0개 — 완료: 파일 2개: 가져옴 2개, 중복 0개, 실패 0개, 검사 1건$/, progress);
    await shot(page, 'import-done-ko');
    noProblems(page);
    await page.context().close();
    fs.rmSync(own, { recursive: true, force: true });
  });
  it('a stick inserted into the box: announced on the status page, listed, imported, forgotten when taken out', async () => {
    const watch = process.env.PACSBOX_MEDIA_WATCH;
    assert.ok(watch, 'run.sh sets PACSBOX_MEDIA_WATCH');
    const own = fs.mkdtempSync(path.join(os.tmpdir(), 'pacsbox-stick-'));
    makeCdZip(own);
    const cd = path.join(own, 'cd');
    // A new study UID pair, so this import is not all duplicates of the upload test's.
    execFileSync('python3', ['-c', `
import pathlib, sys
from pydicom import dcmread
for p in sorted(pathlib.Path(sys.argv[1]).glob("IMAGES/*")):
    ds = dcmread(p); ds.StudyInstanceUID = ds.StudyInstanceUID + "1"; ds.PatientID = "USB" + ds.PatientID
    ds.save_as(p)
`, cd]);
    fs.rmSync(path.join(cd, 'DICOMDIR'));
    execFileSync('dcmmkdir', ['-q', '+r', '-Pgp', '+id', cd, '+D', path.join(cd, 'DICOMDIR'), 'IMAGES'], { cwd: cd });
    // Moved in whole, as a mount appears.
    const stick = path.join(watch, 'usb1');
    fs.renameSync(cd, stick);
    const page = await newPage(browser);
    await login(page, { next: '/status' });
    await page.goto(`${BASE}/status`);
    let notice = page.locator('.media-found');
    for (let i = 0; i < 40 && (await notice.count()) === 0; i++) {
      await page.waitForTimeout(250);
      await page.goto(`${BASE}/status`);
      notice = page.locator('.media-found');
    }
    assert.match(await notice.innerText(), /^Media found: 2 studies \(usb1/);
    await shot(page, 'media-found');
    await notice.locator('a').click();
    const rows = page.locator('#studies tr');
    await rows.first().waitFor({ timeout: 30_000 });
    assert.equal(await rows.count(), 2);
    await page.locator('#studies tr', { hasText: 'USBWEBCD-2' }).locator('input').uncheck();
    await page.click('#import-button');
    await page.locator('#progress[data-finished="1"]').waitFor({ timeout: 60_000 });
    assert.match(await page.locator('#progress').innerText(), /finished: 2 files: 2 imported/);
    await page.goto(`${BASE}/search?id=USBWEBCD-1`);
    assert.equal(await page.locator('#results td.who a').count(), 1, 'the imported study is found');
    assert.ok(fs.existsSync(path.join(stick, 'DICOMDIR')), 'the media is left as it was');
    fs.rmSync(stick, { recursive: true, force: true });
    let gone = false;
    for (let i = 0; i < 40 && !gone; i++) {
      await page.waitForTimeout(250);
      await page.goto(`${BASE}/status`);
      gone = (await page.locator('.media-found').count()) === 0;
    }
    assert.ok(gone, 'the notice goes when the stick is taken out');
    fs.rmSync(own, { recursive: true, force: true });
    noProblems(page);
    await page.context().close();
  });
});

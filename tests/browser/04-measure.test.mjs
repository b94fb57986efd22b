// Measurements and orientation markers in the viewer, checked against the DICOM files
// themselves: the expected lengths, HU statistics and markers are computed here with pydicom
// from pydicom's own copy of each test file (pixel data as the modality sent it), never by
// asking the viewer's code.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import {
  MANIFEST, drag, launch, login, newPage, noProblems, openViewer, ready, shot,
} from './lib.mjs';

const K = MANIFEST.kim;
const CT = K.series.ct; // 693_UNCR: 512×512 CT, Pixel Spacing 0.478516, rescale −1024, axial
const MF = K.series.mf; // emri_small: 10 frames, no Pixel Spacing
const CR = K.series.cr; // RG1_UNCR: Pixel Spacing 0\0 (uncalibrated), Patient Orientation L\F

/** Runs Python with pydicom; `args` goes in as JSON, the script prints JSON. */
function py(script, args) {
  const out = execFileSync('python3', ['-c', script, JSON.stringify(args)], { encoding: 'utf8' });
  return JSON.parse(out);
}

const FILE_FACTS = `
import json, sys, warnings
import pydicom
from pydicom.data import get_testdata_file
a = json.loads(sys.argv[1])
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    ds = pydicom.dcmread(get_testdata_file(a["file"]))
ps = [float(v) for v in ds.get("PixelSpacing", [])] or None
print(json.dumps({"spacing": ps, "iop": [float(v) for v in ds.get("ImageOrientationPatient", [])] or None}))
`;

// Modality values (stored × slope + intercept) of the pixels whose centres lie in the shape.
const ROI_TRUTH = `
import json, sys, warnings
import numpy as np
import pydicom
from pydicom.data import get_testdata_file
a = json.loads(sys.argv[1])
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    ds = pydicom.dcmread(get_testdata_file(a["file"]))
v = ds.pixel_array.astype(np.float64) * float(ds.get("RescaleSlope", 1)) + float(ds.get("RescaleIntercept", 0))
x0, x1 = sorted([a["a"]["x"], a["b"]["x"]])
y0, y1 = sorted([a["a"]["y"], a["b"]["y"]])
jj, ii = np.mgrid[0:v.shape[0], 0:v.shape[1]]
cx, cy = ii + 0.5, jj + 0.5
inside = (cx >= x0) & (cx <= x1) & (cy >= y0) & (cy <= y1)
if a["kind"] == "ellipse":
    inside &= ((cx - (x0 + x1) / 2) / ((x1 - x0) / 2)) ** 2 + ((cy - (y0 + y1) / 2) / ((y1 - y0) / 2)) ** 2 <= 1
sel = v[inside]
print(json.dumps({"n": int(sel.size), "mean": float(sel.mean()), "sd": float(sel.std()), "min": float(sel.min()), "max": float(sel.max())}))
`;

/** CSS pixel on the page that shows image point (x, y) (device pixel ratio is 1 here). */
async function at(page, x, y) {
  const box = await page.locator('#canvas').boundingBox();
  const p = await page.evaluate(([x, y]) => window.pacsboxViewer.imageToCanvas(x - 0.5, y - 0.5), [x, y]);
  return { x: box.x + p.x + 0.5, y: box.y + p.y + 0.5 };
}

const near = (a, b, eps, what) => assert.ok(Math.abs(a - b) <= eps, `${what}: ${a} vs ${b}`);

describe('viewer measurements and orientation markers', () => {
  let browser;
  let page;

  before(async () => {
    browser = await launch();
    page = await newPage(browser);
    await login(page, { next: '/search' });
  });

  after(async () => {
    await browser?.close();
  });

  it('an axial CT shows R/L/A/P at the edges, and they turn with rotate and flip', async () => {
    const s = await openViewer(page, K.study, CT.uid);
    const facts = py(FILE_FACTS, { file: '693_UNCR.dcm' });
    assert.deepEqual(facts.iop, [1, 0, 0, 0, 1, 0]);
    assert.deepEqual(s.orientation, { left: 'R', right: 'L', top: 'A', bottom: 'P' });
    assert.equal(await page.textContent('#ov-right'), 'L');
    assert.equal(await page.textContent('#ov-top'), 'A');
    await page.click('[data-act="rotate"]');
    let r = await ready(page);
    // a quarter turn clockwise brings the anterior side to the right of the screen
    assert.deepEqual(r.orientation, { left: 'P', right: 'A', top: 'R', bottom: 'L' });
    await page.click('[data-act="reset"]');
    await page.click('[data-act="fliph"]');
    r = await ready(page);
    assert.deepEqual(r.orientation, { left: 'L', right: 'R', top: 'A', bottom: 'P' });
    await page.click('[data-act="reset"]');
    await ready(page);
  });

  it('a length on the CT equals the distance from Pixel Spacing, in mm', async () => {
    await openViewer(page, K.study, CT.uid);
    const { spacing } = py(FILE_FACTS, { file: '693_UNCR.dcm' });
    await page.click('[data-tool="length"]');
    await drag(page, await at(page, 100, 120), await at(page, 300, 270));
    const s = await ready(page);
    assert.equal(s.measurements.length, 1);
    const m = s.measurements[0];
    assert.equal(m.kind, 'length');
    assert.equal(m.unit, 'mm');
    const [a, b] = m.points;
    near(a.x, 100, 1, 'start x');
    near(b.y, 270, 1, 'end y');
    // Pixel Spacing is (row spacing, column spacing): x steps are columns, y steps rows
    const expected = Math.hypot((b.x - a.x) * spacing[1], (b.y - a.y) * spacing[0]);
    near(m.length, expected, 1e-6, 'length in mm');
    near(m.length, Math.hypot(200, 150) * 0.478516, 0.8, 'length of the intended line');
    assert.match(await page.textContent('#measurements'), new RegExp(`${expected.toFixed(1)} mm`));
    noProblems(page);
  });

  it('ellipse and rectangle ROIs give the HU statistics of the pixels inside them', async () => {
    for (const [kind, from, to] of [['rect', [180, 200], [260, 300]], ['ellipse', [220, 150], [330, 240]]]) {
      await page.click(`[data-tool="${kind}"]`);
      await drag(page, await at(page, ...from), await at(page, ...to));
      const s = await ready(page);
      const m = s.measurements[s.measurements.length - 1];
      assert.equal(m.kind, kind);
      const truth = py(ROI_TRUTH, { file: '693_UNCR.dcm', kind, a: m.points[0], b: m.points[1] });
      assert.ok(truth.n > 1000, `the ${kind} covers ${truth.n} pixels`);
      assert.equal(m.stats.n, truth.n, `${kind}: pixel count`);
      near(m.stats.mean, truth.mean, 1e-6, `${kind}: mean HU`);
      near(m.stats.sd, truth.sd, 1e-6, `${kind}: SD`);
      assert.equal(m.stats.min, truth.min);
      assert.equal(m.stats.max, truth.max);
      assert.match(m.text, /HU/);
    }
    await shot(page, 'viewer-measurements');
  });

  it('an angle is measured between its two arms', async () => {
    await page.click('[data-tool="angle"]');
    await drag(page, await at(page, 120, 400), await at(page, 220, 400)); // first arm, vertex at its end
    assert.equal((await ready(page)).drafting, 'angle');
    await drag(page, await at(page, 220, 400), await at(page, 320, 300)); // second arm
    const s = await ready(page);
    const m = s.measurements[s.measurements.length - 1];
    assert.equal(m.kind, 'angle');
    assert.equal(s.drafting, null);
    const [a, v, c] = m.points;
    const expected = (Math.acos(((a.x - v.x) * (c.x - v.x) + (a.y - v.y) * (c.y - v.y)) /
      (Math.hypot(a.x - v.x, a.y - v.y) * Math.hypot(c.x - v.x, c.y - v.y))) * 180) / Math.PI;
    near(m.angle, expected, 1e-6, 'angle');
    near(m.angle, 135, 1, 'angle of the intended arms');
  });

  it('measurements are listed, survive scrolling, and can be removed', async () => {
    await openViewer(page, K.study, MF.uid);
    await page.click('[data-tool="length"]');
    await drag(page, await at(page, 10, 10), await at(page, 40, 50));
    let s = await ready(page);
    assert.equal(s.measurements.length, 1);
    // no Pixel Spacing: pixels, marked as uncalibrated
    assert.equal(s.measurements[0].unit, 'px');
    assert.match(await page.textContent('#measurements'), /50 px \(uncalibrated\)/);
    await page.keyboard.press('ArrowDown');
    s = await ready(page);
    assert.equal(s.index, 1);
    assert.equal(s.measurements.length, 0);
    assert.equal(await page.locator('#measurements').isHidden(), true);
    await page.keyboard.press('ArrowUp');
    s = await ready(page);
    assert.equal(s.index, 0);
    assert.equal(s.measurements.length, 1, 'the measurement is there again');
    await page.click('#measurements button');
    s = await ready(page);
    assert.equal(s.measurements.length, 0);
    assert.equal(await page.locator('#measurements').isHidden(), true);
  });

  it('a radiograph without Image Orientation uses Patient Orientation; no spacing is uncalibrated', async () => {
    const s = await openViewer(page, K.study, CR.uid);
    assert.deepEqual(s.orientation, { left: 'R', right: 'L', top: 'H', bottom: 'F' });
    await page.click('[data-tool="length"]');
    await drag(page, await at(page, 300, 300), await at(page, 900, 300));
    const m = (await ready(page)).measurements[0];
    assert.equal(m.unit, 'px');
    near(m.length, 600, 3, 'length in pixels');
    noProblems(page);
  });
});

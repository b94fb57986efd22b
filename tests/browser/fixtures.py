#!/usr/bin/env python3
"""Store the browser tests' studies into a running pacsbox, then write a manifest (JSON).

Real sample files from pydicom's test data and the pydicom-data wheel, rewritten only where a
test needs it (patient, study/series/SOP UIDs so that they group into studies, series and
instance numbers), each in the transfer syntax it came in (pixel data untouched), sent with
DCMTK's storescu (one association per transfer syntax, that syntax only).

Studies:
  * "Kim^Minsu=김민수" (Specific Character Set ISO_IR 192), ID BRW-KIM, five series:
      1 CT   693_UNCR.dcm        512×512 CT, signed, window 40/100, rescale −1024
      2 MR   emri_small.dcm      64×64, 10 frames (multi-frame scroll and cine)
      3 CR   RG1_UNCR.dcm        1841×1955 12/15-bit MONOCHROME1 (the "2K CR")
      4 US   US1_UNCR.dcm        640×480 RGB
      5 MR   one image each in RLE (MR_small_RLE), JPEG 2000 (MR2_J2KR), explicit LE (CT_small),
             12-bit JPEG Extended (JPGExtended), JPEG-LS (MR_small_jpeg_ls_lossless)
  * "<script>alert(1)</script>", ID BRW-XSS: CT_small.dcm, series description "<b>not bold</b>"
  * "홍^길동" (Hangul in the alphabetic group, ISO_IR 192), ID BRW-HONG: CT_small.dcm
  * "Edge^Cases", ID BRW-EDGE: 1 rtdose_1frame.dcm (32-bit: preview only, pixels 415),
      2 color3d_jpeg_baseline.dcm (640×480 YBR JPEG baseline, 120 frames: cine)

Usage: fixtures.py --port DICOM_PORT --ae PACSBOX --work DIR --out manifest.json
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path

import pydicom
from pydicom.data import get_testdata_file
from pydicom.uid import generate_uid

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "e2e"))
import helpers  # noqa: E402  (storescu config per transfer syntax, DCMTK paths)

KIM_NAME = "Kim^Minsu=김민수"
HONG_NAME = "홍^길동"
EDGE_NAME = "Edge^Cases"
EDGE_SERIES = [
    ("dose32", "RT dose 32-bit", ["rtdose_1frame.dcm"]),
    ("clip", "US clip 120 frames", ["color3d_jpeg_baseline.dcm"]),
]
XSS_NAME = "<script>alert(1)</script>"

KIM_SERIES = [
    # key, modality label, description, [files]
    ("ct", "CT lung/abdomen 512", ["693_UNCR.dcm"]),
    ("mf", "MR multi-frame", ["emri_small.dcm"]),
    ("cr", "CR chest 2K", ["RG1_UNCR.dcm"]),
    ("rgb", "US colour", ["US1_UNCR.dcm"]),
    ("mixed", "Mixed syntaxes", ["MR_small_RLE.dcm", "MR2_J2KR.dcm", "CT_small.dcm", "JPGExtended.dcm",
                                 "MR_small_jpeg_ls_lossless.dcm"]),
]


def rewrite(src: str, *, patient: str, pid: str, study: str, series: str, series_no: int,
            inst_no: int, desc: str, charset: str | None) -> pydicom.Dataset:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = pydicom.dcmread(get_testdata_file(src))
    if charset:
        ds.SpecificCharacterSet = charset
    ds.PatientName = patient
    ds.PatientID = pid
    ds.StudyInstanceUID = study
    ds.SeriesInstanceUID = series
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.SeriesNumber = series_no
    ds.InstanceNumber = inst_no
    ds.SeriesDescription = desc
    ds.StudyDescription = "browser test"
    ds.StudyDate = "20260101" if pid == "BRW-KIM" else "20251231"
    ds.StudyTime = "120000"
    ds.AccessionNumber = pid
    return ds


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--ae", default="PACSBOX")
    ap.add_argument("--work", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    a = ap.parse_args()
    a.work.mkdir(parents=True, exist_ok=True)

    manifest: dict = {"kim": {"name": KIM_NAME, "series": {}}, "xss": {"name": XSS_NAME, "series": {}}}
    files: list[tuple[Path, str, str]] = []  # path, ts, sop class

    def add(ds: pydicom.Dataset, tag: str) -> dict:
        p = a.work / f"{tag}-{ds.SOPInstanceUID}.dcm"
        ds.save_as(p, enforce_file_format=True)
        files.append((p, str(ds.file_meta.TransferSyntaxUID), str(ds.SOPClassUID)))
        return {"sop": str(ds.SOPInstanceUID), "ts": str(ds.file_meta.TransferSyntaxUID),
                "rows": int(ds.Rows), "columns": int(ds.Columns),
                "frames": int(ds.get("NumberOfFrames", 1) or 1)}

    kim_study = generate_uid()
    manifest["kim"]["study"] = kim_study
    for n, (key, desc, srcs) in enumerate(KIM_SERIES, 1):
        series = generate_uid()
        insts = []
        for i, src in enumerate(srcs, 1):
            ds = rewrite(src, patient=KIM_NAME, pid="BRW-KIM", study=kim_study, series=series,
                         series_no=n, inst_no=i, desc=desc, charset="ISO_IR 192")
            insts.append({"file": src, **add(ds, key)})
        manifest["kim"]["series"][key] = {"uid": series, "number": n, "description": desc, "instances": insts}

    xss_study = generate_uid()
    manifest["xss"]["study"] = xss_study
    series = generate_uid()
    ds = rewrite("CT_small.dcm", patient=XSS_NAME, pid="BRW-XSS", study=xss_study, series=series,
                 series_no=1, inst_no=1, desc="<b>not bold</b>", charset="ISO_IR 192")
    manifest["xss"]["series"]["ct"] = {"uid": series, "number": 1, "instances": [{"file": "CT_small.dcm", **add(ds, "xss")}]}

    # A name written in Hangul in its first (alphabetic) group, as many Korean modalities send
    # it: the group OHIF's study list shows (07-ohif).
    hong_study = generate_uid()
    series = generate_uid()
    ds = rewrite("CT_small.dcm", patient=HONG_NAME, pid="BRW-HONG", study=hong_study, series=series,
                 series_no=1, inst_no=1, desc="CT", charset="ISO_IR 192")
    manifest["hong"] = {"name": HONG_NAME, "study": hong_study,
                        "series": {"ct": {"uid": series, "number": 1, "instances": [{"file": "CT_small.dcm", **add(ds, "hong")}]}}}

    edge_study = generate_uid()
    manifest["edge"] = {"name": EDGE_NAME, "study": edge_study, "series": {}}
    for n, (key, desc, srcs) in enumerate(EDGE_SERIES, 1):
        series = generate_uid()
        insts = []
        for i, src in enumerate(srcs, 1):
            ds = rewrite(src, patient=EDGE_NAME, pid="BRW-EDGE", study=edge_study, series=series,
                         series_no=n, inst_no=i, desc=desc, charset=None)
            insts.append({"file": src, **add(ds, key)})
        manifest["edge"]["series"][key] = {"uid": series, "number": n, "description": desc, "instances": insts}

    groups: dict[str, set[str]] = {}
    for _p, ts, sc in files:
        groups.setdefault(ts, set()).add(sc)
    cfg = a.work / "storescu.cfg"
    profiles = helpers.storescu_config(cfg, groups)
    for ts, profile in profiles.items():
        batch = [p for p, t, _sc in files if t == ts]
        r = helpers.storescu(a.port, batch, called=a.ae, calling="BROWSERTEST", cfg=cfg, profile=profile)
        if r.returncode != 0:
            print(f"storescu failed for {ts}:\n{r.stdout}\n{r.stderr}", file=sys.stderr)
            return 1
    a.out.write_text(json.dumps(manifest, indent=2, ensure_ascii=False))
    print(f"stored {len(files)} files in {len(profiles)} transfer syntaxes; manifest {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Store one patient's three CT studies for the "Compare with prior" browser test (08-compare),
then print a manifest (JSON) on stdout.

pydicom's CT_small.dcm (128×128, explicit VR little endian, pixels untouched), rewritten into
stacks of axial slices at chosen Image Position (Patient) values, sent with DCMTK's storescu:
  * current, 2026-03-01: series 1 "CT chest 2.5 mm", 12 slices at z = 0, 2.5, … 27.5 (feet
    first), series 2 "CT recon 3 images", 3 slices;
  * prior, 2025-03-01: series 1 "CT chest 3 mm", 9 slices at z = 25.3, 22.3, … 1.3 (instance 1
    is the highest: stored head first) and shifted 40 mm sideways;
  * older, 2024-01-01: series 1, 2 slices.
The Patient ID is new on every run (BRW-CMP-<hex>), so that a second run on the same server
finds only its own studies.

Usage: compare_fixtures.py --port DICOM_PORT --ae PACSBOX --work DIR
"""

from __future__ import annotations

import argparse
import json
import secrets
import sys
import warnings
from pathlib import Path

import pydicom
from pydicom.data import get_testdata_file
from pydicom.uid import generate_uid

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fixtures import helpers  # noqa: E402  (storescu config per transfer syntax)

NAME = "Compare^Priors"
AXIAL = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]


def slice_ds(*, pid: str, study: str, date: str, study_desc: str, series: str, series_no: int,
             desc: str, inst_no: int, pos: list[float]) -> pydicom.Dataset:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    ds.PatientName = NAME
    ds.PatientID = pid
    ds.StudyInstanceUID = study
    ds.StudyDate = date
    ds.StudyTime = "090000"
    ds.StudyDescription = study_desc
    ds.AccessionNumber = f"{pid[-6:]}{date[2:4]}"
    ds.SeriesInstanceUID = series
    ds.SeriesNumber = series_no
    ds.SeriesDescription = desc
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.InstanceNumber = inst_no
    ds.ImageOrientationPatient = AXIAL
    ds.ImagePositionPatient = pos
    ds.SliceLocation = pos[2]
    return ds


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--ae", default="PACSBOX")
    ap.add_argument("--work", type=Path, required=True)
    a = ap.parse_args()
    a.work.mkdir(parents=True, exist_ok=True)
    pid = f"BRW-CMP-{secrets.token_hex(3)}"
    studies = [
        # key, date, description, [(series description, [z…], x offset)]
        ("current", "20260301", "CT chest follow-up", [
            ("CT chest 2.5 mm", [2.5 * k for k in range(12)], -60.0),
            ("CT recon 3 images", [0.0, 10.0, 20.0], -60.0),
        ]),
        ("prior", "20250301", "CT chest baseline", [
            ("CT chest 3 mm", [25.3 - 3.0 * k for k in range(9)], -20.0),
        ]),
        ("older", "20240101", "CT chest first", [
            ("CT chest 10 mm", [0.0, 10.0], -60.0),
        ]),
    ]
    manifest: dict = {"name": NAME, "patient_id": pid}
    files: list[Path] = []
    for key, date, study_desc, series_list in studies:
        study = generate_uid()
        entry = {"study": study, "date": date, "description": study_desc, "series": []}
        for n, (desc, zs, x) in enumerate(series_list, 1):
            series = generate_uid()
            insts = []
            for i, z in enumerate(zs, 1):
                pos = [x, -80.0, z]
                ds = slice_ds(pid=pid, study=study, date=date, study_desc=study_desc, series=series,
                              series_no=n, desc=desc, inst_no=i, pos=pos)
                p = a.work / f"cmp-{ds.SOPInstanceUID}.dcm"
                ds.save_as(p, enforce_file_format=True)
                files.append(p)
                insts.append({"sop": str(ds.SOPInstanceUID), "number": i})
            entry["series"].append({"uid": series, "number": n, "description": desc, "instances": insts})
        manifest[key] = entry

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        first = pydicom.dcmread(files[0])
    ts = str(first.file_meta.TransferSyntaxUID)
    cfg = a.work / "storescu.cfg"
    profiles = helpers.storescu_config(cfg, {ts: {str(first.SOPClassUID)}})
    r = helpers.storescu(a.port, files, called=a.ae, calling="BROWSERTEST", cfg=cfg, profile=profiles[ts])
    if r.returncode != 0:
        print(f"storescu failed:\n{r.stdout}\n{r.stderr}", file=sys.stderr)
        return 1
    print(json.dumps(manifest))
    return 0


if __name__ == "__main__":
    sys.exit(main())

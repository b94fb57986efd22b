#!/usr/bin/env python3
"""Writes N CT instances of one new study and series for the boot test, plus a manifest
(file name, SOP Instance UID). Each carries `kib` KiB of pixel data so a stream of them lasts
long enough under emulation to be killed in the middle.

usage: make-instances.py DIR N KIB TAG
"""
import sys
import uuid
from pathlib import Path

from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian

out, n, kib, tag = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
out.mkdir(parents=True, exist_ok=True)
root = f"2.25.{uuid.uuid4().int}"[:40]
study, series = f"{root}.1", f"{root}.2"
cols = 256
rows = max(1, kib * 1024 // (cols * 2))
with open(out / "manifest.tsv", "w") as manifest:
    for i in range(1, n + 1):
        sop = f"{root}.3.{i}"
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = CTImageStorage
        meta.MediaStorageSOPInstanceUID = sop
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = Dataset()
        ds.file_meta = meta
        ds.SOPClassUID = CTImageStorage
        ds.SOPInstanceUID = sop
        ds.StudyInstanceUID = study
        ds.SeriesInstanceUID = series
        ds.PatientName = f"BOOT^TEST^{tag}"
        ds.PatientID = f"BOOT-{tag}"
        ds.StudyDate = "20260101"
        ds.Modality = "CT"
        ds.InstanceNumber = i
        ds.Rows, ds.Columns = rows, cols
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 12, 11
        ds.PixelRepresentation = 0
        # Not constant, so zstd in the archive has real work, like with a real image.
        ds.PixelData = bytes((j * 7 + i) & 0xFF for j in range(rows * cols * 2))
        name = f"{tag}-{i:04d}.dcm"
        ds.save_as(out / name, enforce_file_format=True)
        manifest.write(f"{name}\t{sop}\n")
print(f"{study}\t{series}")

#!/usr/bin/env python3
"""Writes N CT instances of one new study and series for the boot test, plus a manifest
(file name, SOP Instance UID). Each carries `kib` KiB of pixel data so a stream of them lasts
long enough under emulation to be killed in the middle. KIB may be a comma list (mixed sizes,
taken in turn); with `noise` the second half of each image is random, so zstd in the archive
cannot shrink it away.

usage: make-instances.py DIR N KIB[,KIB...] TAG [noise]
"""
import os
import sys
import uuid
from pathlib import Path

from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian

out, n, tag = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[4]
sizes = [int(k) for k in sys.argv[3].split(",")]
noise = sys.argv[5:6] == ["noise"]
out.mkdir(parents=True, exist_ok=True)
root = f"2.25.{uuid.uuid4().int}"[:40]
study, series = f"{root}.1", f"{root}.2"
cols = 256
with open(out / "manifest.tsv", "w") as manifest:
    for i in range(1, n + 1):
        sop = f"{root}.3.{i}"
        rows = max(1, sizes[(i - 1) % len(sizes)] * 1024 // (cols * 2))
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
        size = rows * cols * 2
        pixels = (bytes((j * 7 + i) & 0xFF for j in range(256)) * (size // 256 + 1))[:size]
        if noise:
            pixels = pixels[: size // 2] + os.urandom(size - size // 2)
        ds.PixelData = pixels
        name = f"{tag}-{i:04d}.dcm"
        ds.save_as(out / name, enforce_file_format=True)
        manifest.write(f"{name}\t{sop}\n")
print(f"{study}\t{series}")

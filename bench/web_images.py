#!/usr/bin/env python3
"""Two test images for the preview benchmark (web.sh), Explicit VR Little Endian:

  ct512.dcm   CT 512x512, 16-bit signed, rescale -1024, window 40/400, MONOCHROME2: an
              elliptic body (soft tissue ~40 HU, fat, lungs, spine/ribs ~700-1000 HU) with
              smooth gradients and quantum noise
  cr2k.dcm    CR 2048x2048, 12 bits stored in 16, MONOCHROME1, window 2048/4096-ish: a chest-like
              field (lung fields, mediastinum, ribs, collimation edges) with gradients and noise

  web_images.py OUTDIR [--seed N]       prints "file sop_instance_uid bytes" per image
"""
import argparse
import datetime
import os

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid


def base(sop_class, modality, pid, name, study_uid, series_uid, sop_uid, rows, cols):
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = sop_uid
    today = datetime.date(2024, 3, 4).strftime("%Y%m%d")
    ds.StudyDate = ds.SeriesDate = ds.ContentDate = today
    ds.StudyTime = ds.SeriesTime = ds.ContentTime = "101500"
    ds.AccessionNumber = "WEBBENCH" + modality
    ds.Modality = modality
    ds.Manufacturer = "pacsbox bench"
    ds.ReferringPhysicianName = "REF^WEB"
    ds.StudyDescription = "web bench " + modality
    ds.SeriesDescription = "web bench " + modality
    ds.PatientName = name
    ds.PatientID = pid
    ds.PatientBirthDate = "19700101"
    ds.PatientSex = "M"
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = series_uid
    ds.StudyID = "1"
    ds.SeriesNumber = 1
    ds.InstanceNumber = 1
    ds.SamplesPerPixel = 1
    ds.Rows = rows
    ds.Columns = cols
    ds.BitsAllocated = 16
    return ds


def save(ds, path):
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = "1.2.826.0.1.3680043.8.498.1"
    ds.file_meta = meta
    ds.save_as(path, enforce_file_format=True)


def ct(rng, n=512):
    y, x = np.mgrid[0:n, 0:n].astype(np.float32) / n - 0.5
    hu = np.full((n, n), -1000.0, np.float32)                      # air
    body = (x / 0.42) ** 2 + (y / 0.32) ** 2 < 1
    hu[body] = -90                                                  # subcutaneous fat
    inner = (x / 0.38) ** 2 + (y / 0.28) ** 2 < 1
    hu[inner] = 40 + 15 * np.sin(6 * x[inner]) + 10 * y[inner]      # soft tissue, gradient
    for cx in (-0.17, 0.17):                                         # lungs
        lung = ((x - cx) / 0.13) ** 2 + ((y + 0.02) / 0.2) ** 2 < 1
        hu[lung] = -850 + 120 * (y[lung] + 0.2)                      # dependent density gradient
    spine = (x / 0.045) ** 2 + ((y - 0.2) / 0.05) ** 2 < 1
    hu[spine] = 700 + 300 * np.exp(-((x[spine] / 0.03) ** 2))
    r = np.sqrt((x / 0.36) ** 2 + (y / 0.26) ** 2)
    ribs = (np.abs(r - 1) < 0.02) & (np.cos(14 * np.arctan2(y, x)) > 0.3)
    hu[ribs] = 900
    hu += rng.normal(0, 12, hu.shape).astype(np.float32)            # quantum noise
    stored = np.clip(hu + 1024, -1024, 3071).astype(np.int16)
    return stored


def cr(rng, n=2048):
    y, x = np.mgrid[0:n, 0:n].astype(np.float32) / n - 0.5
    # attenuation: higher = more attenuating (brighter on film; MONOCHROME1 inverts)
    att = 600 + 900 * np.exp(-((x / 0.45) ** 2 + (y / 0.55) ** 2))          # body
    for cx in (-0.18, 0.18):
        lung = np.exp(-(((x - cx) / 0.14) ** 2 + ((y + 0.03) / 0.25) ** 2) ** 2)
        att -= 550 * lung
    att += 700 * np.exp(-((x / 0.07) ** 2)) * (y > -0.3)                   # mediastinum / spine
    ang = np.arctan2(y + 0.35, np.abs(x) + 0.05)
    ribs = np.abs(np.sin(18 * np.sqrt((np.abs(x) + 0.05) ** 2 + (y + 0.35) ** 2))) > 0.92
    att += 180 * ribs * (np.abs(x) < 0.38) * (ang < 1.2)
    att += 80 * y                                                           # heel effect
    att += rng.normal(0, 20, att.shape).astype(np.float32)
    pv = 4095 - np.clip(att * 1.6 + 300, 0, 4095)                          # detector value
    coll = (np.abs(x) > 0.47) | (np.abs(y) > 0.47)
    pv[coll] = 4000 + rng.normal(0, 10, int(coll.sum()))                   # collimated edges
    return np.clip(pv, 0, 4095).astype(np.uint16)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--seed", type=int, default=4)
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    rng = np.random.default_rng(a.seed)

    study = generate_uid()
    px = ct(rng)
    ds = base("1.2.840.10008.5.1.4.1.1.2", "CT", "WEBCT01", "WEB^CT", study, generate_uid(),
              generate_uid(), 512, 512)
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 15, 1
    ds.RescaleIntercept, ds.RescaleSlope, ds.RescaleType = -1024, 1, "HU"
    ds.WindowCenter, ds.WindowWidth = 40, 400
    ds.SliceThickness, ds.PixelSpacing = 1.0, [0.7, 0.7]
    ds.ImagePositionPatient, ds.ImageOrientationPatient = [0, 0, 0], [1, 0, 0, 0, 1, 0]
    ds.PixelData = px.tobytes()
    save(ds, os.path.join(a.out, "ct512.dcm"))

    px = cr(rng)
    ds = base("1.2.840.10008.5.1.4.1.1.1", "CR", "WEBCR01", "WEB^CR", generate_uid(),
              generate_uid(), generate_uid(), 2048, 2048)
    ds.PhotometricInterpretation = "MONOCHROME1"
    ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 12, 11, 0
    ds.WindowCenter, ds.WindowWidth = 2300, 3000
    ds.ViewPosition, ds.BodyPartExamined = "PA", "CHEST"
    ds.ImagerPixelSpacing = [0.175, 0.175]
    ds.PixelData = px.tobytes()
    save(ds, os.path.join(a.out, "cr2k.dcm"))

    for f in ("ct512.dcm", "cr2k.dcm"):
        p = os.path.join(a.out, f)
        d = pydicom.dcmread(p, stop_before_pixels=True)
        print(p, d.SOPInstanceUID, os.path.getsize(p))


if __name__ == "__main__":
    main()

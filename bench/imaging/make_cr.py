"""Writes a synthetic 2048×2048 12-bit MONOCHROME1 CR (explicit VR LE) to argv[1]: smooth
anatomy-like gradients plus noise, with a window, as a clinic's CR plate would send it.
run.sh compresses it with DCMTK (12-bit JPEG Extended, JPEG-LS lossless)."""
import sys

import numpy as np
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

n = 2048
y, x = np.mgrid[0:n, 0:n].astype(np.float64) / n
img = 1800 + 1200 * np.sin(6 * x) * np.cos(4 * y) + 600 * np.exp(-((x - 0.5) ** 2 + (y - 0.4) ** 2) * 20)
img += np.random.default_rng(7).normal(0, 40, (n, n))
img = np.clip(img, 0, 4095).astype(np.uint16)

meta = FileMetaDataset()
meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.1"
meta.MediaStorageSOPInstanceUID = generate_uid()
meta.TransferSyntaxUID = ExplicitVRLittleEndian
ds = FileDataset(sys.argv[1], {}, file_meta=meta, preamble=b"\0" * 128)
ds.SOPClassUID = meta.MediaStorageSOPClassUID
ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
ds.PatientName, ds.PatientID, ds.Modality = "BENCH^CR", "BENCH-CR", "CR"
ds.Rows = ds.Columns = n
ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME1"
ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
ds.WindowCenter, ds.WindowWidth = 2048, 4096
ds.PixelData = img.tobytes()
ds.save_as(sys.argv[1], enforce_file_format=True)

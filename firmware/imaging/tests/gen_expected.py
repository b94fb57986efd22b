"""Generates tests/expected.json: pydicom's decoding (with pylibjpeg + libjpeg for JPEG, JPEG-LS
and 12-bit JPEG) of a representative set of corpus files is the ground truth for
`Instance::pixels`. Another decoder family on purpose: pylibjpeg-libjpeg is Thomas Richter's
libjpeg, not the libjpeg-turbo / CharLS / jpeg-decoder / openjp2 that pacsbox uses.

Run from the repository root after tests/install_deps.sh:
    python3 firmware/imaging/tests/gen_expected.py > firmware/imaging/tests/expected.json

Each case: the corpus key (as tests/common/mod.rs builds it), the frame, what `pixels` must
return (gray16 stored values, or rgb8), a tolerance (0 = exact) and statistics of the expected
values: count, sum, a position-weighted sum, min, max, and 64 probed values.
"""
import json
import os
import warnings

import numpy as np
import pydicom
import pydicom.data
import data_store
from pydicom.pixels import apply_color_lut, apply_modality_lut, apply_voi_lut, apply_windowing

warnings.simplefilter("ignore")

A = os.path.join(os.path.dirname(pydicom.__file__), "data")
B = os.path.realpath(os.path.join(os.path.dirname(data_store.__file__), "data"))

# (file name, frame, tolerance, why it is here)
CASES = [
    ("CT_small.dcm", 0, 0, "signed 16-bit CT, explicit VR LE"),
    ("MR_small.dcm", 0, 0, "signed MR"),
    ("MR_small_bigendian.dcm", 0, 0, "explicit VR big endian"),
    ("MR_small_RLE.dcm", 0, 0, "RLE lossless"),
    ("MR_small_jp2klossless.dcm", 0, 0, "JPEG 2000 lossless"),
    ("MR_small_jpeg_ls_lossless.dcm", 0, 0, "JPEG-LS lossless, signed 16-bit"),
    ("emri_small_jpeg_ls_lossless.dcm", 0, 0, "JPEG-LS lossless, 12-bit, multi-frame"),
    ("emri_small_jpeg_ls_lossless.dcm", 9, 0, "JPEG-LS, last frame"),
    ("JPEGLSNearLossless_08.dcm", 0, 0, "JPEG-LS near-lossless 8-bit"),
    ("JPEGLSNearLossless_16.dcm", 0, 0, "JPEG-LS near-lossless 16-bit"),
    ("SC_rgb_jls_lossy_line.dcm", 0, 0, "JPEG-LS RGB, line interleaved"),
    ("SC_rgb_jls_lossy_sample.dcm", 0, 0, "JPEG-LS RGB, sample interleaved"),
    ("JPGExtended.dcm", 0, 1, "12-bit JPEG Extended (lossy; IDCT rounding differs by 1)"),
    ("JPEG-LL.dcm", 0, 0, "JPEG lossless process 14"),
    ("JPGLosslessP14SV1_1s_1f_8b.dcm", 0, 0, "JPEG lossless 8-bit"),
    ("SC_rgb_jpeg_dcmtk.dcm", 0, 4, "JPEG baseline YBR_FULL_422 (chroma upsampling differs)"),
    ("color3d_jpeg_baseline.dcm", 60, 4, "JPEG baseline, multi-frame colour"),
    ("SC_jpeg_no_color_transform.dcm", 0, 4, "JPEG baseline RGB, no JFIF/Adobe marker: not YCbCr"),
    ("RG3_UNCR.dcm", 0, 0, "MONOCHROME1 10-bit CR"),
    ("RG3_J2KR.dcm", 0, 0, "MONOCHROME1, JPEG 2000 lossless"),
    ("RG1_J2KI.dcm", 0, 0, "MONOCHROME1 15-bit, JPEG 2000 irreversible"),
    ("OBXXXX1A.dcm", 0, 0, "palette colour"),
    ("OBXXXX1A_rle_2frame.dcm", 1, 0, "palette colour, RLE, second frame"),
    ("SC_rgb.dcm", 0, 0, "RGB 8-bit"),
    ("SC_rgb_rle_2frame.dcm", 1, 0, "RGB RLE (planar segments), second frame"),
    ("SC_rgb_16bit.dcm", 0, 0, "RGB 16-bit"),
    ("SC_rgb_expb_16bit_2frame.dcm", 1, 0, "RGB 16-bit big endian, second frame"),
    ("SC_ybr_full_uncompressed.dcm", 0, 0, "YBR_FULL native"),
    ("SC_ybr_full_422_uncompressed.dcm", 0, 0, "YBR_FULL_422 native (subsampled layout)"),
    ("US1_J2KR.dcm", 0, 0, "JPEG 2000 YBR_RCT"),
    ("US1_J2KI.dcm", 0, 0, "JPEG 2000 YBR_ICT"),
    ("liver.dcm", 2, 0, "1-bit, multi-frame"),
    ("SC_rgb_rle_32bit_2frame.dcm", 1, 0, "RGB RLE 32-bit (own decoder), second frame"),
    ("image_dfl.dcm", 0, 0, "deflated explicit VR LE"),
    ("vlut_04.dcm", 0, 0, "8-bit gray with a VOI LUT"),
]


def key_of(path):
    f = os.path.realpath(path)
    if f.startswith(B):
        return "data:" + os.path.relpath(f, B)
    return "pydicom:" + os.path.relpath(f, A)


def stats(values, kind, signed, tol):
    v = values.astype(np.int64).ravel()
    idx = np.arange(v.size, dtype=np.int64)
    probes = np.linspace(0, v.size - 1, 64).astype(np.int64)
    return {
        "count": int(v.size),
        "sum": int(v.sum()),
        "wsum": int((v * (idx % 251 + 1)).sum()),
        "min": int(v.min()),
        "max": int(v.max()),
        "probe": [[int(i), int(v[i])] for i in probes],
    }


# Full-size previews: (file name, why). Expected 8-bit values from pydicom's modality and VOI
# functions, scaled to 0..255; MONOCHROME1 inverted; no window or LUT: modality min–max.
PREVIEWS = [
    ("CT_small.dcm", "no window in the file: modality min-max"),
    ("MR_small.dcm", "the file's window 600/1600"),
    ("RG3_UNCR.dcm", "MONOCHROME1 with a window: shown inverted"),
    ("vlut_04.dcm", "VOI LUT Sequence"),
]


def preview_of(ds):
    arr = ds.pixel_array
    x = apply_modality_lut(arr, ds).astype(np.float64)
    if "VOILUTSequence" in ds and "WindowCenter" not in ds:
        bits = int(ds.VOILUTSequence[0].LUTDescriptor[2])
        y = apply_voi_lut(arr, ds).astype(np.float64) / (2**bits - 1)
    elif "WindowCenter" in ds:
        lo, hi = apply_windowing(np.array([-1e12, 1e12]), ds)
        y = (apply_windowing(x, ds) - lo) / (hi - lo)
    else:
        y = (x - x.min()) / max(x.max() - x.min(), 1)
    y = np.round(np.clip(y, 0, 1) * 255).astype(np.int64)
    if str(ds.PhotometricInterpretation) == "MONOCHROME1":
        y = 255 - y
    return y


previews = []
for name, why in PREVIEWS:
    path = pydicom.data.get_testdata_file(name)
    ds = pydicom.dcmread(path)
    case = {"key": key_of(path), "why": why, "rows": int(ds.Rows), "columns": int(ds.Columns), "tol": 1}
    case.update(stats(preview_of(ds), "gray8", False, 1))
    previews.append(case)

out = []
for name, frame, tol, why in CASES:
    path = pydicom.data.get_testdata_file(name)
    ds = pydicom.dcmread(path)
    arr = ds.pixel_array
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    if frames > 1:
        arr = arr[frame]
    pi = str(ds.PhotometricInterpretation)
    signed = int(ds.get("PixelRepresentation", 0)) == 1
    if pi == "PALETTE COLOR":
        rgb = apply_color_lut(arr, ds)
        if rgb.dtype != np.uint8:
            rgb = rgb >> 8
        kind, values = "rgb8", rgb
    elif int(ds.SamplesPerPixel) == 3:
        if arr.dtype != np.uint8:
            arr = arr >> (int(ds.BitsStored) - 8)
        kind, values = "rgb8", arr
    else:
        kind, values = "gray16", arr
    case = {"key": key_of(path), "frame": frame, "kind": kind, "signed": signed, "tol": tol,
            "rows": int(ds.Rows), "columns": int(ds.Columns), "why": why}
    case.update(stats(values, kind, signed, tol))
    out.append(case)
print(json.dumps({"pixels": out, "previews": previews}, indent=1))

"""The viewer's full pixels of a compressed image are decoded once (issue 20): pydicom's 2K JPEG 2000
CR (RG1_J2KR) is decoded by the box one time in all — ahead of the viewer, or by its first
request — and every later preview and full-pixel request is answered without decoding again, with
pixels equal to pydicom's. The box logs "decoded a compressed frame" for each decode; the
pixel replies say `Server-Timing: pixels;…;desc="cached"` when they came from the cache. A large
uncompressed CR (RG1_UNCR) is made ahead the same way."""

from __future__ import annotations

import gzip
import time
from pathlib import Path

import helpers as h
import numpy as np
import pydicom
from pydicom.data import get_testdata_file
from test_web import Browser

DECODED = "decoded a compressed frame"
AHEAD = "decoded ahead for the viewer"


def med_planes(a: np.ndarray) -> bytes:
    """What the box sends as `?layout=med` before gzip (firmware/web/src/pixels.rs), from pydicom's
    samples: each sample minus its median-edge-detector prediction, mod 2^16, zigzagged, as a
    plane of low bytes and a plane of high bytes. Vectorised: the prediction reads only the
    original neighbours."""
    x = a.astype(np.int64)
    left = np.zeros_like(x)
    left[:, 1:] = x[:, :-1]
    up = np.zeros_like(x)
    up[1:, :] = x[:-1, :]
    ul = np.zeros_like(x)
    ul[1:, 1:] = x[:-1, :-1]
    lo, hi = np.minimum(left, up), np.maximum(left, up)
    pred = np.where(ul >= hi, lo, np.where(ul <= lo, hi, left + up - ul))
    pred[0, :] = left[0, :]  # the first row from the left (and the first sample from 0)
    pred[1:, 0] = up[1:, 0]  # the first column from above
    d = ((x - pred) & 0xFFFF).astype(np.uint16).view(np.int16).astype(np.int32)
    zz = (((d << 1) ^ (d >> 15)) & 0xFFFF).astype(np.uint16).ravel()
    return (zz & 0xFF).astype(np.uint8).tobytes() + (zz >> 8).astype(np.uint8).tobytes()


def decodes(srv, sop: str) -> list[str]:
    text = "".join(p.read_text(errors="replace") for p in srv.logs)
    return [line for line in text.splitlines() if DECODED in line and sop in line]


def test_a_jpeg2000_cr_is_decoded_once_and_its_pixels_are_pydicoms(server):
    srv = server()
    path = Path(get_testdata_file("RG1_J2KR.dcm"))
    ds = pydicom.dcmread(path)
    assert ds.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.4.90"
    sop = ds.SOPInstanceUID
    want = ds.pixel_array
    # -xv: propose JPEG 2000 lossless, so the box stores the file as it is
    r = h.storescu(srv.dicom_port, [path], called=srv.ae, calling="WEBSCU", extra=["-xv"])
    assert r.returncode == 0, r.stdout + r.stderr
    b = Browser(srv.http_port)
    b.first_login(srv.data)
    b.opener.addheaders = [("Accept-Encoding", "gzip")]
    base = f"/api/instances/{sop}/frames/1"

    code, _, png = b.get(f"{base}/preview.png?max=512", timeout=120)
    assert code == 200 and png[:4] == b"\x89PNG"
    replies = []
    for _ in range(2):
        code, hdrs, body = b.get(f"{base}/pixels?layout=med", timeout=120)
        assert code == 200, body[:200]
        assert hdrs.get("Content-Encoding") == "gzip" and hdrs.get("X-Pixel-Layout") == "med"
        assert (hdrs.get("X-Rows"), hdrs.get("X-Columns")) == ("1955", "1841")
        replies.append((hdrs.get("Server-Timing", ""), body))
    assert 'desc="cached"' in replies[1][0], replies[1][0]
    assert replies[0][1] == replies[1][1]
    assert gzip.decompress(replies[1][1]) == med_planes(want)

    # the plain layout, without gzip, is the samples themselves
    b.opener.addheaders = []
    code, hdrs, raw = b.get(f"{base}/pixels", timeout=120)
    assert code == 200 and hdrs.get("X-Pixel-Kind") == "gray16u"
    assert np.array_equal(np.frombuffer(raw, dtype="<u2").reshape(want.shape), want)

    # the box decodes newly received compressed images ahead once the sender is quiet (2 s); by
    # then it has this one already, and says so
    deadline = time.time() + 30
    while time.time() < deadline:
        text = "".join(p.read_text(errors="replace") for p in srv.logs)
        if any(AHEAD in line and sop in line for line in text.splitlines()):
            break
        time.sleep(0.5)
    else:
        raise AssertionError("no 'decoded ahead' line:\n" + srv.stderr_text())
    lines = decodes(srv, sop)
    assert len(lines) == 1, "\n".join(lines)


def test_a_jpeg2000_cr_is_decoded_ahead_before_the_viewer_asks(server):
    srv = server()
    path = Path(get_testdata_file("RG1_J2KR.dcm"))
    sop = pydicom.dcmread(path, stop_before_pixels=True).SOPInstanceUID
    r = h.storescu(srv.dicom_port, [path], called=srv.ae, calling="WEBSCU", extra=["-xv"])
    assert r.returncode == 0, r.stdout + r.stderr
    deadline = time.time() + 60
    while not decodes(srv, sop):
        assert time.time() < deadline, "not decoded ahead:\n" + srv.stderr_text()
        time.sleep(0.5)
    b = Browser(srv.http_port)
    b.first_login(srv.data)
    b.opener.addheaders = [("Accept-Encoding", "gzip")]
    # wait for the pixels to be made too (the decode is logged before them)
    while not any(AHEAD in line and sop in line for p in srv.logs for line in p.read_text().splitlines()):
        assert time.time() < deadline, "not decoded ahead:\n" + srv.stderr_text()
        time.sleep(0.5)
    code, hdrs, _ = b.get(f"/api/instances/{sop}/frames/1/pixels?layout=med", timeout=120)
    assert code == 200
    assert 'desc="cached"' in hdrs.get("Server-Timing", ""), hdrs
    code, _, _ = b.get(f"/api/instances/{sop}/frames/1/preview.png?max=512", timeout=120)
    assert code == 200
    assert len(decodes(srv, sop)) == 1


def test_a_large_uncompressed_cr_is_made_ahead_too(server):
    # the 2K CR as stored uncompressed: no decoder, but its residuals and gzip take a core
    # 0.2-0.4 s; made once the sender is quiet, its reply is ready when the viewer asks
    srv = server()
    path = Path(get_testdata_file("RG1_UNCR.dcm"))
    ds = pydicom.dcmread(path)
    sop = ds.SOPInstanceUID
    r = h.storescu(srv.dicom_port, [path], called=srv.ae, calling="WEBSCU")
    assert r.returncode == 0, r.stdout + r.stderr
    deadline = time.time() + 60
    while not any(AHEAD in line and sop in line for p in srv.logs for line in p.read_text().splitlines()):
        assert time.time() < deadline, "not made ahead:\n" + srv.stderr_text()
        time.sleep(0.5)
    b = Browser(srv.http_port)
    b.first_login(srv.data)
    b.opener.addheaders = [("Accept-Encoding", "gzip")]
    code, hdrs, body = b.get(f"/api/instances/{sop}/frames/1/pixels?layout=med", timeout=120)
    assert code == 200
    assert 'desc="cached"' in hdrs.get("Server-Timing", ""), hdrs
    assert gzip.decompress(body) == med_planes(ds.pixel_array)
    assert decodes(srv, sop) == []  # nothing compressed to decode

"""C-MOVE and C-GET of JPEG-LS and 12-bit JPEG Extended instances to receivers that accept only
explicit VR little endian: pacsbox decompresses them on the way out (pacsbox-imaging: CharLS,
libjpeg-turbo) and the pixels must equal pydicom's decoding with pylibjpeg's libjpeg, an
independent decoder (lossless: exact; lossy 12-bit: within ±1, IDCT rounding).

One archive for the module holding the files sent verbatim in their own syntaxes.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import helpers as h
import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file

# file, stored syntax, tolerance
FILES = [
    ("MR_small_jpeg_ls_lossless.dcm", "1.2.840.10008.1.2.4.80", 0),  # signed 16-bit
    ("emri_small_jpeg_ls_lossless.dcm", "1.2.840.10008.1.2.4.80", 0),  # 12-bit, 10 frames
    ("JPGExtended.dcm", "1.2.840.10008.1.2.4.51", 1),  # 12-bit JPEG Extended (lossy)
]


def _read(path: Path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pydicom.dcmread(path)


@pytest.fixture(scope="module")
def codec_archive(module_server):
    ports = dict(zip(("PYDEST",), h.free_ports(1)))
    cfg = h.write_peers_config(module_server.base / "peers.toml", ports)
    srv = module_server(config=cfg)
    originals = {}
    for name, ts, tol in FILES:
        p = Path(get_testdata_file(name))
        ds = _read(p)
        assert str(ds.file_meta.TransferSyntaxUID) == ts, f"{name} is not stored as {ts}"
        st = h.send_files_raw(srv.dicom_port, srv.ae, "CODECSTORE", [p])
        assert all(s == 0 for s in st.values()), f"storing {name}: {st}"
        originals[name] = (ds, tol)
    return srv, ports, originals


def _ident(ds):
    return h.query("IMAGE", StudyInstanceUID=str(ds.StudyInstanceUID), SeriesInstanceUID=str(ds.SeriesInstanceUID),
                   SOPInstanceUID=str(ds.SOPInstanceUID))


def _assert_pixels(name: str, orig, got, tol: int):
    assert str(got.file_meta.TransferSyntaxUID) == h.EXPLICIT_LE
    ref = orig.pixel_array  # pydicom + pylibjpeg-libjpeg
    out = got.pixel_array  # plain native decoding of what pacsbox sent
    assert out.shape == ref.shape, f"{name}: shape {out.shape}, pydicom {ref.shape}"
    assert out.dtype == ref.dtype, f"{name}: dtype {out.dtype}, pydicom {ref.dtype}"
    diff = np.abs(out.astype(np.int64) - ref.astype(np.int64))
    assert int(diff.max()) <= tol, (
        f"{name}: {int((diff > tol).sum())} pixels differ by more than {tol} (max {int(diff.max())})"
    )
    if tol == 0:
        assert np.array_equal(out, ref)
    # Not an image of zeros that happens to be within tolerance of a dark reference.
    assert int(out.max()) == int(ref.max()) or tol > 0 and abs(int(out.max()) - int(ref.max())) <= tol


@pytest.mark.parametrize("name", [f[0] for f in FILES])
def test_cmove_decompresses_for_explicit_only_destination(codec_archive, name):
    srv, ports, originals = codec_archive
    orig, tol = originals[name]
    with h.PyStoreScp(ports["PYDEST"], "PYDEST", [h.EXPLICIT_LE]) as scp:
        ae = h.scu_ae("MOVESCU", contexts=[(h.STUDY_ROOT_MOVE, [h.EXPLICIT_LE])])
        with h.associated(ae, srv.dicom_port, srv.ae) as assoc:
            res, _ = h.c_move(assoc, _ident(orig), "PYDEST")
        received = dict(scp.received)
    assert res.status == h.STATUS_SUCCESS, res.describe()
    assert res.count("Completed") == 1, res.describe()
    got, ts = received[str(orig.SOPInstanceUID)]
    assert ts == h.EXPLICIT_LE
    _assert_pixels(name, orig, got, tol)


@pytest.mark.parametrize("name", [f[0] for f in FILES])
def test_cget_decompresses_for_explicit_only_scu(codec_archive, name):
    from pynetdicom import evt

    srv, _ports, originals = codec_archive
    orig, tol = originals[name]
    received = {}

    def on_store(event):
        ds = event.dataset
        ds.file_meta = event.file_meta
        received[str(ds.SOPInstanceUID)] = (ds, str(event.context.transfer_syntax))
        return 0x0000

    ae, roles = h.get_ae("GETSCU", [str(orig.SOPClassUID)], (h.EXPLICIT_LE,))
    assoc = ae.associate("127.0.0.1", srv.dicom_port, ae_title=srv.ae, ext_neg=roles,
                         evt_handlers=[(evt.EVT_C_STORE, on_store)])
    assert assoc.is_established
    statuses = []
    try:
        for st, _found in assoc.send_c_get(_ident(orig), h.STUDY_ROOT_GET):
            if st is None or "Status" not in st:
                break
            statuses.append(int(st.Status))
    finally:
        assoc.release()
    assert statuses and statuses[-1] == h.STATUS_SUCCESS, statuses
    got, ts = received[str(orig.SOPInstanceUID)]
    assert ts == h.EXPLICIT_LE
    _assert_pixels(name, orig, got, tol)

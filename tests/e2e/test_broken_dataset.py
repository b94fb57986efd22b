"""Broken datasets get a C-STORE failure status; the association carries on."""

import helpers as h
import pytest


def _store_good(assoc):
    ds = h.fresh_ct()
    st = assoc.send_c_store(ds)
    assert st is not None and int(st.Status) == 0x0000, "a good instance after a failure must still be stored"
    return str(ds.SOPInstanceUID)


def _assert_failure(st, what):
    assert st is not None and "Status" in st, f"{what}: no C-STORE response (association dropped?)"
    code = int(st.Status)
    assert h.is_failure_status(code), f"{what}: status 0x{code:04X}, expected 0xA9xx or 0xCxxx"
    comment = h.status_comment(st)
    assert comment.strip(), f"{what}: failure status 0x{code:04X} carries no Error Comment"
    return code


@pytest.mark.parametrize("drop", [("StudyInstanceUID",), ("SeriesInstanceUID",), ("StudyInstanceUID", "SeriesInstanceUID")])
def test_missing_study_or_series_uid_fails(server, drop):
    srv = server()
    ae = h.scu_ae("BROKEN", contexts=[(h.CT_IMAGE_STORAGE, [h.EXPLICIT_LE])])
    with h.associated(ae, srv.dicom_port, srv.ae) as assoc:
        ds = h.fresh_ct()
        for kw in drop:
            delattr(ds, kw)
        bad_sop = str(ds.SOPInstanceUID)
        _assert_failure(assoc.send_c_store(ds), f"dataset without {'/'.join(drop)}")
        good = _store_good(assoc)
    srv.stop()
    listed = srv.list()
    assert bad_sop not in listed, "an instance that got a failure status must not be indexed"
    assert good in listed
    assert srv.verify().returncode == 0


def test_missing_sop_instance_uid_in_dataset_fails(server, tmp_path):
    """The command names a SOP Instance UID but the dataset carries none."""
    srv = server()
    ds = h.fresh_ct()
    sop = str(ds.SOPInstanceUID)
    del ds.SOPInstanceUID
    body = h.encode_dataset(ds, h.EXPLICIT_LE)
    f = h.write_part10(tmp_path / "nosop.dcm", sop_class=h.CT_IMAGE_STORAGE, sop_instance=sop,
                       ts=h.EXPLICIT_LE, dataset_bytes=body)
    ae = h.scu_ae("BROKEN", contexts=[(h.CT_IMAGE_STORAGE, [h.EXPLICIT_LE])])
    with h.associated(ae, srv.dicom_port, srv.ae) as assoc:
        with h.raw_file_sending():
            _assert_failure(assoc.send_c_store(f), "dataset without SOP Instance UID")
        good = _store_good(assoc)
    srv.stop()
    listed = srv.list()
    assert sop not in listed
    assert good in listed


@pytest.mark.parametrize("kind", ["truncated", "garbage", "bad_length"])
def test_undecodable_dataset_fails(server, tmp_path, kind):
    srv = server()
    ds = h.fresh_ct()
    sop = str(ds.SOPInstanceUID)
    body = h.encode_dataset(ds, h.EXPLICIT_LE)
    if kind == "truncated":
        # cut inside the Pixel Data value: its declared length overruns the data
        broken = body[: len(body) - 1000]
    elif kind == "garbage":
        broken = bytes((i * 7 + 13) % 251 for i in range(4000))
    else:
        # valid header elements, then an element whose length runs far past the end
        broken = body[:200] + b"\x10\x00\x10\x00PN\xff\x7f" + b"X" * 50
    f = h.write_part10(tmp_path / f"{kind}.dcm", sop_class=h.CT_IMAGE_STORAGE, sop_instance=sop,
                       ts=h.EXPLICIT_LE, dataset_bytes=broken)
    ae = h.scu_ae("BROKEN", contexts=[(h.CT_IMAGE_STORAGE, [h.EXPLICIT_LE])])
    with h.associated(ae, srv.dicom_port, srv.ae) as assoc:
        with h.raw_file_sending():
            _assert_failure(assoc.send_c_store(f), f"{kind} dataset")
        good = _store_good(assoc)
    srv.stop()
    listed = srv.list()
    assert sop not in listed, f"{kind} dataset was indexed"
    assert good in listed
    r = srv.verify()
    assert r.returncode == 0, r.describe()


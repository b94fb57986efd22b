"""Broken datasets get the C-STORE failure status docs/conformance.md names, exactly; the
association carries on and nothing refused is indexed.

C000 Cannot understand (unparseable, UIDs missing), A900 Data Set does not match SOP Class
(the data set's SOP Class or SOP Instance UID differs from the request / presentation
context), 0122 SOP Class not supported (the command's class is not the context's), 0211
Unrecognized operation (N-services).
"""

import dul_raw as raw
import helpers as h
import pytest

CANNOT_UNDERSTAND = 0xC000
DATASET_MISMATCH = 0xA900
SOP_CLASS_NOT_SUPPORTED = 0x0122
UNRECOGNIZED_OPERATION = 0x0211


def _store_good(assoc):
    ds = h.fresh_ct()
    st = assoc.send_c_store(ds)
    assert st is not None and int(st.Status) == 0x0000, "a good instance after a failure must still be stored"
    return str(ds.SOPInstanceUID)


def _assert_failure(st, what, expected):
    assert st is not None and "Status" in st, f"{what}: no C-STORE response (association dropped?)"
    code = int(st.Status)
    assert code == expected, f"{what}: status 0x{code:04X}, expected 0x{expected:04X}"
    comment = h.status_comment(st)
    assert comment.strip(), f"{what}: failure status 0x{code:04X} carries no Error Comment"
    return code


def _send_file_then_good(srv, f, what, expected):
    """Send a Part-10 file's data set verbatim, expect `expected`, store a good instance on the
    same association, stop the server; returns (listed, good SOP Instance UID)."""
    ae = h.scu_ae("BROKEN", contexts=[(h.CT_IMAGE_STORAGE, [h.EXPLICIT_LE])])
    with h.associated(ae, srv.dicom_port, srv.ae) as assoc:
        with h.raw_file_sending():
            _assert_failure(assoc.send_c_store(f), what, expected)
        good = _store_good(assoc)
    srv.stop()
    listed = srv.list()
    assert good in listed
    return listed


@pytest.mark.parametrize("drop", [("StudyInstanceUID",), ("SeriesInstanceUID",), ("StudyInstanceUID", "SeriesInstanceUID")])
def test_missing_study_or_series_uid_fails(server, drop):
    srv = server()
    ae = h.scu_ae("BROKEN", contexts=[(h.CT_IMAGE_STORAGE, [h.EXPLICIT_LE])])
    with h.associated(ae, srv.dicom_port, srv.ae) as assoc:
        ds = h.fresh_ct()
        for kw in drop:
            delattr(ds, kw)
        bad_sop = str(ds.SOPInstanceUID)
        _assert_failure(assoc.send_c_store(ds), f"dataset without {'/'.join(drop)}", CANNOT_UNDERSTAND)
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
    listed = _send_file_then_good(srv, f, "dataset without SOP Instance UID", CANNOT_UNDERSTAND)
    assert sop not in listed


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
    listed = _send_file_then_good(srv, f, f"{kind} dataset", CANNOT_UNDERSTAND)
    assert sop not in listed, f"{kind} dataset was indexed"
    r = srv.verify()
    assert r.returncode == 0, r.describe()


@pytest.mark.parametrize("differs", ["sop_instance_uid", "sop_class_uid"])
def test_dataset_not_matching_the_request_is_a900(server, tmp_path, differs):
    """The command and the presentation context say CT instance X; the data set says another
    instance, or another SOP class (an MR), which would break every later C-MOVE of the study."""
    from pydicom.uid import generate_uid

    srv = server()
    ds = h.fresh_ct()
    command_sop = str(ds.SOPInstanceUID)
    if differs == "sop_instance_uid":
        ds.SOPInstanceUID = generate_uid()
    else:
        ds.SOPClassUID = h.MR_IMAGE_STORAGE
    body = h.encode_dataset(ds, h.EXPLICIT_LE)
    f = h.write_part10(tmp_path / "mismatch.dcm", sop_class=h.CT_IMAGE_STORAGE, sop_instance=command_sop,
                       ts=h.EXPLICIT_LE, dataset_bytes=body)
    listed = _send_file_then_good(srv, f, f"data set whose {differs} differs", DATASET_MISMATCH)
    assert command_sop not in listed and str(ds.SOPInstanceUID) not in listed, "a refused data set was indexed"
    assert srv.verify().returncode == 0


def _raw_store(s, ctx: int, sop_class: str, ds, msg_id: int) -> bytes:
    s.sendall(raw.p_data_tf(ctx, raw.c_store_rq_command(sop_class, str(ds.SOPInstanceUID), msg_id)))
    s.sendall(raw.p_data_tf(ctx, h.encode_dataset(ds, h.EXPLICIT_LE), command=False, last=True))
    return raw.read_command_response(s)


def _raw_release(s):
    s.sendall(b"\x05\x00\x00\x00\x00\x04" + b"\x00" * 4)
    rp = raw.read_pdu(s)
    assert rp is not None and rp.pdu_type == 0x06, f"no A-RELEASE-RP: {rp}"


def test_command_sop_class_not_the_contexts_is_0122(server):
    """A C-STORE-RQ naming MR on a context negotiated for CT (pynetdicom cannot send this)."""
    srv = server()
    bad, good = h.fresh_ct(), h.fresh_ct()
    with raw.associate(srv.dicom_port, srv.ae, "BROKEN", [(1, h.CT_IMAGE_STORAGE, [h.EXPLICIT_LE])]) as s:
        rsp = _raw_store(s, 1, h.MR_IMAGE_STORAGE, bad, 1)
        assert raw.command_us(rsp, 0x0100) == 0x8001, "not a C-STORE-RSP"
        status = raw.command_status(rsp)
        assert status == SOP_CLASS_NOT_SUPPORTED, f"status {status}, expected 0x0122"
        rsp = _raw_store(s, 1, h.CT_IMAGE_STORAGE, good, 2)
        assert raw.command_status(rsp) == 0x0000, "the association must go on storing"
        _raw_release(s)
    srv.stop()
    listed = srv.list()
    assert str(bad.SOPInstanceUID) not in listed
    assert str(good.SOPInstanceUID) in listed


# N-CREATE is served now (MPPS), but not on a storage context: SOP class not supported. N-DELETE
# is served nowhere: unrecognized operation. Either way the association goes on.
@pytest.mark.parametrize("field,with_data,expected", [(0x0140, True, SOP_CLASS_NOT_SUPPORTED),
                                                      (0x0150, False, UNRECOGNIZED_OPERATION)],
                         ids=["n_create", "n_delete"])
def test_n_service_request_is_0211(server, field, with_data, expected):
    srv = server()
    good = h.fresh_ct()
    with raw.associate(srv.dicom_port, srv.ae, "BROKEN", [(1, h.CT_IMAGE_STORAGE, [h.EXPLICIT_LE])]) as s:
        s.sendall(raw.p_data_tf(1, raw.command_set(h.CT_IMAGE_STORAGE, field, 7, data_set=with_data,
                                                   priority=False)))
        if with_data:
            s.sendall(raw.p_data_tf(1, h.encode_dataset(h.fresh_ct(), h.EXPLICIT_LE), command=False))
        rsp = raw.read_command_response(s)
        assert raw.command_us(rsp, 0x0100) == field | 0x8000, f"not the response to 0x{field:04X}"
        assert raw.command_us(rsp, 0x0120) == 7, "Message ID Being Responded To"
        status = raw.command_status(rsp)
        assert status == expected, f"status 0x{status:04X}, expected 0x{expected:04X}"
        assert raw.command_status(_raw_store(s, 1, h.CT_IMAGE_STORAGE, good, 8)) == 0x0000
        _raw_release(s)
    srv.stop()
    assert str(good.SOPInstanceUID) in srv.list()

"""A C-STORE whose data set never got its last fragment is not an instance.

The peer sends the command and data set fragments that end on an element boundary (just
before Pixel Data, so the bytes so far parse as a complete data set) without the last-fragment
flag, then goes away: closes the socket, sends A-ABORT, or stalls past the idle timeout.
Nothing may be archived, and the modality's later complete resend must be the stored copy
(answered 0000, byte-equal, nothing put aside in conflicts/).
"""

import dul_raw as raw
import helpers as h
import pytest

PIXEL_DATA_TAG = b"\xe0\x7f\x10\x00"  # (7FE0,0010) little endian
IDLE_S = 2


def _cut_before_pixels(body: bytes) -> bytes:
    at = body.rfind(PIXEL_DATA_TAG)
    assert at > 0, "CT_small encodes no Pixel Data element"
    return body[:at]


def _send_partial(srv, ds, body: bytes):
    """Associate, send the C-STORE command and the data set up to Pixel Data, never last."""
    s = raw.associate(srv.dicom_port, srv.ae, "PARTIAL", [(1, h.CT_IMAGE_STORAGE, [h.EXPLICIT_LE])])
    s.sendall(raw.p_data_tf(1, raw.c_store_rq_command(h.CT_IMAGE_STORAGE, str(ds.SOPInstanceUID))))
    head = _cut_before_pixels(body)
    half = len(head) // 2
    # two fragments, neither flagged last: the second ends exactly on an element boundary
    s.sendall(raw.p_data_tf(1, head[:half], command=False, last=False))
    s.sendall(raw.p_data_tf(1, head[half:], command=False, last=False))
    return s


@pytest.mark.parametrize("how", ["close", "abort", "idle"])
def test_partial_dataset_is_discarded_and_the_resend_is_stored(server, tmp_path, how):
    cfg = tmp_path / "idle.toml"
    cfg.write_text(f"idle_timeout_s = {IDLE_S}\n")
    srv = server(config=cfg)
    ds = h.fresh_ct()
    sop = str(ds.SOPInstanceUID)
    body = h.encode_dataset(ds, h.EXPLICIT_LE)

    s = _send_partial(srv, ds, body)
    idle_end = None
    with s:
        if how == "abort":
            s.sendall(raw.a_abort(source=0, reason=0))
        elif how == "idle":
            # say nothing more: the server gives up after the idle timeout
            idle_end = raw.wait_closed(s, timeout=IDLE_S + 30)

    # the modality resends the whole instance
    f = h.write_part10(tmp_path / "full.dcm", sop_class=h.CT_IMAGE_STORAGE, sop_instance=sop,
                       ts=h.EXPLICIT_LE, dataset_bytes=body)
    status = h.send_files_raw(srv.dicom_port, srv.ae, "PARTIAL", [f])[f]
    assert status == 0x0000, f"complete resend answered {status}"

    h.wait_until(lambda: not h.tmp_leftovers(srv.data), 30, "tmp/ to be empty")
    srv.stop()
    listed = srv.list()
    assert sop in listed, "the complete resend is not indexed"
    stored = h.read_stored_bytes(srv.data, listed[sop].path)
    _meta, dataset = h.split_part10(stored)
    assert dataset == body, (
        f"the stored data set is not the complete resend ({len(dataset)} bytes stored, {len(body)} sent)"
    )
    conflicts = h.dir_files(srv.data / "conflicts")
    assert conflicts == [], f"nothing may be put aside, found {conflicts}"
    r = srv.verify("--checksums")
    assert r.returncode == 0, r.describe()
    assert "partial instance discarded" in srv.stderr_text(), "the discard is not logged"
    if idle_end is not None:
        types = [p.pdu_type for p in idle_end]
        assert types == [0x07], f"an association idle past the timeout must end with one A-ABORT, got {types}"
        assert idle_end[0].abort_source_reason()[0] == 2, "the A-ABORT must come from the service provider"


def test_partial_dataset_then_release_is_not_stored(server):
    """A-RELEASE-RQ in the middle of a data set is out of sequence: nothing is stored."""
    srv = server()
    ds = h.fresh_ct()
    body = h.encode_dataset(ds, h.EXPLICIT_LE)
    with _send_partial(srv, ds, body) as s:
        s.sendall(b"\x05\x00\x00\x00\x00\x04" + b"\x00" * 4)
        pdus = raw.wait_closed(s, timeout=30)
    srv.stop()
    assert str(ds.SOPInstanceUID) not in srv.list(), "a data set without its last fragment was indexed"
    assert [p.pdu_type for p in pdus] == [0x07], f"expected one A-ABORT, got {[p.pdu_type for p in pdus]}"
    assert "partial instance discarded" in srv.stderr_text(), "the discard is not logged"

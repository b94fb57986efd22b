"""Malformed PDUs: the server ends that connection with the A-ABORT docs/conformance.md
promises (source 2, service provider; PS3.8 9.3.8 reasons) and keeps serving everyone else."""

import struct

import dul_raw as raw
import helpers as h
import pytest


def _assert_still_serving(srv):
    assert srv.alive(), "pacsbox serve died"
    r = h.echoscu(srv.dicom_port, called=srv.ae)
    assert r.returncode == 0, f"echoscu after the malformed PDU failed:\n{r.stderr}"


def _established(srv):
    s = raw.connect(srv.dicom_port)
    s.sendall(raw.associate_rq(srv.ae, "RAWPDU"))
    pdu = raw.read_pdu(s)
    assert pdu is not None and pdu.pdu_type == 0x02, f"raw association not accepted: {pdu}"
    # prove the raw association really works: C-ECHO-RQ -> P-DATA-TF back
    s.sendall(raw.p_data_tf(1, raw.c_echo_rq_command()))
    rsp = raw.read_pdu(s)
    assert rsp is not None and rsp.pdu_type == 0x04, f"no P-DATA-TF answer to a raw C-ECHO: {rsp}"
    return s


# A-ABORT reasons (PS3.8 Table 9-26)
NOT_SPECIFIED, UNRECOGNIZED_PDU, UNEXPECTED_PDU, INVALID_PARAMETER = 0, 1, 2, 6


def _assert_one_abort(pdus, reason, what):
    types = [p.pdu_type for p in pdus]
    assert types == [0x07], f"{what}: expected exactly one A-ABORT (0x07) before the close, got {types}"
    got = pdus[0].abort_source_reason()
    assert got == (2, reason), f"{what}: A-ABORT (source, reason) {got}, expected (2, {reason})"


BOGUS = {
    "unknown_pdu_type": struct.pack(">BBI", 0x99, 0, 8) + b"\xde\xad\xbe\xef" * 2,
    "second_associate_rq": None,  # filled in below (needs the AE title)
    "pdv_longer_than_pdu": struct.pack(">BBI", 0x04, 0, 10) + struct.pack(">IBB", 5000, 1, 0x03) + b"ab" * 2,
    "pdv_unknown_context": None,
}


ABORT_REASON = {
    "unknown_pdu_type": UNRECOGNIZED_PDU,
    "second_associate_rq": UNEXPECTED_PDU,
    "pdv_longer_than_pdu": INVALID_PARAMETER,
    "pdv_unknown_context": INVALID_PARAMETER,
}


@pytest.mark.parametrize("kind", list(BOGUS))
def test_bogus_pdu_after_association_aborts_it(server, kind):
    srv = server()
    s = _established(srv)
    with s:
        if kind == "second_associate_rq":
            payload = raw.associate_rq(srv.ae, "RAWPDU")
        elif kind == "pdv_unknown_context":
            payload = raw.p_data_tf(77, raw.c_echo_rq_command(2))
        else:
            payload = BOGUS[kind]
        s.sendall(payload)
        pdus = raw.wait_closed(s, timeout=15)
    _assert_one_abort(pdus, ABORT_REASON[kind], kind)
    _assert_still_serving(srv)


def test_idle_association_is_aborted(server, tmp_path):
    cfg = tmp_path / "idle.toml"
    cfg.write_text("idle_timeout_s = 2\n")
    srv = server(config=cfg)
    with _established(srv) as s:
        pdus = raw.wait_closed(s, timeout=30)
    _assert_one_abort(pdus, NOT_SPECIFIED, "association idle past the timeout")
    _assert_still_serving(srv)


@pytest.mark.parametrize(
    "payload,reason",
    [
        (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", INVALID_PARAMETER),  # "PDU" of ~540 MB
        (b"\x00" * 64, UNRECOGNIZED_PDU),  # PDU type 0
        (bytes(range(256)) * 4, INVALID_PARAMETER),  # type 0, ~33 MB announced
        # an A-ASSOCIATE-RQ of 100 bytes announced, 10 sent, then EOF: the peer left mid-PDU
        (struct.pack(">BBI", 0x01, 0, 100) + b"\x00" * 10, None),
        (struct.pack(">BBI", 0x01, 0, 0xFFFFFFF0) + b"\x00\x01\x00\x00", INVALID_PARAMETER),  # RQ claiming ~4 GiB
        (struct.pack(">BBI", 0x01, 0, 20) + b"\x00\x01" + b"\x00" * 18, INVALID_PARAMETER),  # RQ too short
    ],
    ids=["http", "zeros", "bytes", "cut_rq", "huge_length", "short_rq"],
)
def test_garbage_instead_of_association(server, payload, reason):
    srv = server()
    with raw.connect(srv.dicom_port) as s:
        try:
            s.sendall(payload)
            s.shutdown(1)  # nothing more is coming: a server waiting for the rest sees EOF
        except OSError:
            pass  # the server may already have hung up
        pdus = raw.wait_closed(s, timeout=15)
    if reason is None:
        assert pdus == [], f"a peer gone mid-PDU gets nothing, got {[p.pdu_type for p in pdus]}"
    else:
        _assert_one_abort(pdus, reason, "garbage instead of A-ASSOCIATE-RQ")
    _assert_still_serving(srv)


def test_half_open_connection_does_not_block_others(server):
    """A client that connects and says nothing must not stop other associations."""
    srv = server()
    idle = [raw.connect(srv.dicom_port) for _ in range(3)]
    try:
        _assert_still_serving(srv)
    finally:
        for s in idle:
            s.close()

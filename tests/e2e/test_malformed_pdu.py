"""Malformed PDUs: the server drops that connection and keeps serving everyone else."""

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


BOGUS = {
    "unknown_pdu_type": struct.pack(">BBI", 0x99, 0, 8) + b"\xde\xad\xbe\xef" * 2,
    "second_associate_rq": None,  # filled in below (needs the AE title)
    "pdv_longer_than_pdu": struct.pack(">BBI", 0x04, 0, 10) + struct.pack(">IBB", 5000, 1, 0x03) + b"ab" * 2,
    "pdv_unknown_context": None,
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
    types = [p.pdu_type for p in pdus]
    assert all(t == 0x07 for t in types), f"after a malformed PDU only A-ABORT (0x07) may come back, got {types}"
    _assert_still_serving(srv)


@pytest.mark.parametrize(
    "payload",
    [
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
        b"\x00" * 64,
        bytes(range(256)) * 4,
        struct.pack(">BBI", 0x01, 0, 0xFFFFFFF0) + b"\x00\x01\x00\x00",  # A-ASSOCIATE-RQ claiming ~4 GiB
        struct.pack(">BBI", 0x01, 0, 20) + b"\x00\x01" + b"\x00" * 18,  # RQ too short for its fixed fields
    ],
    ids=["http", "zeros", "bytes", "huge_length", "short_rq"],
)
def test_garbage_instead_of_association(server, payload):
    srv = server()
    with raw.connect(srv.dicom_port) as s:
        try:
            s.sendall(payload)
            s.shutdown(1)  # nothing more is coming: a server waiting for the rest sees EOF
        except OSError:
            pass  # the server may already have hung up
        pdus = raw.wait_closed(s, timeout=15)
    assert all(p.pdu_type in (0x03, 0x07) for p in pdus), (
        f"garbage must get at most an A-ASSOCIATE-RJ or A-ABORT, got {[p.pdu_type for p in pdus]}"
    )
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

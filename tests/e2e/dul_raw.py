"""Minimal hand-rolled DICOM Upper Layer PDUs for tests that need to misbehave.

Only what the tests need: A-ASSOCIATE-RQ, a C-ECHO-RQ in a P-DATA-TF, and a
PDU reader.  PS3.8 section 9.3 describes the layouts.
"""

from __future__ import annotations

import socket
import struct
import time
from dataclasses import dataclass

APP_CONTEXT = b"1.2.840.10008.3.1.1.1"
VERIFICATION = "1.2.840.10008.1.1"
IMPLICIT_LE = "1.2.840.10008.1.2"
IMPL_CLASS_UID = b"1.2.826.0.1.3680043.9.7433.1.1"


def _item(item_type: int, payload: bytes) -> bytes:
    return struct.pack(">BBH", item_type, 0, len(payload)) + payload


def _uid(u: str | bytes) -> bytes:
    b = u.encode() if isinstance(u, str) else u
    return b  # UIDs in UL items are not padded


def associate_rq(called: str, calling: str, contexts: list[tuple[int, str, list[str]]] | None = None,
                 max_pdu: int = 16384) -> bytes:
    contexts = contexts or [(1, VERIFICATION, [IMPLICIT_LE])]
    body = struct.pack(">HH", 1, 0)
    body += called.encode().ljust(16)[:16] + calling.encode().ljust(16)[:16] + b"\x00" * 32
    body += _item(0x10, APP_CONTEXT)
    for cid, abstract, tss in contexts:
        sub = _item(0x30, _uid(abstract)) + b"".join(_item(0x40, _uid(t)) for t in tss)
        body += _item(0x20, struct.pack(">BBBB", cid, 0, 0, 0) + sub)
    user = _item(0x51, struct.pack(">I", max_pdu)) + _item(0x52, IMPL_CLASS_UID)
    body += _item(0x50, user)
    return struct.pack(">BBI", 0x01, 0, len(body)) + body


def _elem_implicit(group: int, elem: int, value: bytes) -> bytes:
    return struct.pack("<HHI", group, elem, len(value)) + value


def c_echo_rq_command(msg_id: int = 1) -> bytes:
    uid = VERIFICATION.encode()
    if len(uid) % 2:
        uid += b"\x00"
    rest = (
        _elem_implicit(0x0000, 0x0002, uid)
        + _elem_implicit(0x0000, 0x0100, struct.pack("<H", 0x0030))
        + _elem_implicit(0x0000, 0x0110, struct.pack("<H", msg_id))
        + _elem_implicit(0x0000, 0x0800, struct.pack("<H", 0x0101))
    )
    return _elem_implicit(0x0000, 0x0000, struct.pack("<I", len(rest))) + rest


def command_set(sop_class: str, field: int, msg_id: int, *, responded_to: bool = False,
                data_set: bool = True, priority: bool = True) -> bytes:
    """A DIMSE request command set (implicit VR LE): C-FIND-RQ is field 0x0020, C-CANCEL-RQ
    0x0FFF with `responded_to=True` (it carries Message ID Being Responded To instead)."""
    uid = sop_class.encode()
    if len(uid) % 2:
        uid += b"\x00"
    rest = b""
    if sop_class:
        rest += _elem_implicit(0x0000, 0x0002, uid)
    rest += _elem_implicit(0x0000, 0x0100, struct.pack("<H", field))
    rest += _elem_implicit(0x0000, 0x0120 if responded_to else 0x0110, struct.pack("<H", msg_id))
    if priority:
        rest += _elem_implicit(0x0000, 0x0700, struct.pack("<H", 0))
    rest += _elem_implicit(0x0000, 0x0800, struct.pack("<H", 0x0000 if data_set else 0x0101))
    return _elem_implicit(0x0000, 0x0000, struct.pack("<I", len(rest))) + rest


def _uid_value(uid: str) -> bytes:
    b = uid.encode()
    return b + b"\x00" if len(b) % 2 else b


def c_store_rq_command(sop_class: str, sop_instance: str, msg_id: int = 1) -> bytes:
    """A C-STORE-RQ command set (implicit VR LE) announcing a data set."""
    rest = (
        _elem_implicit(0x0000, 0x0002, _uid_value(sop_class))
        + _elem_implicit(0x0000, 0x0100, struct.pack("<H", 0x0001))
        + _elem_implicit(0x0000, 0x0110, struct.pack("<H", msg_id))
        + _elem_implicit(0x0000, 0x0700, struct.pack("<H", 0))
        + _elem_implicit(0x0000, 0x0800, struct.pack("<H", 0x0000))
        + _elem_implicit(0x0000, 0x1000, _uid_value(sop_instance))
    )
    return _elem_implicit(0x0000, 0x0000, struct.pack("<I", len(rest))) + rest


def command_us(command: bytes, element: int) -> int | None:
    """A US element (0000,element) of an implicit VR LE command set, None if absent."""
    pos = 0
    while pos + 8 <= len(command):
        group, elem, length = struct.unpack_from("<HHI", command, pos)
        if (group, elem) == (0, element):
            return struct.unpack_from("<H", command, pos + 8)[0]
        pos += 8 + length
    return None


def command_status(command: bytes) -> int | None:
    """Status (0000,0900) of an implicit VR LE command set, None if absent."""
    return command_us(command, 0x0900)


def p_data_tf(context_id: int, payload: bytes, *, command: bool = True, last: bool = True) -> bytes:
    mch = (0x01 if command else 0) | (0x02 if last else 0)
    pdv = struct.pack(">IBB", len(payload) + 2, context_id, mch) + payload
    return struct.pack(">BBI", 0x04, 0, len(pdv)) + pdv


def a_abort(source: int = 0, reason: int = 0) -> bytes:
    """A-ABORT (PS3.8 9.3.8): source 0 = service user, 2 = service provider."""
    return struct.pack(">BBI", 0x07, 0, 4) + bytes([0, 0, source, reason])


@dataclass
class Pdu:
    pdu_type: int
    body: bytes

    def abort_source_reason(self) -> tuple[int, int]:
        """(source, reason) of an A-ABORT PDU."""
        assert self.pdu_type == 0x07 and len(self.body) == 4, f"not an A-ABORT: type 0x{self.pdu_type:02X}"
        return self.body[2], self.body[3]

    def pdvs(self) -> list[tuple[int, int, bytes]]:
        """(context id, message control header, bytes) of each PDV of a P-DATA-TF."""
        assert self.pdu_type == 0x04, f"not a P-DATA-TF: type 0x{self.pdu_type:02X}"
        out, pos = [], 0
        while pos + 6 <= len(self.body):
            (length,) = struct.unpack_from(">I", self.body, pos)
            out.append((self.body[pos + 4], self.body[pos + 5], self.body[pos + 6 : pos + 4 + length]))
            pos += 4 + length
        return out


def recv_exact(sock: socket.socket, n: int) -> bytes | None:
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return buf


def read_pdu(sock: socket.socket, timeout: float = 10.0) -> Pdu | None:
    """Read one PDU; None if the peer closed the connection first."""
    sock.settimeout(timeout)
    try:
        head = recv_exact(sock, 6)
    except ConnectionResetError:
        return None
    if head is None:
        return None
    pdu_type, _r, length = struct.unpack(">BBI", head)
    try:
        body = recv_exact(sock, length)
    except ConnectionResetError:
        return None
    if body is None:
        return None
    return Pdu(pdu_type, body)


def connect(port: int, timeout: float = 10.0) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def associate(port: int, called: str, calling: str, contexts) -> socket.socket:
    """A raw association on a fresh connection; every proposed context must be accepted."""
    s = connect(port)
    s.sendall(associate_rq(called, calling, contexts))
    pdu = read_pdu(s)
    assert pdu is not None and pdu.pdu_type == 0x02, f"association not accepted: {pdu}"
    results = accepted_context_results(pdu.body)
    refused = {cid: r for cid, (r, _ts) in results.items() if r != 0}
    assert len(results) == len(contexts) and not refused, f"contexts not accepted: {results}"
    return s


def read_command_response(sock: socket.socket, timeout: float = 30.0) -> bytes:
    """The next DIMSE command set the peer sends (its command fragments joined)."""
    command = b""
    while True:
        pdu = read_pdu(sock, timeout=timeout)
        assert pdu is not None, "connection closed before the response"
        assert pdu.pdu_type == 0x04, f"expected P-DATA-TF, got PDU type 0x{pdu.pdu_type:02X}"
        for _cid, mch, data in pdu.pdvs():
            assert mch & 0x01, "a data set fragment where a command was expected"
            command += data
            if mch & 0x02:
                return command


def request_association(port: int, called: str, calling: str, contexts=None) -> Pdu:
    """Send an A-ASSOCIATE-RQ on a fresh connection and return the answer PDU (connection closed)."""
    with connect(port) as s:
        s.sendall(associate_rq(called, calling, contexts))
        pdu = read_pdu(s)
        assert pdu is not None, "connection closed without an answer to A-ASSOCIATE-RQ"
        if pdu.pdu_type == 0x02:  # accepted: release politely
            s.sendall(struct.pack(">BBI", 0x05, 0, 4) + b"\x00" * 4)
            read_pdu(s, timeout=5)
        return pdu


def accepted_context_results(ac_body: bytes) -> dict[int, tuple[int, str]]:
    """{context id: (result, transfer syntax)} from an A-ASSOCIATE-AC body."""
    pos = 2 + 2 + 16 + 16 + 32
    out: dict[int, tuple[int, str]] = {}
    while pos + 4 <= len(ac_body):
        itype, _r, ilen = struct.unpack_from(">BBH", ac_body, pos)
        payload = ac_body[pos + 4 : pos + 4 + ilen]
        if itype == 0x21:
            cid, result = payload[0], payload[2]
            ts = ""
            sub = payload[4:]
            if len(sub) >= 4 and sub[0] == 0x40:
                (slen,) = struct.unpack_from(">H", sub, 2)
                ts = sub[4 : 4 + slen].decode(errors="replace").rstrip("\x00 ")
            out[cid] = (result, ts)
        pos += 4 + ilen
    return out


def wait_closed(sock: socket.socket, timeout: float = 10.0) -> list[Pdu]:
    """Read until the peer closes; returns the PDUs received meanwhile. Raises on timeout."""
    pdus: list[Pdu] = []
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("server kept the connection open")
        try:
            pdu = read_pdu(sock, timeout=left)
        except socket.timeout:
            raise TimeoutError("server kept the connection open") from None
        if pdu is None:
            return pdus
        pdus.append(pdu)


def find_responses(sock, cx: int) -> tuple[int, int]:
    """Reads C-FIND responses on a raw association: (pending count, final status)."""
    pendings, command = 0, b""
    while True:
        pdu = read_pdu(sock, timeout=30)
        assert pdu is not None and pdu.pdu_type == 0x04, f"expected P-DATA, got {pdu}"
        pos = 0
        while pos < len(pdu.body):
            length, ctx, mch = int.from_bytes(pdu.body[pos : pos + 4], "big"), pdu.body[pos + 4], pdu.body[pos + 5]
            assert ctx == cx
            if mch & 1:
                command += pdu.body[pos + 6 : pos + 4 + length]
                if mch & 2:
                    st = command_status(command)
                    command = b""
                    if st in (0xFF00, 0xFF01):
                        pendings += 1
                    else:
                        return pendings, st
            pos += 4 + length


def find(sock, cx: int, sop_class: str, identifier: bytes, msg_id: int, cancel: bool) -> tuple[int, int]:
    """A C-FIND-RQ and its identifier, with `cancel` a C-CANCEL-RQ right behind them in the same
    write (so it is on the wire before the first match): (pending count, final status)."""
    wire = p_data_tf(cx, command_set(sop_class, 0x0020, msg_id))
    wire += p_data_tf(cx, identifier, command=False)
    if cancel:
        wire += p_data_tf(cx, command_set("", 0x0FFF, msg_id, responded_to=True, data_set=False, priority=False))
    sock.sendall(wire)
    return find_responses(sock, cx)

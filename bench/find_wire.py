#!/usr/bin/env python3
"""C-FIND latency as the server sees it: one association per peer, no response decoding.

findscu (process start, association, printing every match) and pynetdicom (~1.5 ms of Python
per decoded match) put a client floor under every figure, which hides the server. This client
reads the PDUs raw: per response it looks only at the command's Status, counts the pendings and
drops the identifiers, so the time from sending the C-FIND-RQ to the final response is the
server's work plus loopback transfer and a few microseconds of parsing per match.

    find_wire.py [-n 20] [-w 3] [--json OUT] PEER=AET:PORT [...] -- QUERY [QUERY ...]

QUERY is NAME|LEVEL|KEY=VALUE;KEY=VALUE;... with keywords (pydicom) and an optional
SpecificCharacterSet, e.g.
    'by_pid|STUDY|PatientID=PID0000037;StudyInstanceUID=;PatientName='
With `--sop-class 1.2.840.10008.5.1.4.31` (Modality Worklist) LEVEL `-` sends no
Query/Retrieve Level and `sps.KEY=VALUE` keys go into the Scheduled Procedure Step Sequence.
Peers are interleaved per run (order rotated), so drift in machine load hits all alike.
Prints one markdown row per query: median (p95) ms [matches] per peer.
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import struct
import sys
import time
from pydicom.dataset import Dataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_dataset

STUDY_ROOT_FIND = "1.2.840.10008.5.1.4.1.2.2.1"
# The abstract syntax of the association and the C-FIND-RQ (--sop-class).
SOP_CLASS = STUDY_ROOT_FIND
IMPLICIT_LE = "1.2.840.10008.1.2"
APP_CONTEXT = b"1.2.840.10008.3.1.1.1"


def item(kind: int, payload: bytes) -> bytes:
    return struct.pack(">BBH", kind, 0, len(payload)) + payload


def associate(port: int, called: str) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port), timeout=60)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    body = struct.pack(">HH", 1, 0) + called.encode().ljust(16) + b"FINDWIRE".ljust(16) + bytes(32)
    body += item(0x10, APP_CONTEXT)
    ctx = item(0x30, SOP_CLASS.encode()) + item(0x40, IMPLICIT_LE.encode())
    body += item(0x20, bytes([1, 0, 0, 0]) + ctx)
    body += item(0x50, item(0x51, struct.pack(">I", 1 << 20)) + item(0x52, b"1.2.3.4"))
    s.sendall(struct.pack(">BBI", 1, 0, len(body)) + body)
    kind, data = read_pdu(s)
    if kind != 2:
        raise SystemExit(f"association to {called}@{port} not accepted (PDU 0x{kind:02x})")
    return s


class Reader:
    def __init__(self, sock: socket.socket):
        self.sock, self.buf, self.pos = sock, bytearray(), 0

    def need(self, n: int) -> None:
        while len(self.buf) - self.pos < n:
            if self.pos > (1 << 20):
                del self.buf[: self.pos]
                self.pos = 0
            chunk = self.sock.recv(1 << 20)
            if not chunk:
                raise EOFError("peer closed")
            self.buf += chunk

    def pdu(self) -> tuple[int, bytes]:
        self.need(6)
        kind, _r, length = struct.unpack_from(">BBI", self.buf, self.pos)
        self.need(6 + length)
        start = self.pos + 6
        self.pos = start + length
        return kind, bytes(self.buf[start : start + length])


def read_pdu(sock: socket.socket) -> tuple[int, bytes]:
    r = Reader(sock)
    kind, body = r.pdu()
    return kind, bytes(body)


def elem(tag: int, value: bytes) -> bytes:
    return struct.pack("<HHI", tag >> 16, tag & 0xFFFF, len(value)) + value


def find_rq(msg_id: int) -> bytes:
    uid = SOP_CLASS.encode()
    uid += b"\0" * (len(uid) % 2)
    rest = (
        elem(0x00000002, uid)
        + elem(0x00000100, struct.pack("<H", 0x0020))
        + elem(0x00000110, struct.pack("<H", msg_id))
        + elem(0x00000700, struct.pack("<H", 0))
        + elem(0x00000800, struct.pack("<H", 0x0000))
    )
    return elem(0x00000000, struct.pack("<I", len(rest))) + rest


def pdata(payload: bytes, command: bool) -> bytes:
    pdv = struct.pack(">IBB", len(payload) + 2, 1, (1 if command else 0) | 2) + payload
    return struct.pack(">BBI", 4, 0, len(pdv)) + pdv


def identifier(level: str, keys: str) -> bytes:
    ds = Dataset()
    if level != "-":
        ds.QueryRetrieveLevel = level
    step = Dataset()
    for kv in filter(None, keys.split(";")):
        k, _, v = kv.partition("=")
        if k.startswith("sps."):
            setattr(step, k[4:], v)
        else:
            setattr(ds, k, v)
    if len(step):
        ds.ScheduledProcedureStepSequence = [step]
    if "SpecificCharacterSet" in ds:
        ds.SpecificCharacterSet = ds.SpecificCharacterSet  # also tells pydicom how to encode PN
    out = DicomBytesIO()
    out.is_little_endian, out.is_implicit_VR = True, True
    write_dataset(out, ds)
    return out.getvalue()


def status_of(command: bytes | bytearray) -> int:
    pos = 0
    while pos + 8 <= len(command):
        grp, el, ln = struct.unpack_from("<HHI", command, pos)
        if grp == 0 and el == 0x0900:
            return struct.unpack_from("<H", command, pos + 8)[0]
        pos += 8 + ln
    raise ValueError("no Status in response command")


def run_query(r: Reader, msg_id: int, ident: bytes) -> tuple[float, int, int]:
    """Seconds from the request to the final response, pending count, final status."""
    sock = r.sock
    t0 = time.perf_counter()
    sock.sendall(pdata(find_rq(msg_id), True) + pdata(ident, False))
    pendings = 0
    cmd = bytearray()
    while True:
        kind, body = r.pdu()
        if kind != 4:
            raise SystemExit(f"unexpected PDU 0x{kind:02x} during C-FIND")
        pos = 0
        while pos < len(body):
            (ln,) = struct.unpack_from(">I", body, pos)
            mch = body[pos + 5]
            if mch & 1:  # command fragment
                cmd += body[pos + 6 : pos + 4 + ln]
                if mch & 2:
                    st = status_of(cmd)
                    cmd.clear()
                    if st in (0xFF00, 0xFF01):
                        pendings += 1
                    else:
                        return time.perf_counter() - t0, pendings, st
            pos += 4 + ln


def release(sock: socket.socket) -> None:
    sock.sendall(struct.pack(">BBI", 5, 0, 4) + bytes(4))
    try:
        read_pdu(sock)
    except (EOFError, OSError):
        pass
    sock.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-n", type=int, default=20, help="measured runs per query and peer")
    ap.add_argument("-w", type=int, default=3, help="warm-up runs per query and peer")
    ap.add_argument("--json", help="write every sample here")
    ap.add_argument("--sop-class", default=STUDY_ROOT_FIND, help="FIND SOP class (default Study Root)")
    ap.add_argument("args", nargs="+", help="PEER=AET:PORT ... -- QUERY ...")
    a = ap.parse_args()
    global SOP_CLASS
    SOP_CLASS = a.sop_class
    if "--" in a.args:
        i = a.args.index("--")
        peer_args, queries = a.args[:i], a.args[i + 1 :]
    else:
        peer_args = [x for x in a.args if "=" in x and "|" not in x]
        queries = [x for x in a.args if "|" in x]
    peers = {}
    for p in peer_args:
        name, _, rest = p.partition("=")
        aet, _, port = rest.partition(":")
        peers[name] = (aet, int(port))
    socks = {name: Reader(associate(port, aet)) for name, (aet, port) in peers.items()}
    names = list(peers)
    print("| query | " + " | ".join(f"{n} ms median (p95) [matches]" for n in names) + " |")
    print("|---|" + "---|" * len(names))
    samples: dict = {}
    msg = 0
    for q in queries:
        qname, level, keys = q.split("|", 2)
        ident = identifier(level, keys)
        times: dict[str, list[float]] = {n: [] for n in names}
        found: dict[str, set] = {n: set() for n in names}
        for run in range(a.w + a.n):
            order = names[run % len(names):] + names[: run % len(names)]
            for n in order:
                msg = msg % 65535 + 1
                dt, pend, st = run_query(socks[n], msg, ident)
                if st != 0:
                    raise SystemExit(f"{n} {qname}: final status 0x{st:04X}")
                found[n].add(pend)
                if run >= a.w:
                    times[n].append(dt * 1e3)
        cells = []
        for n in names:
            t = sorted(times[n])
            p95 = t[min(len(t) - 1, round(0.95 * (len(t) - 1)))]
            cells.append(f"{statistics.median(t):.2f} ({p95:.2f}) [{'/'.join(map(str, sorted(found[n])))}]")
        print(f"| {qname} | " + " | ".join(cells) + " |", flush=True)
        samples[qname] = {n: {"ms": times[n], "matches": sorted(found[n])} for n in names}
    for r in socks.values():
        release(r.sock)
    if a.json:
        json.dump(samples, open(a.json, "w"), indent=1)


if __name__ == "__main__":
    sys.exit(main())

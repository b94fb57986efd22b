"""Hostile and silent connections: they neither hold the association slots nor the memory.

A connection takes an association slot only once its A-ASSOCIATE-RQ arrived; until then it is
one of `max_pending_connections`, given `artim_timeout_s` to speak, the oldest closed first
when the set is full. A PDU's buffer grows with the bytes that arrive, never to the length a
peer merely announces.
"""

from __future__ import annotations

import resource
import select
import socket
import struct
import threading
import time
from pathlib import Path

import dul_raw as raw
import helpers as h
import pytest


def _store_with_storescu(srv, tmp_path: Path, name: str) -> str:
    ds = h.fresh_ct()
    f = h.write_dataset_file(tmp_path / f"{name}.dcm", ds)
    r = h.storescu(srv.dicom_port, [f], called=srv.ae, calling="DOSSTORE", extra=["-v"])
    log = r.stdout + r.stderr
    assert r.returncode == 0 and "Received Store Response (Success)" in log, f"storescu ({name}) failed:\n{log[-3000:]}"
    return str(ds.SOPInstanceUID)


def _echo_ok(srv, what: str):
    r = h.echoscu(srv.dicom_port, called=srv.ae)
    assert r.returncode == 0, f"echoscu {what} failed:\n{r.stderr[-3000:]}"


def _closed_by_server(socks: list[socket.socket], timeout: float) -> set[int]:
    """Indexes of `socks` the server closed (EOF or reset) within `timeout` seconds."""
    closed: set[int] = set()
    poller = select.poll()
    by_fd = {}
    for i, s in enumerate(socks):
        by_fd[s.fileno()] = i
        poller.register(s, select.POLLIN | select.POLLHUP | select.POLLERR)
    deadline = time.monotonic() + timeout
    while len(closed) < len(socks):
        left = deadline - time.monotonic()
        if left <= 0:
            break
        for fd, _ev in poller.poll(min(left, 0.5) * 1000):
            i = by_fd[fd]
            try:
                data = socks[i].recv(65536, socket.MSG_DONTWAIT)
            except BlockingIOError:
                continue
            except OSError:
                data = b""
            if not data:
                closed.add(i)
                poller.unregister(fd)
    return closed


def _wait_closed_count(socks, n: int, timeout: float) -> set[int]:
    """Waits until at least `n` of `socks` are closed by the server; returns which."""
    closed: set[int] = set()
    deadline = time.monotonic() + timeout
    while len(closed) < n and time.monotonic() < deadline:
        rest = [i for i in range(len(socks)) if i not in closed]
        got = _closed_by_server([socks[i] for i in rest], min(2.0, deadline - time.monotonic()))
        closed |= {rest[j] for j in got}
    return closed


def _silent(srv, n: int) -> list[socket.socket]:
    return [raw.connect(srv.dicom_port) for _ in range(n)]


@pytest.mark.timeout(120)
def test_silent_connections_do_not_take_association_slots(server, tmp_path):
    """20 connections that never send an A-ASSOCIATE-RQ (more than the 16 association slots):
    echoscu and storescu still associate, with the default settings."""
    srv = server()
    silent = _silent(srv, 20)
    try:
        _echo_ok(srv, "next to 20 silent connections")
        _store_with_storescu(srv, tmp_path, "beside-silent")
        open_still = len(silent) - len(_closed_by_server(silent, 0.2))
        assert open_still > 0, "the test needs some silent connections still open"
        assert srv.status()["active_associations"] == 0, srv.status()
    finally:
        for s in silent:
            s.close()


@pytest.mark.timeout(120)
def test_silent_and_trickling_connections_are_closed_after_artim(server, tmp_path):
    cfg = tmp_path / "artim.toml"
    cfg.write_text("artim_timeout_s = 2\n")
    srv = server(config=cfg)
    silent = _silent(srv, 20)
    # A slow-loris request: a byte every 0.3 s never completes the A-ASSOCIATE-RQ in time.
    rq = raw.associate_rq(srv.ae, "TRICKLE")
    trickler = raw.connect(srv.dicom_port)
    stop = threading.Event()

    def trickle():
        for b in rq:
            if stop.wait(0.3):
                return
            try:
                trickler.send(bytes([b]))
            except OSError:
                return

    t = threading.Thread(target=trickle, daemon=True)
    t.start()
    try:
        _echo_ok(srv, "next to silent connections")
        socks = silent + [trickler]
        closed = _wait_closed_count(socks, len(socks), 60)
        assert len(closed) == len(socks), (
            f"{len(socks) - len(closed)} of {len(socks)} connections without an A-ASSOCIATE-RQ still open "
            "long after ARTIM (2 s)")
        _echo_ok(srv, "after ARTIM closed the silent connections")
    finally:
        stop.set()
        for s in silent + [trickler]:
            s.close()


@pytest.mark.timeout(120)
def test_pending_connections_are_bounded_oldest_dropped_first(server, tmp_path):
    cfg = tmp_path / "pending.toml"
    cfg.write_text("artim_timeout_s = 120\nmax_pending_connections = 8\n")
    srv = server(config=cfg)
    socks = []
    for _ in range(12):
        socks.append(raw.connect(srv.dicom_port))
        time.sleep(0.05)  # accepted in this order
    try:
        closed = _wait_closed_count(socks, 4, 30)
        assert closed == {0, 1, 2, 3}, f"closed {sorted(closed)}; expected the 4 oldest of 12 (bound 8)"
        # A real peer is the newest pending connection: it gets through, the next oldest goes.
        _echo_ok(srv, "with the pending set full")
        assert _wait_closed_count([socks[4]], 1, 30), "the oldest pending connection was not dropped for echoscu"
        assert not _closed_by_server(socks[5:], 0.5), "newer pending connections were dropped"
    finally:
        for s in socks:
            s.close()


def _vm(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM of `pid`, bytes."""
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        k, _, v = line.partition(":")
        if k in ("VmRSS", "VmHWM"):
            out[k] = int(v.split()[0]) * 1024
    return out


FLOOD = 1000
ANNOUNCED = 250_000  # under the A-ASSOCIATE-RQ limit, so the server waits for the rest
BOUND = 64 << 20


@pytest.mark.timeout(240)
def test_flood_announcing_large_pdus_stays_in_memory_bound(server, tmp_path):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = FLOOD + 512
    if soft < want:
        assert hard == resource.RLIM_INFINITY or hard >= want, f"RLIMIT_NOFILE hard limit {hard} < {want}"
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    try:
        srv = server()  # inherits the raised limit: its own limit is not what is measured
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    pid = srv.proc.pid
    _echo_ok(srv, "before the flood")
    idle = _vm(pid)["VmRSS"]

    head = struct.pack(">BBI", 0x01, 0, ANNOUNCED) + b"\x00\x01\x00\x00"  # an A-ASSOCIATE-RQ begins...
    flood: list[socket.socket] = []
    try:
        for _ in range(FLOOD):
            s = socket.socket()
            s.settimeout(10)
            try:
                s.connect(("127.0.0.1", srv.dicom_port))
                s.sendall(head)  # ...and stops
            except OSError:
                pass  # the server may already have dropped it
            flood.append(s)
        # Every flood connection has been read by now or dropped; most are closed by the server
        # (with today's code: dropped as the oldest pending ones; before: after a 10 s wait).
        closed = _wait_closed_count(flood, FLOOD - 100, 90)
        peak = _vm(pid)["VmHWM"] - idle
        print(f"flood of {FLOOD}: VmHWM {peak / 2**20:.1f} MiB above idle RSS {idle / 2**20:.1f} MiB; "
              f"{len(closed)} closed by the server")  # the figure, with `pytest -s`
        assert peak < BOUND, f"{FLOOD} connections announcing {ANNOUNCED}-byte PDUs took {peak >> 20} MiB above idle"
        assert srv.alive()
        # A real modality gets through while the rest of the flood is still connected.
        _store_with_storescu(srv, tmp_path, "during-flood")
        assert len(closed) < FLOOD, "the whole flood was closed before storescu ran: nothing tested 'during'"
    finally:
        for s in flood:
            s.close()
    _store_with_storescu(srv, tmp_path, "after-flood")
    after = _vm(pid)["VmRSS"] - idle
    assert after < BOUND, f"{after >> 20} MiB above idle stay after the flood closed"
    peak = _vm(pid)["VmHWM"] - idle
    assert peak < BOUND, f"peak {peak >> 20} MiB above idle"

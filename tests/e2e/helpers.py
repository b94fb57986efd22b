"""Shared helpers for the pacsbox end-to-end tests.

Everything here talks to the real `pacsbox` binary (path from $PACSBOX_BIN,
default target/release/pacsbox) over loopback, or inspects the files it leaves
in its data directory.  Nothing in here knows how the server is implemented.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import re
import signal
import socket
import struct
import subprocess
import threading
import time
import urllib.error
import urllib.request
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

REPO = Path(__file__).resolve().parents[2]

# DCMTK's tools, by absolute path: pynetdicom installs Python scripts called
# `storescu`/`echoscu` that shadow DCMTK's on PATH.
STORESCU = "/usr/bin/storescu"
ECHOSCU = "/usr/bin/echoscu"
DCMDUMP = "/usr/bin/dcmdump"
ZSTD = "zstd"

# Debian's DCMTK leaves Nagle on unless told otherwise (~11 C-STOREs/s).
DCMTK_ENV = dict(os.environ, TCP_NODELAY="1")

IMPLICIT_LE = "1.2.840.10008.1.2"
EXPLICIT_LE = "1.2.840.10008.1.2.1"
DEFLATED_LE = "1.2.840.10008.1.2.1.99"
EXPLICIT_BE = "1.2.840.10008.1.2.2"

# Native (unencapsulated, not deflated) syntaxes: acknowledged as <sop>.dcm, then stored as
# <sop>.dcm.zst once the server has been quiet for 2 s (Server.wait_compressed).
# Everything else (encapsulated and deflated) is stored as <sop>.dcm.
NATIVE_TS = {IMPLICIT_LE, EXPLICIT_LE, EXPLICIT_BE}
# Encapsulated syntaxes: stored as <sop>.dcm, bytes as received.
ENCAPSULATED_TS = {
    "1.2.840.10008.1.2.4.50",  # JPEG baseline
    "1.2.840.10008.1.2.4.51",  # JPEG extended
    "1.2.840.10008.1.2.4.57",  # JPEG lossless
    "1.2.840.10008.1.2.4.70",  # JPEG lossless SV1
    "1.2.840.10008.1.2.4.80",  # JPEG-LS lossless
    "1.2.840.10008.1.2.4.81",  # JPEG-LS near-lossless
    "1.2.840.10008.1.2.4.90",  # JPEG 2000 lossless
    "1.2.840.10008.1.2.4.91",  # JPEG 2000
    "1.2.840.10008.1.2.5",  # RLE lossless
}
ACCEPTED_TS = NATIVE_TS | ENCAPSULATED_TS | {DEFLATED_LE}

STORAGE_PREFIX = "1.2.840.10008.5.1.4.1.1"
VERIFICATION = "1.2.840.10008.1.1"
CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"

UID_RE = re.compile(r"^(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))+$")
REL_PATH_RE = re.compile(
    r"^archive/(?P<bucket>[0-9a-fA-F]{2})/(?P<study>[0-9.]+)/(?P<series>[0-9.]+)/"
    r"(?P<sop>[0-9.]+)\.dcm(?P<zst>\.zst)?$"
)

# The server's log goes to a file here: ask for plain text (tracing-subscriber honours NO_COLOR).
SERVER_ENV = dict(os.environ, NO_COLOR="1", RUST_BACKTRACE="1")


def valid_uid(uid: str) -> bool:
    return len(uid) <= 64 and bool(UID_RE.match(uid))


# --------------------------------------------------------------------------
# processes, ports, polling
# --------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def free_ports(n: int) -> list[int]:
    ports: set[int] = set()
    while len(ports) < n:
        ports.add(free_port())
    return list(ports)


def wait_until(pred, timeout: float, what: str, interval: float = 0.05):
    """Poll `pred()` until it returns a truthy value; return that value."""
    deadline = time.monotonic() + timeout
    last_exc: Exception | None = None
    while True:
        try:
            v = pred()
            if v:
                return v
        except Exception as e:  # noqa: BLE001 - polling
            last_exc = e
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}; last error: {last_exc!r}")
        time.sleep(interval)


def http_get(port: int, path: str, timeout: float = 5.0) -> tuple[int, str, bytes]:
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.headers.get("Content-Type", ""), r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("Content-Type", ""), e.read()


def tail(path: Path, limit: int = 20000) -> str:
    try:
        data = path.read_bytes()
    except OSError:
        return ""
    if len(data) > limit:
        data = b"...[truncated]...\n" + data[-limit:]
    return data.decode("utf-8", "replace")


@dataclass
class CliResult:
    args: list[str]
    returncode: int
    stdout: str
    stderr: str

    def describe(self) -> str:
        return (
            f"$ {' '.join(self.args)}\n-> exit {self.returncode}\n"
            f"--- stdout ---\n{self.stdout[-8000:]}\n--- stderr ---\n{self.stderr[-8000:]}"
        )


def run_pacsbox(binary: Path, *args: str, timeout: float = 120, check: bool = False) -> CliResult:
    cmd = [str(binary), *map(str, args)]
    p = subprocess.run(cmd, capture_output=True, timeout=timeout)
    r = CliResult(cmd, p.returncode, p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace"))
    if check and r.returncode != 0:
        raise AssertionError(f"pacsbox command failed:\n{r.describe()}")
    return r


@dataclass
class ListEntry:
    sop: str
    study: str
    series: str
    ts: str
    path: str
    patient_name: str


def parse_list(stdout: str) -> dict[str, ListEntry]:
    """Parse `pacsbox list`/`find` TSV output into {sop_uid: entry}; asserts the format."""
    out: dict[str, ListEntry] = {}
    for n, line in enumerate(stdout.splitlines(), 1):
        if not line.strip():
            continue
        cols = line.split("\t")
        assert len(cols) == 6, f"list line {n} has {len(cols)} TAB-separated columns, expected 6: {line!r}"
        e = ListEntry(*cols)
        assert e.sop not in out, f"SOP Instance UID listed twice: {e.sop}"
        out[e.sop] = e
    return out


# The calling AE titles the test clients query and retrieve with, declared as peers with every
# right (`--peer AE:all`) so the box runs in its default access mode (learning) rather than
# open.  Storing needs no entry while learning; tests of the access rules pass their own list.
TEST_PEERS = (
    "FINDSCU", "GETSCU", "MOVESCU", "STORESCU", "ECHOSCU", "PYNETDICOM", "PYSCU", "GDCMSCU",
    "READYPROBE", "SMALLPDU", "LATECANCEL", "MOVECANCEL", "GETCANCEL", "CORPUSGET", "QRPROPOSE",
    "BOGUSFIND", "CTXTEST", "CTXTEST2", "BENCHSCU", "CANCELSCU", "RAWPDU", "RAWCTX", "RAWRJ", "TRICKLE",
    "DEFLSCU",
)


class PacsboxServer:
    """One `pacsbox serve` process.  Created by the `server` fixture factory.

    `peers`: `--peer` values; default every title in TEST_PEERS with all rights.
    """

    def __init__(self, binary: Path, data: Path, logdir: Path, *, ae: str = "PACSBOX", extra: Iterable[str] = (),
                 env: dict[str, str] | None = None, peers: Iterable[str] | None = None):
        self.binary = binary
        self.env = env if env is not None else SERVER_ENV
        self.data = data
        self.ae = ae
        self.extra = list(extra)
        self.peers = [f"{t}:all" for t in TEST_PEERS] if peers is None else list(peers)
        self.logdir = logdir
        self.proc: subprocess.Popen | None = None
        self.dicom_port = 0
        self.http_port = 0
        self.starts = 0
        self.logs: list[Path] = []
        # False while the server is supposed to be up; set by stop()/kill().
        self.expected_down = True

    # -- lifecycle --------------------------------------------------------

    def start(self, timeout: float = 30.0) -> "PacsboxServer":
        assert self.proc is None or self.proc.poll() is not None, "server already running"
        last_err = None
        for _attempt in range(3):  # retry only on a lost free-port race
            self.dicom_port, self.http_port = free_ports(2)
            self.starts += 1
            log = self.logdir / f"pacsbox-stderr-{self.starts}.log"
            self.logs.append(log)
            cmd = [
                str(self.binary), "serve",
                "--data", str(self.data),
                "--ae", self.ae,
                "--dicom-port", str(self.dicom_port),
                "--http-port", str(self.http_port),
                # Plain HTTP serves every page unless a test asks for HTTPS (test_https.py), and no
                # DICOM TLS port unless a test asks for one (test_dicom_tls.py).
                *([] if "--https-port" in self.extra else ["--https-port", "0"]),
                *([] if "--dicom-tls-port" in self.extra else ["--dicom-tls-port", "0"]),
                *[a for p in self.peers for a in ("--peer", p)],
                *self.extra,
            ]
            self.expected_down = False
            with open(log, "wb") as f:
                self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=f, stderr=subprocess.STDOUT,
                                             env=self.env)
            try:
                self.wait_ready(timeout)
                return self
            except _EarlyExit as e:
                last_err = e
                if "in use" in self.stderr_text(self.starts).lower():
                    continue
                raise AssertionError(str(e)) from None
        raise AssertionError(str(last_err))

    def wait_ready(self, timeout: float) -> dict:
        def ready():
            if self.proc.poll() is not None:
                raise _EarlyExit(
                    f"pacsbox serve exited with {self.proc.returncode} before becoming ready:\n"
                    f"{self.stderr_text(self.starts)}"
                )
            try:
                st = self.status()
            except (OSError, ValueError):
                return None
            if st.get("dicom_port") != self.dicom_port:
                return None
            return st if dicom_echo_ok(self.dicom_port, self.ae) else None

        try:
            return wait_until(ready, timeout, "pacsbox /status.json and DICOM port", interval=0.05)
        except _EarlyExit:
            raise
        except TimeoutError as e:
            self.kill()
            raise AssertionError(f"{e}\n--- pacsbox stderr ---\n{self.stderr_text(self.starts)}") from None

    def stop(self, timeout: float = 20.0) -> int | None:
        """SIGTERM and wait; returns exit code (None if it had to be killed)."""
        self.expected_down = True
        if self.proc is None or self.proc.poll() is not None:
            return None if self.proc is None else self.proc.returncode
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
            raise AssertionError(f"pacsbox did not exit within {timeout}s of SIGTERM") from None

    def kill(self) -> None:
        """SIGKILL (crash simulation) and reap."""
        self.expected_down = True
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    # -- views -------------------------------------------------------------

    def status(self) -> dict:
        code, _ctype, body = http_get(self.http_port, "/status.json", timeout=3)
        if code != 200:
            raise ValueError(f"/status.json -> HTTP {code}")
        return json.loads(body)

    def wait_compressed(self, timeout: float = 60) -> None:
        """Until no instance waits for the compression the server does when idle."""
        wait_until(lambda: self.status()["compression_pending"] == 0, timeout,
                   "compression when idle (/status.json compression_pending == 0)", interval=0.2)

    def stderr_text(self, which: int | None = None) -> str:
        logs = self.logs if which is None else [self.logs[which - 1]]
        parts = []
        for i, log in enumerate(logs, 1 if which is None else which):
            parts.append(f"=== pacsbox serve run #{i} ({log}) ===\n{tail(log)}")
        return "\n".join(parts)

    def cli(self, *args: str, **kw) -> CliResult:
        return run_pacsbox(self.binary, *args, **kw)

    def list(self) -> dict[str, ListEntry]:
        assert not self.alive(), "pacsbox list needs the server stopped"
        r = self.cli("list", "--data", str(self.data))
        assert r.returncode == 0, f"pacsbox list failed:\n{r.describe()}"
        return parse_list(r.stdout)

    def verify(self, *extra: str) -> CliResult:
        assert not self.alive(), "pacsbox verify needs the server stopped"
        return self.cli("verify", "--data", str(self.data), *extra)


class _EarlyExit(Exception):
    pass


def dicom_echo_ok(port: int, called: str) -> bool:
    """One C-ECHO on a fresh association (used as the DICOM readiness probe)."""
    from pynetdicom import AE

    ae = AE("READYPROBE")
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = ae.connection_timeout = 2
    ae.add_requested_context(VERIFICATION, [IMPLICIT_LE])
    assoc = ae.associate("127.0.0.1", port, ae_title=called)
    if not assoc.is_established:
        return False
    try:
        st = assoc.send_c_echo()
        return st is not None and int(st.get("Status", -1)) == 0
    finally:
        assoc.release()


# --------------------------------------------------------------------------
# reading what the archive stored
# --------------------------------------------------------------------------


def read_stored_bytes(data: Path, rel: str) -> bytes:
    p = data / rel
    raw = p.read_bytes()
    if rel.endswith(".zst"):
        r = subprocess.run([ZSTD, "-d", "-q", "-c", str(p)], capture_output=True)
        assert r.returncode == 0, f"zstd -d failed on {p}: {r.stderr.decode(errors='replace')}"
        return r.stdout
    return raw


def zstd_frames(p: Path) -> int:
    """Number of zstd frames in a file, as reported by `zstd -l -v`."""
    r = subprocess.run([ZSTD, "-l", "-v", str(p)], capture_output=True, text=True)
    assert r.returncode == 0, f"zstd -l failed on {p}: {r.stderr}"
    m = re.search(r"#\s*Zstandard Frames:\s*(\d+)", r.stdout)
    assert m, f"cannot read frame count from zstd -l output for {p}:\n{r.stdout}"
    return int(m.group(1))


def split_part10(buf: bytes) -> tuple[bytes, bytes]:
    """Split a Part-10 file into (file-meta group bytes, dataset bytes) without decoding.

    Walks the explicit-VR-LE group 0002 elements one by one (does not trust
    (0002,0000) alone).
    """
    assert len(buf) >= 132 and buf[128:132] == b"DICM", "not a Part-10 file (no DICM prefix at offset 128)"
    pos = 132
    while pos + 8 <= len(buf):
        group, _elem = struct.unpack_from("<HH", buf, pos)
        if group != 0x0002:
            break
        vr = buf[pos + 4 : pos + 6]
        if vr in (b"OB", b"OW", b"OF", b"SQ", b"UT", b"UN", b"UC", b"UR", b"OD", b"OL", b"OV", b"SV", b"UV"):
            (length,) = struct.unpack_from("<I", buf, pos + 8)
            pos += 12 + length
        else:
            (length,) = struct.unpack_from("<H", buf, pos + 6)
            pos += 8 + length
    return buf[132:pos], buf[pos:]


def read_part10(buf: bytes):
    import io

    import pydicom

    return pydicom.dcmread(io.BytesIO(buf))


# --------------------------------------------------------------------------
# comparing datasets
# --------------------------------------------------------------------------


def _compared(tag) -> bool:
    # Group 0002 is file meta.  Group lengths (gggg,0000) and dataset trailing
    # padding (FFFC,FFFC) are recomputed/dropped by DCMTK's storescu when it
    # re-encodes a file for the network, so they differ from the source file
    # through no doing of the server.
    return tag.group != 0x0002 and tag.element != 0x0000 and tag != 0xFFFCFFFC


def dataset_diffs(a, b, where: str = "", limit: int = 20) -> list[str]:
    """Element-by-element comparison of two pydicom Datasets (see _compared).

    Returns human-readable differences (empty = equal).  Values are compared
    after pydicom decoding (each side decoded with its own Specific Character
    Set); binary values (Pixel Data etc.) byte for byte; sequences recursively.
    """
    diffs: list[str] = []
    ta = {t for t in a.keys() if _compared(t)}
    tb = {t for t in b.keys() if _compared(t)}
    for t in sorted(ta - tb):
        diffs.append(f"{where}{t} missing from stored copy")
    for t in sorted(tb - ta):
        diffs.append(f"{where}{t} only in stored copy")
    for t in sorted(ta & tb):
        if len(diffs) >= limit:
            break
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ea, eb = a[t], b[t]
            va, vb = ea.value, eb.value
        if ea.VR == "SQ" or eb.VR == "SQ":
            if ea.VR != eb.VR:
                diffs.append(f"{where}{t} VR {ea.VR} vs {eb.VR}")
                continue
            if len(va) != len(vb):
                diffs.append(f"{where}{t} sequence has {len(va)} items sent, {len(vb)} stored")
                continue
            for i, (ia, ib) in enumerate(zip(va, vb)):
                diffs += dataset_diffs(ia, ib, f"{where}{t}[{i}].", limit - len(diffs))
            continue
        if va != vb:
            ra = va if isinstance(va, (bytes, bytearray)) else repr(va)
            rb = vb if isinstance(vb, (bytes, bytearray)) else repr(vb)
            diffs.append(f"{where}{t} {ea.keyword or ''} differs: sent {str(ra)[:80]} stored {str(rb)[:80]}")
    return diffs


# --------------------------------------------------------------------------
# the test corpus
# --------------------------------------------------------------------------


@dataclass
class CorpusFile:
    path: Path
    ts: str
    sop_class: str
    sop: str
    study: str
    series: str

    @property
    def name(self) -> str:
        return self.path.name


def _dcmtk_sees_uids(path: Path) -> bool:
    """DCMTK's parser must also find the four UIDs (as UI), else storescu can't send it."""
    r = subprocess.run(
        [DCMDUMP, "-q", "+P", "0008,0016", "+P", "0008,0018", "+P", "0020,000d", "+P", "0020,000e", str(path)],
        capture_output=True,
    )
    if r.returncode != 0:
        return False
    lines = r.stdout.decode("latin-1").splitlines()
    return len(lines) == 4 and all(" UI " in ln for ln in lines)


# The corpus as pinned in tests/install_deps.sh sends 211 files (146 distinct SOP Instance UIDs);
# the floor leaves room for a file or two changing category, not for the corpus going missing.
CORPUS_MIN = 205

# Every pydicom / pydicom-data file left out of the corpus, by reason (keys: folder/name).
# select_corpus() fails when a file drops out that is not listed here, or a listed one no
# longer does: a file is never dropped silently.
CORPUS_LEFT_OUT = {
    "not a Part-10 file (no File Meta / DICM prefix)": (
        "data/OT-PAL-8-face.dcm", "charset_files/FileInfo.txt", "test_files/ExplVR_BigEndNoMeta.dcm",
        "test_files/ExplVR_LitEndNoMeta.dcm", "test_files/README.txt", "test_files/crayons.icc",
        "dicomdirtests/README.txt", "TINY_ALPHA/README", "test_files/no_meta.dcm", "test_files/rtplan.dump",
        "test_files/rtstruct.dcm", "test_files/rtstruct.dump", "test_files/test1.json", "test_files/test_PN.json",
        "test_files/zipMR.gz",
    ),
    "no SOP Class UID (DICOMDIRs, sequence fragments)": (
        "charset_files/chrSQEncoding.dcm", "charset_files/chrSQEncoding1.dcm", "test_files/UN_sequence.dcm",
        "dicomdirtests/DICOMDIR", "dicomdirtests/DICOMDIR-bigEnd", "dicomdirtests/DICOMDIR-empty.dcm",
        "dicomdirtests/DICOMDIR-implicit", "dicomdirtests/DICOMDIR-nooffset", "dicomdirtests/DICOMDIR-nopatient",
        "dicomdirtests/DICOMDIR-reordered", "TINY_ALPHA/DICOMDIR", "test_files/nested_priv_SQ.dcm",
        "test_files/no_meta_group_length.dcm", "test_files/priv_SQ.dcm",
    ),
    "no Study Instance UID": (
        "test_files/JPEGLSNearLossless_08.dcm", "test_files/JPEGLSNearLossless_16.dcm",
        "test_files/SC_rgb_jls_lossy_line.dcm", "test_files/SC_rgb_jls_lossy_sample.dcm",
    ),
    "File Meta lacks Media Storage SOP Class or Transfer Syntax": (
        "test_files/empty_charset_LEI.dcm", "test_files/meta_missing_tsyntax.dcm",
    ),
    "not a valid UID": ("data/bad_sequence.dcm",),
    "DCMTK's parser does not find the four UIDs (truncated / odd files storescu cannot send)": (
        "data/eCT_Supplemental.dcm", "data/emri_small_jpeg_2k_lossless_too_short.dcm", "data/explicit_VR-UN.dcm",
        "data/liver.dcm", "data/liver_expb.dcm", "test_files/MR_truncated.dcm", "test_files/SC_rgb_jpeg.dcm",
        "test_files/SC_rgb_small_odd.dcm", "test_files/SC_rgb_small_odd_big_endian.dcm",
        "test_files/liver_1frame.dcm", "test_files/liver_expb_1frame.dcm", "test_files/rtdose_rle.dcm",
        "test_files/rtdose_rle_1frame.dcm", "test_files/rtplan_truncated.dcm", "test_files/test-SR.dcm",
    ),
}


@functools.lru_cache(maxsize=1)
def select_corpus() -> tuple[CorpusFile, ...]:
    """Every pydicom / pydicom-data test file that is a sendable storage object.

    Criteria: pydicom reads it (with file meta), MediaStorageSOPClassUID is a
    storage SOP class, the transfer syntax is one pacsbox accepts, the dataset
    has SOP Class/SOP Instance/Study/Series Instance UIDs that are valid UIDs,
    and DCMTK's parser finds those UIDs too (a handful of deliberately broken
    files defeat it).  Every file left out must be in CORPUS_LEFT_OUT, and the
    count must reach CORPUS_MIN.  Sorted by path, so the send order is deterministic.
    """
    import pydicom
    import pydicom.data

    files = set(pydicom.data.get_testdata_files()) | set(pydicom.data.get_charset_files())
    out = []
    left_out: dict[str, str] = {}
    for f in sorted(files):
        p = Path(f)
        if not p.is_file():
            continue
        key = f"{p.parent.name}/{p.name}"
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ds = pydicom.dcmread(p, stop_before_pixels=True)
                fm = ds.file_meta
                ts = str(fm.TransferSyntaxUID)
                msc = str(fm.MediaStorageSOPClassUID)
                uids = [str(ds.SOPClassUID), str(ds.SOPInstanceUID), str(ds.StudyInstanceUID), str(ds.SeriesInstanceUID)]
        except Exception as e:  # noqa: BLE001 - unreadable / lacks an attribute: must be listed
            left_out[key] = f"pydicom: {type(e).__name__}: {str(e)[:100]}"
            continue
        if not msc.startswith(STORAGE_PREFIX) or ts not in ACCEPTED_TS:
            left_out[key] = f"not a storage object in an accepted syntax ({msc}, {ts})"
            continue
        if not uids[0].startswith(STORAGE_PREFIX) or not all(valid_uid(u) for u in uids):
            left_out[key] = f"invalid UID among {uids}"
            continue
        if not _dcmtk_sees_uids(p):
            left_out[key] = "DCMTK's dcmdump does not find the four UIDs"
            continue
        out.append(CorpusFile(p, ts, uids[0], uids[1], uids[2], uids[3]))
    listed = {k for keys in CORPUS_LEFT_OUT.values() for k in keys}
    unlisted = {k: why for k, why in left_out.items() if k not in listed}
    back = sorted(listed - set(left_out))
    assert not unlisted and not back, (
        f"the corpus changed: left out but not in CORPUS_LEFT_OUT: {unlisted}; "
        f"listed in CORPUS_LEFT_OUT but now sent: {back}")
    assert len(out) >= CORPUS_MIN, (
        f"only {len(out)} corpus files (at least {CORPUS_MIN} expected): are pydicom and pydicom-data "
        "installed as pinned in tests/install_deps.sh?")
    return tuple(out)


def decode_png(data: bytes):
    """An 8-bit greyscale or RGB, non-interlaced PNG (what pacsbox writes) as a uint8 array of
    shape (h, w) or (h, w, 3); anything else is an AssertionError."""
    import struct
    import zlib

    import numpy as np

    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, hdr = 8, b"", None
    while pos < len(data):
        (n,) = struct.unpack(">I", data[pos:pos + 4])
        kind, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + n]
        if kind == b"IHDR":
            hdr = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
        pos += 12 + n
    assert hdr is not None, "PNG without IHDR"
    w, h, depth, color, _comp, _filt, interlace = hdr
    assert depth == 8 and color in (0, 2) and interlace == 0, f"unexpected PNG format {hdr}"
    ch = 1 if color == 0 else 3
    raw = np.frombuffer(zlib.decompress(idat), dtype=np.uint8).reshape(h, 1 + w * ch)
    out = np.zeros((h, w * ch), dtype=np.int32)
    prev = np.zeros(w * ch, dtype=np.int32)
    for y in range(h):
        f, line = raw[y, 0], raw[y, 1:].astype(np.int32)
        if f == 0:
            cur = line
        elif f == 2:
            cur = (line + prev) & 0xFF
        else:  # Sub, Average, Paeth depend on the pixel to the left: one sample at a time
            cur = np.zeros_like(line)
            for x in range(w * ch):
                a = cur[x - ch] if x >= ch else 0
                b, c = prev[x], (prev[x - ch] if x >= ch else 0)
                if f == 1:
                    pred = a
                elif f == 3:
                    pred = (a + b) // 2
                else:
                    p = a + b - c
                    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                    pred = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
                cur[x] = (line[x] + pred) & 0xFF
        out[y], prev = cur, cur
    return out.astype(np.uint8).reshape((h, w) if ch == 1 else (h, w, 3))


def box_downscale(img, ow: int, oh: int):
    """Area average of a (h, w[, c]) float image onto (oh, ow[, c]) over pacsbox's blocks:
    output column ox averages the source columns x with x*ow//w == ox, output row oy the source
    rows from oy*h//oh up to (oy+1)*h//oh.  Which source line falls into which block must be
    the server's: on fine detail (US1_UNCR's text, examples_rgb_color) putting one boundary row
    on the other side moves the mean absolute difference from ~0.1 to 4..10 levels."""
    import numpy as np

    h, w = img.shape[:2]
    row_ends = np.array([(oy + 1) * h // oh for oy in range(oh)])
    ys = np.minimum(np.searchsorted(row_ends, np.arange(h), side="right"), oh - 1)
    xs = np.minimum(np.arange(w) * ow // w, ow - 1)
    sums = np.zeros((oh, ow) + img.shape[2:])
    np.add.at(sums, (ys[:, None], xs[None, :]), img)
    counts = np.zeros((oh, ow))
    np.add.at(counts, (ys[:, None], xs[None, :]), 1)
    return sums / (counts if img.ndim == 2 else counts[..., None])


def pydicom_preview(path: Path, ow: int, oh: int):
    """What the preview of frame 1 should look like, by pydicom (+ pylibjpeg) and numpy alone, as
    floats 0..255 of shape (oh, ow) or (oh, ow, 3): grey images through pydicom's modality LUT /
    rescale, then the first window (pydicom's windowing, VOI LUT Function included), else the
    first VOI LUT, else the modality values' min..max; MONOCHROME1 inverted; palette colour
    through pydicom's colour LUT; RGB/YBR as pydicom converts them; then an area-average resize."""
    import numpy as np
    import pydicom
    from pydicom.pixels import apply_color_lut, apply_modality_lut, apply_voi_lut

    ds = pydicom.dcmread(path)
    arr = ds.pixel_array
    if int(ds.get("NumberOfFrames", 1) or 1) > 1:
        arr = arr[0]
    pi = str(ds.PhotometricInterpretation)
    bits = int(ds.BitsStored)
    if pi == "PALETTE COLOR":
        rgb = apply_color_lut(arr, ds).astype(float)
        depth = int(ds.RedPaletteColorLookupTableDescriptor[2])
        img = rgb * 255.0 / (2**depth - 1) if depth > 8 else rgb
    elif int(ds.SamplesPerPixel) == 3:
        img = arr.astype(float)
        if bits > 8:
            img = np.minimum(np.floor(img / 2 ** (bits - 8)), 255)
    else:
        m = apply_modality_lut(arr, ds).astype(float)
        centers, widths = ds.get("WindowCenter"), ds.get("WindowWidth")
        first = lambda v: float(v[0]) if isinstance(v, pydicom.multival.MultiValue) else float(v)  # noqa: E731
        if centers is not None and widths is not None and first(widths) >= 1:
            win = apply_voi_lut(m, ds, index=0, prefer_lut=False)
            # pydicom windows onto its own output range: find it from values far outside the window
            lo, hi = apply_voi_lut(np.array([-1e12, 1e12]), ds, index=0, prefer_lut=False)
            img = (win - lo) * 255.0 / (hi - lo)
        elif "VOILUTSequence" in ds:
            lut_bits = int(ds.VOILUTSequence[0].LUTDescriptor[2])
            img = apply_voi_lut(m, ds, index=0, prefer_lut=True).astype(float) * 255.0 / (2**lut_bits - 1)
        else:
            lo, hi = m.min(), m.max()
            img = (m - lo) * 255.0 / max(hi - lo, 1.0)
        img = np.clip(img, 0, 255)
        if pi == "MONOCHROME1":
            img = 255.0 - img
    return box_downscale(img, ow, oh)


def storescu_config(path: Path, groups: dict[str, set[str]]) -> dict[str, str]:
    """Write a DCMTK association config with one profile per transfer syntax.

    Profile for TS t proposes each SOP class in groups[t] with t only, so
    storescu sends every file in exactly the syntax it is encoded in (no
    conversion, no chance for the SCP to pick another one).  Returns
    {ts: profile_name}.
    """
    lines = ["[[TransferSyntaxes]]"]
    names = {}
    for i, ts in enumerate(sorted(groups), 1):
        lines += [f"[TS{i}]", f"TransferSyntax1 = {ts}"]
        names[ts] = i
    lines.append("[[PresentationContexts]]")
    for ts, i in names.items():
        lines.append(f"[PC{i}]")
        for k, sc in enumerate(sorted(groups[ts]), 1):
            lines.append(f"PresentationContext{k} = {sc}\\TS{i}")
    lines.append("[[Profiles]]")
    for ts, i in names.items():
        lines += [f"[P{i}]", f"PresentationContexts = PC{i}"]
    path.write_text("\n".join(lines) + "\n")
    return {ts: f"P{i}" for ts, i in names.items()}


def storescu(port: int, files: list[Path], *, called: str, calling: str, cfg: Path | None = None,
             profile: str | None = None, extra: Iterable[str] = (), timeout: float = 120) -> subprocess.CompletedProcess:
    cmd = [STORESCU, "-aet", calling, "-aec", called, "-to", "10", "-ta", "10", "-td", "30"]
    if cfg is not None:
        cmd += ["-xf", str(cfg), profile]
    cmd += [*extra, "127.0.0.1", str(port), *map(str, files)]
    return subprocess.run(cmd, capture_output=True, text=True, errors="replace", env=DCMTK_ENV, timeout=timeout)


def echoscu(port: int, *, called: str, calling: str = "ECHOSCU", timeout: float = 30) -> subprocess.CompletedProcess:
    cmd = [ECHOSCU, "-aet", calling, "-aec", called, "-to", "10", "-ta", "10", "-td", "10", "127.0.0.1", str(port)]
    return subprocess.run(cmd, capture_output=True, text=True, errors="replace", env=DCMTK_ENV, timeout=timeout)


# --------------------------------------------------------------------------
# pynetdicom helpers
# --------------------------------------------------------------------------


def scu_ae(calling: str = "PYSCU", *, contexts: Iterable[tuple[str, list[str]]] = ()):
    from pynetdicom import AE

    ae = AE(calling)
    ae.acse_timeout = 10
    ae.dimse_timeout = 30
    ae.network_timeout = 30
    ae.connection_timeout = 10
    for sop, tss in contexts:
        ae.add_requested_context(sop, tss)
    return ae


@functools.lru_cache(maxsize=1)
def ct_small():
    import pydicom
    from pydicom.data import get_testdata_file

    return pydicom.dcmread(get_testdata_file("CT_small.dcm"))


def fresh_ct(study: str | None = None, series: str | None = None, *, patient: str | None = None):
    """A copy of CT_small.dcm with fresh SOP Instance (and optionally Study/Series) UIDs."""
    import copy

    from pydicom.uid import generate_uid

    ds = copy.deepcopy(ct_small())
    ds.SOPInstanceUID = generate_uid()
    ds.StudyInstanceUID = study or generate_uid()
    ds.SeriesInstanceUID = series or generate_uid()
    if patient is not None:
        ds.PatientName = patient
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    return ds


def c_store_status(assoc, ds) -> int | None:
    """send_c_store and return the status code (None when no response arrived)."""
    st = assoc.send_c_store(ds)
    if st is None or "Status" not in st:
        return None
    return int(st.Status)


def status_comment(st) -> str:
    return str(getattr(st, "ErrorComment", "")) if st is not None else ""


def is_failure_status(code: int) -> bool:
    return 0xA900 <= code <= 0xA9FF or 0xC000 <= code <= 0xCFFF


@contextlib.contextmanager
def associated(ae, port: int, called: str):
    assoc = ae.associate("127.0.0.1", port, ae_title=called)
    assert assoc.is_established, (
        f"association to {called}@{port} not established "
        f"(rejected={assoc.is_rejected}, aborted={assoc.is_aborted})"
    )
    try:
        yield assoc
    finally:
        if assoc.is_established:
            assoc.release()


def dir_files(d: Path) -> list[Path]:
    return sorted(p for p in d.rglob("*") if p.is_file()) if d.exists() else []


def tmp_leftovers(data: Path) -> list[Path]:
    """Files in DATA/tmp/ but the empty spares a running server keeps ready for stores."""
    return [
        p for p in dir_files(data / "tmp") if not (p.name.startswith("spare-") and p.stat().st_size == 0)
    ]


@dataclass
class BackgroundStorer:
    """Stores fresh CT instances on one association until stopped or cut off.

    Records every SOP Instance UID whose C-STORE got status 0x0000.
    """

    port: int
    called: str
    acked: list[str] = field(default_factory=list)
    sent: list[str] = field(default_factory=list)
    statuses: list[int | None] = field(default_factory=list)
    error: str = ""
    established: threading.Event = field(default_factory=threading.Event)
    done: threading.Event = field(default_factory=threading.Event)
    stop: threading.Event = field(default_factory=threading.Event)
    max_instances: int = 100000

    def start(self) -> "BackgroundStorer":
        threading.Thread(target=self._run, daemon=True).start()
        return self

    def _run(self):
        try:
            ae = scu_ae("CRASHSCU", contexts=[(CT_IMAGE_STORAGE, [EXPLICIT_LE])])
            ae.dimse_timeout = 10
            ae.network_timeout = 10
            assoc = ae.associate("127.0.0.1", self.port, ae_title=self.called)
            if not assoc.is_established:
                self.error = "association not established"
                return
            self.established.set()
            from pydicom.uid import generate_uid

            study = generate_uid()
            series = generate_uid()
            n = 0
            while not self.stop.is_set() and n < self.max_instances and assoc.is_established:
                ds = fresh_ct(study, series)
                self.sent.append(str(ds.SOPInstanceUID))
                try:
                    st = assoc.send_c_store(ds)
                except Exception as e:  # noqa: BLE001 - connection torn down mid-send
                    self.error = repr(e)
                    break
                code = int(st.Status) if st is not None and "Status" in st else None
                self.statuses.append(code)
                if code == 0x0000:
                    self.acked.append(str(ds.SOPInstanceUID))
                elif code is None:
                    break
                n += 1
            if assoc.is_established:
                assoc.release()
        finally:
            self.established.set()
            self.done.set()


# --------------------------------------------------------------------------
# sending files and checking what got stored
# --------------------------------------------------------------------------


def send_with_storescu(port: int, called: str, calling: str, files: list[CorpusFile], workdir: Path):
    """Send files with DCMTK storescu, each in its own transfer syntax, in list order.

    Consecutive files with the same transfer syntax share one association (one
    storescu call, `-nh` so a failure does not stop the rest).  Returns
    (ok_paths, failures) where failures maps a path to storescu's log for it.
    """
    groups: dict[str, set[str]] = {}
    for f in files:
        groups.setdefault(f.ts, set()).add(f.sop_class)
    cfg = workdir / "storescu-profiles.cfg"
    profiles = storescu_config(cfg, groups)
    runs: list[list[CorpusFile]] = []
    for f in files:
        if runs and runs[-1][0].ts == f.ts:
            runs[-1].append(f)
        else:
            runs.append([f])
    ok: set[Path] = set()
    failures: dict[Path, str] = {}
    for run in runs:
        r = storescu(port, [f.path for f in run], called=called, calling=calling, cfg=cfg,
                     profile=profiles[run[0].ts], extra=["-v", "-nh"], timeout=300)
        log = r.stdout + r.stderr
        chunks = log.split("I: Sending file: ")
        seen: dict[str, str] = {}
        for ch in chunks[1:]:
            fname, _, rest = ch.partition("\n")
            seen[fname.strip()] = rest
        for f in run:
            chunk = seen.get(str(f.path))
            if chunk is None:
                failures[f.path] = f"storescu never sent it (exit {r.returncode}):\n{log[-3000:]}"
            elif "Received Store Response (Success)" in chunk:
                ok.add(f.path)
            else:
                failures[f.path] = "\n".join(ln for ln in chunk.splitlines() if not ln.startswith(("XMIT", "I:   ")))[:1500]
    return ok, failures


def check_stored(data: Path, entry: ListEntry, *, ts: str, calling_ae: str, original=None,
                 compressed: bool = False) -> tuple[list[str], object]:
    """Check one indexed instance's file against the contract.

    Returns (problems, stored pydicom Dataset or None).  With `original` (a
    pydicom Dataset), the stored dataset must equal it element by element.
    With `compressed` (the server was idle long enough), native syntaxes must be .zst.
    """
    problems: list[str] = []
    m = REL_PATH_RE.match(entry.path)
    if not m:
        return [f"relative path {entry.path!r} does not match archive/<xx>/<study>/<series>/<sop>.dcm[.zst]"], None
    if (m["study"], m["series"], m["sop"]) != (entry.study, entry.series, entry.sop):
        problems.append(f"path {entry.path!r} does not match the UIDs listed for it")
    if entry.ts in NATIVE_TS and not m["zst"] and compressed:
        problems.append(f"native transfer syntax {entry.ts} stored without .zst after idle: {entry.path}")
    if (entry.ts in ENCAPSULATED_TS or entry.ts == DEFLATED_LE) and m["zst"]:
        # deflated counts as a compressed syntax: stored as received, like JPEG & co.
        problems.append(f"compressed transfer syntax {entry.ts} stored as .zst: {entry.path}")
    if entry.ts != ts:
        problems.append(f"listed transfer syntax {entry.ts}, sent {ts}")
    p = data / entry.path
    if not p.is_file():
        return problems + [f"file {p} missing"], None
    if m["zst"]:
        n = zstd_frames(p)
        if n != 1:
            problems.append(f"{entry.path}: {n} zstd frames, contract says one")
    buf = read_stored_bytes(data, entry.path)
    try:
        meta_bytes, _ds_bytes = split_part10(buf)
    except AssertionError as e:
        return problems + [f"{entry.path}: {e}"], None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            stored = read_part10(buf)
        except Exception as e:  # noqa: BLE001
            return problems + [f"{entry.path}: pydicom cannot read the stored file: {e!r}"], None
        fm = stored.file_meta
        if str(fm.get("TransferSyntaxUID", "")) != ts:
            problems.append(f"(0002,0010) is {fm.get('TransferSyntaxUID')!r}, sent as {ts}")
        src = str(fm.get("SourceApplicationEntityTitle", "")).strip()
        if src != calling_ae:
            problems.append(f"(0002,0016) Source AE is {src!r}, calling AE was {calling_ae!r}")
        if str(fm.get("MediaStorageSOPInstanceUID", "")) != entry.sop:
            problems.append(f"(0002,0003) is {fm.get('MediaStorageSOPInstanceUID')!r}, expected {entry.sop}")
        if str(stored.get("SOPInstanceUID", "")) != entry.sop:
            problems.append(f"stored dataset's SOP Instance UID is {stored.get('SOPInstanceUID')!r}")
        if original is not None:
            d = dataset_diffs(original, stored)
            if d:
                problems.append("dataset differs from what was sent:\n    " + "\n    ".join(d))
    return problems, stored


@contextlib.contextmanager
def raw_file_sending():
    """Make pynetdicom send a file path's dataset bytes verbatim (no decode/re-encode)."""
    from pynetdicom import _config

    old = _config.STORE_SEND_CHUNKED_DATASET
    _config.STORE_SEND_CHUNKED_DATASET = True
    try:
        yield
    finally:
        _config.STORE_SEND_CHUNKED_DATASET = old


def file_meta_of(path: Path):
    from pynetdicom.dsutils import split_dataset

    meta, _off = split_dataset(path)
    return meta


def send_files_raw(port: int, called: str, calling: str, paths: list[Path]) -> dict[Path, int | None]:
    """Send Part-10 files' dataset bytes verbatim with pynetdicom; {path: status}."""
    ctxs: dict[str, set[str]] = {}
    for p in paths:
        fm = file_meta_of(p)
        ctxs.setdefault(str(fm.MediaStorageSOPClassUID), set()).add(str(fm.TransferSyntaxUID))
    ae = scu_ae(calling)
    for sop, tss in ctxs.items():
        for ts in sorted(tss):  # one context per (class, syntax): no choice left to the SCP
            ae.add_requested_context(sop, [ts])
    out: dict[Path, int | None] = {}
    with raw_file_sending(), associated(ae, port, called) as assoc:
        for p in paths:
            st = assoc.send_c_store(p)
            out[p] = int(st.Status) if st is not None and "Status" in st else None
    return out


def write_part10(path: Path, *, sop_class: str, sop_instance: str, ts: str, dataset_bytes: bytes) -> Path:
    """Write a Part-10 file with the given file meta and arbitrary (possibly broken) dataset bytes."""
    import io

    from pydicom.filewriter import write_file_meta_info
    from pynetdicom.dsutils import create_file_meta

    meta = create_file_meta(sop_class_uid=sop_class, sop_instance_uid=sop_instance, transfer_syntax=ts)
    buf = io.BytesIO()
    buf.write(b"\x00" * 128 + b"DICM")
    write_file_meta_info(buf, meta, enforce_standard=True)
    buf.write(dataset_bytes)
    path.write_bytes(buf.getvalue())
    return path


def encode_dataset(ds, ts: str = EXPLICIT_LE) -> bytes:
    from pydicom.uid import UID
    from pynetdicom.dsutils import encode

    u = UID(ts)
    b = encode(ds, u.is_implicit_VR, u.is_little_endian)
    assert b is not None, "pynetdicom could not encode the dataset"
    return b


def write_dataset_file(path: Path, ds, ts: str = EXPLICIT_LE) -> Path:
    return write_part10(path, sop_class=str(ds.SOPClassUID), sop_instance=str(ds.SOPInstanceUID), ts=ts,
                        dataset_bytes=encode_dataset(ds, ts))


# --------------------------------------------------------------------------
# Query/Retrieve (C-FIND / C-MOVE / C-GET): constants, a synthetic corpus,
# DCMTK findscu/movescu/getscu/storescp and pynetdicom SCU/SCP helpers
# --------------------------------------------------------------------------

FINDSCU = "/usr/bin/findscu"
MOVESCU = "/usr/bin/movescu"
GETSCU = "/usr/bin/getscu"
STORESCP = "/usr/bin/storescp"

PATIENT_ROOT_FIND = "1.2.840.10008.5.1.4.1.2.1.1"
PATIENT_ROOT_MOVE = "1.2.840.10008.5.1.4.1.2.1.2"
PATIENT_ROOT_GET = "1.2.840.10008.5.1.4.1.2.1.3"
STUDY_ROOT_FIND = "1.2.840.10008.5.1.4.1.2.2.1"
STUDY_ROOT_MOVE = "1.2.840.10008.5.1.4.1.2.2.2"
STUDY_ROOT_GET = "1.2.840.10008.5.1.4.1.2.2.3"
QR_MODELS = (PATIENT_ROOT_FIND, PATIENT_ROOT_MOVE, PATIENT_ROOT_GET, STUDY_ROOT_FIND, STUDY_ROOT_MOVE, STUDY_ROOT_GET)

MR_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.4"
SC_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.7"

STATUS_SUCCESS = 0x0000
STATUS_CANCEL = 0xFE00
STATUS_PENDING = (0xFF00, 0xFF01)
STATUS_SUBOPS_FAILED = 0xB000
STATUS_MOVE_DEST_UNKNOWN = 0xA801


def status_code(st) -> int | None:
    return int(st.Status) if st is not None and "Status" in st else None


# -- the synthetic Q/R corpus ----------------------------------------------

@dataclass(frozen=True)
class SynthStudy:
    key: str
    patient_id: str
    patient_name: str
    birth_date: str
    sex: str
    date: str
    time: str
    accession: str
    description: str
    # (series number, modality, SOP class, number of instances)
    series: tuple[tuple[int, str, str, int], ...]


# 4 studies x 2 series, 20 instances, 3 patients.  Values chosen for the
# matching tests: DOE^JOHN / DOE^JANE share a prefix, KIM^MINSU for
# case-insensitive `kim*`, dates on both sides of 2024-01-01 and on the
# boundary 20240131, one MR series (own SOP class) for SOPClassesInStudy.
QR_SYNTH_STUDIES = (
    SynthStudy("S1", "QR-P1", "DOE^JOHN", "19700101", "M", "20240105", "083000", "ACC-1001", "CHEST CT",
               ((1, "CT", CT_IMAGE_STORAGE, 3), (2, "CT", CT_IMAGE_STORAGE, 2))),
    SynthStudy("S2", "QR-P1", "DOE^JOHN", "19700101", "M", "20240220", "101500", "ACC-1002", "HEAD",
               ((1, "CT", CT_IMAGE_STORAGE, 3), (2, "MR", MR_IMAGE_STORAGE, 2))),
    SynthStudy("S3", "QR-P2", "KIM^MINSU", "19851224", "M", "20231215", "140000", "ACC-2001", "ABDOMEN",
               ((1, "CT", CT_IMAGE_STORAGE, 2), (2, "PT", CT_IMAGE_STORAGE, 3))),
    SynthStudy("S4", "QR-P3", "DOE^JANE", "19900315", "F", "20240131", "093000", "ACC-3001", "SPINE",
               ((1, "CT", CT_IMAGE_STORAGE, 3), (2, "OT", CT_IMAGE_STORAGE, 2))),
)


@dataclass
class SynthCorpus:
    datasets: list  # pydicom Datasets, in send order
    study_uid: dict[str, str]  # study key -> Study Instance UID
    series_uid: dict[tuple[str, int], str]  # (study key, series number) -> Series Instance UID
    sops: dict[tuple[str, int], list[str]]  # (study key, series number) -> SOP Instance UIDs


def qr_synthetic_corpus(studies: Iterable[SynthStudy] = QR_SYNTH_STUDIES) -> SynthCorpus:
    """Copies of CT_small.dcm with fresh UIDs and the patient/study/series values of `studies`."""
    from pydicom.uid import generate_uid

    out = SynthCorpus([], {}, {}, {})
    for st in studies:
        study_uid = generate_uid()
        out.study_uid[st.key] = study_uid
        for series_no, modality, sop_class, n in st.series:
            series_uid = generate_uid()
            out.series_uid[(st.key, series_no)] = series_uid
            out.sops[(st.key, series_no)] = []
            for i in range(1, n + 1):
                ds = fresh_ct(study_uid, series_uid, patient=st.patient_name)
                ds.PatientID = st.patient_id
                ds.PatientBirthDate = st.birth_date
                ds.PatientSex = st.sex
                ds.StudyDate = st.date
                ds.StudyTime = st.time
                ds.AccessionNumber = st.accession
                ds.StudyDescription = st.description
                ds.StudyID = st.key
                ds.SeriesNumber = series_no
                ds.Modality = modality
                ds.SeriesDescription = f"{st.description} {modality} {series_no}"
                ds.InstanceNumber = i
                ds.SOPClassUID = sop_class
                ds.file_meta.MediaStorageSOPClassUID = sop_class
                out.datasets.append(ds)
                out.sops[(st.key, series_no)].append(str(ds.SOPInstanceUID))
    return out


def store_datasets(port: int, called: str, calling: str, datasets: list, ts: str = EXPLICIT_LE) -> dict[str, int | None]:
    """C-STORE pydicom Datasets with pynetdicom in transfer syntax `ts`; {sop_uid: status}."""
    ae = scu_ae(calling)
    for sop in sorted({str(ds.SOPClassUID) for ds in datasets}):
        ae.add_requested_context(sop, [ts])
    out: dict[str, int | None] = {}
    with associated(ae, port, called) as assoc:
        for ds in datasets:
            if ts != EXPLICIT_LE:
                # pynetdicom refuses a dataset read in another encoding than the context's;
                # re-encode through bytes (marking it as implicit would reuse raw explicit bytes)
                ds = reencoded(ds, ts)
            ds.file_meta.TransferSyntaxUID = ts
            out[str(ds.SOPInstanceUID)] = c_store_status(assoc, ds)
    return out


def reencoded(ds, ts: str):
    """The dataset as pydicom reads it back after encoding it in transfer syntax `ts`."""
    import io

    from pydicom.filewriter import write_file_meta_info
    from pynetdicom.dsutils import create_file_meta

    meta = create_file_meta(sop_class_uid=str(ds.SOPClassUID), sop_instance_uid=str(ds.SOPInstanceUID),
                            transfer_syntax=ts)
    buf = io.BytesIO()
    buf.write(b"\x00" * 128 + b"DICM")
    write_file_meta_info(buf, meta, enforce_standard=True)
    buf.write(encode_dataset(ds, ts))
    return read_part10(buf.getvalue())


def tiny_instance(study: str, series: str, n: int, *, patient: str = "MANY^MATCHES", pid: str = "MANY-1"):
    """A pixel-less Secondary Capture instance (fast to store in bulk)."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import generate_uid

    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = EXPLICIT_LE
    ds.SOPClassUID = SC_IMAGE_STORAGE
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPClassUID = SC_IMAGE_STORAGE
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.StudyInstanceUID = study
    ds.SeriesInstanceUID = series
    ds.PatientName = patient
    ds.PatientID = pid
    ds.StudyDate = "20240301"
    ds.Modality = "OT"
    ds.SeriesNumber = 1
    ds.InstanceNumber = n
    return ds


def store_parallel(port: int, called: str, datasets: list, workers: int = 8) -> list[str]:
    """Store datasets (explicit VR LE) over `workers` simultaneous associations.

    Returns problems (empty = every C-STORE answered 0x0000); a C-STORE left unanswered is
    reported with its SOP Instance UID and how long the SCU waited before giving up.
    """
    problems: list[str] = []
    chunks = [datasets[i::workers] for i in range(workers)]

    def run(k, chunk):
        try:
            ae = scu_ae(f"BULKSCU{k}")
            for sop in sorted({str(ds.SOPClassUID) for ds in chunk}):
                ae.add_requested_context(sop, [EXPLICIT_LE])
            with associated(ae, port, called) as assoc:
                for i, ds in enumerate(chunk):
                    t0 = time.monotonic()
                    code = c_store_status(assoc, ds)
                    if code != 0:
                        problems.append(
                            f"association {k}, C-STORE #{i + 1} of {len(chunk)} ({ds.SOPInstanceUID}): status "
                            f"{'none (no response)' if code is None else hex(code)} after {time.monotonic() - t0:.1f}s")
                        if code is None:
                            return
        except Exception as e:  # noqa: BLE001
            problems.append(f"association {k}: {e!r}")

    threads = [threading.Thread(target=run, args=(k, c)) for k, c in enumerate(chunks) if c]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return problems


@dataclass
class QrReference:
    """Reference model of what was stored: patient -> study -> series -> instances."""

    datasets: dict[str, object] = field(default_factory=dict)  # sop uid -> Dataset

    def add(self, ds):
        self.datasets[str(ds.SOPInstanceUID)] = ds

    def _where(self, **kw):
        for ds in self.datasets.values():
            if all(str(ds.get(k, "")) == v for k, v in kw.items()):
                yield ds

    def studies_of_patient(self, pid: str) -> set[str]:
        return {str(d.StudyInstanceUID) for d in self._where(PatientID=pid)}

    def series_of_patient(self, pid: str) -> set[str]:
        return {str(d.SeriesInstanceUID) for d in self._where(PatientID=pid)}

    def instances_of_patient(self, pid: str) -> set[str]:
        return {str(d.SOPInstanceUID) for d in self._where(PatientID=pid)}

    def series_of_study(self, study: str) -> set[str]:
        return {str(d.SeriesInstanceUID) for d in self._where(StudyInstanceUID=study)}

    def instances_of_study(self, study: str) -> set[str]:
        return {str(d.SOPInstanceUID) for d in self._where(StudyInstanceUID=study)}

    def instances_of_series(self, series: str) -> set[str]:
        return {str(d.SOPInstanceUID) for d in self._where(SeriesInstanceUID=series)}

    def modalities_of_study(self, study: str) -> set[str]:
        return {str(d.Modality) for d in self._where(StudyInstanceUID=study) if d.get("Modality")}

    def sop_classes_of_study(self, study: str) -> set[str]:
        return {str(d.SOPClassUID) for d in self._where(StudyInstanceUID=study)}

    def all_studies(self) -> set[str]:
        return {str(d.StudyInstanceUID) for d in self.datasets.values()}

    def all_patients(self) -> set[str]:
        return {str(d.PatientID) for d in self.datasets.values()}


# -- C-FIND ----------------------------------------------------------------

def query(level: str, **keys):
    """A C-FIND identifier: QueryRetrieveLevel plus keyword=value (None -> empty = universal)."""
    from pydicom.dataset import Dataset

    ds = Dataset()
    ds.QueryRetrieveLevel = level
    for k, v in keys.items():
        setattr(ds, k, "" if v is None else v)
    return ds


@dataclass
class FindResult:
    identifiers: list
    final: object  # the final status Dataset (None if none arrived)
    codes: list[int]  # every response's status, in order of arrival (pendings and the final one)

    @property
    def status(self) -> int | None:
        return status_code(self.final)

    def values(self, keyword: str) -> list[str]:
        return [str(i.get(keyword, "")) for i in self.identifiers]

    def describe(self) -> str:
        rows = []
        for i in self.identifiers[:30]:
            rows.append("  " + "; ".join(f"{e.keyword or e.tag}={e.value!r}" for e in i))
        fin = "none" if self.final is None else f"0x{self.status:04X} {status_comment(self.final)!r}"
        return f"final status {fin}, {len(self.identifiers)} matches:\n" + "\n".join(rows)


def c_find(assoc, ident, model: str = STUDY_ROOT_FIND, msg_id: int = 1) -> FindResult:
    res = FindResult([], None, [])
    for st, found in assoc.send_c_find(ident, model, msg_id=msg_id):
        code = status_code(st)
        res.codes.append(code)
        if code in STATUS_PENDING:
            res.identifiers.append(found)
        else:
            res.final = st
    return res


def find_ae(calling: str = "FINDSCU"):
    return scu_ae(calling, contexts=[(PATIENT_ROOT_FIND, [EXPLICIT_LE, IMPLICIT_LE]),
                                     (STUDY_ROOT_FIND, [EXPLICIT_LE, IMPLICIT_LE])])


def identifier_key_problems(ident, request) -> list[str]:
    """An identifier must hold exactly the requested keys, plus (0008,0052) and, optionally, (0008,0005)."""
    want = {t for t in request.keys()} | {0x00080052}
    got = set(ident.keys())
    problems = []
    extra = got - want - {0x00080005}
    missing = want - got
    if extra:
        problems.append(f"keys not requested: {sorted(str(pydicom_tag(t)) for t in extra)}")
    if missing:
        problems.append(f"requested keys missing: {sorted(str(pydicom_tag(t)) for t in missing)}")
    if str(ident.get("QueryRetrieveLevel", "")) != str(request.QueryRetrieveLevel):
        problems.append(f"QueryRetrieveLevel {ident.get('QueryRetrieveLevel')!r} != {request.QueryRetrieveLevel!r}")
    non_ascii = any(e.VR in ("PN", "LO", "SH", "LT", "ST", "UT", "UC") and not str(e.value).isascii()
                    for e in ident if e.tag != 0x00080005)
    if non_ascii:
        cs = ident.get("SpecificCharacterSet")
        cs = [cs] if isinstance(cs, str) else list(cs or [])
        if [c.strip() for c in cs] != ["ISO_IR 192"]:
            problems.append(f"non-ASCII values returned with SpecificCharacterSet {cs!r}, contract says ISO_IR 192")
    return problems


def pydicom_tag(t):
    from pydicom.tag import Tag

    return Tag(t)


def findscu(port: int, called: str, keys: list[str], outdir: Path, *, model: str = "-S",
            calling: str = "FINDSCU", extra: Iterable[str] = (), timeout: float = 60):
    """Run DCMTK findscu with `-X` (responses to rsp0001.dcm...); returns (CompletedProcess, [Dataset])."""
    import pydicom

    outdir.mkdir(parents=True, exist_ok=True)
    cmd = [FINDSCU, "-v", model, "-aet", calling, "-aec", called, "-to", "10", "-ta", "10", "-td", "30",
           "-X", "-od", str(outdir)]
    for k in keys:
        cmd += ["-k", k]
    cmd += [*extra, "127.0.0.1", str(port)]
    p = subprocess.run(cmd, capture_output=True, text=True, errors="replace", env=DCMTK_ENV, timeout=timeout)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        found = [pydicom.dcmread(f) for f in sorted(outdir.glob("rsp*.dcm"))]
    return p, found


# -- retrieve: destinations --------------------------------------------------

def write_peers_config(path: Path, peers: dict[str, int], host: str = "127.0.0.1") -> Path:
    """TOML for `pacsbox serve --config`: one [[peers]] table per {ae_title: port}."""
    lines = []
    for ae, port in peers.items():
        lines += ["[[peers]]", f'ae_title = "{ae}"', f'host = "{host}"', f"port = {port}", ""]
    path.write_text("\n".join(lines))
    return path


class StoreScp:
    """DCMTK storescp on a given port, writing what it receives under `outdir`."""

    def __init__(self, port: int, outdir: Path, ae: str = "DEST", extra: Iterable[str] = ()):
        self.port, self.outdir, self.ae = port, outdir, ae
        self.extra = list(extra)
        self.proc: subprocess.Popen | None = None
        self.log = outdir.parent / f"storescp-{port}.log"

    def __enter__(self):
        self.outdir.mkdir(parents=True, exist_ok=True)
        cmd = [STORESCP, "-v", "-aet", self.ae, "-od", str(self.outdir), *self.extra, str(self.port)]
        self._logf = open(self.log, "wb")
        self.proc = subprocess.Popen(cmd, stdout=self._logf, stderr=subprocess.STDOUT, env=DCMTK_ENV)

        def up():
            if self.proc.poll() is not None:
                raise AssertionError(f"storescp exited {self.proc.returncode}:\n{tail(self.log)}")
            return echoscu(self.port, called=self.ae, timeout=5).returncode == 0

        wait_until(up, 15, "storescp to answer C-ECHO", interval=0.1)
        return self

    def __exit__(self, *exc):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._logf.close()

    def log_text(self) -> str:
        return tail(self.log)


def read_received(d: Path) -> dict[str, object]:
    """Every DICOM file under d, {SOP Instance UID: Dataset (with file_meta)}."""
    import pydicom

    out = {}
    for p in dir_files(d):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                ds = pydicom.dcmread(p)
            except Exception:  # noqa: BLE001 - not a DICOM file
                continue
        out[str(ds.SOPInstanceUID)] = ds
    return out


class PyStoreScp:
    """A pynetdicom Storage SCP (C-STORE + C-ECHO) in this process.

    `transfer_syntaxes`: what it accepts for every storage SOP class.
    `fail_sops`: SOP Instance UIDs it answers with 0xA700 instead of storing.
    `received`: {sop uid: (Dataset, transfer syntax of the context)}.
    """

    def __init__(self, port: int, ae: str = "PYDEST", transfer_syntaxes: Iterable[str] = (EXPLICIT_LE,),
                 fail_sops: Iterable[str] = ()):
        self.port, self.ae_title = port, ae
        self.tss = list(transfer_syntaxes)
        self.fail_sops = set(fail_sops)
        self.received: dict[str, tuple[object, str]] = {}
        self.failed_here: list[str] = []
        self.server = None

    def _on_store(self, event):
        ds = event.dataset
        ds.file_meta = event.file_meta
        uid = str(ds.SOPInstanceUID)
        if uid in self.fail_sops:
            self.failed_here.append(uid)
            return 0xA700
        self.received[uid] = (ds, str(event.context.transfer_syntax))
        return 0x0000

    def __enter__(self):
        from pynetdicom import AE, AllStoragePresentationContexts, evt

        ae = AE(self.ae_title)
        ae.maximum_associations = 4
        for cx in AllStoragePresentationContexts:
            ae.add_supported_context(cx.abstract_syntax, self.tss)
        ae.add_supported_context(VERIFICATION, [IMPLICIT_LE, EXPLICIT_LE])
        self.server = ae.start_server(("127.0.0.1", self.port), block=False,
                                      evt_handlers=[(evt.EVT_C_STORE, self._on_store)])
        return self

    def __exit__(self, *exc):
        if self.server is not None:
            self.server.shutdown()


@dataclass
class RetrieveResult:
    responses: list  # every response status Dataset, in order

    @property
    def final(self):
        return self.responses[-1] if self.responses else None

    @property
    def status(self) -> int | None:
        return status_code(self.final)

    @property
    def pendings(self) -> list:
        return [r for r in self.responses[:-1] if status_code(r) in STATUS_PENDING]

    def count(self, what: str) -> int | None:
        v = self.final.get(f"NumberOf{what}Suboperations") if self.final is not None else None
        return None if v is None else int(v)

    def describe(self) -> str:
        rows = []
        for r in self.responses[-6:]:
            rows.append(
                f"  0x{status_code(r) or 0:04X} remaining={r.get('NumberOfRemainingSuboperations')} "
                f"completed={r.get('NumberOfCompletedSuboperations')} failed={r.get('NumberOfFailedSuboperations')} "
                f"warning={r.get('NumberOfWarningSuboperations')} comment={status_comment(r)!r}"
            )
        return f"{len(self.responses)} responses (last ones):\n" + "\n".join(rows)


def c_move(assoc, ident, dest: str, model: str = STUDY_ROOT_MOVE) -> tuple[RetrieveResult, object]:
    """send_c_move; returns (responses, the final response's identifier, e.g. Failed SOP Instance UID List)."""
    res = RetrieveResult([])
    last_ident = None
    for st, found in assoc.send_c_move(ident, dest, model):
        if st is None or "Status" not in st:
            break
        res.responses.append(st)
        last_ident = found
    return res, last_ident


def get_ae(calling: str, storage_classes: Iterable[str], tss: Iterable[str] = (EXPLICIT_LE, IMPLICIT_LE)):
    """An SCU proposing Patient/Study Root GET plus storage contexts with SCP role (role selection)."""
    from pynetdicom import build_role

    ae = scu_ae(calling, contexts=[(PATIENT_ROOT_GET, [EXPLICIT_LE, IMPLICIT_LE]),
                                   (STUDY_ROOT_GET, [EXPLICIT_LE, IMPLICIT_LE])])
    roles = []
    for sc in storage_classes:
        ae.add_requested_context(sc, list(tss))
        roles.append(build_role(sc, scp_role=True))
    return ae, roles


def failed_uid_list(ident) -> list[str]:
    """(0008,0058) Failed SOP Instance UID List of a C-MOVE/C-GET final response identifier."""
    if ident is None or "FailedSOPInstanceUIDList" not in ident:
        return []
    v = ident.FailedSOPInstanceUIDList
    return [str(v)] if isinstance(v, str) else [str(x) for x in v]

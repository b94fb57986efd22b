#!/usr/bin/env python3
"""Forwarding benchmark: pacsbox forwarding a corpus to Orthanc vs DCMTK storescu sending the
same files to Orthanc directly, in one run on loopback; and the delay from "pacsbox answered the
C-STORE" to "Orthanc has the instance".

  python3 forward.py --bin $BENCH_ROOT/bin/pacsbox --corpus $BENCH_ROOT/corpus/small2k [--runs 3]

Per run (fresh Orthanc storage each phase):
  direct   /usr/bin/storescu +sd +r CORPUS -> Orthanc; instances / wall time
  forward  the corpus stored into pacsbox while Orthanc is down (jobs queue), Orthanc started,
           then the queue drains: instances / time from Orthanc's first to its last instance
           (so pacsbox's retry backoff, capped at 1 s here, is not counted)
  --queue-rss: instead, the corpus stored into pacsbox with the peer down; pacsbox's RSS (VmRSS,
           kB) before storing, once every job is queued, and after 20 s of retries against the
           absent peer (the queue is streamed from redb, not held in memory)
  delay    DELAY_SAMPLES single instances through pacsbox (one association, one at a time,
           0.1 s apart) with Orthanc up: C-STORE response -> Orthanc's REST finds the SOP UID
           (polled every 5 ms); median and p99
Prints one TSV line per run and phase. Everything on 127.0.0.1; state under $BENCH_ROOT/run/.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

BENCH_ROOT = Path(os.environ.get("BENCH_ROOT", "/var/tmp/pacsbench"))
ENV = dict(os.environ, TCP_NODELAY="1")  # DCMTK's Nagle trap (README)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait(pred, timeout: float, what: str, interval: float = 0.05):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            v = pred()
            if v:
                return v
        except Exception:  # noqa: BLE001 - polling
            pass
        time.sleep(interval)
    raise TimeoutError(what)


class Orthanc:
    def __init__(self, root: Path):
        self.root, self.dicom, self.http = root, free_port(), free_port()
        self.proc = None

    def start(self):
        if self.root.exists():
            shutil.rmtree(self.root)
        self.root.mkdir(parents=True)
        cfg = self.root / "orthanc.json"
        cfg.write_text(json.dumps({
            "Name": "bench", "StorageDirectory": str(self.root / "s"), "IndexDirectory": str(self.root / "s"),
            "Plugins": [], "HttpPort": self.http, "RemoteAccessAllowed": False, "AuthenticationEnabled": False,
            "DicomAet": "ORTHANC", "DicomPort": self.dicom, "DicomCheckCalledAet": False,
            "DicomAlwaysAllowStore": True, "DicomAlwaysAllowEcho": True, "StorageCompression": False,
            "SyncStorageArea": True, "DicomThreadsCount": 4,
        }))
        self.proc = subprocess.Popen(["Orthanc", str(cfg)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     env=ENV)
        wait(lambda: self.count() >= 0, 60, "orthanc up")
        return self

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(30)

    def rest(self, path: str, body: bytes | None = None):
        req = urllib.request.Request(f"http://127.0.0.1:{self.http}{path}", data=body)
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.loads(r.read())

    def count(self) -> int:
        return int(self.rest("/statistics")["CountInstances"])

    def has(self, sop: str) -> bool:
        return bool(self.rest("/tools/lookup", sop.encode()))


class Pacsbox:
    def __init__(self, binary: Path, root: Path, orthanc: Orthanc, rule: bool = True):
        self.binary, self.root = binary, root
        self.dicom, self.http = free_port(), free_port()
        if root.exists():
            shutil.rmtree(root)
        root.mkdir(parents=True)
        self.cfg = root / "pacsbox.toml"
        self.cfg.write_text(
            f'[[peers]]\nae_title = "ORTHANC"\nhost = "127.0.0.1"\nport = {orthanc.dicom}\nrights = "none"\n'
            + ('[[forward]]\nname = "all"\nto = ["ORTHANC"]\n[forwarding]\nmax_backoff_s = 1\n' if rule else ""))
        self.proc = subprocess.Popen(
            [str(binary), "serve", "--config", str(self.cfg), "--data", str(root / "data"), "--bind", "127.0.0.1",
             "--dicom-port", str(self.dicom), "--http-port", str(self.http), "--https-port", "0",
             "--dicom-tls-port", "0", "--reserve-mb", "1"],
            stdout=subprocess.DEVNULL, stderr=open(root / "log", "wb"), env=ENV)
        wait(lambda: self.status(), 30, "pacsbox up")

    def status(self) -> dict:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.http}/status.json", timeout=5) as r:
            return json.loads(r.read())

    def pending(self) -> int:
        return sum(q["pending"] for q in self.status()["forwarding"])

    def stop(self):
        self.proc.terminate()
        self.proc.wait(60)


def storescu(port: int, called: str, corpus: Path) -> float:
    t = time.monotonic()
    studies = sorted(str(d) for d in corpus.iterdir() if d.is_dir())  # not manifest.tsv
    subprocess.run(["/usr/bin/storescu", "-aec", called, "-aet", "BENCHSCU", "+sd", "+r", "-nh", "-q",
                    "127.0.0.1", str(port), *studies], check=True, env=ENV)
    return time.monotonic() - t


def files_of(corpus: Path) -> list[Path]:
    return sorted(p for p in corpus.rglob("*.dcm"))


def run_once(args, n: int, run: int) -> None:
    o = Orthanc(BENCH_ROOT / "run" / "fwd-orthanc")
    # direct
    o.start()
    dt = storescu(o.dicom, "ORTHANC", args.corpus)
    assert o.count() == n, f"direct: orthanc has {o.count()} of {n}"
    o.stop()
    print(f"{run}\tdirect\t{n}\t{dt:.2f}\t{n / dt:.1f}", flush=True)
    # forward: queue with Orthanc down, then drain
    p = Pacsbox(args.bin, BENCH_ROOT / "run" / "fwd-pacsbox", o)
    storescu(p.dicom, "PACSBOX", args.corpus)
    wait(lambda: p.pending() == n, 120, "all routed")
    o.start()
    wait(lambda: o.count() > 0, 120, "first forwarded", interval=0.01)
    t0, c0 = time.monotonic(), o.count()
    wait(lambda: o.count() >= n, 600, "all forwarded", interval=0.02)
    dt = time.monotonic() - t0
    rate = (n - c0) / dt
    print(f"{run}\tforward\t{n}\t{dt:.2f}\t{rate:.1f}", flush=True)
    # delay, Orthanc up
    import pydicom
    from pydicom.uid import generate_uid
    from pynetdicom import AE

    ds = pydicom.dcmread(files_of(args.corpus)[0])
    ae = AE("BENCHSCU")
    ae.add_requested_context(ds.SOPClassUID, [str(ds.file_meta.TransferSyntaxUID)])
    assoc = ae.associate("127.0.0.1", p.dicom, ae_title="PACSBOX")
    delays = []
    for _ in range(args.delay_samples):
        ds.SOPInstanceUID = generate_uid()
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        st = assoc.send_c_store(ds)
        t = time.monotonic()
        assert st and st.Status == 0, st
        wait(lambda: o.has(str(ds.SOPInstanceUID)), 30, "delayed instance", interval=0.005)
        delays.append((time.monotonic() - t) * 1000)
        time.sleep(0.1)
    assoc.release()
    delays.sort()
    p99 = delays[min(len(delays) - 1, int(len(delays) * 0.99))]
    print(f"{run}\tdelay_ms\t{len(delays)}\tmedian {statistics.median(delays):.0f}\tp99 {p99:.0f}", flush=True)
    p.stop()
    o.stop()


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def queue_rss(args, n: int) -> None:
    o = Orthanc(BENCH_ROOT / "run" / "fwd-orthanc")  # never started: the peer is down
    for rule in (False, True):  # the same ingest without forwarding, for comparison
        p = Pacsbox(args.bin, BENCH_ROOT / "run" / "fwd-pacsbox", o, rule=rule)
        idle = rss_kb(p.proc.pid)
        storescu(p.dicom, "PACSBOX", args.corpus)
        wait(lambda: p.pending() == (n if rule else 0) and p.status()["instances"] == n, 600, "stored", 0.5)
        queued = rss_kb(p.proc.pid)
        time.sleep(20)
        later = rss_kb(p.proc.pid)
        print(f"queue_rss\tforwarding={rule}\t{n}\tidle_kb {idle}\tstored_kb {queued}\tafter_20s_kb {later}",
              flush=True)
        p.stop()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", type=Path, default=BENCH_ROOT / "bin" / "pacsbox")
    ap.add_argument("--corpus", type=Path, required=True)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--delay-samples", type=int, default=50)
    ap.add_argument("--queue-rss", action="store_true")
    args = ap.parse_args()
    n = len(files_of(args.corpus))
    if n == 0:
        sys.exit(f"no .dcm files under {args.corpus}")
    if args.queue_rss:
        return queue_rss(args, n)
    print("run\tphase\tinstances\tseconds\tinst_per_s")
    for run in range(1, args.runs + 1):
        run_once(args, n, run)


if __name__ == "__main__":
    main()

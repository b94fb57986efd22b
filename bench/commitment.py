#!/usr/bin/env python3
"""Storage commitment (issue 17): time from N-ACTION-RQ sent to N-EVENT-REPORT received for
one study of N instances (default 2000 small CTs, pydicom's CT_small, 39 KB), pynetdicom as
the requestor on the association that stored them. pacsbox re-reads and hashes every file, so
the figure is mostly disk read + xxh3 of N files; runs twice per repetition: right after the
store (plain `.dcm`, page cache warm) and after compaction to `.dcm.zst` (the stored file is
hashed as it is on disk, compressed; the page cache is left alone: the machine is shared).

Usage: PACSBOX_BIN=target/release/pacsbox bench/commitment.py [--instances 2000] [--reps 3]
Data in $BENCH_ROOT (default /var/tmp/pacsbench)/commitment; prints one line per run and a
summary (median).
"""
from __future__ import annotations

import argparse
import copy
import os
import shutil
import signal
import socket
import statistics
import subprocess
import threading
import time
import urllib.request
from pathlib import Path

from pydicom.data import get_testdata_file
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid
from pynetdicom import AE, evt
from pynetdicom.sop_class import CTImageStorage, StorageCommitmentPushModel

INSTANCE = "1.2.840.10008.1.20.1.1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(binary: str, data: Path) -> tuple[subprocess.Popen, int, int]:
    dicom, http = free_port(), free_port()
    log = open(data.parent / "pacsbox.log", "ab")
    p = subprocess.Popen([binary, "serve", "--data", str(data), "--ae", "PACSBOX", "--bind", "127.0.0.1",
                          "--dicom-port", str(dicom), "--http-port", str(http), "--https-port", "0",
                          "--dicom-tls-port", "0", "--reserve-mb", "1", "--peer", "BENCHSCU:all"],
                         stdout=log, stderr=subprocess.STDOUT)
    for _ in range(300):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{http}/status.json", timeout=1).read()
            return p, dicom, http
        except OSError:
            time.sleep(0.1)
    raise SystemExit("pacsbox did not start")


def one_run(assoc, sops: list[str], got: dict, cond: threading.Condition) -> float:
    tx = generate_uid()
    ds = Dataset()
    ds.TransactionUID = tx
    items = []
    for s in sops:
        i = Dataset()
        i.ReferencedSOPClassUID = CTImageStorage
        i.ReferencedSOPInstanceUID = s
        items.append(i)
    ds.ReferencedSOPSequence = items
    t0 = time.perf_counter()
    st, _ = assoc.send_n_action(ds, 1, StorageCommitmentPushModel, INSTANCE)
    assert st is not None and st.Status == 0, st
    with cond:
        while tx not in got:
            cond.wait(600)
    took = time.perf_counter() - t0
    kind, committed = got[tx]
    assert kind == 1 and committed == len(sops), (kind, committed)
    return took


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--instances", type=int, default=2000)
    ap.add_argument("--reps", type=int, default=3)
    args = ap.parse_args()
    binary = os.environ.get("PACSBOX_BIN", "target/release/pacsbox")
    root = Path(os.environ.get("BENCH_ROOT", "/var/tmp/pacsbench")) / "commitment"
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    proc, port, http = start(binary, root / "data")
    got: dict[str, tuple[int, int]] = {}
    cond = threading.Condition()

    def on_report(event):
        info = event.event_information
        with cond:
            got[str(info.TransactionUID)] = (event.event_type, len(info.get("ReferencedSOPSequence", [])))
            cond.notify_all()
        return 0, None

    ae = AE("BENCHSCU")
    ae.add_requested_context(CTImageStorage, [ExplicitVRLittleEndian])
    ae.add_requested_context(StorageCommitmentPushModel, [ExplicitVRLittleEndian])
    ae.dimse_timeout = 600
    assoc = ae.associate("127.0.0.1", port, ae_title="PACSBOX", evt_handlers=[(evt.EVT_N_EVENT_REPORT, on_report)])
    assert assoc.is_established
    template = dcmread(get_testdata_file("CT_small.dcm"))
    study, series = generate_uid(), generate_uid()
    sops = []
    t0 = time.perf_counter()
    for n in range(args.instances):
        ds = copy.deepcopy(template)
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.InstanceNumber = study, series, n + 1
        st = assoc.send_c_store(ds)
        assert st.Status == 0, st
        sops.append(str(ds.SOPInstanceUID))
    print(f"stored {len(sops)} instances in {time.perf_counter() - t0:.1f} s (not timed below)")
    results: dict[str, list[float]] = {"plain, warm": [], "zst": []}
    for rep in range(args.reps):
        results["plain, warm"].append(one_run(assoc, sops, got, cond))
        print(f"rep {rep + 1} plain/warm: {results['plain, warm'][-1] * 1000:.0f} ms")
    assoc.release()
    # Compaction runs after 2 s without stores; wait until every file is .dcm.zst.
    for _ in range(1200):
        if not list((root / "data" / "archive").rglob("*.dcm")):
            break
        time.sleep(0.5)
    assoc = ae.associate("127.0.0.1", port, ae_title="PACSBOX", evt_handlers=[(evt.EVT_N_EVENT_REPORT, on_report)])
    for rep in range(args.reps):
        results["zst"].append(one_run(assoc, sops, got, cond))
        print(f"rep {rep + 1} zst: {results['zst'][-1] * 1000:.0f} ms")
    assoc.release()
    proc.send_signal(signal.SIGTERM)
    proc.wait(30)
    print(f"\n| files | instances | median N-ACTION → N-EVENT-REPORT | instances/s |\n|---|---|---|---|")
    for k, v in results.items():
        m = statistics.median(v)
        print(f"| {k} | {len(sops)} | {m * 1000:.0f} ms | {len(sops) / m:.0f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

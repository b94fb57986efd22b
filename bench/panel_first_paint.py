#!/usr/bin/env python3
"""How soon `pacsbox serve --panel png:DIR` has drawn every front-panel page, and how soon
/status.json answers, from process start (fresh data folder each run). The figure the panel
test (firmware/pacsbox/tests/panel_png.rs) used to assert as a limit; here it is measured.

    bench/panel_first_paint.py [--bin target/release/pacsbox] [--runs 10] [--refresh-ms 200]
"""
import argparse
import socket
import statistics
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

PAGES = ["identity", "storage", "activity", "alarms", "screen"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def one_run(binary: str, refresh_ms: int) -> tuple[float, float]:
    with tempfile.TemporaryDirectory() as tmp:
        t = Path(tmp)
        (t / "pacsbox.toml").write_text(f'[panel]\nrefresh_ms = {refresh_ms}\n[health]\nsmartctl = ""\n')
        http = free_port()
        t0 = time.monotonic()
        p = subprocess.Popen([binary, "serve", "--bind", "127.0.0.1", "--reserve-mb", "1",
                              "--config", str(t / "pacsbox.toml"), "--data", str(t / "data"),
                              "--dicom-port", str(free_port()), "--http-port", str(http), "--https-port", "0", "--dicom-tls-port", "0",
                              "--panel", f"png:{t / 'panel'}"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        panel_ms = status_ms = None
        try:
            while panel_ms is None or status_ms is None:
                if p.poll() is not None:
                    raise SystemExit(f"pacsbox exited with {p.returncode}")
                if time.monotonic() - t0 > 120:
                    raise SystemExit("nothing after 120 s")
                now = (time.monotonic() - t0) * 1000
                if panel_ms is None and all((t / "panel" / f"{n}.png").exists() for n in PAGES):
                    panel_ms = now
                if status_ms is None:
                    try:
                        urllib.request.urlopen(f"http://127.0.0.1:{http}/status.json", timeout=1).read()
                        status_ms = now
                    except OSError:
                        pass
                time.sleep(0.01)
        finally:
            p.terminate()
            p.wait()
        return panel_ms, status_ms


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", default=str(Path(__file__).resolve().parent.parent / "target/release/pacsbox"))
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--refresh-ms", type=int, default=200)
    a = ap.parse_args()
    runs = [one_run(a.bin, a.refresh_ms) for _ in range(a.runs)]
    panel = [r[0] for r in runs]
    status = [r[1] for r in runs]
    print(f"all {len(PAGES)} panel PNGs written: median {statistics.median(panel):.0f} ms, "
          f"max {max(panel):.0f} ms ({a.runs} runs)")
    print(f"/status.json answers:        median {statistics.median(status):.0f} ms, max {max(status):.0f} ms")


if __name__ == "__main__":
    main()

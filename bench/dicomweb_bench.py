#!/usr/bin/env python3
"""QIDO-RS and WADO-RS timings, pacsbox against Orthanc's DICOMweb plugin, with one client for
both (called by dicomweb.sh).

QIDO: each query RUNS times per server after 3 warm-ups, the servers interleaved request by
request (order swapped every round), one keep-alive `requests` session per server; time = request
sent to the whole JSON body read and parsed. The matched StudyInstanceUID sets must be equal on
both servers (a `limit` query: equal counts). WADO-RS: the whole study as
`multipart/related; type="application/dicom"` by curl (written to /dev/null; MB/s = bytes
received ÷ curl's total time), REPS runs interleaved; before that one Python pass per server
checks the parts: 500 Part-10 instances, the same SOP Instance UIDs on both.

pacsbox needs a token: made here through the account page on a fresh box (first login with the
initial admin password) and kept in --token-file."""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import time
from pathlib import Path

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

QUERIES = [
    ("all studies, limit=100", "/studies?limit=100"),
    ("PatientID (one patient)", "/studies?PatientID={pid}"),
    ("PatientName=DOE*", "/studies?PatientName=DOE*"),
    ("StudyDate=2020 (range)", "/studies?StudyDate=20200101-20201231"),
    ("ModalitiesInStudy=MR", "/studies?ModalitiesInStudy=MR"),
    ("CT in 2020 (modality + range)", "/studies?ModalitiesInStudy=CT&StudyDate=20200101-20201231"),
    ("DOE* + includefield", "/studies?PatientName=DOE*&includefield=StudyDescription,00081030,PatientBirthDate"),
]
STUDY_UID = "0020000D"
SOP_UID = b"\x08\x00\x18\x00UI"


def token(base: str, data: Path, token_file: Path) -> str:
    if token_file.exists():
        return token_file.read_text().strip()
    s = requests.Session()

    def csrf(text: str) -> str:
        m = re.search(r'name="csrf" value="([0-9a-f]+)"', text)
        if not m:
            raise SystemExit("no csrf field in the page")
        return m.group(1)

    initial = (data / "initial-admin-password").read_text().strip()
    page = s.get(base + "/login").text
    r = s.post(base + "/login", data={"user": "admin", "password": initial, "csrf": csrf(page), "next": "/search"},
               allow_redirects=False)
    r.raise_for_status()
    page = s.get(base + "/account/password").text
    s.post(base + "/account/password", data={"csrf": csrf(page), "current": initial, "new": "bench-password-1",
                                             "confirm": "bench-password-1"}, allow_redirects=False).raise_for_status()
    page = s.get(base + "/account/tokens").text
    r = s.post(base + "/account/tokens", data={"csrf": csrf(page), "action": "create", "label": "bench"})
    m = re.search(r'<code id="new-token">([^<]+)</code>', r.text)
    if not m:
        raise SystemExit("no token on the account page")
    token_file.write_text(m.group(1))
    return m.group(1)


def pct(values: list[float], q: float) -> float:
    v = sorted(values)
    return v[min(len(v) - 1, int(round(q * (len(v) - 1))))]


def qido(servers: dict, runs: int, out: Path) -> list[str]:
    rows = ["| query | matches | pacsbox p50 (p95) ms | Orthanc p50 (p95) ms | **Orthanc ÷ pacsbox** (p50) |",
            "|---|---|---|---|---|"]
    print("\n".join(rows), flush=True)
    raw = {}
    # A patient of the corpus (ids are drawn at random): the one of the 500th study.
    sess, root = servers["orthanc"]
    pid = sess.get(root + "/studies?limit=1&offset=500").json()[0]["00100020"]["Value"][0]
    for name, path in QUERIES:
        path = path.format(pid=pid)
        times = {k: [] for k in servers}
        uids = {}
        order = list(servers)
        for i in range(runs + 3):
            for k in order:
                sess, root = servers[k]
                t0 = time.perf_counter()
                r = sess.get(root + path, headers={"Accept": "application/dicom+json"})
                body = r.json() if r.content else []
                dt = time.perf_counter() - t0
                if r.status_code not in (200, 204):
                    raise SystemExit(f"{k} {path}: {r.status_code} {r.text[:200]}")
                if i >= 3:
                    times[k].append(dt * 1e3)
                uids[k] = sorted(d[STUDY_UID]["Value"][0] for d in body)
            order.reverse()
        counts = {k: len(v) for k, v in uids.items()}
        if "limit" in path:
            same = len(set(counts.values())) == 1
        else:
            same = uids["pacsbox"] == uids["orthanc"]
        if not same:
            raise SystemExit(f"{name}: different matches {counts}")
        p, o = times["pacsbox"], times["orthanc"]
        raw[name] = times
        rows.append(f"| {name} | {counts['pacsbox']} | {statistics.median(p):.2f} ({pct(p, .95):.2f}) | "
                    f"{statistics.median(o):.2f} ({pct(o, .95):.2f}) | **{statistics.median(o) / statistics.median(p):.1f}×** |")
        print(rows[-1], flush=True)
    (out / "qido.json").write_text(json.dumps(raw))
    return rows


def check_parts(sess: requests.Session, url: str, accept: str) -> tuple[int, list[str]]:
    r = sess.get(url, headers={"Accept": accept})
    r.raise_for_status()
    m = re.search(r'boundary="?([^";]+)"?', r.headers["Content-Type"])
    if not m:
        raise SystemExit(f"{url}: no boundary in {r.headers['Content-Type']}")
    parts = r.content.split(b"--" + m.group(1).encode())[1:-1]
    sops = []
    for p in parts:
        body = p.split(b"\r\n\r\n", 1)[1]
        if body[128:132] != b"DICM":
            raise SystemExit(f"{url}: a part that is not Part-10")
        i = body.find(SOP_UID, 132 + 200)  # past the file meta's Media Storage SOP Instance UID
        n = int.from_bytes(body[i + 6:i + 8], "little")
        sops.append(body[i + 8:i + 8 + n].rstrip(b"\0 ").decode())
    return len(r.content), sorted(sops)


def wado(servers: dict, auth: dict, study: str, reps: int, out: Path) -> list[str]:
    rows = []
    star = 'multipart/related; type="application/dicom"; transfer-syntax=*'
    for label, accept, coding in [("default (Explicit VR LE)", 'multipart/related; type="application/dicom"', []),
                                  ("transfer-syntax=*", star, []),
                                  # curl then sends Accept-Encoding with zstd and decodes what
                                  # comes back; MB/s counts the decoded bytes.
                                  ("transfer-syntax=*, curl --compressed", star, ["--compressed"])]:
        checked = {}
        for k, (sess, root) in servers.items():
            checked[k] = check_parts(sess, f"{root}/studies/{study}", accept)
        if checked["pacsbox"][1] != checked["orthanc"][1] or len(checked["pacsbox"][1]) != 500:
            raise SystemExit(f"WADO-RS {label}: parts differ: {[len(v[1]) for v in checked.values()]}")
        mbs = {k: [] for k in servers}
        order = list(servers)
        for _ in range(reps):
            for k in order:
                _, root = servers[k]
                hdr = ["-H", f"Accept: {accept}"] + (["-H", auth[k]] if auth.get(k) else [])
                res = subprocess.run(["curl", "-sf", *coding, "-o", "/dev/null", "-w", "%{time_total}", *hdr,
                                      f"{root}/studies/{study}"], capture_output=True, text=True, check=True)
                # The study's decoded size (checked above, equal for both): with --compressed
                # curl's own byte count is what crossed the wire.
                mbs[k].append(checked[k][0] / float(res.stdout) / 1e6)
            order.reverse()
        p, o = mbs["pacsbox"], mbs["orthanc"]
        rows.append(f"| WADO-RS study, {label} | {checked['pacsbox'][0] / 1e6:.1f} / {checked['orthanc'][0] / 1e6:.1f} MB, 500 parts | "
                    f"{statistics.median(p):.0f} ({', '.join(f'{x:.0f}' for x in p)}) | "
                    f"{statistics.median(o):.0f} ({', '.join(f'{x:.0f}' for x in o)}) | "
                    f"**{statistics.median(p) / statistics.median(o):.2f}×** |")
        print(rows[-1], flush=True)
        (out / f"wado-{label.split()[0].strip(',')}{'-zstd' if coding else ''}.json").write_text(json.dumps(mbs))
    return rows


def session() -> requests.Session:
    """A keep-alive session that retries a GET once when the server closed the idle
    connection under it (Orthanc's keep-alive timeout is 1 s): a client artefact."""
    s = requests.Session()
    s.mount("http://", HTTPAdapter(max_retries=Retry(total=1, connect=1, read=1, status=0)))
    return s


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--pacsbox", required=True)
    ap.add_argument("--pacsbox-data", type=Path, required=True)
    ap.add_argument("--orthanc", required=True)
    ap.add_argument("--study", required=True)
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--token-file", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--only", choices=["qido", "wado"])
    a = ap.parse_args()
    tok = token(a.pacsbox, a.pacsbox_data, a.token_file)
    ps = session()
    ps.headers["Authorization"] = f"Bearer {tok}"
    # pacsbox answers every request with `Connection: close` (its guard); say so, so that the
    # session never tries to reuse a closed connection. Orthanc keeps its connections alive.
    ps.headers["Connection"] = "close"
    servers = {"pacsbox": (ps, a.pacsbox + "/dicom-web"), "orthanc": (session(), a.orthanc + "/dicom-web")}
    auth = {"pacsbox": f"Authorization: Bearer {tok}"}
    if a.only != "wado":
        qido(servers, a.runs, a.out)
    if a.only != "qido":
        print("| retrieval | size (pacsbox / Orthanc) | pacsbox MB/s median (runs) | Orthanc MB/s median (runs) | **pacsbox ÷ Orthanc** |")
        print("|---|---|---|---|---|")
        wado(servers, auth, a.study, a.reps, a.out)


if __name__ == "__main__":
    main()

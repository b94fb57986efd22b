#!/usr/bin/env python3
"""Content coding of WADO-RS `/metadata` and `/frames` (issue 18), pacsbox against Orthanc's
DICOMweb plugin in the same run (called by dicomweb_coding.sh).

For one 500-image CT series: the series' `/metadata` and, for its middle instance, `/frames/1`,
each with `Accept-Encoding: identity`, `gzip` and `zstd` (and Orthanc with the same headers: its
answer says what it does). Per server and coding: bytes on the wire (curl's size_download, i.e.
before decoding) and the time curl takes for the whole answer, REPS runs, servers interleaved
(order swapped every round), median reported. Before timing, each answer is decoded in Python
and compared: the same instances in the metadata, the same pixel bytes in the frame."""

from __future__ import annotations

import argparse
import gzip
import json
import statistics
import subprocess
from pathlib import Path

from dicomweb_bench import token

CODINGS = ["identity", "gzip", "zstd"]


def curl(url: str, headers: list[str], out: Path) -> tuple[int, float, dict]:
    hdr = []
    for x in headers:
        hdr += ["-H", x]
    head = out.with_suffix(".head")
    r = subprocess.run(["curl", "-sf", "-o", str(out), "-D", str(head), "-w", "%{size_download} %{time_total}",
                        *hdr, url], capture_output=True, text=True, check=True)
    size, t = r.stdout.split()
    heads = {}
    for line in head.read_text().splitlines()[1:]:
        k, _, v = line.partition(":")
        if v:
            heads[k.strip().lower()] = v.strip()
    return int(size), float(t), heads


def decoded(body: bytes, enc: str | None) -> bytes:
    if enc == "gzip":
        return gzip.decompress(body)
    if enc == "zstd":
        return subprocess.run(["zstd", "-d", "-q", "-c"], input=body, capture_output=True, check=True).stdout
    return body


def frame_bytes(ctype: str, body: bytes) -> bytes:
    b = ctype.split("boundary=")[1].split(";")[0].strip('"').encode()
    part = body.split(b"--" + b)[1]
    return part.split(b"\r\n\r\n", 1)[1][:-2]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    for name in ("--pacsbox", "--orthanc", "--study", "--series"):
        ap.add_argument(name, required=True)
    ap.add_argument("--pacsbox-data", type=Path, required=True)
    ap.add_argument("--sop", required=True, help="an instance of the series, for /frames")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--token-file", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    a = ap.parse_args()
    tok = token(a.pacsbox, a.pacsbox_data, a.token_file)
    auth = {"pacsbox": [f"Authorization: Bearer {tok}"], "orthanc": []}
    roots = {"pacsbox": a.pacsbox + "/dicom-web", "orthanc": a.orthanc + "/dicom-web"}
    series = f"/studies/{a.study}/series/{a.series}"
    resources = [
        ("series /metadata (500 instances)", f"{series}/metadata", "Accept: application/dicom+json"),
        ("/frames/1 (512×512×16 bit)", f"{series}/instances/{a.sop}/frames/1",
         'Accept: multipart/related; type="application/octet-stream"'),
    ]
    tmp = a.out / "bodies"
    tmp.mkdir(parents=True, exist_ok=True)
    rows = ["| resource | Accept-Encoding | pacsbox: Content-Encoding, bytes, ms | Orthanc: Content-Encoding, bytes, ms "
            "| bytes pacsbox/Orthanc | time pacsbox/Orthanc |", "|---|---|---|---|---|---|"]
    print("\n".join(rows), flush=True)
    results = {}
    for label, path, accept in resources:
        ref = {}
        for enc in CODINGS:
            got = {}
            for k in roots:
                f = tmp / f"{k}.body"
                _, _, heads = curl(roots[k] + path, auth[k] + [accept, f"Accept-Encoding: {enc}"], f)
                body = decoded(f.read_bytes(), heads.get("content-encoding"))
                if "metadata" in path:
                    sops = sorted(m["00080018"]["Value"][0] for m in json.loads(body))
                    if len(sops) != 500:
                        raise SystemExit(f"{k} {label}: {len(sops)} instances")
                    got[k] = sops
                else:
                    got[k] = frame_bytes(heads["content-type"], body)
                ref.setdefault(k, got[k])
                if got[k] != ref[k]:
                    raise SystemExit(f"{k} {label} {enc}: decoded answer differs from the identity one")
            if got["pacsbox"] != got["orthanc"]:
                raise SystemExit(f"{label} {enc}: the servers' answers differ")
            runs = {k: [] for k in roots}
            order = list(roots)
            for _ in range(a.reps):
                for k in order:
                    size, t, heads = curl(roots[k] + path, auth[k] + [accept, f"Accept-Encoding: {enc}"], tmp / "x")
                    runs[k].append((size, t, heads.get("content-encoding", "none")))
                order.reverse()
            med = {k: (statistics.median(s for s, _, _ in v), statistics.median(t for _, t, _ in v) * 1000, v[0][2])
                   for k, v in runs.items()}
            p, o = med["pacsbox"], med["orthanc"]
            results[f"{label} {enc}"] = runs
            row = (f"| {label} | {enc} | {p[2]}, {p[0]:,.0f}, {p[1]:.0f} | {o[2]}, {o[0]:,.0f}, {o[1]:.0f} | "
                   f"{p[0] / o[0]:.2f}× | {p[1] / o[1]:.2f}× |")
            rows.append(row)
            print(row, flush=True)
    (a.out / "coding.json").write_text(json.dumps(results))


if __name__ == "__main__":
    main()

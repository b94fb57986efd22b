#!/usr/bin/env python3
"""Markdown tables from web.sh's out.txt: web_summary.py OUT_DIR/out.txt

Timing lines are web_client.py's TSV (label median p95 min status bytes server_ms rows);
cold_* labels appear once per round and are reduced to median (min-max) over the rounds."""
import re
import statistics
import sys

lines = open(sys.argv[1], encoding="utf-8").read().splitlines()
t = {}      # label -> list of (median, p95, min, status, bytes, server_ms, rows)
wrk = []
rss = []
for ln in lines:
    f = ln.split("\t")
    if f[0] == "wrk":
        wrk.append(f)
    elif f[0] == "rss":
        rss.append(f)
    elif len(f) >= 6 and re.fullmatch(r"[\d.]+", f[1] or "x"):
        t.setdefault(f[0], []).append(f)


def ms(label):
    r = t.get(label)
    if not r:
        return None
    return statistics.median(float(x[1]) for x in r)


def cell(label):
    r = t.get(label)
    if not r:
        return "–"
    if len(r) > 1:  # cold rounds
        v = sorted(float(x[1]) for x in r)
        return f"{statistics.median(v):.1f} ({v[0]:.0f}–{v[-1]:.0f}, n={len(v)})"
    return f"{float(r[0][1]):.1f} (p95 {float(r[0][2]):.1f})"


def size(label):
    r = t.get(label)
    return r[-1][5] if r else "–"


def ratio(a, b):
    x, y = ms(a), ms(b)
    return f"{x / y:.3f}" if x and y else "–"


print("### Search page, 100 000 studies (end-to-end ms, median (p95) of the run; server ms = the page's own figure)\n")
print("| search | median ms | p95 ms | server ms (median) | rows | ≤ 100 ms? |")
print("|---|---|---|---|---|---|")
for lab in ("newest", "name_KIM", "name_김", "id", "date_range", "modality_CT", "referring_X", "page_100"):
    r = t.get(lab)
    if r:
        x = r[0]
        ok = "yes" if float(x[2]) <= 100 else ("median only" if float(x[1]) <= 100 else "**no**")
        print(f"| {lab} | {x[1]} | {x[2]} | {x[6] or '–'} | {x[7]} | {ok} |")

print("\n### Preview and pixels, pacsbox vs Orthanc (ms; cold = first request after restarting both)\n")
print("| measure | image | pacsbox | Orthanc | pacsbox ÷ Orthanc | bytes pacsbox / Orthanc |")
print("|---|---|---|---|---|---|")
rows = [
    ("preview, cold (pacsbox max=512; Orthanc /preview)", "cold_preview_{k}_pacsbox", "cold_preview_{k}_orthanc"),
    ("preview re-render (pacsbox new max; Orthanc /preview)", "render_{k}_pacsbox_newmax", "render_{k}_orthanc_preview"),
    ("preview re-render (pacsbox new max; Orthanc /frames/0/rendered 512×512)", "render_{k}_pacsbox_newmax", "render_{k}_orthanc_rendered512"),
    ("preview cached (pacsbox max=512; Orthanc /preview, no cache)", "cached_{k}_pacsbox", "render_{k}_orthanc_preview"),
    ("16-bit pixels gzip, cold (pacsbox /pixels; Orthanc /raw.gz)", "cold_pixels_gz_{k}_pacsbox", "cold_raw_gz_{k}_orthanc"),
    ("16-bit pixels gzip, warm", "pixels_gz_{k}_pacsbox", "raw_gz_{k}_orthanc"),
    ("16-bit pixels, no gzip, warm (pacsbox /pixels; Orthanc /raw)", "pixels_{k}_pacsbox", "raw_{k}_orthanc"),
]
for k, name in (("ct", "CT 512²"), ("cr", "CR 2048² 12-bit")):
    for what, a, b in rows:
        a, b = a.format(k=k), b.format(k=k)
        print(f"| {what} | {name} | {cell(a)} | {cell(b)} | {ratio(a, b)} | {size(a)} / {size(b)} |")

if wrk:
    print("\n### /status.json vs Orthanc /system, /statistics (wrk, 2 threads)\n")
    print("| URL | connections | req/s | latency p50 | p99 | socket errors |")
    print("|---|---|---|---|---|---|")
    for f in wrk:
        print(f"| {f[1]} | {f[2][2:]} | {f[3].split()[0]} | {f[4].split()[2]} | {f[4].split()[4]} | {f[6][7:]} |")
if rss:
    print("\n### RSS\n")
    print("| process, moment | VmRSS MB | VmHWM MB |")
    print("|---|---|---|")
    for f in rss:
        print(f"| {f[1]} | {f[2].split()[1]} | {f[3].split()[1]} |")

#!/usr/bin/env bash
# zstd level vs ratio and speed on our corpora, to justify pacsbox's default zstd_level = 3.
# Uses the zstd CLI's benchmark mode on whole Part-10 files (pacsbox compresses the whole file
# for uncompressed transfer syntaxes). With several files, zstd -b compresses each file as its
# own independent frame (as pacsbox stores them) and reports the aggregate.
#   zstd_level.sh [-l "1 2 3 5 9"] [-n FILES_PER_CORPUS] [-i SECONDS] [corpus ...]
#   default corpora: small2k large1k (under $BENCH_ROOT/corpus); default 200 files each (a
#   sample: spread over studies), -i 3 seconds of measurement per level.
# Output: markdown table (corpus, level, ratio, compress MB/s, decompress MB/s) and raw zstd
# output in $BENCH_ROOT/results/zstd-<stamp>.txt.
set -uo pipefail
BENCH_ROOT=${BENCH_ROOT:-/var/tmp/pacsbench}
LEVELS="1 2 3 5 9"; NFILES=200; SECS=3
while getopts "l:n:i:" o; do case $o in l) LEVELS=$OPTARG;; n) NFILES=$OPTARG;; i) SECS=$OPTARG;; *) sed -n '2,11p' "$0"; exit 2;; esac; done
shift $((OPTIND - 1))
CORPORA=${*:-small2k large1k}
mkdir -p "$BENCH_ROOT/results"
RAW=$BENCH_ROOT/results/zstd-$(date +%Y%m%d-%H%M%S).txt
echo "zstd $(zstd -V)" | tee "$RAW" >&2
echo "| corpus | files | level | ratio | compress MB/s | decompress MB/s |"
echo "|---|---|---|---|---|---|"
for c in $CORPORA; do
  # a deterministic sample spread across the corpus
  mapfile -t all < <(find "$BENCH_ROOT/corpus/$c" -name '*.dcm' | sort)
  step=$(( ${#all[@]} / NFILES )); ((step < 1)) && step=1
  files=(); for ((k = 0; k < ${#all[@]} && ${#files[@]} < NFILES; k += step)); do files+=("${all[k]}"); done
  for l in $LEVELS; do
    out=$(zstd -b"$l" -i"$SECS" "${files[@]}" 2>&1 | tr '\r' '\n' | grep -E 'MB/s.*MB/s' | tail -1)
    echo "== $c level $l" >>"$RAW"; echo "$out" >>"$RAW"
    python3 - "$c" "${#files[@]}" "$l" "$out" <<'PY' || true
import re, sys
c, n, l, out = sys.argv[1:]
src = dst = ct = dt = 0.0
for ln in out.splitlines():
    # e.g. " |- 20 files         :    782748 ->    512086 (x1.529),   20.3 MB/s,  187.6 MB/s"
    m = re.search(r":\s*(\d+)\s*->\s*(\d+)\s*\(x?([\d.]+)\),\s*([\d.]+)\s*MB/s\s*,?\s*([\d.]+)\s*MB/s", ln)
    if not m:
        continue
    s, d, _, cs, ds = m.groups(); s, d, cs, ds = int(s), int(d), float(cs), float(ds)
    src += s; dst += d; ct += s / cs; dt += s / ds
if src:
    print(f"| {c} | {n} | {l} | {src/dst:.3f} | {src/ct:.0f} | {src/dt:.0f} |")
else:
    print(f"| {c} | {n} | {l} | parse error | | |")
PY
  done
done
echo "raw: $RAW" >&2

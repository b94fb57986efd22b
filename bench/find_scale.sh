#!/usr/bin/env bash
# C-FIND latency of pacsbox at large index sizes, populated through the archive's own index API
# (the documented bulk path: firmware/archive/examples/index_scale.rs; no image files).
#   find_scale.sh N [N ...]      e.g. find_scale.sh 1000000 10000000
# For each N: fill a fresh index (PET/CT-shaped: 500 instances per study, 4 series), kill the
# filler without closing the database (as kill -9 would), time the reopen, start
# `pacsbox serve` on it, and run 20 DCMTK findscu queries of each kind (hyperfine), reporting
# median and p95 in ms (each includes findscu's own start-up, ~10-30 ms); then the same queries
# with find_wire.py (one association, responses not decoded: the server's time).
# REUSE=1 keeps an index already filled for N (a 10^7 fill takes ~7 min and 6.4 GB).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
BENCH_ROOT=${BENCH_ROOT:-/var/tmp/pacsbench}
export TCP_NODELAY=1
command -v hyperfine >/dev/null || apt-get install -y -q hyperfine >/dev/null
(cd "$ROOT" && cargo build -q --release -p pacsbox -p pacsbox-archive --example index_scale)
BIN=$ROOT/target/release
PORT=${PORT:-11612}
out=$BENCH_ROOT/results/find-scale-$(date +%Y%m%d-%H%M%S).md
mkdir -p "$BENCH_ROOT/results"
echo "| instances | query | median ms | p95 ms | matches |" | tee "$out"
echo "|---|---|---|---|---|" | tee -a "$out"
for N in "$@"; do
  D=$BENCH_ROOT/findscale-$N
  if [[ ${REUSE:-0} == 1 && -f $D/index.redb ]]; then
    echo "reusing $D"
  else
    rm -rf "$D"
    CRASH=1 "$BIN/examples/index_scale" fill "$D" "$N" | tail -2 || true
  fi
  "$BIN/examples/index_scale" open "$D"
  # The query clients are peers with the query right (a reused folder's learning period may be over).
  "$BIN/pacsbox" serve --data "$D" --bind 127.0.0.1 --dicom-port "$PORT" --http-port $((PORT + 1)) --https-port 0 --dicom-tls-port 0 --reserve-mb 1 \
    --peer FINDSCU:query --peer FINDWIRE:query --peer ECHOSCU:none 2>"$D.log" &
  pid=$!
  until /usr/bin/echoscu 127.0.0.1 "$PORT" 2>/dev/null; do sleep 0.2; done
  series=$(printf '1.2.826.0.1.3680043.8.498.2.%d' $(( (N / 125) / 2 )))
  study=$(printf '1.2.826.0.1.3680043.8.498.1.%d' $(( (N / 500) / 2 )))
  F="/usr/bin/findscu -S 127.0.0.1 $PORT"
  queries=(
    "study_by_patient_id|$F -k QueryRetrieveLevel=STUDY -k PatientID=PID00000042 -k StudyInstanceUID -k PatientName"
    "study_by_DOE*|$F -k QueryRetrieveLevel=STUDY -k 'PatientName=DOE*' -k StudyInstanceUID -k PatientID"
    "study_by_김*|$F -k '0008,0005=ISO_IR 192' -k QueryRetrieveLevel=STUDY -k 'PatientName=김*' -k StudyInstanceUID"
    "study_by_date_range|$F -k QueryRetrieveLevel=STUDY -k StudyDate=20240301-20240331 -k StudyInstanceUID"
    "image_level_one_series|$F -k QueryRetrieveLevel=IMAGE -k StudyInstanceUID=$study -k SeriesInstanceUID=$series -k SOPInstanceUID"
  )
  for q in "${queries[@]}"; do
    name=${q%%|*}; cmd=${q#*|}
    matches=$(bash -c "$cmd -v" 2>&1 | grep -c "(Pending)" || true)
    hyperfine -w 2 -r 20 --export-json "$D.json" "$cmd" >/dev/null
    python3 - "$D.json" "$N" "$name" "$matches" <<'PY' | tee -a "$out"
import json, sys, statistics
t = sorted(json.load(open(sys.argv[1]))["results"][0]["times"])
p95 = t[min(len(t) - 1, int(round(0.95 * (len(t) - 1))))]
print(f"| {sys.argv[2]} | {sys.argv[3]} | {statistics.median(t)*1e3:.1f} | {p95*1e3:.1f} | {sys.argv[4]} |")
PY
  done
  python3 "$HERE/find_wire.py" -n 20 -w 3 --json "$D.wire.json" "pacsbox_$N=PACSBOX:$PORT" -- \
    "study_by_patient_id|STUDY|PatientID=PID00000042;StudyInstanceUID=;PatientName=" \
    "study_by_DOE*|STUDY|PatientName=DOE*;StudyInstanceUID=;PatientID=" \
    "study_by_김*|STUDY|SpecificCharacterSet=ISO_IR 192;PatientName=김*;StudyInstanceUID=" \
    "study_by_date_range|STUDY|StudyDate=20240301-20240331;StudyInstanceUID=" \
    "image_level_one_series|IMAGE|StudyInstanceUID=$study;SeriesInstanceUID=$series;SOPInstanceUID=" | tee -a "$out"
  kill "$pid"; wait "$pid" 2>/dev/null || true
done
echo "results: $out"

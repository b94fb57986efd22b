#!/usr/bin/env bash
# C-STORE ingest benchmark: DCMTK storescu -> each peer, fresh storage per run.
#
#   ingest_bench.sh [options]
#     -p "pacsbox orthanc storescp"    peers (peers.sh names) or external targets written
#                                      ext:AET:PORT:PID:STORAGE_DIR   (server you started yourself;
#                                      PID for RSS, STORAGE_DIR for disk use; not restarted per run)
#     -c "small2k large1k"             corpora (dirs under $CORPUS_ROOT, made by gen_corpus.py)
#     -m "1 4"                         modes: number of parallel storescu processes (associations)
#     -r 3                             repetitions (peers interleaved inside each repetition)
#     -t 600                           timeout per storescu run, seconds
#   Output: $BENCH_ROOT/results/ingest-<stamp>.tsv (one row per run) and a median summary
#   (with ratio to storescp and to orthanc, same repetition) printed and saved as .summary.txt
#
# Peer order is rotated every repetition (rep 1: a b c, rep 2: b c a, ...) so no peer always
# runs right after the same neighbour.  pacsbox: instance count from /status.json, its log is
# kept in results/logs/ and scanned for WARN/ERROR lines (column pacsbox_log_warn_err).
# Clients run with TCP_NODELAY=1 (see peers.sh for why); set CLIENT_TCP_NODELAY=0 to disable.
# A run's storage is not deleted right before the next run (peers.sh start would): it is moved
# to $BENCH_ROOT/trash and deleted after each repetition, followed by a $SETTLE s pause
# (default 35). On ext4 without a journal (this VM's root) every file creation scans the
# block group's free inodes deleted in the last 30-35 s (`recently_deleted`); deleting 1 000
# files just before a run charged that scan to whichever peer ran next (18-21 % of pacsbox's
# CPU in one profile). Journalled ext4, XFS and the appliance's volume have no such scan.
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
BENCH_ROOT=${BENCH_ROOT:-/var/tmp/pacsbench}
CORPUS_ROOT=${CORPUS_ROOT:-$BENCH_ROOT/corpus}
PEERS="pacsbox orthanc storescp"; CORPORA="small2k large1k"; MODES="1 4"; REPEATS=3; TMO=600
SETTLE=${SETTLE:-35}
TRASH=$BENCH_ROOT/trash
while getopts "p:c:m:r:t:" o; do case $o in
  p) PEERS=$OPTARG;; c) CORPORA=$OPTARG;; m) MODES=$OPTARG;; r) REPEATS=$OPTARG;; t) TMO=$OPTARG;;
  *) sed -n '2,16p' "$0"; exit 2;; esac; done
export TCP_NODELAY=${CLIENT_TCP_NODELAY:-1}
mkdir -p "$BENCH_ROOT/results"
STAMP=$(date +%Y%m%d-%H%M%S)
OUT=$BENCH_ROOT/results/ingest-$STAMP.tsv
echo -e "rep\tpeer\tcorpus\tmode\tfiles\tbytes\twall_s\tinst_s\tMB_s\tstored\tdisk_kb\tstartup_ms\tidle_rss_kb\tvmhwm_kb\tpeak_tree_rss_kb\tmax_procs\tfailed_clients\tstorescu_errs\tidle_after_kb\tpacsbox_log_warn_err\tcompress_s" >"$OUT"

# Deletes the storage of earlier runs, then waits until the kernel no longer counts its
# inodes as recently deleted.
purge() {
  local d found=0 p runs=()
  for p in $PEERS; do [[ $p == ext:* ]] || runs+=("$BENCH_ROOT/run/$p"); done
  for d in "$TRASH"/* "${runs[@]}"; do
    [[ -e $d ]] || continue
    rm -rf "$d"; found=1
  done
  if ((found)); then sync; sleep "$SETTLE"; fi
}

cleanup() { [[ -n ${SAMPLER:-} ]] && kill "$SAMPLER" 2>/dev/null; for p in $PEERS; do [[ $p == ext:* ]] || "$HERE/peers.sh" stop "$p"; done; }
trap cleanup EXIT INT TERM

stored_count() {  # peer storage_dir
  case $1 in
    orthanc) curl -s --max-time 10 "http://127.0.0.1:${ORTHANC_HTTP:-8042}/statistics" | python3 -c 'import json,sys;print(json.load(sys.stdin)["CountInstances"])' 2>/dev/null || echo -1 ;;
    pacsbox*) curl -s --max-time 10 "http://127.0.0.1:${PACSBOX_HTTP:-8080}/status.json" | python3 -c 'import json,sys;print(json.load(sys.stdin)["instances"])' 2>/dev/null || echo -1 ;;
    *) find "$2" -type f \( -name '*.dcm' -o -name '*.*.*' \) ! -name index.dat 2>/dev/null | wc -l ;;
  esac
}

run_one() {  # rep peer corpus mode
  local rep=$1 peer=$2 corpus=$3 mode=$4 aet port pid dir startup=-1
  local cdir=$CORPUS_ROOT/$corpus
  if [[ $peer == ext:* ]]; then
    IFS=: read -r _ aet port pid dir <<<"$peer"
  else
    read -r _ pid aet port startup < <("$HERE/peers.sh" start "$peer") || { echo "start $peer failed" >&2; return 1; }
    dir=$BENCH_ROOT/run/$peer/storage
  fi
  sleep 1
  local idle; idle=$(awk '/VmRSS/{print $2}' "/proc/$pid/status" 2>/dev/null || echo -1)
  local du0; du0=$(du -sk "$dir" | cut -f1)
  python3 "$HERE/rss_sampler.py" "$pid" "$BENCH_ROOT/results/.peak" 0.1 & SAMPLER=$!
  # split the study directories round-robin into $mode groups, one storescu each
  local studies=("$cdir"/s*/) groups=() i
  for ((i = 0; i < ${#studies[@]}; i++)); do groups[i % mode]+="${studies[i]} "; done
  local files bytes; files=$(find "$cdir" -name '*.dcm' | wc -l); bytes=$(find "$cdir" -name '*.dcm' -printf '%s\n' | awk '{s+=$1}END{print s}')
  local t0 t1 pids=() fail=0 g
  # every peer reads its corpus from the page cache: the first run of a repetition must not
  # pay for what a build evicted
  find "$cdir" -name '*.dcm' -exec cat {} + >/dev/null
  t0=$(date +%s%N)
  for ((g = 0; g < mode; g++)); do
    # shellcheck disable=SC2086
    # shellcheck disable=SC2046 # +tla -ic for the pacsbox-tls peer, nothing otherwise
    timeout "$TMO" /usr/bin/storescu $([[ $peer == pacsbox-tls ]] && echo "+tla -ic") -aet BENCHSCU -aec "$aet" +sd +r -nh 127.0.0.1 "$port" ${groups[g]} \
      >"$BENCH_ROOT/results/.storescu.$g.log" 2>&1 & pids+=($!)
  done
  for p in "${pids[@]}"; do wait "$p" || fail=$((fail + 1)); done
  t1=$(date +%s%N)
  local errs; errs=$(cat "$BENCH_ROOT"/results/.storescu.*.log | grep -cE '^(E|F|W):|Failed|[Ee]rror' || true)
  mkdir -p "$BENCH_ROOT/results/logs"; cat "$BENCH_ROOT"/results/.storescu.*.log > "$BENCH_ROOT/results/logs/storescu-$STAMP-$rep-$peer-$corpus-$mode.log"
  rm -f "$BENCH_ROOT"/results/.storescu.*.log
  kill "$SAMPLER" 2>/dev/null; wait "$SAMPLER" 2>/dev/null; SAMPLER=
  local hwm; hwm=$(awk '/VmHWM/{print $2}' "/proc/$pid/status" 2>/dev/null || echo -1)
  local peak procs; read -r peak procs <"$BENCH_ROOT/results/.peak" || { peak=-1; procs=-1; }
  sleep 2
  local idle2; idle2=$(awk '/VmRSS/{print $2}' "/proc/$pid/status" 2>/dev/null || echo -1)
  local stored; stored=$(stored_count "$peer" "$dir")
  [[ $peer == pacsbox* ]] && curl -s --max-time 10 "http://127.0.0.1:${PACSBOX_HTTP:-8080}/status.json" \
      >"$BENCH_ROOT/results/logs/status-$STAMP-$rep-$peer-$corpus-$mode.json"
  # pacsbox compresses after 2 s without stores: disk use is measured once that is done, and
  # compress_s is how long after the last acknowledgement it was (0: nothing waited)
  local compress_s=-
  if [[ $peer == pacsbox* ]]; then
    local k pending
    for ((k = 0; k < 6000; k++)); do
      pending=$(curl -s --max-time 5 "http://127.0.0.1:${PACSBOX_HTTP:-8080}/status.json" \
        | python3 -c 'import json,sys;print(json.load(sys.stdin)["compression_pending"])' 2>/dev/null || echo 0)
      ((pending == 0)) && break
      sleep 0.1
    done
    compress_s=$(python3 -c "print(f'{($(date +%s%N) - $t1) / 1e9:.1f}' if $k else 0)")
  fi
  local du1; du1=$(du -sk "$dir" | cut -f1)
  [[ $peer == ext:* ]] || "$HERE/peers.sh" stop "$peer"
  local werr=-
  if [[ $peer == pacsbox* ]]; then
    cp "$BENCH_ROOT/run/$peer/log" "$BENCH_ROOT/results/logs/$peer-$STAMP-$rep-$corpus-$mode.log"
    werr=$(grep -cE 'WARN|ERROR|panick' "$BENCH_ROOT/run/$peer/log" || true)
  fi
  if [[ $peer != ext:* ]]; then
    mkdir -p "$TRASH"; mv "$BENCH_ROOT/run/$peer" "$TRASH/$peer-$rep-$corpus-$mode"
  fi
  sync
  python3 - "$rep" "$peer" "$corpus" "$mode" "$files" "$bytes" "$t0" "$t1" "$stored" "$((du1 - du0))" "$startup" "$idle" "$hwm" "$peak" "$procs" "$fail" "$errs" "$idle2" "$werr" "$compress_s" >>"$OUT" <<'EOF'
import sys
rep, peer, corpus, mode, files, byts, t0, t1, stored, du, st, idle, hwm, peak, procs, fail, errs, idle2, werr, cs = sys.argv[1:]
w = (int(t1) - int(t0)) / 1e9
print("\t".join(map(str, [rep, peer, corpus, mode, files, byts, f"{w:.2f}", f"{int(files)/w:.1f}",
      f"{int(byts)/w/1e6:.1f}", stored, du, st, idle, hwm, peak, procs, fail, errs, idle2, werr, cs])))
EOF
  tail -1 "$OUT"
}

read -ra PEER_ARR <<<"$PEERS"
for ((r = 1; r <= REPEATS; r++)); do
  purge
  n=${#PEER_ARR[@]}; order=()
  for ((k = 0; k < n; k++)); do order+=("${PEER_ARR[(k + r - 1) % n]}"); done
  for corpus in $CORPORA; do for mode in $MODES; do for peer in "${order[@]}"; do
    run_one "$r" "$peer" "$corpus" "$mode"
  done; done; done
done

purge
python3 "$HERE/summarize.py" ingest "$OUT" | tee "${OUT%.tsv}.summary.txt"
echo "raw: $OUT"

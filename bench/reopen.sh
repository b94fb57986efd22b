#!/usr/bin/env bash
# Index reopen time after a crash (kill -9) vs after a clean shutdown (SIGTERM).
#   reopen.sh [-c small2k] [-m 1] [-r 10]
# 1. fresh pacsbox, storescu the corpus with -m parallel associations, check /status.json count,
#    kill -9 -> copy of the data dir = "crashed" template;
# 2. the same with SIGTERM -> "clean" template;
# 3. hyperfine: `pacsbox list --data D > /dev/null`, D restored from the template before every
#    run (--prepare), so every crashed run really opens an index that needs redb's quick-repair
#    and pacsbox's journal recovery; -r runs each.
# 4. a mid-ingest crash: kill -9 while storescu (-v, logs every Store Response) is still sending;
#    then compare acknowledged (Success responses) with what `pacsbox list` / `verify` report.
# Output: $BENCH_ROOT/results/reopen-<stamp>/ (hyperfine json/md, logs) + a summary on stdout.
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
BENCH_ROOT=${BENCH_ROOT:-/var/tmp/pacsbench}
PACSBOX_BIN=${PACSBOX_BIN:-$BENCH_ROOT/bin/pacsbox}
PACSBOX_HTTP=${PACSBOX_HTTP:-8080}
CORPUS=small2k; MODE=1; RUNS=10
while getopts "c:m:r:" o; do case $o in c) CORPUS=$OPTARG;; m) MODE=$OPTARG;; r) RUNS=$OPTARG;; *) sed -n '2,13p' "$0"; exit 2;; esac; done
export TCP_NODELAY=1
OUTD=$BENCH_ROOT/results/reopen-$(date +%Y%m%d-%H%M%S); mkdir -p "$OUTD"
RUN=$BENCH_ROOT/run/pacsbox
CDIR=$BENCH_ROOT/corpus/$CORPUS
log() { echo "[$(date +%T)] $*" | tee -a "$OUTD/log.txt" >&2; }

ingest() {  # storescu the corpus over $MODE associations; extra storescu flags in $@
  local studies=("$CDIR"/s*/) groups=() i pids=()
  for ((i = 0; i < ${#studies[@]}; i++)); do groups[i % MODE]+="${studies[i]} "; done
  for ((i = 0; i < MODE; i++)); do
    # shellcheck disable=SC2086
    /usr/bin/storescu "$@" -aet BENCHSCU -aec PACSBOX +sd +r -nh 127.0.0.1 11112 ${groups[i]} \
      >"$OUTD/storescu-$PHASE-$i.log" 2>&1 & pids+=($!)
  done
  STORESCU_PIDS=("${pids[@]}")
}
count() { curl -s --max-time 10 "http://127.0.0.1:$PACSBOX_HTTP/status.json" | python3 -c 'import json,sys;print(json.load(sys.stdin)["instances"])' 2>/dev/null || echo -1; }

make_template() {  # name signal
  local name=$1 sig=$2 pid
  PHASE=$name
  read -r _ pid _ < <("$HERE/peers.sh" start pacsbox)
  ingest; for p in "${STORESCU_PIDS[@]}"; do wait "$p"; done
  local n; n=$(count)
  log "$name: ingested, /status.json instances=$n of $(find "$CDIR" -name '*.dcm' | wc -l) sent"
  kill "-$sig" "$pid"; while kill -0 "$pid" 2>/dev/null; do sleep 0.05; done
  rm -f "$RUN/pid"
  cp "$RUN/log" "$OUTD/pacsbox-$name.log"
  rm -rf "$BENCH_ROOT/reopen/$name"; mkdir -p "$BENCH_ROOT/reopen"; cp -a "$RUN/storage" "$BENCH_ROOT/reopen/$name"
  du -sk "$BENCH_ROOT/reopen/$name" | tee -a "$OUTD/log.txt" >&2
}

make_template crashed KILL
make_template clean TERM
sync

for name in crashed clean; do
  rm -rf "$BENCH_ROOT/reopen/$name.once"; cp -a "$BENCH_ROOT/reopen/$name" "$BENCH_ROOT/reopen/$name.once"
  "$PACSBOX_BIN" list --data "$BENCH_ROOT/reopen/$name.once" >"$OUTD/list-$name.tsv" 2>"$OUTD/list-$name.err"; rc=$?
  log "$name: list rc=$rc rows=$(wc -l <"$OUTD/list-$name.tsv"); stderr: $(tr '\n' ' ' <"$OUTD/list-$name.err" | cut -c1-400)"
done
D=$BENCH_ROOT/reopen/work
hyperfine -N -w 1 -r "$RUNS" --export-json "$OUTD/hyperfine.json" --export-markdown "$OUTD/hyperfine.md" \
  -n "reopen after kill -9" --prepare "bash -c 'rm -rf $D && cp -a $BENCH_ROOT/reopen/crashed $D && sync'" \
     "bash -c '$PACSBOX_BIN list --data $D > /dev/null 2>&1'" \
  -n "reopen after SIGTERM" --prepare "bash -c 'rm -rf $D && cp -a $BENCH_ROOT/reopen/clean $D && sync'" \
     "bash -c '$PACSBOX_BIN list --data $D > /dev/null 2>&1'" 2>&1 | tee -a "$OUTD/log.txt"

# mid-ingest crash: acknowledged vs indexed
PHASE=midcrash
read -r _ pid _ < <("$HERE/peers.sh" start pacsbox)
ingest -v
sleep "${CRASH_AFTER_S:-4}"
kill -KILL "$pid"; while kill -0 "$pid" 2>/dev/null; do sleep 0.05; done; rm -f "$RUN/pid"
for p in "${STORESCU_PIDS[@]}"; do wait "$p"; done
cp "$RUN/log" "$OUTD/pacsbox-midcrash.log"
acked=$(cat "$OUTD"/storescu-midcrash-*.log | grep -c 'Received Store Response (Success)')
t0=$(date +%s%N)
"$PACSBOX_BIN" list --data "$RUN/storage" >"$OUTD/list-midcrash.tsv" 2>"$OUTD/list-midcrash.err"; rc=$?
t1=$(date +%s%N)
listed=$(wc -l <"$OUTD/list-midcrash.tsv")
"$PACSBOX_BIN" verify --data "$RUN/storage" >"$OUTD/verify-midcrash.txt" 2>&1; vrc=$?
log "midcrash: acknowledged (Success responses) $acked; indexed after reopen $listed (list rc=$rc, $(( (t1 - t0) / 1000000 )) ms); verify rc=$vrc: $(head -1 "$OUTD/verify-midcrash.txt")"
log "midcrash list stderr: $(tr '\n' ' ' <"$OUTD/list-midcrash.err" | cut -c1-600)"
python3 - "$OUTD/hyperfine.json" <<'PY' | tee "$OUTD/summary.md"
import json, sys
d = json.load(open(sys.argv[1]))
print("| case | runs | median s | mean s ± sd | min s | max s |")
print("|---|---|---|---|---|---|")
for r in d["results"]:
    print(f"| {r['command']} | {len(r['times'])} | {r['median']:.3f} | {r['mean']:.3f} ± {r['stddev']:.3f} | {r['min']:.3f} | {r['max']:.3f} |")
PY
log "results in $OUTD"

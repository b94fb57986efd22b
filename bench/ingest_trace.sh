#!/usr/bin/env bash
# Where one association's ingest time goes, in syscalls: starts BIN under `perf trace -s`
# (so every thread it spawns is traced), sends large1k over one storescu association, then
# prints the wall time, context switches and CPU per run, and per thread and syscall the time
# per instance (fdatasync / fsync / rename / linkat / openat / syncfs).
#
#   ingest_trace.sh BIN LABEL [extra serve flags]     e.g. --durability syncfs
# Uses ports 11112 / 8080 (stop peers.sh's pacsbox first); output in $BENCH_ROOT/results/.
set -u
bin=$1; label=$2; shift 2
BENCH_ROOT=${BENCH_ROOT:-/var/tmp/pacsbench}
CORPUS=${CORPUS:-$BENCH_ROOT/corpus/large1k}
d=$BENCH_ROOT/run/ingest-trace; rm -rf "$d"; mkdir -p "$d/storage" "$BENCH_ROOT/results"
out=$BENCH_ROOT/results/trace-$label-$(date +%Y%m%d-%H%M%S)
find "$CORPUS" -name '*.dcm' -exec cat {} + >/dev/null
TCP_NODELAY=1 perf trace -s -o "$out.trace" -e fdatasync,fsync,linkat,rename,renameat2,unlink,syncfs,openat -- \
  "$bin" serve --data "$d/storage" --ae PACSBOX --bind 127.0.0.1 --dicom-port 11112 --http-port 8080 \
  --https-port 0 --dicom-tls-port 0 "$@" >"$d/log" 2>&1 &
until /usr/bin/echoscu -aet BENCHSCU -to 2 -aec PACSBOX 127.0.0.1 11112 >/dev/null 2>&1; do sleep 0.1; done
pid=$(pgrep -f "serve --data $d/storage" | grep -v perf | tail -1)
perf stat -e context-switches,task-clock -p "$pid" -o "$out.stat" & sp=$!
sleep 0.3
studies=("$CORPUS"/s*/)
n=$(find "$CORPUS" -name '*.dcm' | wc -l)
t0=$(date +%s%N)
TCP_NODELAY=1 /usr/bin/storescu -aet BENCHSCU -aec PACSBOX +sd +r -nh 127.0.0.1 11112 "${studies[@]}" >/dev/null 2>&1
t1=$(date +%s%N)
kill -INT "$sp"; wait "$sp" 2>/dev/null
kill -TERM "$pid"; wait 2>/dev/null
echo "$label: $n instances, wall $(( (t1 - t0) / 1000 / n )) us/instance; $(grep -E 'context|task-clock' "$out.stat" | awk '{printf "%s %s  ", $1, $2}')"
python3 - "$out.trace" "$n" <<'PY'
import collections, re, sys
n = int(sys.argv[2])
agg = collections.defaultdict(lambda: [0, 0.0])
name = None
for line in open(sys.argv[1]):
    m = re.match(r"^ (\S.*) \(\d+\), \d+ events", line)
    if m:
        name = "rt-worker" if m.group(1).startswith("tokio") else m.group(1)
        continue
    m = re.match(r"^\s+(\w+)\s+(\d+)\s+\d+\s+([\d.]+)", line)
    if m and name:
        agg[(name, m.group(1))][0] += int(m.group(2))
        agg[(name, m.group(1))][1] += float(m.group(3))
for (thread, call), (calls, ms) in sorted(agg.items()):
    print(f"  {thread:16} {call:10} {calls:6} calls  {ms / n * 1000:8.0f} us/instance")
PY

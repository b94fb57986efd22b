#!/usr/bin/env bash
# Does a peer make received instances durable before acknowledging?  Attach strace to the
# server, C-STORE some studies (default 4 x 100 small instances), count fsync-family syscalls.
#   fsync_probe.sh [-p "pacsbox orthanc storescp"] [-s "small2k/s00000 small2k/s00001"] [-m 1]
#   -m N: N parallel storescu (associations); the series folders are dealt round-robin.
#   (external target: ext:AET:PORT:PID:STORAGE_DIR)
# Output: a markdown table; strace -c files in $BENCH_ROOT/results/strace-<peer>-m<N>.txt
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
BENCH_ROOT=${BENCH_ROOT:-/var/tmp/pacsbench}
PEERS="pacsbox orthanc storescp"; STUDY="small2k/s00000 small2k/s00001 small2k/s00002 small2k/s00003"; MODE=1
while getopts "p:s:m:" o; do case $o in p) PEERS=$OPTARG;; s) STUDY=$OPTARG;; m) MODE=$OPTARG;; *) exit 2;; esac; done
export TCP_NODELAY=1
DIRS=(); for s in $STUDY; do DIRS+=("$BENCH_ROOT/corpus/$s"); done
N=$(find "${DIRS[@]}" -name '*.dcm' | wc -l)
mapfile -t LEAVES < <(find "${DIRS[@]}" -name '*.dcm' -printf '%h\n' | sort -u)
mkdir -p "$BENCH_ROOT/results"
echo "| peer | assoc | instances sent | stored | fsync | fdatasync | sync_file_range | syncfs/sync/msync | syncs per instance |"
echo "|---|---|---|---|---|---|---|---|---|"
for p in $PEERS; do
  if [[ $p == ext:* ]]; then IFS=: read -r _ aet port pid _ <<<"$p"
  else read -r _ pid aet port _ < <("$HERE/peers.sh" start "$p"); fi
  o=$BENCH_ROOT/results/strace-${p//[:\/]/_}-m$MODE.txt
  strace -f -c -e trace=fsync,fdatasync,sync_file_range,syncfs,sync,msync -p "$pid" -o "$o" 2>/dev/null & st=$!
  sleep 1
  groups=(); for ((i = 0; i < ${#LEAVES[@]}; i++)); do groups[i % MODE]+="${LEAVES[i]} "; done
  cp=()
  for ((g = 0; g < MODE; g++)); do
    # shellcheck disable=SC2086
    timeout 300 /usr/bin/storescu -aet BENCHSCU -aec "$aet" +sd +r 127.0.0.1 "$port" ${groups[g]} >/dev/null 2>&1 & cp+=($!)
  done
  for c in "${cp[@]}"; do wait "$c"; done
  sleep 1; kill -INT "$st"; wait "$st" 2>/dev/null
  case $p in
    pacsbox) stored=$(curl -s "http://127.0.0.1:${PACSBOX_HTTP:-8080}/status.json" | python3 -c 'import json,sys;print(json.load(sys.stdin)["instances"])') ;;
    orthanc) stored=$(curl -s "http://127.0.0.1:${ORTHANC_HTTP:-8042}/statistics" | python3 -c 'import json,sys;print(json.load(sys.stdin)["CountInstances"])') ;;
    ext:*) stored='?' ;;
    *) stored=$(find "$BENCH_ROOT/run/$p/storage" -type f | wc -l) ;;
  esac
  c() { awk -v s="$1" '$NF==s{print $4}' "$o" | head -1; }
  fs=$(c fsync); fd=$(c fdatasync); sr=$(c sync_file_range); ot=$(awk '$NF=="syncfs"||$NF=="sync"||$NF=="msync"{s+=$4}END{print s+0}' "$o")
  tot=$(( ${fs:-0} + ${fd:-0} + ${sr:-0} + ot ))
  echo "| $p | $MODE | $N | $stored | ${fs:-0} | ${fd:-0} | ${sr:-0} | $ot | $(awk "BEGIN{printf \"%.2f\", $tot/$N}") |"
  [[ $p == ext:* ]] || "$HERE/peers.sh" stop "$p"
done

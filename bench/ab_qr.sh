#!/usr/bin/env bash
# Query/retrieve of two pacsbox builds side by side (a refactoring's before/after): one
# archive loaded once through C-STORE (q10k + retr500L, see README), copied, each build
# serving its copy; then query.sh's wire, query and retrieve phases with both as ext: peers,
# interleaved.
#   ab_qr.sh BIN_BEFORE BIN_AFTER [query.sh flags, e.g. -r 5 -n 20]
# Output: the query.sh result dir printed at the end (summary.md there).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
export BENCH_ROOT=${BENCH_ROOT:-/var/tmp/pacsbench} TCP_NODELAY=1
CORPUS_ROOT=${CORPUS_ROOT:-$BENCH_ROOT/corpus}
A=$1 B=$2; shift 2
W=$BENCH_ROOT/run/ab; rm -rf "$W"; mkdir -p "$W"
DEST_PORT=${DEST_PORT:-11115}
DEST_PORT=$DEST_PORT "$HERE/peers.sh" qr-config >"$W/peers.toml"

serve() {  # bin data dicom_port http_port log -> pid on stdout
  "$1" serve --data "$2" --config "$W/peers.toml" --ae PACSBOX --bind 127.0.0.1 \
    --dicom-port "$3" --http-port "$4" --https-port 0 --dicom-tls-port 0 >>"$5" 2>&1 &
  local pid=$! k
  for ((k = 0; k < 300; k++)); do
    /usr/bin/echoscu -aet AB -aec PACSBOX 127.0.0.1 "$3" >/dev/null 2>&1 && { echo "$pid"; return; }
    sleep 0.1
  done
  echo "pacsbox ($1) did not answer C-ECHO" >&2; exit 1
}
pending() { curl -s "http://127.0.0.1:$1/status.json" | python3 -c 'import json,sys;print(json.load(sys.stdin)["compression_pending"])'; }

pid=$(serve "$A" "$W/a" 11131 8131 "$W/load.log")
/usr/bin/storescu -aet BENCHSCU -aec PACSBOX +sd +r -nh 127.0.0.1 11131 \
  "$CORPUS_ROOT/q10k"/s*/ "$CORPUS_ROOT/retr500L"/s*/ >"$W/storescu.log" 2>&1
until [[ $(pending 8131) == 0 ]]; do sleep 0.5; done
kill -TERM "$pid"; while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
cp -a "$W/a" "$W/b"

pa=$(serve "$A" "$W/a" 11131 8131 "$W/a.log")
pb=$(serve "$B" "$W/b" 11132 8132 "$W/b.log")
trap 'kill -TERM $pa $pb 2>/dev/null || true' EXIT
"$HERE/query.sh" -p "ext:before:PACSBOX:11131:$pa:$W/a ext:after:PACSBOX:11132:$pb:$W/b" \
  -c q10k -R retr500L -P "wire query retrieve" "$@"

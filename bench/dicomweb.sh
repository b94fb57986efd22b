#!/usr/bin/env bash
# DICOMweb side by side (issue 18): pacsbox vs Orthanc with its DICOMweb plugin (Debian
# `orthanc-dicomweb`), the same data in both, one run, figures as ratios.
#   dicomweb.sh [PHASE ...]        PHASE: start load measure stop clean (default: all of them)
# load: 10^5 small instances (gen_corpus.py, STUDIES × 4 series × 25, generated CHUNK studies at
#   a time and deleted after each chunk went to both servers, so the corpus never sits on disk
#   whole) plus one 500 × 0.53 MB CT study for WADO-RS, through C-STORE (DCMTK storescu, two
#   associations per server per chunk, both servers fed at once).
# measure: dicomweb_bench.py — QIDO-RS study searches (p50/p95 over RUNS, servers interleaved,
#   the same Python client and keep-alive session for both, matches compared at UID level) and
#   WADO-RS of the whole 500-image study (multipart, MB/s, REPS runs).
# Everything listens on 127.0.0.1 (without WIRE_MBIT). Data in $BENCH_ROOT (default /var/tmp/pacsbench-dw, ~9 GB at
# 10^5: Orthanc keeps files uncompressed); `clean` deletes it.
# WIRE_MBIT=N: the servers in a network namespace of their own, the client in another, a veth
# link of N Mbit/s between them (the appliance's 1 GbE port: WIRE_MBIT=1000); `clean` deletes
# both namespaces. ONLY=wado|qido measures one part.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
R=${BENCH_ROOT:-/var/tmp/pacsbench-dw}
PACSBOX_BIN=${PACSBOX_BIN:-$ROOT/target/release/pacsbox}
STUDIES=${STUDIES:-1000}
CHUNK=${CHUNK:-100}
RUNS=${RUNS:-30}
REPS=${REPS:-5}
O_DICOM=${O_DICOM:-11342} O_HTTP=${O_HTTP:-18342}
P_DICOM=${P_DICOM:-11352} P_HTTP=${P_HTTP:-18352}
HOST=${HOST:-127.0.0.1}
BIN=/usr/bin # DCMTK by absolute path: pynetdicom's Python tools shadow it in PATH
# Debian's DCMTK (storescu, and Orthanc's DICOM layer) leaves Nagle on without this.
export TCP_NODELAY=1
mkdir -p "$R"

if [[ -n ${WIRE_MBIT:-} && -z ${PB_IN_NETNS:-} ]]; then
  # Servers in namespace pbsrv (their own loopback unshaped: pacsbox's guard → tiny_http hop is
  # internal, as on the box), the client in pbcli, between them a veth pair limited to
  # WIRE_MBIT each way (a token bucket: netem is not in every kernel). Loads go from inside
  # pbsrv, unshaped; only `measure` crosses the wire.
  if ! ip netns list | grep -qw pbsrv; then
    ip netns add pbsrv
    ip netns add pbcli
    ip -n pbsrv link set lo up
    ip -n pbcli link set lo up
    ip link add pbv-srv netns pbsrv type veth peer name pbv-cli netns pbcli
    ip -n pbsrv addr add 10.77.0.1/24 dev pbv-srv
    ip -n pbcli addr add 10.77.0.2/24 dev pbv-cli
    ip -n pbsrv link set pbv-srv up
    ip -n pbcli link set pbv-cli up
    ip netns exec pbsrv tc qdisc add dev pbv-srv root tbf rate "${WIRE_MBIT}mbit" burst 256kb latency 20ms
    ip netns exec pbcli tc qdisc add dev pbv-cli root tbf rate "${WIRE_MBIT}mbit" burst 256kb latency 20ms
  fi
  phases=("$@")
  ((${#phases[@]})) || phases=(start load measure stop)
  for ph in "${phases[@]}"; do
    ns=pbsrv
    [[ $ph == measure ]] && ns=pbcli
    ip netns exec "$ns" env PB_IN_NETNS=1 HOST=10.77.0.1 bash "$0" "$ph"
    if [[ $ph == clean ]]; then
      ip netns delete pbsrv
      ip netns delete pbcli
    fi
  done
  exit 0
fi

log() { echo "[$(date -u +%H:%M:%S)] $*" | tee -a "$R/bench.log" >&2; }
running() { [[ -f $R/$1.pid ]] && kill -0 "$(cat "$R/$1.pid")" 2>/dev/null; }

start_orthanc() {
  running orthanc && return 0
  dpkg -s orthanc-dicomweb >/dev/null 2>&1 || apt-get install -y -q orthanc orthanc-dicomweb >/dev/null
  mkdir -p "$R/orthanc/storage"
  # SyncStorageArea off only to make the 10^5 load bearable (no fsync per file); it does not
  # touch the read path measured here. StorageAccessOnFind stays at its default (Always).
  cat >"$R/orthanc/orthanc.json" <<EOF
{
  "Name" : "bench-orthanc-dicomweb",
  "StorageDirectory" : "$R/orthanc/storage",
  "IndexDirectory" : "$R/orthanc/storage",
  "StorageCompression" : false,
  "Plugins" : [ "/usr/share/orthanc/plugins/libOrthancDicomWeb.so" ],
  "HttpServerEnabled" : true,
  "HttpPort" : $O_HTTP,
  "RemoteAccessAllowed" : $([[ $HOST == 127.0.0.1 ]] && echo false || echo true),
  "AuthenticationEnabled" : false,
  "DicomServerEnabled" : true,
  "DicomAet" : "ORTHANC",
  "DicomPort" : $O_DICOM,
  "DicomCheckCalledAet" : false,
  "DicomAlwaysAllowStore" : true,
  "DicomThreadsCount" : 4,
  "SyncStorageArea" : false,
  "SaveJobs" : false,
  "LimitFindResults" : 0,
  "LimitFindInstances" : 0,
  "DicomWeb" : { "Enable" : true, "Root" : "/dicom-web/", "EnableWado" : true, "WadoRoot" : "/wado",
                 "Host" : "$HOST:$O_HTTP", "Ssl" : false }
}
EOF
  Orthanc "$R/orthanc/orthanc.json" >>"$R/orthanc/log" 2>&1 &
  echo $! >"$R/orthanc.pid"
  until curl -sf "http://$HOST:$O_HTTP/system" >/dev/null; do sleep 0.3; done
  log "orthanc $(curl -s "http://$HOST:$O_HTTP/system" | python3 -c 'import json,sys; print(json.load(sys.stdin)["Version"])'), plugins: $(curl -s "http://$HOST:$O_HTTP/plugins" | tr -d '\n ')"
}

start_pacsbox() {
  running pacsbox && return 0
  mkdir -p "$R/pacsbox"
  "$PACSBOX_BIN" serve --data "$R/pacsbox/data" --ae PACSBOX --bind "$HOST" --dicom-port "$P_DICOM" \
    --http-port "$P_HTTP" --https-port 0 --dicom-tls-port 0 --reserve-mb 1 >>"$R/pacsbox/log" 2>&1 &
  echo $! >"$R/pacsbox.pid"
  until curl -sf "http://$HOST:$P_HTTP/status.json" >/dev/null; do sleep 0.3; done
  log "pacsbox $("$PACSBOX_BIN" --version 2>/dev/null || true) ($PACSBOX_BIN)"
}

# storescu of every series folder under $1 to AET/port $2/$3, split over two associations.
store_to() {
  local dir=$1 aet=$2 port=$3 logf=$4 a=() b=() i=0 s
  for s in "$dir"/s*/se*; do
    if ((i++ % 2)); then a+=("$s"); else b+=("$s"); fi
  done
  $BIN/storescu -aet BENCHSCU -aec "$aet" +sd +r -nh "$HOST" "$port" "${a[@]}" >>"$logf" 2>&1 &
  local p1=$!
  $BIN/storescu -aet BENCHSCU -aec "$aet" +sd +r -nh "$HOST" "$port" "${b[@]}" >>"$logf" 2>&1 &
  local p2=$!
  wait "$p1" "$p2"
}

# Sends corpus folder $1 to every server in LOAD_TARGETS not yet marked done for it ($2), both
# at once; the folder is deleted once every target has it.
load_chunk() {
  local t t0 t1 pids=() todo=()
  for t in ${LOAD_TARGETS:-orthanc pacsbox}; do
    [[ -f $R/done-$t-$2 ]] || todo+=("$t")
  done
  if ((${#todo[@]})); then
    t0=$(date +%s.%N)
    for t in "${todo[@]}"; do
      if [[ $t == orthanc ]]; then store_to "$1" ORTHANC "$O_DICOM" "$R/load-orthanc.log" &
      else store_to "$1" PACSBOX "$P_DICOM" "$R/load-pacsbox.log" &
      fi
      pids+=($!)
    done
    wait "${pids[@]}"
    t1=$(date +%s.%N)
    log "loaded $2 into ${todo[*]}: $(find "$1" -name '*.dcm' | wc -l) files in $(echo "$t1 - $t0" | bc) s"
    for t in "${todo[@]}"; do touch "$R/done-$t-$2"; done
  fi
  [[ -f $R/done-orthanc-$2 && -f $R/done-pacsbox-$2 ]] && rm -rf "$1"
  return 0
}

# A chunk's corpus folder, generated unless it is there or no longer needed (deterministic:
# the same uid run, seed and offsets make the same files).
gen() { # $1 = folder, $2 = marker, rest = gen_corpus.py arguments
  local d=$1 m=$2
  shift 2
  [[ -f $R/done-orthanc-$m && -f $R/done-pacsbox-$m ]] && return 0
  [[ -f $d/manifest.tsv ]] && return 0
  rm -rf "$d"
  python3 "$HERE/gen_corpus.py" --out "$d" --workers 2 "$@" >/dev/null
}

load() {
  [[ -f $R/uid_run ]] || echo $((RANDOM * 32768 + RANDOM)) >"$R/uid_run"
  local run off
  run=$(cat "$R/uid_run")
  for ((off = 0; off < STUDIES; off += CHUNK)); do
    gen "$R/corpus/chunk$off" "chunk$off" --studies "$CHUNK" --study-offset "$off" --patients $((STUDIES / 2)) \
      --series 4 --instances 25 --uid-run "$run"
    [[ -d $R/corpus/chunk$off ]] && load_chunk "$R/corpus/chunk$off" "chunk$off"
  done
  gen "$R/corpus/retr500" retr500 --template large --studies 1 --series 4 --instances 125 \
    --seed 7 --pid-offset 9000000 --study-offset 9000 --uid-run "$run"
  [[ -f $R/retr500.uid ]] || cut -f2 "$R/corpus/retr500/manifest.tsv" >"$R/retr500.uid"
  [[ -d $R/corpus/retr500 ]] && load_chunk "$R/corpus/retr500" retr500
  if running orthanc; then log "orthanc: $(curl -s "http://$HOST:$O_HTTP/statistics" | tr -d '\n ')"; fi
  if running pacsbox; then
    log "pacsbox: $(curl -s "http://$HOST:$P_HTTP/status.json" | python3 -c 'import json,sys; d=json.load(sys.stdin); print({k: v for k, v in d.items() if k in ("instances", "studies", "patients", "stores_failed")})')"
  fi
  log "disk: $(du -sh "$R"/orthanc "$R"/pacsbox "$R"/corpus 2>/dev/null | tr '\n\t' '  ')"
}

measure() {
  local out pending
  # pacsbox compresses what it acknowledged plain once stores stop: measure after that.
  for _ in $(seq 600); do
    pending=$(curl -s "http://$HOST:$P_HTTP/status.json" | python3 -c 'import json,sys; print(json.load(sys.stdin).get("compression_pending", 0))')
    ((pending == 0)) && break
    sleep 1
  done
  out=$R/results-$(date -u +%Y%m%d-%H%M)
  mkdir -p "$out"
  python3 "$HERE/dicomweb_bench.py" --pacsbox "http://$HOST:$P_HTTP" --pacsbox-data "$R/pacsbox/data" \
    --orthanc "http://$HOST:$O_HTTP" --study "$(cat "$R/retr500.uid")" --runs "$RUNS" --reps "$REPS" \
    --token-file "$R/pacsbox.token" --out "$out" ${ONLY:+--only "$ONLY"} | tee "$out/summary.md"
  log "RSS after measuring: orthanc $(grep VmRSS "/proc/$(cat "$R/orthanc.pid")/status" | awk '{print $2}') kB, pacsbox $(grep VmRSS "/proc/$(cat "$R/pacsbox.pid")/status" | awk '{print $2}') kB"
}

stop() {
  local p
  for p in pacsbox orthanc; do
    if running "$p"; then kill "$(cat "$R/$p.pid")"; fi
    rm -f "$R/$p.pid"
  done
}

phases=("$@")
((${#phases[@]})) || phases=(start load measure stop)
for ph in "${phases[@]}"; do
  case $ph in
    start) start_orthanc; start_pacsbox ;;
    start-orthanc) start_orthanc ;;
    start-pacsbox) start_pacsbox ;;
    load) load ;;
    measure) measure ;;
    stop) stop ;;
    clean) stop; rm -rf "$R" ;;
    *) echo "unknown phase $ph" >&2; exit 2 ;;
  esac
done

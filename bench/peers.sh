#!/usr/bin/env bash
# Start/stop the peer DICOM servers used by the pacsbox benchmarks, on loopback only.
#
#   peers.sh install                 apt-get install orthanc dcmtk fio iperf3 strace (if missing)
#   peers.sh start PEER [--keep]     start PEER with a fresh (or --keep: existing) storage dir,
#                                    wait for C-ECHO; prints "PEER PID AET PORT STARTUP_MS"
#   peers.sh stop PEER               SIGTERM (then SIGKILL after 30 s) by PID, children too
#   peers.sh info PEER               prints "AET PORT PID DIR" (for other scripts)
#   peers.sh stopall                 stop every peer this script started (by stored PID)
#   peers.sh qr-config               prints pacsbox's Q/R bench settings (TOML, for --config):
#                                    DEST ($DEST_PORT) a move destination, BENCHSCU may query/retrieve
#
# PEER is one of:
#   orthanc   Orthanc (Debian package), SQLite index, files; AET ORTHANC  port $ORTHANC_PORT (4242)
#   dcmqrscp  DCMTK dcmqrscp, one storage area;              AET DCMQRSCP port $DCMQR_PORT  (11113)
#   storescp  DCMTK storescp --fork, writes files only;      AET STORESCP port $STORESCP_PORT (11114)
#   dest      DCMTK storescp used as C-MOVE destination;     AET DEST     port $DEST_PORT (11115)
#   pacsbox   our binary ($PACSBOX_BIN), redb index, zstd files; AET PACSBOX port $PACSBOX_PORT (11112),
#             HTTP $PACSBOX_HTTP (8080), bound to 127.0.0.1, extra flags in $PACSBOX_ARGS
#
# DCMTK tools are called by absolute path (/usr/bin/...): pynetdicom installs Python scripts
# called storescu/storescp/echoscu that shadow DCMTK's in PATH.
#
# State lives in $BENCH_ROOT/run/PEER/ (default BENCH_ROOT=/var/tmp/pacsbench):
#   pid, cfg, log, storage/ (all stored data; this is what "disk used" measures).
set -euo pipefail

BENCH_ROOT=${BENCH_ROOT:-/var/tmp/pacsbench}
ORTHANC_PORT=${ORTHANC_PORT:-4242}
ORTHANC_HTTP=${ORTHANC_HTTP:-8042}
DCMQR_PORT=${DCMQR_PORT:-11113}
STORESCP_PORT=${STORESCP_PORT:-11114}
DEST_PORT=${DEST_PORT:-11115}
PACSBOX_PORT=${PACSBOX_PORT:-11112}
PACSBOX_HTTP=${PACSBOX_HTTP:-8080}
PACSBOX_BIN=${PACSBOX_BIN:-$BENCH_ROOT/bin/pacsbox}   # a snapshot copy, see README
PACSBOX_ARGS=${PACSBOX_ARGS:-}
read -ra pacsbox_args <<<"$PACSBOX_ARGS" # a list of flags, split on spaces
# No HTTPS or DICOM TLS listener (fixed default ports) for the binaries that have them.
quiet_ports_of() {  # binary -> flags
  local f
  for f in --https-port --dicom-tls-port; do
    if "$1" serve --help 2>/dev/null | grep -q -- "$f"; then printf '%s 0 ' "$f"; fi
  done
}
DCMTK=${DCMTK:-/usr/bin}
READY_TIMEOUT=${READY_TIMEOUT:-120}   # seconds to wait for C-ECHO
# Debian's DCMTK 3.6.7 (used by storescp, dcmqrscp AND Orthanc's DICOM layer) leaves Nagle's
# algorithm ON unless the environment variable TCP_NODELAY=1 is set; with Nagle on, every
# C-STORE round trip waits for a 40 ms delayed ACK (~10 instances/s on loopback).
# Servers get TCP_NODELAY=$SERVER_TCP_NODELAY (default 1); set SERVER_TCP_NODELAY=0 to measure
# the out-of-the-box behaviour.
SERVER_TCP_NODELAY=${SERVER_TCP_NODELAY:-1}

die() { echo "peers.sh: $*" >&2; exit 1; }

aet_of()  { case $1 in orthanc) echo ORTHANC;; dcmqrscp) echo DCMQRSCP;; storescp) echo STORESCP;; dest) echo DEST;; pacsbox|pacsbox-ingest|pacsbox-tls|pacsbox-alt) echo PACSBOX;; *) die "unknown peer $1";; esac; }
port_of() { case $1 in orthanc) echo "$ORTHANC_PORT";; dcmqrscp) echo "$DCMQR_PORT";; storescp) echo "$STORESCP_PORT";; dest) echo "$DEST_PORT";; pacsbox|pacsbox-ingest|pacsbox-tls|pacsbox-alt) echo "$PACSBOX_PORT";; *) die "unknown peer $1";; esac; }
# DICOM TLS clients (DCMTK): anonymous, the box's self-signed certificate not checked here.
tls_args() { [[ $1 == pacsbox-tls ]] && echo "+tla -ic"; }

now_ms() { date +%s%3N; }

install() {
  local need=()
  command -v Orthanc  >/dev/null || need+=(orthanc)
  [[ -x /usr/bin/storescu ]] || need+=(dcmtk)
  command -v fio      >/dev/null || need+=(fio)
  command -v iperf3   >/dev/null || need+=(iperf3)
  command -v strace   >/dev/null || need+=(strace)
  if ((${#need[@]})); then
    DEBIAN_FRONTEND=noninteractive timeout 900 apt-get install -y -q "${need[@]}"
  fi
  # the Debian package may have started a system Orthanc on 4242/8042; we never touch it,
  # but warn because it would collide with our ports.
  if ss -ltn 2>/dev/null | grep -qE "[:.](${ORTHANC_PORT}|${ORTHANC_HTTP})\b"; then
    echo "peers.sh: WARNING: something already listens on ${ORTHANC_PORT}/${ORTHANC_HTTP}; set ORTHANC_PORT/ORTHANC_HTTP" >&2
  fi
  python3 -c 'import pydicom, numpy' 2>/dev/null || timeout 300 pip3 install -q pydicom numpy
}

write_cfg() {
  local peer=$1 dir=$2 port; port=$(port_of "$peer")
  case $peer in
    orthanc)
      # Only the keys we care about; everything else is Orthanc's built-in default
      # (which matches /etc/orthanc/orthanc.json of the Debian package).
      cat >"$dir/orthanc.json" <<EOF
{
  "Name" : "bench-orthanc",
  "StorageDirectory" : "$dir/storage",
  "IndexDirectory" : "$dir/storage/index",
  "StorageCompression" : false,
  "MaximumStorageSize" : 0,
  "MaximumPatientCount" : 0,
  "Plugins" : [ ],
  "HttpServerEnabled" : true,
  "HttpPort" : $ORTHANC_HTTP,
  "RemoteAccessAllowed" : false,
  "AuthenticationEnabled" : false,
  "DicomServerEnabled" : true,
  "DicomAet" : "ORTHANC",
  "DicomPort" : $port,
  "DicomCheckCalledAet" : false,
  "DicomAlwaysAllowEcho" : true,
  "DicomAlwaysAllowStore" : true,
  "DicomAlwaysAllowFind" : true,
  "DicomAlwaysAllowGet" : true,
  "DicomAlwaysAllowMove" : true,
  "DicomCheckModalityHost" : false,
  "DicomModalities" : { "dest" : [ "DEST", "127.0.0.1", $DEST_PORT ] },
  "UnknownSopClassAccepted" : false,
  "DicomThreadsCount" : 4,
  "SyncStorageArea" : ${ORTHANC_SYNC:-true},
  "StorageAccessOnFind" : "${ORTHANC_STORAGE_ACCESS_ON_FIND:-Always}",
  "MaximumPduLength" : 16384,
  "SaveJobs" : false,
  "StoreMD5ForAttachments" : true,
  "OverwriteInstances" : false,
  "LimitFindResults" : 0,
  "LimitFindInstances" : 0
}
EOF
      ;;
    dcmqrscp)
      mkdir -p "$dir/storage/DCMQRSCP"
      cat >"$dir/dcmqrscp.cfg" <<EOF
NetworkTCPPort  = $port
MaxPDUSize      = 16384
MaxAssociations = 16

HostTable BEGIN
dest     = (DEST, 127.0.0.1, $DEST_PORT)
HostTable END

VendorTable BEGIN
VendorTable END

AETable BEGIN
DCMQRSCP   $dir/storage/DCMQRSCP   RW   (${DCMQR_MAX_STUDIES:-500}, 1024mb)   ANY
AETable END
EOF
      ;;
  esac
}

start() {
  local peer=$1 keep=${2:-} dir aet port pid t0 t1
  dir=$BENCH_ROOT/run/$peer; aet=$(aet_of "$peer"); port=$(port_of "$peer")
  if [[ -f $dir/pid ]] && kill -0 "$(cat "$dir/pid")" 2>/dev/null; then die "$peer already running (pid $(cat "$dir/pid"))"; fi
  if [[ $keep != --keep ]]; then rm -rf "$dir"; fi
  mkdir -p "$dir/storage"
  write_cfg "$peer" "$dir"
  sync
  t0=$(now_ms)
  export TCP_NODELAY=$SERVER_TCP_NODELAY
  local bin=$PACSBOX_BIN quiet_ports=()
  [[ $peer == pacsbox-alt ]] && bin=${PACSBOX_ALT_BIN:-}
  [[ $peer == pacsbox* ]] && read -ra quiet_ports <<<"$(quiet_ports_of "$bin")"
  case $peer in
    orthanc)  Orthanc "$dir/orthanc.json" >>"$dir/log" 2>&1 & pid=$! ;;
    dcmqrscp) "$DCMTK/dcmqrscp" -c "$dir/dcmqrscp.cfg" --fork "$port" >>"$dir/log" 2>&1 & pid=$! ;;
    pacsbox)  "$PACSBOX_BIN" serve --data "$dir/storage" --ae PACSBOX --bind 127.0.0.1 \
                --dicom-port "$port" --http-port "$PACSBOX_HTTP" "${quiet_ports[@]}" "${pacsbox_args[@]}" >>"$dir/log" 2>&1 & pid=$! ;;
    # the same binary compressing on the acknowledgement path (what pacsbox did before
    # compression when idle), to compare both in one run
    pacsbox-ingest)  "$PACSBOX_BIN" serve --data "$dir/storage" --ae PACSBOX --bind 127.0.0.1 \
                --dicom-port "$port" --http-port "$PACSBOX_HTTP" "${quiet_ports[@]}" --compress ingest "${pacsbox_args[@]}" >>"$dir/log" 2>&1 & pid=$! ;;
    # another build (PACSBOX_ALT_BIN), to compare two builds side by side in one run
    pacsbox-alt)  "${PACSBOX_ALT_BIN:?set PACSBOX_ALT_BIN}" serve --data "$dir/storage" --ae PACSBOX --bind 127.0.0.1 \
                --dicom-port "$port" --http-port "$PACSBOX_HTTP" "${quiet_ports[@]}" "${pacsbox_args[@]}" >>"$dir/log" 2>&1 & pid=$! ;;
    # the same binary, its clients on the DICOM TLS port (the plain one moved aside)
    pacsbox-tls)  "$PACSBOX_BIN" serve --data "$dir/storage" --ae PACSBOX --bind 127.0.0.1 \
                --dicom-port "$((port + 1))" --dicom-tls-port "$port" --http-port "$PACSBOX_HTTP" --https-port 0 "${pacsbox_args[@]}" >>"$dir/log" 2>&1 & pid=$! ;;
    storescp|dest) "$DCMTK/storescp" --fork -aet "$aet" -od "$dir/storage" "$port" >>"$dir/log" 2>&1 & pid=$! ;;
  esac
  echo "$pid" >"$dir/pid"
  local deadline=$((t0 + READY_TIMEOUT * 1000))
  export TCP_NODELAY=1
  local tls; read -ra tls <<<"$(tls_args "$peer")"
  until timeout 5 "$DCMTK/echoscu" "${tls[@]}" -to 2 -aet BENCHSCU -aec "$aet" 127.0.0.1 "$port" >/dev/null 2>&1; do
    kill -0 "$pid" 2>/dev/null || { tail -20 "$dir/log" >&2; die "$peer died during startup"; }
    (( $(now_ms) < deadline )) || { stop "$peer"; die "$peer not ready after ${READY_TIMEOUT}s"; }
    sleep 0.05
  done
  t1=$(now_ms)
  echo $((t1 - t0)) >"$dir/startup_ms"
  echo "$peer $pid $aet $port $((t1 - t0))"
}

descendants() {  # all descendant PIDs of $1
  local c
  for c in $(ps -o pid= --ppid "$1" 2>/dev/null); do echo "$c"; descendants "$c"; done
}

stop() {
  local peer=$1 dir pid kids i
  dir=$BENCH_ROOT/run/$peer
  [[ -f $dir/pid ]] || return 0
  pid=$(cat "$dir/pid")
  if kill -0 "$pid" 2>/dev/null; then
    kids=$(descendants "$pid" || true)
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 300; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid" 2>/dev/null || true; fi
    for k in $kids; do if kill -0 "$k" 2>/dev/null; then kill -TERM "$k" 2>/dev/null || true; fi; done
  fi
  rm -f "$dir/pid"
}

info() {
  local peer=$1 dir; dir=$BENCH_ROOT/run/$peer
  echo "$(aet_of "$peer") $(port_of "$peer") $(cat "$dir/pid" 2>/dev/null || echo -) $dir"
}

# host/port on BENCHSCU are there for binaries older than peer rights (they read [[peers]] as
# move destinations, need both, and ignore the rights key); binaries with access control run in
# learning mode on a fresh folder and need the entry for C-FIND/C-GET/C-MOVE.
qr_config() {
  cat <<EOF
[[peers]]
ae_title = "DEST"
host = "127.0.0.1"
port = $DEST_PORT
rights = "move"

[[peers]]
ae_title = "BENCHSCU"
host = "127.0.0.1"
port = 104
rights = "query,retrieve"
EOF
}

cmd=${1:-}; shift || true
case $cmd in
  install) install ;;
  start)   start "$@" ;;
  stop)    stop "$@" ;;
  info)    info "$@" ;;
  qr-config) qr_config ;;
  stopall) for p in orthanc dcmqrscp storescp dest pacsbox pacsbox-ingest; do stop "$p"; done ;;
  *) sed -n '2,25p' "$0"; exit 2 ;;
esac

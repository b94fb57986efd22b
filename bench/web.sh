#!/usr/bin/env bash
# Web page benchmark, pacsbox side by side with Orthanc in one run (loopback only):
#   1. search page latency, 100 000 studies (index filled through the archive's bulk index API,
#      examples/index_scale.rs with PER_STUDY=4 PER_SERIES=2: 400 000 instances), logged in
#      like a browser (login + forced password change), 8 searches, median/p95 of N, interleaved
#   2. preview render time, 512x512 CT and 2048x2048 12-bit MONOCHROME1 CR (web_images.py),
#      stored with DCMTK storescu into a fresh pacsbox and a fresh Orthanc: first request after
#      a restart (uncached), re-render (pacsbox: new max each round; Orthanc: /preview and
#      /frames/0/rendered, which render every time), cached pacsbox preview, 16-bit pixels
#      (pacsbox /pixels vs Orthanc /frames/0/raw, each with and without gzip)
#   3. requests/s of pacsbox /status.json vs Orthanc /system and /statistics (wrk), RSS of all
#
#   web.sh [-n RUNS] [-r COLD_ROUNDS] [-d WRK_SECONDS] [-f]      (-f: refill the 100k index)
#
# Env: BENCH_ROOT (/var/tmp/pacsbench), PACSBOX_BIN ($BENCH_ROOT/bin/pacsbox-web: a snapshot
# copy of target/release/pacsbox), INDEX_SCALE ($BENCH_ROOT/bin/index_scale-web: a copy of
# target/release/examples/index_scale). Run state: $BENCH_ROOT/web/; raw output:
# $BENCH_ROOT/results/web-DATE/ (out.txt = everything printed).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
BENCH_ROOT=${BENCH_ROOT:-/var/tmp/pacsbench}
PACSBOX_BIN=${PACSBOX_BIN:-$BENCH_ROOT/bin/pacsbox-web}
INDEX_SCALE=${INDEX_SCALE:-$BENCH_ROOT/bin/index_scale-web}
N=20 R=5 WRK_S=10 REFILL=0
while getopts n:r:d:f o; do
  case $o in n) N=$OPTARG;; r) R=$OPTARG;; d) WRK_S=$OPTARG;; f) REFILL=1;; *) sed -n 2,20p "$0"; exit 2;; esac
done
export TCP_NODELAY=1
W=$BENCH_ROOT/web
D=$BENCH_ROOT/web100k     # the 100 000-study index (kept between runs; -f refills)
OUT=$BENCH_ROOT/results/web-$(date -u +%Y%m%d-%H%M%S)
mkdir -p "$W" "$OUT"
exec > >(tee "$OUT/out.txt") 2>&1
command -v wrk >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -q wrk >/dev/null
PASS='Bench-web-2026!pw'
CLIENT="python3 $HERE/web_client.py"
# own ports and run dir, so that other people's peers.sh runs are not disturbed
export BENCH_ROOT=$W ORTHANC_PORT=${ORTHANC_PORT:-4252} ORTHANC_HTTP=${ORTHANC_HTTP:-8052}
export PACSBOX_PORT=${PACSBOX_PORT:-11712} PACSBOX_HTTP=${PACSBOX_HTTP:-8712} PACSBOX_BIN
BIG_DICOM=11722 BIG_HTTP=8722
PB=http://127.0.0.1:$PACSBOX_HTTP OR=http://127.0.0.1:$ORTHANC_HTTP BIG=http://127.0.0.1:$BIG_HTTP
PEERS=$HERE/peers.sh
big_pid=
cleanup() {
  if [[ -n $big_pid ]]; then kill "$big_pid" 2>/dev/null || true; fi
  "$PEERS" stop pacsbox || true
  "$PEERS" stop orthanc || true
}
trap cleanup EXIT

rss() {  # LABEL PID
  awk -v l="$1" '/^VmRSS|^VmHWM/ { v[$1] = $2 } END { printf "rss\t%s\tVmRSS %.1f MB\tVmHWM %.1f MB\n", l, v["VmRSS:"]/1024, v["VmHWM:"]/1024 }' "/proc/$2/status"
}
pid_of() { cat "$W/run/$1/pid"; }
http_ready() {  # peers.sh waits for C-ECHO; the HTTP side may come up a little later
  local i
  for ((i = 0; i < 600; i++)); do
    curl -fs -o /dev/null "$PB/status.json" && curl -fs -o /dev/null "$OR/system" && return 0
    sleep 0.05
  done
  echo "HTTP not ready" >&2; return 1
}

echo "== machine  $(date -u '+%F %T UTC')"
echo "load: $(cut -d' ' -f1-3 /proc/loadavg); $(nproc) cpu; $(free -m | awk '/Mem/ {print $2 " MB RAM, " $7 " MB available"}')"
echo "kernel $(uname -r); $(Orthanc --version 2>&1 | head -1); $(wrk -v 2>&1 | head -1)"
echo "pacsbox: $PACSBOX_BIN ($(cat "$PACSBOX_BIN.source.txt" 2>/dev/null || echo '?'), $(date -u -r "$PACSBOX_BIN" '+%F %T'))"
top -bn1 | sed -n 7,12p

# ---------------------------------------------------------------- 1. search, 100 000 studies
if ((REFILL)) || [[ ! -f $D/filled-400000 ]]; then
  rm -rf "$D"
  echo "== filling $D: 100 000 studies x 4 instances (2 series) through the bulk index API"
  PER_STUDY=4 PER_SERIES=2 "$INDEX_SCALE" fill "$D" 400000 | tail -1
  touch "$D/filled-400000"
fi
"$PACSBOX_BIN" serve --data "$D" --ae PACSBOX --http-port $BIG_HTTP --https-port 0 --dicom-tls-port 0 --dicom-port $BIG_DICOM \
  --bind 127.0.0.1 >"$OUT/pacsbox-100k.log" 2>&1 &
big_pid=$!
until curl -fs -o /dev/null $BIG/status.json; do kill -0 $big_pid; sleep 0.1; done
curl -s $BIG/status.json | python3 -c 'import json,sys; d=json.load(sys.stdin); print("index:", {k: d[k] for k in ("instances","studies","patients") if k in d})'
$CLIENT login $BIG "$D" "$PASS" "$W/cookie-100k"
echo "== search page, 100 000 studies: end-to-end ms, $N runs after 2 warm-up, URLs interleaved"
echo -e "label\tmedian_ms\tp95_ms\tmin_ms\tstatus\tbytes\tserver_ms\trows"
$CLIENT time -n "$N" -w 2 --cookie "$W/cookie-100k" \
  "newest=$BIG/search" \
  "name_KIM=$BIG/search?name=KIM" \
  "name_김=$BIG/search?name=%EA%B9%80" \
  "id=$BIG/search?id=PID00001234" \
  "date_range=$BIG/search?when=range&from=2024-03-01&to=2024-03-07" \
  "modality_CT=$BIG/search?modality=CT" \
  "referring_X=$BIG/search?referring=X" \
  "page_100=$BIG/search?page=100"
rss pacsbox-100k $big_pid

# ---------------------------------------------------------------- 2. previews
IMG=$W/images
python3 "$HERE/web_images.py" "$IMG" | tee "$OUT/images.txt"
CT_SOP=$(awk '/ct512/ {print $2}' "$OUT/images.txt")
CR_SOP=$(awk '/cr2k/ {print $2}' "$OUT/images.txt")
"$PEERS" start pacsbox
"$PEERS" start orthanc
http_ready
rss pacsbox-idle "$(pid_of pacsbox)"; rss orthanc-idle "$(pid_of orthanc)"
for p in "PACSBOX $PACSBOX_PORT" "ORTHANC $ORTHANC_PORT"; do
  read -r ae port <<<"$p"
  /usr/bin/storescu -aet BENCHSCU -aec "$ae" 127.0.0.1 "$port" "$IMG/ct512.dcm" "$IMG/cr2k.dcm"
done
oid() { curl -s -X POST -d "$1" "$OR/tools/lookup" | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["ID"])'; }
CT_O=$(oid "$CT_SOP") CR_O=$(oid "$CR_SOP")
echo "ct512 sop $CT_SOP orthanc $CT_O; cr2k sop $CR_SOP orthanc $CR_O"
PBI=$PB/api/instances ORI=$OR/instances
$CLIENT login "$PB" "$W/run/pacsbox/storage" "$PASS" "$W/cookie"
for f in ct:$CT_SOP:$CT_O cr:$CR_SOP:$CR_O; do
  IFS=: read -r k s o <<<"$f"
  curl -s -b "$(cat "$W/cookie")" -o "$OUT/pacsbox-$k-preview512.png" "$PBI/$s/frames/1/preview.png?max=512"
  curl -s -o "$OUT/orthanc-$k-preview.png" "$ORI/$o/preview"
  curl -s -o "$OUT/orthanc-$k-rendered512.png" "$ORI/$o/frames/0/rendered?width=512&height=512"
  # shellcheck disable=SC2094 # headers first (-D), then the body appended: in that order
  curl -s -b "$(cat "$W/cookie")" -D "$OUT/pacsbox-$k-info.txt" "$PBI/$s/info" >>"$OUT/pacsbox-$k-info.txt"
done
python3 - "$OUT"/*.png <<'PY'
import struct, sys
for f in sys.argv[1:]:
    b = open(f, "rb").read()
    w, h = struct.unpack(">II", b[16:24]) if b[:8] == b"\x89PNG\r\n\x1a\n" else (0, 0)
    print(f"{f.rsplit('/', 1)[1]}: {w}x{h}, bit depth {b[24] if w else '?'}, {len(b)} bytes")
PY

restart_both() {
  "$PEERS" stop pacsbox >/dev/null; "$PEERS" start pacsbox --keep >/dev/null
  "$PEERS" stop orthanc >/dev/null; "$PEERS" start orthanc --keep >/dev/null
  http_ready
  $CLIENT login "$PB" "$W/run/pacsbox/storage" "$PASS" "$W/cookie" 2>/dev/null
}
echo "== first request after a restart (nothing cached in the server; files in the OS page cache), $R rounds"
echo -e "label\tms\t-\t-\tstatus\tbytes"
for ((i = 0; i < R; i++)); do
  restart_both
  $CLIENT once --cookie "$W/cookie" \
    "cold_preview_ct_pacsbox=$PBI/$CT_SOP/frames/1/preview.png?max=512" \
    "cold_preview_ct_orthanc=$ORI/$CT_O/preview" \
    "cold_preview_cr_pacsbox=$PBI/$CR_SOP/frames/1/preview.png?max=512" \
    "cold_preview_cr_orthanc=$ORI/$CR_O/preview"
  restart_both
  $CLIENT once --gzip --cookie "$W/cookie" \
    "cold_pixels_gz_ct_pacsbox=$PBI/$CT_SOP/frames/1/pixels" \
    "cold_raw_gz_ct_orthanc=$ORI/$CT_O/frames/0/raw.gz" \
    "cold_pixels_gz_cr_pacsbox=$PBI/$CR_SOP/frames/1/pixels" \
    "cold_raw_gz_cr_orthanc=$ORI/$CR_O/frames/0/raw.gz"
done
echo "== warm, $N runs after 2 warm-up, interleaved"
echo -e "label\tmedian_ms\tp95_ms\tmin_ms\tstatus\tbytes"
$CLIENT time -n "$N" -w 2 --cookie "$W/cookie" \
  "render_ct_pacsbox_newmax=$PBI/$CT_SOP/frames/1/preview.png?max={m}" \
  "render_ct_orthanc_preview=$ORI/$CT_O/preview" \
  "render_ct_orthanc_rendered512=$ORI/$CT_O/frames/0/rendered?width=512&height=512" \
  "cached_ct_pacsbox=$PBI/$CT_SOP/frames/1/preview.png?max=512" \
  "render_cr_pacsbox_newmax=$PBI/$CR_SOP/frames/1/preview.png?max={m}" \
  "render_cr_orthanc_preview=$ORI/$CR_O/preview" \
  "render_cr_orthanc_rendered512=$ORI/$CR_O/frames/0/rendered?width=512&height=512" \
  "cached_cr_pacsbox=$PBI/$CR_SOP/frames/1/preview.png?max=512"
$CLIENT time -n "$N" -w 2 --gzip --cookie "$W/cookie" \
  "pixels_gz_ct_pacsbox=$PBI/$CT_SOP/frames/1/pixels" \
  "raw_gz_ct_orthanc=$ORI/$CT_O/frames/0/raw.gz" \
  "pixels_gz_cr_pacsbox=$PBI/$CR_SOP/frames/1/pixels" \
  "raw_gz_cr_orthanc=$ORI/$CR_O/frames/0/raw.gz"
$CLIENT time -n "$N" -w 2 --cookie "$W/cookie" \
  "pixels_ct_pacsbox=$PBI/$CT_SOP/frames/1/pixels" \
  "raw_ct_orthanc=$ORI/$CT_O/frames/0/raw" \
  "pixels_cr_pacsbox=$PBI/$CR_SOP/frames/1/pixels" \
  "raw_cr_orthanc=$ORI/$CR_O/frames/0/raw"
rss pacsbox-after-previews "$(pid_of pacsbox)"; rss orthanc-after-previews "$(pid_of orthanc)"

# ---------------------------------------------------------------- 3. status JSON, wrk
# pacsbox's connection guard forces "Connection: close" on every request (wrk counts each
# close as a read error); the *_close rows make Orthanc reconnect per request too.
echo "== wrk ${WRK_S}s per URL (2 threads); connections 16 then 64"
for c in 16 64; do
  for u in "pacsbox_status.json $PB/status.json" "orthanc_system $OR/system" \
           "orthanc_statistics $OR/statistics" "orthanc_system_close $OR/system close" \
           "orthanc_statistics_close $OR/statistics close" "pacsbox100k_status.json $BIG/status.json"; do
    # shellcheck disable=SC2086 # "name url [close]" into $1 $2 $3
    set -- $u
    hdr=(); [[ ${3:-} == close ]] && hdr=(-H "Connection: close")
    wrk -t2 -c"$c" -d"${WRK_S}s" --latency "${hdr[@]}" "$2" >"$OUT/wrk-$1-c$c.txt" 2>&1 || true
    printf 'wrk\t%s\tc=%s\t%s req/s\tlatency p50 %s p99 %s\tnon-2xx %s\terrors %s\n' "$1" "$c" \
      "$(awk '/Requests\/sec/ {print $2}' "$OUT/wrk-$1-c$c.txt")" \
      "$(awk '$1 == "50%" {print $2}' "$OUT/wrk-$1-c$c.txt")" \
      "$(awk '$1 == "99%" {print $2}' "$OUT/wrk-$1-c$c.txt")" \
      "$(awk '/Non-2xx/ {print $NF}' "$OUT/wrk-$1-c$c.txt" | grep . || echo 0)" \
      "$(awk '/Socket errors/ {print $0}' "$OUT/wrk-$1-c$c.txt" | sed 's/.*errors: //' | grep . || echo none)"
  done
done
rss pacsbox-after-wrk "$(pid_of pacsbox)"; rss orthanc-after-wrk "$(pid_of orthanc)"; rss pacsbox-100k-after-wrk $big_pid
grep -cE 'WARN|ERROR' "$W/run/pacsbox/log" "$OUT/pacsbox-100k.log" | sed 's/^/pacsbox log WARN|ERROR lines: /' || true
echo "load at end: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "raw output: $OUT"
python3 "$HERE/web_summary.py" "$OUT/out.txt" >"$OUT/summary.md" && cat "$OUT/summary.md"

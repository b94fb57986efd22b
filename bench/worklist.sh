#!/usr/bin/env bash
# Modality Worklist C-FIND over N scheduled exams (default 10 000): pacsbox vs DCMTK wlmscpfs
# holding the same entries (registered through pacsbox's Register page, read back, written as
# dump2dcm worklist files), in one run, peers interleaved per query (find_wire.py: raw PDUs,
# no response decoding). Run it only on a quiet machine: the figures are its ratios.
#   PACSBOX_BIN=target/release/pacsbox bench/worklist.sh [EXAMS] [RUNS]
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
EXAMS="${1:-10000}"
RUNS="${2:-40}"
DAYS=20
BIN="${PACSBOX_BIN:-$HERE/../target/release/pacsbox}"
ROOT="${BENCH_ROOT:-/var/tmp/pacsbench}/worklist"
rm -rf "$ROOT"
mkdir -p "$ROOT/wlm/WLMSCP" "$ROOT/dumps"
touch "$ROOT/wlm/WLMSCP/lockfile"

read -r DICOM HTTP WLM < <(python3 -c '
import socket
ss = [socket.socket() for _ in range(3)]
for s in ss: s.bind(("127.0.0.1", 0))
print(*[s.getsockname()[1] for s in ss])')

"$BIN" serve --data "$ROOT/pacsbox" --ae PACSBOX --bind 127.0.0.1 --dicom-port "$DICOM" --http-port "$HTTP" \
    --https-port 0 --dicom-tls-port 0 --peer FINDWIRE:query --reserve-mb 1 >"$ROOT/pacsbox.log" 2>&1 &
PACS=$!
WLMPID=""
cleanup() {
    kill "$PACS" 2>/dev/null || true
    if [[ -n "$WLMPID" ]]; then kill "$WLMPID" 2>/dev/null || true; fi
}
trap cleanup EXIT
for _ in $(seq 100); do
    [[ -f "$ROOT/pacsbox/initial-admin-password" ]] && curl -sf "http://127.0.0.1:$HTTP/status.json" >/dev/null && break
    sleep 0.1
done

echo "==> $EXAMS exams through the Register page"
start=$(date +%s.%N)
python3 "$HERE/worklist_load.py" --http "$HTTP" --data "$ROOT/pacsbox" --exams "$EXAMS" --days "$DAYS" --dumps "$ROOT/dumps"
echo "    $(python3 -c "print(f'{$(date +%s.%N) - $start:.1f}')") s"
echo "==> dump2dcm into wlmscpfs's database"
# shellcheck disable=SC2016 # expanded by the inner sh, one file each
find "$ROOT/dumps" -name '*.dump' -print0 |
    xargs -0 -P 2 -n 1 sh -c 'exec /usr/bin/dump2dcm +te "$1" "$0/$(basename "${1%.dump}").wl"' "$ROOT/wlm/WLMSCP"
/usr/bin/wlmscpfs -dfp "$ROOT/wlm" -dfr "$WLM" >"$ROOT/wlmscpfs.log" 2>&1 &
WLMPID=$!
sleep 1

TODAY=$(date +%Y%m%d)
# Day 12: exam i is on day i % 20 and US when i % 5 == 2, so US exams fall on days 2, 7, 12, 17.
MID=$(date -d "+12 days" +%Y%m%d)
KEYS="PatientName=;PatientID=;PatientBirthDate=;PatientSex=;AccessionNumber=;StudyInstanceUID=;RequestedProcedureID=;RequestedProcedureDescription=;sps.ScheduledProcedureStepStartTime=;sps.ScheduledProcedureStepID=;sps.ScheduledProcedureStepDescription="
echo "==> C-FIND, $RUNS runs per query and peer"
python3 "$HERE/find_wire.py" --sop-class 1.2.840.10008.5.1.4.31 -n "$RUNS" -w 3 --json "$ROOT/worklist.json" \
    pacsbox=PACSBOX:"$DICOM" wlmscpfs=WLMSCP:"$WLM" -- \
    "station_today|-|$KEYS;sps.Modality=CR;sps.ScheduledStationAETitle=CR1;sps.ScheduledProcedureStepStartDate=$TODAY" \
    "modality_day|-|$KEYS;sps.Modality=US;sps.ScheduledProcedureStepStartDate=$MID" \
    "name_prefix|-|$KEYS;PatientName=PARK*;sps.Modality=;sps.ScheduledProcedureStepStartDate=" \
    "patient_id|-|$KEYS;PatientID=WL000042;sps.Modality=;sps.ScheduledProcedureStepStartDate="

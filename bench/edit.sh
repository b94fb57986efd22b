#!/usr/bin/env bash
# Corrections: edit the patient name of a 500-instance CT study, then move it to another
# patient — pacsbox (`pacsbox edit-patient`, `pacsbox move` on the stopped box: durable when
# the command returns, process start and index open included) vs Orthanc's
# `/studies/{id}/modify` then `/patients/{id}/modify` (`KeepSource: false`, synchronous job,
# `SyncStorageArea: true`) on the same files. One run, peers interleaved per repetition;
# instances per second and the ratio.
#
#   bench/edit.sh [-r REPS]        env: BENCH_ROOT (default /var/tmp/pacsbench-edit),
#                                  PACSBOX_BIN (default $BENCH_ROOT/bin/pacsbox),
#                                  ORTHANC_PORT / ORTHANC_HTTP (default 4342 / 8142)
set -euo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
export BENCH_ROOT=${BENCH_ROOT:-/var/tmp/pacsbench-edit}
export ORTHANC_PORT=${ORTHANC_PORT:-4342} ORTHANC_HTTP=${ORTHANC_HTTP:-8142}
export PACSBOX_PORT=${PACSBOX_PORT:-11212} PACSBOX_HTTP=${PACSBOX_HTTP:-8180}
export PACSBOX_BIN=${PACSBOX_BIN:-$BENCH_ROOT/bin/pacsbox}
export TCP_NODELAY=1
REPS=3
while getopts "r:" o; do case $o in r) REPS=$OPTARG ;; *) exit 2 ;; esac; done

# The 500-instance CT study (2 series x 250, 512x512x16) that is edited and moved, and a
# one-instance study of another patient it moves to.
CORPUS=$BENCH_ROOT/corpus/edit500
OTHER=$BENCH_ROOT/corpus/edit-other
if [[ ! -f $CORPUS/manifest.tsv ]]; then
  python3 "$HERE/gen_corpus.py" --out "$CORPUS" --template large --studies 1 --series 2 \
    --instances 250 >/dev/null
fi
if [[ ! -f $OTHER/manifest.tsv ]]; then
  python3 "$HERE/gen_corpus.py" --out "$OTHER" --template small --studies 1 --series 1 \
    --instances 1 --pid-offset 7 >/dev/null
fi
STUDY_DIR=$CORPUS/$(awk -F'\t' 'NR==1{print $1}' "$CORPUS/manifest.tsv")
STUDY_UID=$(awk -F'\t' 'NR==1{print $2}' "$CORPUS/manifest.tsv")
OTHER_DIR=$OTHER/$(awk -F'\t' 'NR==1{print $1}' "$OTHER/manifest.tsv")
OTHER_PID=$(awk -F'\t' 'NR==1{print $3}' "$OTHER/manifest.tsv")
OTHER_NAME=$(awk -F'\t' 'NR==1{print $4}' "$OTHER/manifest.tsv")
N=$(find "$STUDY_DIR" -name '*.dcm' | wc -l)

now_ms() { date +%s%3N; }
store() {  # AET PORT DIR...
  local aet=$1 port=$2; shift 2
  find "$@" -name '*.dcm' -print0 | xargs -0 /usr/bin/storescu -aet BENCHSCU -aec "$aet" 127.0.0.1 "$port" >/dev/null 2>&1
}

results=()
run_pacsbox() {
  "$HERE/peers.sh" start pacsbox >/dev/null
  store PACSBOX "$PACSBOX_PORT" "$STUDY_DIR" "$OTHER_DIR"
  "$HERE/peers.sh" stop pacsbox >/dev/null
  local data=$BENCH_ROOT/run/pacsbox/storage key t0 t1 t2
  key=$(awk -F'\t' 'NR==1{print $3}' "$CORPUS/manifest.tsv")
  sync
  t0=$(now_ms)
  "$PACSBOX_BIN" edit-patient --data "$data" --patient "$key" --name "EDITED^NAME" >/dev/null
  t1=$(now_ms)
  "$PACSBOX_BIN" move --data "$data" --study "$STUDY_UID" --to-patient "$OTHER_PID" >/dev/null
  t2=$(now_ms)
  "$PACSBOX_BIN" verify --data "$data" --checksums >/dev/null
  results+=("pacsbox $((t1 - t0)) $((t2 - t1))")
}

run_orthanc() {
  "$HERE/peers.sh" start orthanc >/dev/null
  store ORTHANC "$ORTHANC_PORT" "$STUDY_DIR" "$OTHER_DIR"
  local api=http://127.0.0.1:$ORTHANC_HTTP id t0 t1 t2
  id=$(curl -s -X POST "$api/tools/lookup" -d "$STUDY_UID" | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["ID"])')
  t0=$(now_ms)
  id=$(curl -sf -X POST "$api/studies/$id/modify" \
    -d '{"Replace":{"PatientName":"EDITED^NAME"},"KeepSource":false,"Force":true,"Synchronous":true}' |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["PatientID"])')
  t1=$(now_ms)
  # Orthanc 1.10 refuses a new PatientID in /studies/{id}/modify ("the parent PatientID cannot
  # be manually modified"); its way is /patients/{id}/modify, the same here: the patient has
  # only this study.
  curl -sf -X POST "$api/patients/$id/modify" \
    -d "{\"Replace\":{\"PatientID\":\"$OTHER_PID\",\"PatientName\":\"$OTHER_NAME\"},\"KeepSource\":false,\"Force\":true,\"Synchronous\":true}" >/dev/null
  t2=$(now_ms)
  results+=("orthanc $((t1 - t0)) $((t2 - t1))")
  "$HERE/peers.sh" stop orthanc >/dev/null
}

for ((r = 1; r <= REPS; r++)); do
  if ((r % 2)); then run_pacsbox; run_orthanc; else run_orthanc; run_pacsbox; fi
done

echo "instances per study: $N; load: $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-8s %10s %10s %12s %12s\n' peer edit_ms move_ms edit_inst_s move_inst_s
for l in "${results[@]}"; do
  read -r peer e m <<<"$l"
  printf '%-8s %10s %10s %12.0f %12.0f\n' "$peer" "$e" "$m" "$(echo "$N*1000/$e" | bc -l)" "$(echo "$N*1000/$m" | bc -l)"
done

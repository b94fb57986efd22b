#!/usr/bin/env bash
# Anonymizing one study: pacsbox (`pacsbox anonymize --into-archive`, the archive's own durable
# ingest path) vs Orthanc (`POST /studies/{id}/anonymize`, synchronous, SyncStorageArea on), on
# the same study, peers interleaved, fresh storage per run. Per run: seconds and instances/s
# for the anonymization alone (the study is loaded by storescu first, not timed), instances
# in the archive afterwards (original + copy).
#
#   anonymize.sh [-c CORPUS] [-r REPS]     CORPUS under $BENCH_ROOT/corpus (default ct500:
#                                          gen_corpus.py --template large, 1 study, 2 × 250)
#
# With PACSBOX_ALT_BIN set (another build, e.g. main's before a change), it runs as a third
# peer, `pacsbox-alt`, the same way as `pacsbox`.
#
# Ports: set PACSBOX_PORT/PACSBOX_HTTP/ORTHANC_PORT/ORTHANC_HTTP when others run benchmarks.
set -euo pipefail
cd "$(dirname "$0")"
BENCH_ROOT=${BENCH_ROOT:-/var/tmp/pacsbench}
export BENCH_ROOT
ORTHANC_HTTP=${ORTHANC_HTTP:-8042}
PACSBOX_BIN=${PACSBOX_BIN:-$BENCH_ROOT/bin/pacsbox}
export PACSBOX_BIN
CORPUS=ct500 REPS=3
while getopts c:r: o; do
  case $o in c) CORPUS=$OPTARG;; r) REPS=$OPTARG;; *) exit 2;; esac
done
dir=$BENCH_ROOT/corpus/$CORPUS
if [[ ! -d $dir ]]; then
  python3 gen_corpus.py --out "$dir" --template large --studies 1 --series 2 --instances 250 >&2
fi
mapfile -t files < <(find "$dir" -type f -name '*.dcm' | sort)
n=${#files[@]}
study=$(/usr/bin/dcmdump -q +P 0020,000d "${files[0]}" | sed -E 's/.*\[([0-9.]+)\].*/\1/')
export TCP_NODELAY=1
now() { date +%s.%N; }
load() {  # peer -> storescu the corpus into it
  local aet port; read -r aet port _ <<<"$(./peers.sh info "$1")"
  /usr/bin/storescu -aet BENCHSCU -aec "$aet" +sd +r -nh 127.0.0.1 "$port" "$dir" >/dev/null 2>&1
}
echo -e "rep\tpeer\tinstances\tseconds\tinst_s\tstored_after"
for ((rep = 1; rep <= REPS; rep++)); do
  peers=(pacsbox orthanc)
  ((rep % 2 == 0)) && peers=(orthanc pacsbox)
  [[ -n ${PACSBOX_ALT_BIN:-} ]] && peers+=(pacsbox-alt)
  for peer in "${peers[@]}"; do
    ./peers.sh start "$peer" >/dev/null
    load "$peer"
    case $peer in
      pacsbox|pacsbox-alt)
        ./peers.sh stop "$peer"   # the CLI opens the archive itself
        bin=$PACSBOX_BIN
        [[ $peer == pacsbox-alt ]] && bin=$PACSBOX_ALT_BIN
        data=$BENCH_ROOT/run/$peer/storage
        sync
        t0=$(now)
        rc=0
        "$bin" anonymize --data "$data" --study "$study" --into-archive \
          --name BENCH^ANON --id BENCH-1 >"$BENCH_ROOT/run/$peer/anonymize.out" 2>&1 || rc=$?
        t1=$(now)
        [[ $rc == 0 || $rc == 2 ]] || { cat "$BENCH_ROOT/run/$peer/anonymize.out" >&2; exit 1; }
        stored=$("$bin" list --data "$data" | wc -l)
        ;;
      orthanc)
        id=$(curl -sf -X POST "http://127.0.0.1:$ORTHANC_HTTP/tools/lookup" -d "$study" |
          python3 -c 'import json,sys; print(next(r["ID"] for r in json.load(sys.stdin) if r["Type"] == "Study"))')
        sync
        t0=$(now)
        curl -sf -X POST "http://127.0.0.1:$ORTHANC_HTTP/studies/$id/anonymize" -d '{}' >/dev/null
        t1=$(now)
        stored=$(curl -sf "http://127.0.0.1:$ORTHANC_HTTP/statistics" |
          python3 -c 'import json,sys; print(json.load(sys.stdin)["CountInstances"])')
        ./peers.sh stop orthanc
        ;;
    esac
    python3 -c "import sys; s=float(sys.argv[2])-float(sys.argv[1]); print(f'$rep\t$peer\t$n\t{s:.2f}\t{$n/s:.1f}\t$stored')" "$t0" "$t1"
  done
done

#!/usr/bin/env bash
# Content coding of WADO-RS /metadata and /frames (issue 18): pacsbox vs Orthanc with its
# DICOMweb plugin, one 500-image CT series (gen_corpus.py --template large, 512×512×16 bit) in
# both, one run, figures as ratios (dicomweb_coding.py).
#   dicomweb_coding.sh [PHASE ...]   PHASE: start load measure stop clean (default: all)
# The servers are dicomweb.sh's (its start/stop phases, its ports), under their own BENCH_ROOT
# (default /var/tmp/pacsbench-dwc, ~600 MB; `clean` deletes it).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
export BENCH_ROOT=${BENCH_ROOT:-/var/tmp/pacsbench-dwc}
R=$BENCH_ROOT
REPS=${REPS:-5}
O_DICOM=${O_DICOM:-11442} O_HTTP=${O_HTTP:-18442}
P_DICOM=${P_DICOM:-11452} P_HTTP=${P_HTTP:-18452}
export O_DICOM O_HTTP P_DICOM P_HTTP
HOST=127.0.0.1
export TCP_NODELAY=1
mkdir -p "$R"

load() {
  local d=$R/corpus/ct500
  if [[ ! -f $d/manifest.tsv ]]; then
    rm -rf "$d"
    python3 "$HERE/gen_corpus.py" --out "$d" --template large --studies 1 --series 1 --instances 500 \
      --seed 11 --workers 2 >/dev/null
  fi
  local se
  se=$(echo "$d"/s*/se*)
  [[ -f $R/done-orthanc ]] || { /usr/bin/storescu -aet BENCHSCU -aec ORTHANC +sd +r -nh "$HOST" "$O_DICOM" "$se" \
    >>"$R/load.log" 2>&1 && touch "$R/done-orthanc"; }
  [[ -f $R/done-pacsbox ]] || { /usr/bin/storescu -aet BENCHSCU -aec PACSBOX +sd +r -nh "$HOST" "$P_DICOM" "$se" \
    >>"$R/load.log" 2>&1 && touch "$R/done-pacsbox"; }
  # Study, series and the 250th instance, read from a file of the corpus.
  python3 - "$se" >"$R/uids" <<'PY'
import sys, pydicom, pathlib
files = sorted(pathlib.Path(sys.argv[1]).glob("*.dcm"))
ds = pydicom.dcmread(files[len(files) // 2], stop_before_pixels=True)
print(ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID)
PY
}

measure() {
  local pending out st se sop
  for _ in $(seq 600); do
    pending=$(curl -s "http://$HOST:$P_HTTP/status.json" | python3 -c 'import json,sys; print(json.load(sys.stdin).get("compression_pending", 0))')
    ((pending == 0)) && break
    sleep 1
  done
  read -r st se sop <"$R/uids"
  out=$R/results-$(date -u +%Y%m%d-%H%M)
  mkdir -p "$out"
  (cd "$HERE" && python3 dicomweb_coding.py --pacsbox "http://$HOST:$P_HTTP" --pacsbox-data "$R/pacsbox/data" \
    --orthanc "http://$HOST:$O_HTTP" --study "$st" --series "$se" --sop "$sop" --reps "$REPS" \
    --token-file "$R/pacsbox.token" --out "$out") | tee "$out/summary.md"
}

phases=("$@")
((${#phases[@]})) || phases=(start load measure stop)
for ph in "${phases[@]}"; do
  case $ph in
    start | stop) bash "$HERE/dicomweb.sh" "$ph" ;;
    load) load ;;
    measure) measure ;;
    clean) bash "$HERE/dicomweb.sh" stop; rm -rf "$R" ;;
    *) echo "unknown phase $ph" >&2; exit 2 ;;
  esac
done

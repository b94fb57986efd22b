#!/usr/bin/env bash
# Patient media (issue 16): one 500-instance CT study (gen_corpus.py --template large, 1 study,
# 2 × 250, 265 MB, explicit VR LE) imported from a folder with `pacsbox import` (the tree scan:
# no DICOMDIR), exported with `pacsbox export` (keep; uncompressed is the same bytes for native
# files), the export imported into a fresh box; against `cp -r` of the same folder and DCMTK
# `dcmmkdir` over a copy (a DICOMDIR for the files as they are), and Orthanc's
# `POST /tools/create-media` (Orthanc core: a ZIP with a DICOMDIR, synchronous; the study loaded
# with storescu first, not timed; peers.sh's Orthanc, so ORTHANC_PORT/ORTHANC_HTTP move it off
# ports another benchmark holds). pacsbox's box stopped throughout, as the commands require;
# `export` ends with one syncfs, every other step is followed by `sync`. The first box stores
# the files zstd-compressed (`import` compresses at ingest, what idle compaction leaves on a
# running box; the `stored` row counts its .zst files); a second box has `zstd_level = 0`
# (plain .dcm, as stored) for `export-keep-plain`. Ends with each step's median.
#   media.sh [-r REPS]
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="${BENCH_ROOT:-/var/tmp/pacsbench}"
BIN="${PACSBOX_BIN:-$HERE/../target/release/pacsbox}"
REPS=3
while getopts "r:" o; do case "$o" in r) REPS="$OPTARG" ;; *) exit 2 ;; esac; done

corpus="$ROOT/corpus/ct500"
if [[ ! -f "$corpus/manifest.tsv" ]]; then
  python3 "$HERE/gen_corpus.py" --out "$corpus" --template large --studies 1 --series 2 --instances 250 >&2
fi
study="$(cut -f2 "$corpus/manifest.tsv" | head -1)"
run="$ROOT/run/media"
mb="$(du -sm "$corpus" | cut -f1)"
now() { date +%s.%N; }
secs() { python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.2f}')" "$1" "$2"; }
rows="$(mktemp)"
trap 'rm -f "$rows"' EXIT
printf 'rep\tstep\tseconds\tMB\n'
for rep in $(seq "$REPS"); do
  rm -rf "$run" && mkdir -p "$run"
  sync
  t0=$(now); "$BIN" import --data "$run/box" "$corpus/s00000" >/dev/null 2>&1; t1=$(now)
  printf '%s\timport-folder\t%s\t%s\n' "$rep" "$(secs "$t0" "$t1")" "$mb"
  printf '%s\tstored-zst-files\t%s\t%s\n' "$rep" "$(find "$run/box" -name '*.dcm.zst' | wc -l)" \
    "$(du -sm "$run/box" | cut -f1)"
  printf 'zstd_level = 0\n' >"$run/plain.toml"
  "$BIN" import --config "$run/plain.toml" --data "$run/box-plain" "$corpus/s00000" >/dev/null 2>&1
  printf '%s\tstored-plain-files\t%s\t%s\n' "$rep" "$(find "$run/box-plain" -name '*.dcm' | wc -l)" \
    "$(du -sm "$run/box-plain" | cut -f1)"
  sync
  t0=$(now); "$BIN" export --data "$run/box" --study "$study" --to "$run/media" >/dev/null 2>&1; sync; t1=$(now)
  printf '%s\texport-keep\t%s\t%s\n' "$rep" "$(secs "$t0" "$t1")" "$(du -sm "$run/media" | cut -f1)"
  t0=$(now); "$BIN" export --data "$run/box-plain" --study "$study" --to "$run/media-plain" >/dev/null 2>&1; sync; t1=$(now)
  printf '%s\texport-keep-plain\t%s\t%s\n' "$rep" "$(secs "$t0" "$t1")" "$(du -sm "$run/media-plain" | cut -f1)"
  t0=$(now); "$BIN" export --data "$run/box" --study "$study" --to "$run/plain" --syntax uncompressed >/dev/null 2>&1; sync; t1=$(now)
  printf '%s\texport-uncompressed\t%s\t%s\n' "$rep" "$(secs "$t0" "$t1")" "$(du -sm "$run/plain" | cut -f1)"
  t0=$(now); cp -r "$corpus" "$run/cp"; sync; t1=$(now)
  printf '%s\tcp-r\t%s\t%s\n' "$rep" "$(secs "$t0" "$t1")" "$mb"
  # DCMTK wants ISO 9660 names: the copy renames (DICOM/SEn/Innnnnnn), then dcmmkdir.
  t0=$(now)
  python3 - "$corpus" "$run/dcm" <<'PY'
import pathlib, shutil, sys
src, dst = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
for s, series in enumerate(sorted(p for p in src.glob("s*/se*") if p.is_dir())):
    d = dst / "DICOM" / f"SE{s + 1}"
    d.mkdir(parents=True)
    for i, f in enumerate(sorted(series.iterdir())):
        shutil.copyfile(f, d / f"I{i + 1:07d}")
PY
  (cd "$run/dcm" && dcmmkdir -q +r +id . +D DICOMDIR DICOM)
  sync; t1=$(now)
  printf '%s\tcopy+dcmmkdir\t%s\t%s\n' "$rep" "$(secs "$t0" "$t1")" "$(du -sm "$run/dcm" | cut -f1)"
  t0=$(now); "$BIN" import --data "$run/box2" "$run/media" >/dev/null 2>&1; t1=$(now)
  printf '%s\timport-media\t%s\t%s\n' "$rep" "$(secs "$t0" "$t1")" "$mb"
  # The same media as a ZIP (Orthanc answers one): pacsbox's folder zipped.
  t0=$(now); "$BIN" export --data "$run/box" --study "$study" --to "$run/media2" --zip "$run/pacsbox.zip" >/dev/null 2>&1; sync; t1=$(now)
  printf '%s\texport-keep+zip\t%s\t%s\n' "$rep" "$(secs "$t0" "$t1")" "$(du -sm "$run/pacsbox.zip" | cut -f1)"
  if command -v Orthanc >/dev/null; then
    BENCH_ROOT="$ROOT" PACSBOX_BIN="$BIN" "$HERE/peers.sh" start orthanc >/dev/null
    read -r aet port _ <<<"$(BENCH_ROOT="$ROOT" "$HERE/peers.sh" info orthanc)"
    /usr/bin/storescu -aet BENCHSCU -aec "$aet" +sd +r -nh 127.0.0.1 "$port" "$corpus/s00000" >/dev/null 2>&1
    id=$(curl -sf -X POST "http://127.0.0.1:${ORTHANC_HTTP:-8042}/tools/lookup" -d "$study" |
      python3 -c 'import json,sys; print(next(r["ID"] for r in json.load(sys.stdin) if r["Type"] == "Study"))')
    sync
    t0=$(now)
    curl -sf -X POST "http://127.0.0.1:${ORTHANC_HTTP:-8042}/tools/create-media" \
      -d "{\"Resources\": [\"$id\"], \"Synchronous\": true}" -o "$run/orthanc.zip"
    sync; t1=$(now)
    printf '%s\torthanc-create-media\t%s\t%s\n' "$rep" "$(secs "$t0" "$t1")" "$(du -sm "$run/orthanc.zip" | cut -f1)"
    BENCH_ROOT="$ROOT" "$HERE/peers.sh" stop orthanc >/dev/null
  fi
done | tee "$rows"
rm -rf "$run"
echo "median of $REPS:"
python3 - "$rows" <<'PY'
import statistics, sys
steps = {}
for line in open(sys.argv[1]).read().splitlines():
    rep, step, secs, mb = line.split("\t")
    steps.setdefault(step, []).append(float(secs))
for step, v in steps.items():
    print(f"{step}\t{statistics.median(v):.2f}")
PY

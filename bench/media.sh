#!/usr/bin/env bash
# Patient media (issue 16): one 500-instance CT study (gen_corpus.py --template large, 1 study,
# 2 × 250, 265 MB, explicit VR LE) imported from a folder with `pacsbox import` (the tree scan:
# no DICOMDIR), exported with `pacsbox export` (keep; uncompressed is the same bytes for native
# files), the export imported into a fresh box; against `cp -r` of the same folder and DCMTK
# `dcmmkdir` over a copy (a DICOMDIR for the files as they are). Box stopped throughout, as the
# commands require. Orthanc's /tools/create-media is not run yet (left in bench/README.md).
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
printf 'rep\tstep\tseconds\tMB\n'
for rep in $(seq "$REPS"); do
  rm -rf "$run" && mkdir -p "$run"
  sync
  t0=$(now); "$BIN" import --data "$run/box" "$corpus/s00000" >/dev/null 2>&1; t1=$(now)
  printf '%s\timport-folder\t%s\t%s\n' "$rep" "$(secs "$t0" "$t1")" "$mb"
  sync
  t0=$(now); "$BIN" export --data "$run/box" --study "$study" --to "$run/media" >/dev/null 2>&1; sync; t1=$(now)
  printf '%s\texport-keep\t%s\t%s\n' "$rep" "$(secs "$t0" "$t1")" "$(du -sm "$run/media" | cut -f1)"
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
done
rm -rf "$run"

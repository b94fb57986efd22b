#!/usr/bin/env bash
# Preview and pixel timings of pacsbox-imaging (release build) on a synthetic 2K×2K 12-bit CR,
# stored uncompressed, as 12-bit JPEG Extended and as JPEG-LS (DCMTK's dcmcjpeg/dcmcjpls), and
# on pydicom's real 512×512 CT, 1841×1955 CR (JPEG 2000) and 12-bit JPEG files.
# Usage: bash bench/imaging/run.sh [MAX_DIM=512] [RUNS=7]
set -euo pipefail
cd "$(dirname "$0")/../.."
max_dim="${1:-512}"
runs="${2:-7}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

python3 bench/imaging/make_cr.py "$work/cr2k.dcm"
dcmcjpeg +ee "$work/cr2k.dcm" "$work/cr2k_jpeg12.dcm"
dcmcjpls "$work/cr2k.dcm" "$work/cr2k_jpegls.dcm"
td="$(python3 -c 'import os, pydicom; print(os.path.join(os.path.dirname(pydicom.__file__), "data", "test_files"))')"
dd="$(python3 -c 'import os, data_store; print(os.path.join(os.path.dirname(data_store.__file__), "data"))')"

cargo build -q --release -p pacsbox-imaging --features native-codecs --example preview_timing
echo "# nproc=$(nproc), max_dim=$max_dim, median of $runs runs"
target/release/examples/preview_timing "$max_dim" "$runs" \
    "$work/cr2k.dcm" "$work/cr2k_jpeg12.dcm" "$work/cr2k_jpegls.dcm" \
    "$td/CT_small.dcm" "$td/JPGExtended.dcm" "$dd/RG1_UNCR.dcm" "$dd/RG1_J2KR.dcm" "$dd/US1_J2KR.dcm"

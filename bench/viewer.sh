#!/usr/bin/env bash
# The viewer's speed in a real browser, on the studies and server of tests/browser/run.sh
# (which this runs, with bench/viewer_timing.mjs instead of the tests): time to the first
# picture and to full pixels of the 2K CR, cine images per second on the 10-frame MR and the
# 120-frame JPEG clip. Figures print and land in tests/browser/artifacts/viewer-timings.json.
#   bench/viewer.sh            (env: PACSBOX_BIN, VIEWER_RUNS=5, CINE_MS=3000)
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
BROWSER_FILES="$HERE/viewer_timing.mjs" exec bash "$HERE/../tests/browser/run.sh" "$@"

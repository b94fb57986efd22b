#!/usr/bin/env bash
# How long OHIF's study list (at /ohif/) takes to show when the box holds 1 000 studies, against
# the same box's own search page and the bare QIDO-RS answer in the same run (one study of one
# CT_small image each, bench/gen_corpus.py). Runs tests/browser/run.sh (which installs OHIF and
# starts the server) with bench/ohif_list.mjs instead of the tests; figures print and land in
# tests/browser/artifacts/ohif-list.json.
#   bench/ohif_list.sh          (env: PACSBOX_BIN, OHIF_STUDIES=1000, OHIF_RUNS=5)
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
CORPUS="$(mktemp -d /tmp/pacsbox-ohif-corpus.XXXXXX)"
trap 'rm -rf "$CORPUS"' EXIT
python3 "$HERE/gen_corpus.py" --out "$CORPUS" --studies "${OHIF_STUDIES:-1000}" --series 1 --instances 1 >/dev/null
export OHIF_CORPUS="$CORPUS"
BROWSER_FILES="$HERE/ohif_list.mjs" bash "$HERE/../tests/browser/run.sh" "$@"

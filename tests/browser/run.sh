#!/usr/bin/env bash
# The web page in a real browser against the real server and real files:
#   1. installs what it needs on a fresh Debian 12 (chromium from Debian, DCMTK and pydicom via
#      tests/install_deps.sh, playwright-core from the committed package-lock.json — no browser
#      download);
#   2. builds target/release/pacsbox if absent (or uses $PACSBOX_BIN);
#   3. starts `pacsbox serve` on free loopback ports with a fresh data folder, stores the test
#      studies with DCMTK's storescu (fixtures.py), reads the generated admin password;
#   4. runs the node:test files here (*.test.mjs); screenshots land in tests/browser/artifacts/.
# Usage: tests/browser/run.sh [node --test options, e.g. --test-name-pattern=viewer]
set -euo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
cd "$REPO"

export DEBIAN_FRONTEND=noninteractive
apt_install() {
    apt-get install -y -q "$@" >/dev/null 2>&1 || { apt-get update -q >/dev/null && apt-get install -y -q "$@" >/dev/null; }
}

echo "==> dependencies"
if [[ ! -x /usr/bin/chromium ]]; then
    echo "    installing Debian's chromium"
    apt_install chromium
fi
# Hangul in screenshots (optional: the assertions do not depend on fonts)
if ! fc-list 2>/dev/null | grep -qi 'nanum\|noto sans cjk'; then
    apt_install fonts-nanum || echo "    (no Korean font: screenshots show boxes for Hangul)"
fi
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    apt_install nodejs npm
fi
bash tests/install_deps.sh
# The OHIF viewer served at /ohif/ (07-ohif): the pinned @ohif/app, fetched once into a cache
# folder and prepared for the /ohif/ prefix; a no-op when that folder already holds it.
OHIF_DIR="${PACSBOX_OHIF_DIR:-${PACSBOX_CACHE:-$HOME/.cache/pacsbox}/ohif}"
bash web-ui/ohif/install.sh "$OHIF_DIR"
if [[ ! -d "$HERE/node_modules/playwright-core" ]] || [[ "$HERE/package-lock.json" -nt "$HERE/node_modules/.package-lock.json" ]]; then
    (cd "$HERE" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error)
fi

BIN="${PACSBOX_BIN:-target/release/pacsbox}"
# web-ui/ (templates, viewer.js, CSS) is compiled into the binary: a binary older than any of
# those files would test yesterday's page, so build then too (cargo is incremental).
if [[ ! -x "$BIN" ]]; then
    echo "==> building $BIN"
    cargo build --release -p pacsbox --features native-codecs
elif [[ -z "${PACSBOX_BIN:-}" && -n "$(find web-ui firmware -newer "$BIN" -type f -print -quit)" ]]; then
    echo "==> web-ui/ or firmware/ changed since $BIN was built: cargo build --release -p pacsbox --features native-codecs"
    cargo build --release -p pacsbox --features native-codecs
fi
BIN="$(cd "$(dirname "$BIN")" && pwd)/$(basename "$BIN")"

ART="$HERE/artifacts"
mkdir -p "$ART"
WORK="$(mktemp -d /tmp/pacsbox-browser.XXXXXX)"
DATA="$WORK/data"
read -r DICOM_PORT HTTP_PORT HTTPS_PORT < <(python3 - <<'PY'
import socket
ss = [socket.socket() for _ in range(3)]
for s in ss:
    s.bind(("127.0.0.1", 0))
print(*[s.getsockname()[1] for s in ss])
PY
)

SERVER_PID=""
# shellcheck disable=SC2317 # run by the EXIT trap
cleanup() {
    if [[ -n "$SERVER_PID" ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill -TERM "$SERVER_PID" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$SERVER_PID" 2>/dev/null || true
    fi
    if [[ "${KEEP_WORK:-0}" != 1 ]]; then rm -rf "$WORK"; else echo "work folder kept: $WORK"; fi
}
trap cleanup EXIT

echo "==> starting $BIN serve (DICOM $DICOM_PORT, HTTP $HTTP_PORT, HTTPS $HTTPS_PORT, data $DATA)"
# The page is tested as staff use it: over HTTPS with the certificate made at first start.
# Media "inserted into the box" are folders the import test moves into $WORK/media.
mkdir -p "$WORK/media"
printf '[media]\nwatch = "%s"\n\n[web]\nohif_dir = "%s"\n' "$WORK/media" "$OHIF_DIR" >"$WORK/pacsbox.toml"
NO_COLOR=1 "$BIN" serve --config "$WORK/pacsbox.toml" --data "$DATA" --ae PACSBOX --dicom-port "$DICOM_PORT" --http-port "$HTTP_PORT" \
    --https-port "$HTTPS_PORT" --dicom-tls-port 0 --bind 127.0.0.1 --reserve-mb 1 >"$ART/pacsbox.log" 2>&1 &
SERVER_PID=$!
status_ok() {
    python3 -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=2)' \
        "http://127.0.0.1:$HTTP_PORT/status.json" >/dev/null 2>&1
}
for _ in $(seq 300); do
    if status_ok && [[ -s "$DATA/initial-admin-password" ]]; then
        break
    fi
    kill -0 "$SERVER_PID" 2>/dev/null || { echo "pacsbox exited:"; cat "$ART/pacsbox.log"; exit 1; }
    sleep 0.1
done
[[ -s "$DATA/initial-admin-password" ]] || { echo "no $DATA/initial-admin-password after 30 s"; cat "$ART/pacsbox.log"; exit 1; }
ADMIN_PASSWORD="$(tr -d '\r\n' <"$DATA/initial-admin-password")"

echo "==> storing the test studies"
python3 "$HERE/fixtures.py" --port "$DICOM_PORT" --ae PACSBOX --work "$WORK/files" --out "$WORK/manifest.json"

echo "==> browser tests"
export PACSBOX_URL="https://127.0.0.1:$HTTPS_PORT"
export PACSBOX_PLAIN_URL="http://127.0.0.1:$HTTP_PORT"
PACSBOX_TLS_FINGERPRINT="$(python3 -c 'import json,sys,urllib.request; print(json.load(urllib.request.urlopen(sys.argv[1]))["tls_fingerprint"])' "http://127.0.0.1:$HTTP_PORT/status.json")"
export PACSBOX_TLS_FINGERPRINT
export PACSBOX_ADMIN_PASSWORD="$ADMIN_PASSWORD"
export PACSBOX_MANIFEST="$WORK/manifest.json"
export PACSBOX_ARTIFACTS="$ART"
export PACSBOX_MEDIA_WATCH="$WORK/media"
export PACSBOX_DICOM_PORT="$DICOM_PORT"
cd "$HERE"
# one file at a time, in order (01 changes the generated password; works on node 18 and 20+)
status=0
# BROWSER_FILES: other files to run against the same server and studies (bench/viewer.sh)
for f in ${BROWSER_FILES:-./*.test.mjs}; do
    node --test --test-reporter=spec "$@" "$f" || status=$?
done
echo "==> screenshots and server log in $ART"
exit "$status"

#!/usr/bin/env bash
# Puts the prebuilt OHIF viewer (npm package @ohif/app, its dist/) into a folder pacsbox serves
# at /ohif/ (`[web] ohif_dir`). The package is built to live at the site's root; this adapts it
# to the /ohif/ prefix and to a box on a clinic LAN without Internet:
#   - webpack's public path, index.html's links, the CSS font URL and the manifest's icons get
#     the /ohif/ prefix (each rewrite is counted: a version that no longer matches fails here,
#     not in a browser);
#   - index.html's two inline scripts become one file (pacsbox-init.js), so the CSP needs no
#     'unsafe-inline' for scripts; the service worker (it loads workbox from a CDN) is dropped;
#   - what a plain DICOMweb viewer never loads is pruned: ONNX runtime (AI segmentation,
#     136 MB), the slide microscopy viewer (20 MB), source maps (38 MB);
#   - app-config.js is removed: pacsbox answers /ohif/app-config.js with its own
#     (web-ui/static/ohif-app-config.js: the box's own DICOMweb, same origin).
# The tarball is cached (PACSBOX_CACHE, default ~/.cache/pacsbox) and its integrity checked
# against the pinned hash; a folder already holding this version and preparation is left alone.
# Usage: web-ui/ohif/install.sh DEST_DIR
set -euo pipefail

OHIF_VERSION=3.13.2
OHIF_INTEGRITY='sha512-WZdxmpmG7rqFgW9ZJLcbgr3XCtLi1KDNPoMaeY5PPe6j4G4fjEjjkycZM6C6Zk2F87BKxFfpq+jd5xXZB9E8EA=='
# Bump when the preparation below changes, so that prepared folders are redone.
PREPARATION=1

DEST="${1:?usage: $0 DEST_DIR}"
CACHE="${PACSBOX_CACHE:-${HOME:-/root}/.cache/pacsbox}"
STAMP="$OHIF_VERSION prep $PREPARATION"

if [[ -f "$DEST/.pacsbox-ohif" && "$(cat "$DEST/.pacsbox-ohif")" == "$STAMP" ]]; then
    echo "    OHIF $OHIF_VERSION already in $DEST"
    exit 0
fi

mkdir -p "$CACHE"
TGZ="$CACHE/ohif-app-$OHIF_VERSION.tgz"
integrity() {
    python3 -c 'import base64, hashlib, sys; print("sha512-" + base64.b64encode(hashlib.sha512(open(sys.argv[1], "rb").read()).digest()).decode())' "$1"
}
if [[ ! -s "$TGZ" ]] || [[ "$(integrity "$TGZ")" != "$OHIF_INTEGRITY" ]]; then
    echo "    fetching @ohif/app@$OHIF_VERSION (50 MB) from the npm registry"
    rm -f "$TGZ"
    (cd "$CACHE" && npm pack --silent "@ohif/app@$OHIF_VERSION" >/dev/null)
fi
if [[ "$(integrity "$TGZ")" != "$OHIF_INTEGRITY" ]]; then
    echo "error: $TGZ does not match the pinned integrity $OHIF_INTEGRITY" >&2
    exit 1
fi

mkdir -p "$(dirname "$DEST")"
WORK="$(mktemp -d "$(dirname "$DEST")/.ohif-prep.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
tar -xzf "$TGZ" -C "$WORK" package/dist
DIST="$WORK/package/dist"
rm -rf "$DIST/ort" "$DIST/dicom-microscopy-viewer" "$DIST/sw.js" "$DIST/init-service-worker.js" \
    "$DIST/_headers" "$DIST/_redirects" "$DIST/serve.json" "$DIST/app-config.js"
find "$DIST" -name '*.map' -delete

python3 - "$DIST" <<'PY'
import pathlib, sys

dist = pathlib.Path(sys.argv[1])

def rewrite(path, pairs):
    text = path.read_text(encoding="utf-8")
    for old, new, expected in pairs:
        n = text.count(old)
        if expected is not None and n != expected:
            sys.exit(f"error: {path.name}: expected {expected} of {old!r}, found {n}")
        text = text.replace(old, new)
    path.write_text(text, encoding="utf-8")

rewrite(dist / "index.html", [
    ('<script>console.time("scriptToView"),window.PUBLIC_URL="/"</script>',
     '<script src="/pacsbox-init.js"></script>', 1),
    ('<script>function browserImportFunction(n){return import(n)}window.PUBLIC_URL="/"</script>', '', 1),
    ('<script rel="preload" as="script" type="module" src="/init-service-worker.js"></script>', '', 1),
    ('href="/', 'href="/ohif/', None),
    ('src="/', 'src="/ohif/', None),
    ('content="/assets/', 'content="/ohif/assets/', None),
])
(dist / "pacsbox-init.js").write_text(
    "// pacsbox: index.html's inline scripts, moved here so that the CSP needs no 'unsafe-inline'.\n"
    'console.time("scriptToView");\n'
    'window.PUBLIC_URL = "/ohif/";\n'
    "function browserImportFunction(n) { return import(n); }\n",
    encoding="utf-8",
)
rewrite(dist / "app.bundle.css", [("url(/", "url(/ohif/", None)])
rewrite(dist / "manifest.json", [('"/assets/', '"/ohif/assets/', None)])
patched = 0
for js in dist.glob("*.js"):
    raw = js.read_bytes()
    if b'__webpack_require__.p = "/";' in raw:
        js.write_bytes(raw.replace(b'__webpack_require__.p = "/";', b'__webpack_require__.p = "/ohif/";'))
        patched += 1
if not any((dist / n).exists() for n in ["index.html"]) or patched < 2:
    sys.exit(f"error: webpack's public path found in {patched} bundle(s)")
print(f"    public path set to /ohif/ in {patched} bundles")
PY

echo "$STAMP" >"$DIST/.pacsbox-ohif"
if [[ -e "$DEST" ]]; then
    mv "$DEST" "$WORK/old"
fi
mv "$DIST" "$DEST"
echo "    OHIF $OHIF_VERSION prepared in $DEST ($(du -sh "$DEST" | cut -f1))"

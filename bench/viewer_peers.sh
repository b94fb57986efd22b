#!/usr/bin/env bash
# Issue 20's viewer comparison on one slow link: pacsbox's viewer vs Orthanc's web viewer (Debian
# `orthanc-webviewer`, with `orthanc-gdcm` for JPEG 2000) vs OHIF at pacsbox's /ohif/ (over
# pacsbox's DICOMweb) vs the same OHIF over Orthanc's DICOMweb (bench/ohif_orthanc.py), on the
# same files: pydicom-data's 2K CR (RG1_UNCR, 1841×1955, uncompressed; `cr`), the same CR in JPEG
# lossless (made here with dcmcjpeg; `crjl`) and a 300-slice 512×512 CT (bench/gen_corpus.py
# --template large; `ct`), on a desktop and a phone viewport. Starts an Orthanc 1.10 with its web
# viewer and DICOMweb plugins on free loopback ports, then runs tests/browser/run.sh (which starts
# pacsbox) with bench/viewer_peers.mjs instead of the tests; that stores the studies into both
# servers and times, in chromium throttled by DevTools, first image, full fidelity, bytes
# (Resource Timing and DevTools network events), and (CT) the jump to slice 150. Figures print and
# land in tests/browser/artifacts/viewer-peers.json.
#   bench/viewer_peers.sh     (env: PACSBOX_BIN, PEERS_RUNS=3, VIEWER_MBIT=10, VIEWER_LATENCY_MS=20,
#                              PEERS_VIEWPORT=1280x800,390x844 (under 600 px wide: a phone,
#                              deviceScaleFactor 3, touch), PEERS_CT_SLICES=300,
#                              PEERS_VIEWERS=pacsbox,orthanc,orthanc-full,ohif,ohif-orthanc,
#                              PEERS_KEYS=cr,crjl,ct, PEERS_CR=RG1_UNCR.dcm)
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
export DEBIAN_FRONTEND=noninteractive
for p in orthanc orthanc-dicomweb orthanc-webviewer orthanc-gdcm; do
    dpkg -s "$p" >/dev/null 2>&1 || apt-get install -y -q "$p" >/dev/null
done

WORK="$(mktemp -d /tmp/pacsbox-viewer-peers.XXXXXX)"
ORTHANC_PID=""
PROXY_PID=""
# shellcheck disable=SC2317 # run by the EXIT trap
cleanup() {
    if [[ -n "$PROXY_PID" ]]; then kill -TERM "$PROXY_PID" 2>/dev/null || true; wait "$PROXY_PID" 2>/dev/null || true; fi
    if [[ -n "$ORTHANC_PID" ]]; then kill -TERM "$ORTHANC_PID" 2>/dev/null || true; wait "$ORTHANC_PID" 2>/dev/null || true; fi
    rm -rf "$WORK"
}
trap cleanup EXIT

echo "==> studies in $WORK/studies"
mkdir -p "$WORK/studies/cr"
# PEERS_CR: the same CR as pydicom-data stores it otherwise, e.g. RG1_J2KR.dcm (JPEG 2000 lossless)
python3 - "$WORK/studies/cr" "${PEERS_CR:-RG1_UNCR.dcm}" <<'PY'
import shutil, sys
from pydicom.data import get_testdata_file
shutil.copy(get_testdata_file(sys.argv[2]), sys.argv[1])
PY
# The same CR in JPEG lossless (process 14, selection value 1: 1.2.840.10008.1.2.4.70), which
# pydicom-data does not hold: DCMTK's dcmcjpeg from RG1_UNCR, then new study/series/instance UIDs
# so both servers keep it as a study of its own next to the original
RG1="$(python3 -c 'from pydicom.data import get_testdata_file; print(get_testdata_file("RG1_UNCR.dcm"))')"
dcmcjpeg +e1 "$RG1" "$WORK/studies/cr/RG1_JPLL.dcm"
dcmodify -q -nb -gst -gse -gin "$WORK/studies/cr/RG1_JPLL.dcm"
dcmdump -q -Un +P TransferSyntaxUID "$WORK/studies/cr/RG1_JPLL.dcm" | grep -qF '[1.2.840.10008.1.2.4.70]' \
    || { echo "dcmcjpeg did not write JPEG lossless SV1"; dcmdump -q -Un +P TransferSyntaxUID "$WORK/studies/cr/RG1_JPLL.dcm"; exit 1; }
python3 "$HERE/gen_corpus.py" --out "$WORK/studies/ct" --template large --studies 1 --series 1 \
    --instances "${PEERS_CT_SLICES:-300}" >/dev/null

read -r O_DICOM O_HTTP O_OHIF < <(python3 - <<'PY'
import socket
ss = [socket.socket() for _ in range(3)]
for s in ss:
    s.bind(("127.0.0.1", 0))
print(*[s.getsockname()[1] for s in ss])
PY
)
mkdir -p "$WORK/orthanc/storage" "$WORK/orthanc/cache"
# Orthanc as the Debian package ships it, plus three plugins (GDCM decodes JPEG 2000 for its web
# viewer); its web viewer decodes into a cache of its own (CachePath), emptied with the run.
cat >"$WORK/orthanc/orthanc.json" <<JSON
{
  "Name" : "bench-viewer-peers",
  "StorageDirectory" : "$WORK/orthanc/storage",
  "IndexDirectory" : "$WORK/orthanc/storage",
  "Plugins" : [ "/usr/share/orthanc/plugins/libOrthancDicomWeb.so",
                "/usr/share/orthanc/plugins/libOrthancWebViewer.so",
                "/usr/share/orthanc/plugins/libOrthancGdcm.so" ],
  "HttpPort" : $O_HTTP,
  "RemoteAccessAllowed" : false,
  "AuthenticationEnabled" : false,
  "DicomAet" : "ORTHANC",
  "DicomPort" : $O_DICOM,
  "DicomCheckCalledAet" : false,
  "DicomAlwaysAllowStore" : true,
  "SaveJobs" : false,
  "DicomWeb" : { "Enable" : true, "Root" : "/dicom-web/", "EnableWado" : true, "WadoRoot" : "/wado" },
  "WebViewer" : { "CachePath" : "$WORK/orthanc/cache" }
}
JSON
echo "==> starting Orthanc (DICOM $O_DICOM, HTTP $O_HTTP)"
Orthanc "$WORK/orthanc/orthanc.json" >"$WORK/orthanc/log" 2>&1 &
ORTHANC_PID=$!
for _ in $(seq 300); do
    curl -sf "http://127.0.0.1:$O_HTTP/system" >/dev/null && break
    kill -0 "$ORTHANC_PID" 2>/dev/null || { cat "$WORK/orthanc/log"; exit 1; }
    sleep 0.1
done
curl -sf "http://127.0.0.1:$O_HTTP/plugins" | grep -q web-viewer || { echo "Orthanc has no web-viewer plugin"; exit 1; }

# OHIF over Orthanc: the OHIF folder run.sh serves at pacsbox's /ohif/ (installed here first, a
# no-op when it is there), same configuration, on its own port in front of Orthanc's DICOMweb
OHIF_DIR="${PACSBOX_OHIF_DIR:-${PACSBOX_CACHE:-$HOME/.cache/pacsbox}/ohif}"
bash "$HERE/../web-ui/ohif/install.sh" "$OHIF_DIR" >/dev/null
python3 "$HERE/ohif_orthanc.py" "$OHIF_DIR" "http://127.0.0.1:$O_HTTP" "$O_OHIF" >"$WORK/ohif-orthanc.log" 2>&1 &
PROXY_PID=$!

export PEERS_STUDIES="$WORK/studies" ORTHANC_URL="http://127.0.0.1:$O_HTTP" ORTHANC_DICOM_PORT="$O_DICOM"
export OHIF_ORTHANC_URL="http://127.0.0.1:$O_OHIF"
BROWSER_FILES="$HERE/viewer_peers.mjs" bash "$HERE/../tests/browser/run.sh" "$@"

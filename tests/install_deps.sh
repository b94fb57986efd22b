#!/usr/bin/env bash
# Installs what the test suite needs, idempotently and quietly: DCMTK, zstd, strace and faketime from
# Debian, GDCM's gdcmscu (libgdcm-tools, a second C-FIND client), and cmake, g++ and nasm to build the vendored C/C++ codecs of firmware/imaging
# (CharLS for JPEG-LS, libjpeg-turbo for 12-bit JPEG; nasm gives libjpeg-turbo its x86 SIMD);
# rsyslog with its GnuTLS driver and openssl (the audit forwarding's TLS syslog collector and its
# certificates in test_audit_syslog.py; rsyslogd is started by the test, never as a service);
# Orthanc and its DICOMweb plugin (the peer of the forwarding tests, and a second DICOMweb client
# in test_dicomweb.py);
# pinned pydicom, pynetdicom, pydicom-data, pytest, numpy, and pylibjpeg with its libjpeg and
# OpenJPEG plugins (pydicom's independent decoders: the imaging tests' ground truth) from
# PyPI; clippy/rustfmt; shellcheck for the scripts; node (Debian's, as tests/browser/run.sh installs it) for the viewer's
# `node --test` step.
# Called by tests/run_all.sh, so the README's test command works on a fresh Debian 12.
set -euo pipefail

cd "$(dirname "$0")/.."

echo "==> installing test dependencies (no-op when present)"

need_apt=()
for pkg in dcmtk zstd strace libgdcm-tools cmake g++ nasm shellcheck faketime rsyslog rsyslog-gnutls openssl orthanc orthanc-dicomweb; do
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
        need_apt+=("$pkg")
    fi
done
command -v node >/dev/null || need_apt+=(nodejs)
# ISO 9660 images of patient media (pacsbox export --iso; tests/e2e/test_media.py).
command -v xorriso >/dev/null || need_apt+=(xorriso)
if ((${#need_apt[@]})); then
    export DEBIAN_FRONTEND=noninteractive
    if ! apt-get install -y -q "${need_apt[@]}" >/dev/null 2>&1; then
        apt-get update -q >/dev/null
        apt-get install -y -q "${need_apt[@]}" >/dev/null
    fi
fi
for tool in /usr/bin/storescu /usr/bin/echoscu /usr/bin/dcmdump /usr/bin/gdcmscu zstd cmake g++; do
    command -v "$tool" >/dev/null || { echo "missing $tool after install" >&2; exit 1; }
done

PY_REQS=(
    "pydicom==3.0.2"
    "pynetdicom==3.0.4"
    "pydicom-data==1.0.0"
    "pytest==9.2.0"
    "numpy==2.4.6"
    "pylibjpeg==2.1.0"
    "pylibjpeg-libjpeg==2.5.0"
    "pylibjpeg-openjpeg==2.6.0"
    # Client and server certificates for DICOM TLS tests (expired ones need crafted dates).
    "cryptography==48.0.0"
    # PS3.15 Annex E's table as another project extracted it (dicomanonymizer's
    # dicom_anonymization_databases): test_anonymize.py checks pacsbox's output against it.
    "dicom-anonymizer==2.1.0"
    # DICOMweb client (QIDO-RS, WADO-RS, STOW-RS) for test_dicomweb.py.
    "dicomweb-client==0.61.2"
    # Zstandard for urllib3 (what requests, and so dicomweb-client, decode with): with it they
    # ask for `Content-Encoding: zstd`, which WADO-RS answers (test_dicomweb.py).
    "backports.zstd==1.8.0"
)
if ! python3 - "${PY_REQS[@]}" <<'PY' 2>/dev/null
import sys
from importlib.metadata import version
for req in sys.argv[1:]:
    name, want = req.split("==")
    if version(name) != want:
        sys.exit(1)
PY
then
    python3 -m pip install -q --disable-pip-version-check --root-user-action=ignore "${PY_REQS[@]}"
fi

installed_components="$(rustup component list --installed 2>/dev/null || true)"
if ! grep -q '^clippy' <<<"$installed_components" || ! grep -q '^rustfmt' <<<"$installed_components"; then
    rustup component add clippy rustfmt
fi


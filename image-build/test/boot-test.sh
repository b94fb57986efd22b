#!/usr/bin/env bash
# The proof that an image works: boots it under qemu twice and talks DICOM to it.
#
#   image-build/test/boot-test.sh IMAGE        (a *-test.img from build.sh --test)
#
# 1. boots the image's own kernel and initrd (taken from its boot partition) under qemu
#    (amd64: -M q35; arm64: -M virt -cpu cortex-a72; KVM only when usable, else software)
#    with two blank virtual disks; the test overlay makes them a RAID1 data volume;
# 2. waits for /status.json (polling; emulation is slow), C-ECHO, C-STORE of a first series
#    with DCMTK's echoscu/storescu, checks the status JSON counts;
#    on amd64, a USB stick with two studies is plugged in (test/media-usb.sh): the udev rule
#    mounts it, the box says "Media found: 2 studies", the import confirmed through the web API
#    makes them findable by C-FIND, the boot partition is never taken for media;
# 3. starts a second C-STORE stream and kills qemu with SIGKILL after some acknowledgements;
# 4. boots again and shows, by C-FIND, that every acknowledged instance is there, that the
#    array is assembled and mounted, and that no unit failed.
# The image file itself is never modified (the test boots a sparse copy). Only the qemu
# processes started here are ever killed. Prints 'N passed, 0 failed' at the end.
set -euo pipefail
source "$(dirname "$0")/../lib.sh"
source "$(dirname "$0")/qemu.sh"
source "$(dirname "$0")/media-usb.sh"

image="${1:?usage: boot-test.sh IMAGE}"
[[ -r "$image" ]] || die "no image $image"
BOOT_TIMEOUT="${PACSBOX_BOOT_TIMEOUT:-900}"
STREAM_FILES="${PACSBOX_STREAM_FILES:-300}"
ECHOSCU=/usr/bin/echoscu STORESCU=/usr/bin/storescu FINDSCU=/usr/bin/findscu
# DCMTK's tools, not pynetdicom's same-named scripts that pip puts earlier on PATH.
for t in "$ECHOSCU" "$STORESCU" "$FINDSCU"; do [[ -x "$t" ]] || die "$t missing (apt install dcmtk)"; done
command -v qemu-system-x86_64 >/dev/null || ensure_host_tools
python3 -c 'import pydicom' 2>/dev/null || die "python3 pydicom missing (bash tests/install_deps.sh)"

mkdir -p "$CACHE_DIR"
work="$(mktemp -d "$CACHE_DIR/boot-test.XXXXXX")"
qemu_pid=""
passed=0 failed=0
cleanup() {
    qemu_kill
    if [[ -n "${KEEP_BOOT_TEST:-}" ]]; then echo "kept $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT
ok() { passed=$((passed + 1)); echo "PASS: $*"; }
bad() { failed=$((failed + 1)); echo "FAIL: $*"; }
check() { local what="$1"; shift; if "$@"; then ok "$what"; else bad "$what"; fi; }

qemu_prepare
dport=$((20000 + RANDOM % 20000))
hport=$((dport + 1))
sport=$((dport + 3))
tport=$((dport + 4))
QEMU_EXTRA=()
# The USB stick on amd64 only: arm64 under software emulation is slow enough already, and the
# rule and unit are the same files on both.
media_usb="${PACSBOX_BOOT_MEDIA_USB:-$([[ "$arch" == amd64 ]] && echo 1 || echo 0)}"
((media_usb)) && media_usb_prepare

wait_selftest() {
    local t0=$SECONDS
    until grep -q 'PACSBOX-SELFTEST done' "$1"; do
        ((SECONDS - t0 < 300)) || { bad "self-test lines on the console"; return 1; }
        sleep 3
    done
    grep -a 'PACSBOX-SELFTEST' "$1" | tr -d '\r' | sed 's/^/    /'
}

export TCP_NODELAY=1
# --- first boot ------------------------------------------------------------------------------
qemu_boot "$work/console-1.log"
wait_ready "$work/console-1.log"
t_echo=$SECONDS
check "C-ECHO" "$ECHOSCU" -aec PACSBOX 127.0.0.1 "$dport"
echo "boot to C-ECHO: $((t_echo - boot_t0)) s"
python3 "$IMAGE_BUILD_DIR/test/make-instances.py" "$work/a" 20 64 A >"$work/a.uids"
check "C-STORE of 20 instances" "$STORESCU" -aec PACSBOX 127.0.0.1 "$dport" "$work"/a/*.dcm
s="$(status)"
check "status.json counts the 20 instances" test "$(echo "$s" | jq_py 'd["instances"]')" -ge 20
check "status.json: data on the RAID" test "$(echo "$s" | jq_py 'len(d["raid"])')" -ge 1
check "the login page over HTTPS (certificate made at first boot)" \
    bash -c "curl -skf --max-time 30 'https://127.0.0.1:$sport/login' | grep -q 'type=\"password\"'"
# OHIF (build.sh --ohif) or not, /ohif/ is a page of the box behind its login.
check "/ohif/ sends a browser without a session to the login" \
    bash -c "curl -sk -o /dev/null -w '%{http_code} %{redirect_url}' --max-time 30 'https://127.0.0.1:$sport/ohif/' | grep -q '^303 .*/login?next=%2Fohif%2F$'"
served_fp="$(python3 - "$sport" <<'PY'
import hashlib, socket, ssl, sys
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
with ctx.wrap_socket(socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=30)) as s:
    d = hashlib.sha256(s.getpeercert(binary_form=True)).hexdigest().upper()
print(":".join(d[i:i + 2] for i in range(0, 64, 2)))
PY
)" || served_fp="none"
check "the served certificate is the one status.json names" test "$served_fp" = "$(echo "$s" | jq_py 'd["tls_fingerprint"]')"
check "C-ECHO over DICOM TLS" "$ECHOSCU" +tla -ic -aec PACSBOX 127.0.0.1 "$tport"
wait_selftest "$work/console-1.log" || true
check "data volume mounted from the md array" grep -aqE 'PACSBOX-SELFTEST mount: /dev/md' "$work/console-1.log"
check "no failed units (first boot)" grep -aqE 'PACSBOX-SELFTEST failed-count: 0$' <(tr -d '\r' <"$work/console-1.log")
((media_usb)) && media_usb_check

# --- power cut in the middle of a stream -----------------------------------------------------
python3 "$IMAGE_BUILD_DIR/test/make-instances.py" "$work/b" "$STREAM_FILES" 256 B >"$work/b.uids"
"$STORESCU" -v -aec PACSBOX 127.0.0.1 "$dport" "$work"/b/*.dcm >"$work/stream.log" 2>&1 &
store_pid=$!
acked() { grep -c 'Received Store Response (Success)' "$work/stream.log" || true; }
t0=$SECONDS
until (($(acked) >= 5)); do
    kill -0 "$store_pid" 2>/dev/null || break
    ((SECONDS - t0 < 300)) || break
    sleep 0.1
done
qemu_kill
wait "$store_pid" 2>/dev/null || true
# A file counts as acknowledged when its Store Response (Success) arrived before the cut.
awk '/Sending file:/ {f=$NF} /Received Store Response \(Success\)/ {print f}' "$work/stream.log" |
    xargs -r -n1 basename >"$work/acked.txt"
n_acked=$(wc -l <"$work/acked.txt")
echo "killed qemu after $n_acked of $STREAM_FILES acknowledged instances"
check "qemu killed in the middle of the stream" test "$n_acked" -ge 1 -a "$n_acked" -lt "$STREAM_FILES"

# --- second boot: everything acknowledged is there ------------------------------------------
qemu_boot "$work/console-2.log"
wait_ready "$work/console-2.log"
read -r study series <"$work/b.uids"
"$FINDSCU" -S -aec PACSBOX 127.0.0.1 "$dport" -k QueryRetrieveLevel=IMAGE \
    -k "StudyInstanceUID=$study" -k "SeriesInstanceUID=$series" -k SOPInstanceUID \
    >"$work/find.log" 2>&1 || true
# DCMTK prints a UID's NUL padding (odd lengths, e.g. B-0010's) inside the brackets, which makes the
# log binary to grep: read it as text and stop at the last digit.
grep -ao '(0008,0018) UI \[[0-9.]*' "$work/find.log" | sed 's/.*\[//' | sort >"$work/found.txt"
missing=0
while read -r f; do
    sop="$(awk -v f="$f" '$1 == f {print $2}' "$work/b/manifest.tsv")"
    grep -qxF "$sop" "$work/found.txt" || { echo "LOST: $f $sop"; missing=$((missing + 1)); }
done <"$work/acked.txt"
echo "after the cut: $(wc -l <"$work/found.txt") instances of the stream found, $n_acked were acknowledged"
check "every acknowledged instance survived the power cut" test "$missing" -eq 0
s="$(status)"
check "first series still counted after reboot" test "$(echo "$s" | jq_py 'd["instances"]')" -ge $((20 + n_acked))
check "C-ECHO after reboot" "$ECHOSCU" -aec PACSBOX 127.0.0.1 "$dport"
wait_selftest "$work/console-2.log" || true
check "array assembled after the cut" grep -aqE 'PACSBOX-SELFTEST mdstat: md[0-9]+ : active raid1' "$work/console-2.log"
check "data volume mounted after the cut" grep -aqE 'PACSBOX-SELFTEST mount: /dev/md' "$work/console-2.log"
check "no failed units (second boot)" grep -aqE 'PACSBOX-SELFTEST failed-count: 0$' <(tr -d '\r' <"$work/console-2.log")
check "root locked, SSH off" grep -aq 'PACSBOX-SELFTEST ssh: disabled' "$work/console-2.log"

echo "$passed passed, $failed failed"
((failed == 0))

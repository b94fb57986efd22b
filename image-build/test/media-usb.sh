# shellcheck shell=bash
# shellcheck disable=SC2154,SC2034 # work, dport, hport, sport, REPO_DIR, IMAGE_BUILD_DIR, check/ok/bad are boot-test.sh's; cport is qemu.sh's
# Sourced by test/boot-test.sh (after qemu.sh): a patient's USB stick plugged into the running
# box (issue 16). media_usb_prepare, before the first boot, makes the stick — a FAT file-set
# with a DICOMDIR written by `pacsbox export` (the host's binary; DCMTK's dcmmkdir when there
# is none) — and gives qemu a USB controller, a QMP socket to plug it in later and the test
# agent's command channel. media_usb_check, once the box answers: the boot partition
# (PACSBOXBOOT) is not taken for media; the stick is hot-plugged; the udev rule starts
# pacsbox-media@sdX, which mounts it read-only; status.json and the status page say "Media
# found: 2 studies"; the import is confirmed through the web API as a user does it
# (test/media-web.py); C-FIND finds both studies with their instance counts; taking the stick out
# stops the unit and drops the notice.

# qmp COMMAND JSON-ARGUMENTS [COMMAND JSON-ARGUMENTS…]: runs QMP commands on the running qemu.
qmp() {
    python3 - "$qport" "$@" <<'PY'
import json, socket, sys
f = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=30).makefile("rw")
json.loads(f.readline())  # greeting


def run(cmd, args):
    f.write(json.dumps({"execute": cmd, "arguments": args}) + "\n")
    f.flush()
    while True:
        r = json.loads(f.readline())
        if "error" in r:
            sys.exit(f"QMP {cmd}: {r['error']}")
        if "return" in r:
            return
        # An asynchronous event: not an answer.


run("qmp_capabilities", {})
for cmd, args in zip(sys.argv[2::2], sys.argv[3::2]):
    run(cmd, json.loads(args))
PY
}

# The unit the udev rule starts for a USB disk (sda, sdb, …; the boot disk is vda here).
is_usb_media_unit() { [[ "$1" =~ ^pacsbox-media@sd[a-z]+\.service$ ]]; }

media_usb_prepare() {
    cport=$((dport + 2))
    qport=$((dport + 5))
    # shellcheck disable=SC2054 # one qemu argument with commas
    QEMU_EXTRA+=(-device qemu-xhci,id=xhci -qmp "tcp:127.0.0.1:$qport,server=on,wait=off")
    vm_channel_add
    local bin="${PACSBOX_BIN:-$REPO_DIR/target/release/pacsbox}" tag s
    # 2 studies of 11 and 22 instances (make-instances.py: a new study each run).
    media_studies=()
    media_instances=(11 22)
    for s in 0 1; do
        tag="M$((s + 1))"
        python3 "$IMAGE_BUILD_DIR/test/make-instances.py" "$work/$tag" "${media_instances[$s]}" 64 "$tag" |
            awk '{print $1}' >"$work/$tag.uid"
        rm "$work/$tag/manifest.tsv"
        media_studies+=("$(cat "$work/$tag.uid")")
    done
    mkdir -p "$work/stick"
    if [[ -x "$bin" ]]; then
        echo "the stick's file-set: $bin export"
        for tag in M1 M2; do
            "$bin" import --data "$work/media-box" "$work/$tag" >/dev/null
        done
        "$bin" export --data "$work/media-box" --study "${media_studies[@]}" --to "$work/stick" >/dev/null
    else
        echo "the stick's file-set: no pacsbox binary on the host (PACSBOX_BIN), DCMTK dcmmkdir"
        for tag in M1 M2; do
            mkdir -p "$work/stick/DICOM/$tag"
            s=0
            for f in "$work/$tag"/*.dcm; do
                s=$((s + 1))
                cp "$f" "$work/stick/DICOM/$tag/I$(printf %07d "$s")"
            done
        done
        (cd "$work/stick" && dcmmkdir -q +r +id . +D DICOMDIR DICOM)
    fi
    test -s "$work/stick/DICOMDIR" || die "the stick has no DICOMDIR"
    if ! command -v mkfs.vfat >/dev/null || ! command -v mcopy >/dev/null; then ensure_host_tools; fi
    # A "superfloppy" FAT, as many sticks come: the file system on the whole device.
    mkfs.vfat -C -n PATIENT "$work/stick.img" 32768 >/dev/null
    local p
    for p in "$work/stick"/*; do mcopy -s -i "$work/stick.img" "$p" ::; done
}

media_usb_check() {
    vm_connect
    check "the boot partition is labelled PACSBOXBOOT (what the media rule leaves alone)" \
        vm_run 20 "test \"\$(blkid -s LABEL -o value /dev/vda1)\" = PACSBOXBOOT"
    check "no pacsbox-media unit before the stick: the boot partition is not taken for media" \
        vm_run 20 "test -z \"\$(systemctl list-units --all --plain --no-legend 'pacsbox-media@*')\""
    check "the USB stick plugged in (QMP device_add usb-storage)" qmp \
        blockdev-add "{\"driver\": \"raw\", \"node-name\": \"stick\", \"file\": {\"driver\": \"file\", \"filename\": \"$work/stick.img\"}}" \
        device_add '{"driver": "usb-storage", "bus": "xhci.0", "drive": "stick", "id": "stickdev"}'
    local unit="" t0=$SECONDS
    while [[ -z "$unit" ]] && ((SECONDS - t0 < 120)); do
        sleep 2
        unit="$(vm_run 20 "systemctl list-units --plain --no-legend --state=active 'pacsbox-media@*' | awk '{print \$1}'")" || unit=""
    done
    echo "    unit started by the udev rule: ${unit:-none}"
    if ! check "udev started pacsbox-media@sdX for the stick" \
        is_usb_media_unit "$unit"; then
        vm_run 20 "journalctl -b --no-pager -o cat | grep -iE 'usb|sd[a-z]|pacsbox-media' | tail -n 30" || true
        return 0
    fi
    local dev="${unit#pacsbox-media@}"
    dev="${dev%.service}"
    check "the stick is mounted read-only, noexec at /run/pacsbox/media/$dev" \
        vm_run 20 "findmnt -n -o OPTIONS /run/pacsbox/media/$dev | grep -qE '^ro,.*noexec'"
    vm_run 20 "cat /var/lib/pacsbox/initial-admin-password" >"$work/initial-password" || true
    check "the first-boot admin password read from the box" test -s "$work/initial-password"
    local out rc=0 ohif=0
    # An image built with --ohif says so in build-info; the logged-in user then gets OHIF.
    vm_run 20 "grep -q '^PACSBOX_OHIF=' /etc/pacsbox/build-info" && ohif=1
    out="$(EXPECT_OHIF=$ohif python3 "$IMAGE_BUILD_DIR/test/media-web.py" "$sport" "$work/initial-password" \
        "$work/admin-password" "$(
            IFS=,
            echo "${media_studies[*]}"
        )" 2>&1)" || rc=$?
    echo "$out"
    passed=$((passed + $(grep -c '^PASS' <<<"$out" || true)))
    failed=$((failed + $(grep -c '^FAIL' <<<"$out" || true)))
    ((rc == 0 || $(grep -c '^FAIL' <<<"$out" || true) > 0)) || bad "media-web.py ended with exit $rc"
    local i
    for i in 0 1; do
        "$FINDSCU" -S -aec PACSBOX 127.0.0.1 "$dport" -k QueryRetrieveLevel=STUDY \
            -k "StudyInstanceUID=${media_studies[$i]}" -k NumberOfStudyRelatedInstances \
            >"$work/media-find-$i.log" 2>&1 || true
        check "C-FIND finds the imported study $((i + 1)) with its ${media_instances[$i]} instances" \
            grep -qE "\(0020,1208\) IS \[${media_instances[$i]} *\]" "$work/media-find-$i.log"
    done
    check "the stick taken out (QMP device_del)" qmp device_del '{"id": "stickdev"}'
    t0=$SECONDS
    until vm_run 20 "test -z \"\$(systemctl list-units --plain --no-legend --state=active 'pacsbox-media@*')\""; do
        ((SECONDS - t0 < 60)) || break
        sleep 2
    done
    check "pacsbox-media@$dev stopped with its device, not failed" \
        vm_run 20 "! systemctl is-active -q $unit && ! systemctl is-failed -q $unit && ! mountpoint -q /run/pacsbox/media/$dev"
    rc=0
    out="$(python3 "$IMAGE_BUILD_DIR/test/media-web.py" "$sport" - "$work/admin-password" gone 2>&1)" || rc=$?
    echo "$out"
    passed=$((passed + $(grep -c '^PASS' <<<"$out" || true)))
    failed=$((failed + $(grep -c '^FAIL' <<<"$out" || true)))
    ((rc == 0 || $(grep -c '^FAIL' <<<"$out" || true) > 0)) || bad "media-web.py gone ended with exit $rc"
}

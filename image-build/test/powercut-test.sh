#!/usr/bin/env bash
# Power cuts, many and at random points, then a RAID1 member lost and rebuilt, on an amd64
# -test image under qemu (KVM when usable: PACSBOX_BOOT_ACCEL=tcg forces emulation).
#
#   image-build/test/powercut-test.sh IMAGE        (a *-amd64-test.img from build.sh --test)
#
# Power cuts: each cycle boots, stops pacsbox and runs `pacsbox verify --checksums` and
# `pacsbox list` inside the VM (verify opens the index itself and redb locks it, so the daemon
# must be down), compares every SOP Instance UID a storescu got a Success response for with the
# box's list, starts pacsbox again, sends 4 concurrent C-STORE streams of mixed sizes and kills
# qemu (SIGKILL: nothing flushed) after a random delay. The first half of the cycles run with
# the image's durability (syncfs: the data volume is a mount point), the second half with
# `durability = "fsync"` in the VM's config; the journal's "durability mode" line proves which.
# A last boot verifies the last cut.
#
# RAID: on that last boot, `mdadm --fail` then `--remove` one member of the RAID1 the test
# overlay made: /status.json must say degraded with the disk_failed then disk_missing alarm, the
# panel (png:DIR in the VM) must show the alarm full screen and redraw its storage page; C-STORE
# must still succeed; the disk is added back (its md superblock erased: a new disk) with the
# rebuild slowed so that /status.json shows it as "rebuilding" with a figure, then clean, no
# alarm on the panel, and verify/list again: nothing acknowledged lost.
#
# Commands reach the VM over a virtio-serial port (test overlay: pacsbox-test-agent). Only the
# qemu and storescu processes started here are ever killed. Prints 'N passed, M failed'.
#
# PACSBOX_POWERCUT_CYCLES (20: the issue's floor; ~55 s each under software emulation), PACSBOX_POWERCUT_FILES (files per stream and cycle, 40),
# PACSBOX_POWERCUT_SIZES (KiB, taken in turn: 4,32,256,1024), PACSBOX_POWERCUT_CUT_MS (the cut
# comes 100 ms..this after the streams start, 1500), PACSBOX_POWERCUT_SEED (RANDOM's seed).
# PACSBOX_POWERCUT_BREAK (comma list), only to see the test fail: "corrupt" overwrites 4 bytes
# of one stored file and deletes another before the last verify, "noreadd" never adds the
# failed disk back.
set -euo pipefail
source "$(dirname "$0")/../lib.sh"
source "$(dirname "$0")/qemu.sh"

image="${1:?usage: powercut-test.sh IMAGE}"
[[ -r "$image" ]] || die "no image $image"
[[ "$(basename "$image")" == *amd64* ]] || die "the power-cut test runs on the amd64 image"
FILES="${PACSBOX_POWERCUT_FILES:-40}"
SIZES="${PACSBOX_POWERCUT_SIZES:-4,32,256,1024}"
CUT_MS="${PACSBOX_POWERCUT_CUT_MS:-1500}"
STREAMS=4
BREAK="${PACSBOX_POWERCUT_BREAK:-}"
BOOT_TIMEOUT="${PACSBOX_BOOT_TIMEOUT:-900}"
READY_POLL_S=0.5
export PACSBOX_BOOT_ACCEL="${PACSBOX_BOOT_ACCEL:-kvm}"
RANDOM="${PACSBOX_POWERCUT_SEED:-$$}"
echo "seed ${PACSBOX_POWERCUT_SEED:-$$} (PACSBOX_POWERCUT_SEED repeats this run's cut points)"
STORESCU=/usr/bin/storescu
[[ -x "$STORESCU" ]] || die "$STORESCU missing (apt install dcmtk)"
command -v qemu-system-x86_64 >/dev/null || ensure_host_tools
python3 -c 'import pydicom' 2>/dev/null || die "python3 pydicom missing (bash tests/install_deps.sh)"
CONF=/etc/pacsbox/pacsbox.toml
PANEL=/var/lib/pacsbox/panel
AS_PACSBOX="runuser -u pacsbox -- pacsbox"

mkdir -p "$CACHE_DIR"
work="$(mktemp -d "$CACHE_DIR/powercut-test.XXXXXX")"
qemu_pid=""
store_pids=()
passed=0 failed=0
cleanup() {
    local p
    for p in "${store_pids[@]}"; do kill "$p" 2>/dev/null || true; done
    qemu_kill
    if [[ -n "${KEEP_BOOT_TEST:-}" ]]; then echo "kept $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT
# A write to the command channel of a VM that just died must fail, not kill this script.
trap '' PIPE
ok() { passed=$((passed + 1)); echo "PASS: $*"; }
bad() { failed=$((failed + 1)); echo "FAIL: $*"; }
check() { local what="$1"; shift; if "$@"; then ok "$what"; else bad "$what"; fi; }

t_start=$SECONDS
qemu_prepare
# 20 cuts when KVM runs the kernel (seconds a boot); under software emulation a boot takes a
# minute or more on a loaded 2-core machine, and CI's budget for this test is ~10 minutes.
CYCLES="${PACSBOX_POWERCUT_CYCLES:-20}"
echo "$CYCLES power cuts"
dport=$((20000 + RANDOM % 20000))
hport=$((dport + 1))
cport=$((dport + 2))
QEMU_EXTRA=()
vm_channel_add

# --- what was sent, what was acknowledged -----------------------------------------------------
: >"$work/sent.txt"
: >"$work/acked.txt"
# make_cycle N: the N-th cycle's streams (each its own study), in the background.
make_cycle() {
    local c="$1" s
    for ((s = 1; s <= STREAMS; s++)); do
        python3 "$IMAGE_BUILD_DIR/test/make-instances.py" "$work/c$c/s$s" "$FILES" "$SIZES" \
            "C${c}S$s" noise >/dev/null || return 1
    done
}
# acked_in LOG DIR: the SOP UIDs of DIR's files that got a Success response in LOG.
acked_in() {
    awk '/Sending file:/ {f=$NF} /Received Store Response \(Success\)/ {print f}' "$1" |
        xargs -r -n1 basename | awk 'NR == FNR {a[$1] = 1; next} a[$1] {print $2}' - "$2/manifest.tsv"
}

# check_box LABEL: stop pacsbox, verify --checksums, list, compare with what was acknowledged.
check_box() {
    local label="$1" out rc=0
    vm_run 120 systemctl stop pacsbox.service || { bad "$label: pacsbox stops for verify"; return 0; }
    out="$(vm_run 600 "$AS_PACSBOX verify --checksums --config $CONF 2>&1")" || rc=$?
    echo "    verify: $(tail -n1 <<<"$out")"
    if ((rc == 0)); then
        ok "$label: pacsbox verify --checksums clean"
    else
        bad "$label: pacsbox verify --checksums (exit $rc)"
        head -n 20 <<<"$out" | sed 's/^/    /'
    fi
    rc=0
    vm_run 300 "$AS_PACSBOX list --config $CONF 2>/dev/null" >"$work/list.tsv" || rc=$?
    check "$label: pacsbox list" test "$rc" -eq 0
    cut -f1 "$work/list.tsv" | sort -u >"$work/box.txt"
    sort -u -o "$work/acked.txt" "$work/acked.txt"
    sort -u -o "$work/sent.txt" "$work/sent.txt"
    comm -23 "$work/acked.txt" "$work/box.txt" >"$work/lost.txt"
    comm -13 "$work/sent.txt" "$work/box.txt" >"$work/phantom.txt"
    sed 's/^/    LOST: /' "$work/lost.txt" | head -n 20
    sed 's/^/    NEVER SENT: /' "$work/phantom.txt" | head -n 20
    check "$label: all $(wc -l <"$work/acked.txt") acknowledged instances on the box ($(wc -l <"$work/box.txt") listed)" \
        test ! -s "$work/lost.txt"
    check "$label: nothing listed that was never sent" test ! -s "$work/phantom.txt"
}

# start_pacsbox MODE: start the daemon, wait for it, and check its durability mode.
start_pacsbox() {
    local mode="$1" got
    vm_run 120 systemctl start pacsbox.service || bad "pacsbox starts again"
    wait_ready "$work/console.log" >/dev/null
    got="$(vm_run 20 "journalctl -b -u pacsbox.service -o cat | sed 's/\x1b\[[0-9;]*m//g' | grep -o 'durability mode.*' | tail -n1")" || true
    check "durability mode $mode in effect ($got)" grep -q "sync=$mode" <<<"$got"
}

# --- power cuts ------------------------------------------------------------------------------
make_cycle 1
cycle_times=()
for ((c = 1; c <= CYCLES + 1; c++)); do
    t_cycle=$SECONDS
    [[ -d "$work/c$((c - 1))" ]] && rm -rf "$work/c$((c - 1))"
    if ((c < CYCLES)); then make_cycle $((c + 1)) & gen_pid=$!; else gen_pid=""; fi
    qemu_boot "$work/console.log"
    wait_ready "$work/console.log"
    vm_connect
    if ((c == 1)); then
        # The board's OLED is not there under qemu: draw the panel into PNGs instead.
        # sync: a config edit still in the page cache would be lost with the next power cut.
        vm_run 10 "sed -i 's|^display = .*|display = \"png:$PANEL\"|' $CONF && sync" || bad "panel set to png"
    fi
    check_box "boot $c"
    mode=Syncfs
    if ((c > CYCLES / 2)); then
        mode=Fsync
        if ((c == CYCLES / 2 + 1)); then
            # Top-level keys go before the first [table].
            vm_run 10 "sed -i '0,/^\\[/s//durability = \"fsync\"\\n[/' $CONF && grep -c '^durability = \"fsync\"' $CONF && sync" ||
                bad "durability = fsync set in $CONF"
        fi
    fi
    start_pacsbox "$mode"
    [[ -z "$gen_pid" ]] || wait "$gen_pid" || die "making cycle $((c + 1))'s instances failed"
    ((c <= CYCLES)) || break

    # Four streams at once, each its own association; the cut comes at a random moment.
    store_pids=()
    for ((s = 1; s <= STREAMS; s++)); do
        cut -f2 "$work/c$c/s$s/manifest.tsv" >>"$work/sent.txt"
        TCP_NODELAY=1 "$STORESCU" -v -aec PACSBOX 127.0.0.1 "$dport" "$work/c$c/s$s"/*.dcm \
            >"$work/c$c/s$s.log" 2>&1 &
        store_pids+=($!)
    done
    cut_ms=$((100 + RANDOM % CUT_MS))
    sleep "$((cut_ms / 1000)).$(printf '%03d' $((cut_ms % 1000)))"
    qemu_kill
    for p in "${store_pids[@]}"; do wait "$p" 2>/dev/null || true; done
    store_pids=()
    n=0
    for ((s = 1; s <= STREAMS; s++)); do
        acked_in "$work/c$c/s$s.log" "$work/c$c/s$s" >"$work/c$c/s$s.acked"
        n=$((n + $(wc -l <"$work/c$c/s$s.acked")))
        cat "$work/c$c/s$s.acked" >>"$work/acked.txt"
    done
    echo "cycle $c ($mode): power cut ${cut_ms} ms after the streams started, $n of $((STREAMS * FILES)) acknowledged; $((SECONDS - t_cycle)) s"
    cycle_times+=($((SECONDS - t_cycle)))
done
echo "power cuts: $CYCLES in $((SECONDS - t_start)) s"

# --- RAID1: a member fails, is removed, comes back and is rebuilt -----------------------------
raid() { status | jq_py "$1"; }
# wait_for SECONDS WHAT PYEXPR: poll /status.json until PYEXPR (over d) is true.
wait_for() {
    local limit="$1" what="$2" expr="$3" t0=$SECONDS
    until [[ "$(status 2>/dev/null | jq_py "bool($expr)" 2>/dev/null)" == True ]]; do
        if ((SECONDS - t0 >= limit)); then
            bad "$what (within ${limit}s; status: $(status | jq_py 'd.get("raid"), [a["kind"] for a in d.get("alarms", [])]'))"
            return 1
        fi
        sleep 0.5
    done
    ok "$what"
}
# panel_pngs DIR: the panel's PNGs from the VM into DIR.
panel_pngs() {
    mkdir -p "$1"
    rm -f "$1"/*.png
    vm_run 20 "cd $PANEL && tar c identity.png storage.png activity.png alarms.png screen.png | base64 -w0" |
        base64 -d | tar x -C "$1"
}
alarm_full_screen() { # the screen is none of the pages
    panel_pngs "$1" || return 1
    local p
    for p in identity storage activity alarms; do cmp -s "$1/screen.png" "$1/$p.png" && return 1; done
    return 0
}
a_page_again() { # the screen is one of the pages
    panel_pngs "$1" || return 1
    local p
    for p in identity storage activity alarms; do cmp -s "$1/screen.png" "$1/$p.png" && return 0; done
    return 1
}
# poll_check SECONDS WHAT CMD...: CMD true within SECONDS.
poll_check() {
    local limit="$1" what="$2" t0=$SECONDS
    shift 2
    until "$@"; do
        ((SECONDS - t0 < limit)) || { bad "$what"; return 0; }
        sleep 1
    done
    ok "$what"
}

t_raid=$SECONDS
# After the last cut md resyncs the whole mirror: let it run at full speed, then start clean.
vm_run 10 "echo 2000000 >/proc/sys/dev/raid/speed_limit_max; echo 200000 >/proc/sys/dev/raid/speed_limit_min" || true
wait_for 300 "RAID clean before the test" 'd["raid"][0]["state"] == "clean"' || true
poll_check 30 "panel: no alarm screen while the array is clean" a_page_again "$work/panel-clean"
md="$(raid 'd["raid"][0]["name"]')"
member="$(vm_run 10 "mdadm --detail /dev/$md | awk '/active sync/ {d=\$NF} END {print d}'")" || true
echo "array $md, failing $member"
check "a member of /dev/$md found" test -n "$member"
vm_run 20 "mdadm /dev/$md --fail $member" || bad "mdadm --fail $member"
d="$(basename "$member")"
wait_for 30 "status.json: $md degraded, alarm disk_failed $d" \
    "d['raid'][0]['state'] == 'degraded' and any(a['kind'] == 'disk_failed' and a['disk'] == '$d' for a in d['alarms'])" || true
poll_check 30 "panel: the alarm takes the whole screen" alarm_full_screen "$work/panel-failed"
check "panel: the storage page was redrawn for the degraded array" \
    bash -c "! cmp -s '$work/panel-clean/storage.png' '$work/panel-failed/storage.png'"
vm_run 20 "mdadm /dev/$md --remove $member" || bad "mdadm --remove $member"
wait_for 30 "status.json: $md degraded, alarm disk_missing" \
    "d['raid'][0]['state'] == 'degraded' and any(a['kind'] == 'disk_missing' for a in d['alarms'])" || true
python3 "$IMAGE_BUILD_DIR/test/make-instances.py" "$work/degraded" 20 64,256 DEGRADED noise >/dev/null
cut -f2 "$work/degraded/manifest.tsv" >>"$work/sent.txt"
check "C-STORE of 20 instances to the degraded array" \
    "$STORESCU" -v -aec PACSBOX 127.0.0.1 "$dport" "$work/degraded"/*.dcm >"$work/degraded.log" 2>&1
acked_in "$work/degraded.log" "$work/degraded" >>"$work/acked.txt"
check "all 20 acknowledged" test "$(acked_in "$work/degraded.log" "$work/degraded" | wc -l)" -eq 20

if [[ ",$BREAK," != *,noreadd,* ]]; then
    # A new disk: no md superblock, so md rebuilds it whole; slowly enough to be seen doing it.
    vm_run 20 "echo 20000 >/proc/sys/dev/raid/speed_limit_max; mdadm --zero-superblock $member && mdadm /dev/$md --add $member" ||
        bad "mdadm --add $member"
fi
wait_for 60 "status.json: $md rebuilding with a percentage" \
    "d['raid'][0]['state'] == 'rebuilding' and 0 <= d['raid'][0]['percent'] < 100" || true
vm_run 10 "echo 2000000 >/proc/sys/dev/raid/speed_limit_max" || true
wait_for 300 "status.json: $md clean again, no RAID alarm" \
    "d['raid'][0]['state'] == 'clean' and not any(a['kind'] in ('disk_failed', 'disk_missing', 'raid_failed') for a in d['alarms'])" || true
poll_check 30 "panel: no alarm screen once rebuilt" a_page_again "$work/panel-rebuilt"
if [[ ",$BREAK," == *,corrupt,* ]]; then
    # One line: the agent runs a command per line.
    vm_run 20 "cd /srv/pacsbox && f=\$(find archive -type f | sort | head -n2) && set -- \$f && printf XXXX | dd of=\$1 bs=1 seek=200 conv=notrunc status=none && rm \$2 && sync && echo broke \$1 \$2"
fi
check_box "after the rebuild"
echo "RAID degraded and rebuilt: $((SECONDS - t_raid)) s"
echo "cycle times (s): ${cycle_times[*]}"
echo "powercut-test: $((SECONDS - t_start)) s in all"

echo "$passed passed, $failed failed"
((failed == 0))

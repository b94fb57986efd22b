# shellcheck shell=bash
# shellcheck disable=SC2154 # image, work, dport and hport are the caller's (see below)
# Shared by test/boot-test.sh and test/powercut-test.sh (sourced, after lib.sh): boot a
# -test image's own kernel and initrd under qemu with two data disks and user networking.
# The caller sets: image, work (a scratch folder), dport/hport (host ports for DICOM/HTTP),
# and may set sport / tport (host ports for HTTPS / DICOM TLS; default dport + 3 / + 4) and
# QEMU_EXTRA (an array of more qemu arguments).

# The image's own kernel, initrd and command line, into $work; sets arch and cmdline.
qemu_prepare() {
    arch=amd64
    [[ "$(basename "$image")" == *arm64* ]] && arch=arm64
    local boot_start fat kernel initrd
    boot_start=$(sfdisk -J "$image" | python3 -c 'import json,sys; print(json.load(sys.stdin)["partitiontable"]["partitions"][0]["start"])')
    fat="$image@@$((boot_start * 512))"
    kernel="$(mdir -b -i "$fat" :: | sed 's|^::/||' | grep -E '^vmlinuz' | sort | tail -n1)"
    initrd="$(mdir -b -i "$fat" :: | sed 's|^::/||' | grep -E '^initrd\.img' | sort | tail -n1)"
    [[ -n "$kernel" && -n "$initrd" ]] || die "no vmlinuz/initrd.img on the boot partition"
    mcopy -n -i "$fat" "::$kernel" "$work/vmlinuz"
    mcopy -n -i "$fat" "::$initrd" "$work/initrd.img"
    cmdline="$(mtype -i "$fat" ::cmdline.txt | tr -d '\r' | head -n1)"
    # The board's consoles mean nothing to qemu: serial console of the emulated machine instead.
    cmdline="$(echo "$cmdline" | sed -E 's/(^| )console=[^ ]*//g')"
    if [[ "$arch" == arm64 ]]; then cmdline+=" console=ttyAMA0"; else cmdline+=" console=ttyS0"; fi
    echo "kernel $kernel, initrd $initrd, cmdline: $cmdline"
    cp --sparse=always "$image" "$work/disk.img"
    truncate -s 1G "$work/raid-a.img" "$work/raid-b.img"
}

# KVM only when asked (PACSBOX_BOOT_ACCEL=kvm, or the caller's default) and the image's kernel
# really runs under it: it must print its banner within 20 s. Probed once. A qemu that merely
# starts is not enough: nested KVM on some hosts aborts on MSR 0x10a with -cpu max (hence
# '-arch-capabilities') or stops with "emulation failure" in the kernel's decompressor.
# shellcheck disable=SC2054 # one qemu argument with commas
KVM_CPU=(-cpu max,-arch-capabilities)
kvm_ok=""
kvm_usable() {
    [[ "${PACSBOX_BOOT_ACCEL:-tcg}" == kvm && -w /dev/kvm ]] || return 1
    if [[ -z "$kvm_ok" ]]; then
        kvm_ok=no
        timeout 20 qemu-system-x86_64 -accel kvm -M q35 "${KVM_CPU[@]}" -m 512 -nodefaults \
            -display none -monitor none -serial "file:$work/kvm-probe.log" -no-reboot \
            -kernel "$work/vmlinuz" -append "console=ttyS0 panic=-1" </dev/null >/dev/null 2>&1 || true
        grep -aq 'Linux version' "$work/kvm-probe.log" 2>/dev/null && kvm_ok=yes
        [[ "$kvm_ok" == yes ]] || echo "KVM asked for but the kernel does not run under it: software emulation"
    fi
    [[ "$kvm_ok" == yes ]]
}

# qemu_boot LOG: starts qemu in the background (serial console to LOG); sets qemu_pid, boot_t0.
qemu_boot() {
    local log="$1"
    local machine=(-M q35 -cpu max) accel=tcg qemu=qemu-system-x86_64
    if [[ "$arch" == amd64 ]] && kvm_usable; then
        machine=(-M q35 "${KVM_CPU[@]}") accel=kvm
    fi
    if [[ "$arch" == arm64 ]]; then
        qemu=qemu-system-aarch64 machine=(-M virt -cpu cortex-a72) accel=tcg
    fi
    echo "booting ($arch, accel $accel)"
    boot_t0=$SECONDS
    "$qemu" "${machine[@]}" -accel "$accel" -smp 2 -m 1536 -nodefaults -display none \
        -monitor none -serial "file:$log" \
        -kernel "$work/vmlinuz" -initrd "$work/initrd.img" -append "$cmdline" \
        -drive "file=$work/disk.img,format=raw,if=none,id=d0" -device virtio-blk-pci,drive=d0 \
        -drive "file=$work/raid-a.img,format=raw,if=none,id=d1" -device virtio-blk-pci,drive=d1 \
        -drive "file=$work/raid-b.img,format=raw,if=none,id=d2" -device virtio-blk-pci,drive=d2 \
        -netdev "user,id=n0,hostfwd=tcp:127.0.0.1:$dport-:11112,hostfwd=tcp:127.0.0.1:$hport-:8080,hostfwd=tcp:127.0.0.1:${sport:-$((dport + 3))}-:8443,hostfwd=tcp:127.0.0.1:${tport:-$((dport + 4))}-:2762" \
        -device virtio-net-pci,netdev=n0 ${QEMU_EXTRA[@]+"${QEMU_EXTRA[@]}"} </dev/null >"$work/qemu.out" 2>&1 &
    qemu_pid=$!
}

# Power cut: SIGKILL, nothing flushed, no shutdown.
qemu_kill() {
    if [[ -n "${qemu_pid:-}" ]] && kill -0 "$qemu_pid" 2>/dev/null; then
        kill -KILL "$qemu_pid" 2>/dev/null || true
        wait "$qemu_pid" 2>/dev/null || true
    fi
    qemu_pid=""
}

status() { curl -sf --max-time 10 "http://127.0.0.1:$hport/status.json"; }
jq_py() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }

# wait_ready LOG: until /status.json says DICOM is accepting (polling; emulation is slow).
wait_ready() {
    local t0=$SECONDS s
    while ((SECONDS - t0 < BOOT_TIMEOUT)); do
        kill -0 "$qemu_pid" 2>/dev/null || { tail -n 40 "$1"; die "qemu exited"; }
        if s="$(status 2>/dev/null)" && [[ "$(echo "$s" | jq_py 'd.get("dicom_accepting")')" == True ]]; then
            echo "status.json answering, DICOM accepting: $((SECONDS - boot_t0)) s after qemu start"
            return 0
        fi
        sleep "${READY_POLL_S:-3}"
    done
    tail -n 60 "$1"
    die "no /status.json with dicom_accepting within ${BOOT_TIMEOUT}s"
}

# --- the command channel (test overlay: pacsbox-test-agent) -----------------------------------
# The caller sets cport (a free host port) and adds qemu's end of it to QEMU_EXTRA (vm_channel_add).
vm_channel_add() {
    QEMU_EXTRA+=(-chardev "socket,id=cmd,host=127.0.0.1,port=$cport,server=on,wait=off"
        -device virtio-serial-pci -device "virtserialport,chardev=cmd,name=pacsbox.test")
}
vmfd=""
vm_seq=0
# vm_run SECONDS COMMAND: runs COMMAND as root in the VM, prints its output and returns its exit
# code (255: no answer in time or the channel closed).
vm_run() {
    local limit="$1" t0=$SECONDS line rc id
    shift
    vm_seq=$((vm_seq + 1))
    id="c$vm_seq"
    printf '%s %s\n' "$id" "$*" >&"$vmfd" || return 255
    while :; do
        local left=$((limit - (SECONDS - t0)))
        ((left > 0)) || return 255
        rc=0
        IFS= read -r -t "$left" -u "$vmfd" line || rc=$?
        ((rc == 0)) || return 255
        if [[ "$line" == *"@@END $id "* ]]; then
            [[ -n "${line%%@@END *}" ]] && printf '%s\n' "${line%%@@END *}"
            return "${line##* }"
        fi
        # The answer to a ping sent before the agent was listening.
        [[ "$line" == *"@@END "* ]] && continue
        printf '%s\n' "$line"
    done
}
vm_connect() {
    local t0=$SECONDS
    [[ -n "$vmfd" ]] && exec {vmfd}>&-
    until (exec 9<>"/dev/tcp/127.0.0.1/$cport") 2>/dev/null; do
        ((SECONDS - t0 < 60)) || die "qemu's command socket never listened"
        sleep 0.2
    done
    exec {vmfd}<>"/dev/tcp/127.0.0.1/$cport"
    until vm_run 2 true; do
        ((SECONDS - t0 < BOOT_TIMEOUT)) || die "no answer on the command channel"
        kill -0 "$qemu_pid" 2>/dev/null || die "qemu exited"
    done
}

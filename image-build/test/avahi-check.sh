#!/usr/bin/env bash
# shellcheck disable=SC2015 # `check && ok … || bad …`: ok only prints and counts, it cannot fail
# Independent check of the mDNS announcement: Debian's avahi (not mdns-sd) finds pacsbox.
#
#   image-build/test/avahi-check.sh [PACSBOX_BINARY]     (root; default target/release/pacsbox)
#
# Two network namespaces made here, joined by a veth pair: pacsbox serves in one (mdns = true),
# avahi-daemon with its own D-Bus runs in the other, and `avahi-browse` must resolve
# `_dicom._tcp` with the AE title and port as PS3.15 H.2 TXT keys, then see the goodbye when
# pacsbox stops. No packet leaves the two namespaces. Prints 'N passed, M failed'.
set -euo pipefail
source "$(dirname "$0")/../lib.sh"

bin="${1:-${PACSBOX_BIN:-$REPO_DIR/target/release/pacsbox}}"
[[ -x "$bin" ]] || die "no pacsbox binary at $bin"
bin="$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")"
if ! command -v avahi-browse >/dev/null || ! command -v avahi-daemon >/dev/null; then
    # Never start a host-wide avahi while installing: it would answer on the real LAN.
    made_policy=0
    if [[ ! -e /usr/sbin/policy-rc.d ]]; then
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d
        made_policy=1
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q avahi-daemon avahi-utils >/dev/null ||
        { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q avahi-daemon avahi-utils >/dev/null; }
    ((made_policy)) && rm -f /usr/sbin/policy-rc.d
fi

tag="$$"
ns_a="pbx-mdns-a-$tag" ns_b="pbx-mdns-b-$tag"
work="$(mktemp -d /tmp/pacsbox-avahi.XXXXXX)"
pacsbox_pid="" browse_pid=""
passed=0 failed=0
cleanup() {
    [[ -n "$pacsbox_pid" ]] && kill -KILL "$pacsbox_pid" 2>/dev/null || true
    if [[ -n "$browse_pid" ]]; then
        kill -KILL "$browse_pid" 2>/dev/null || true
        wait "$browse_pid" 2>/dev/null || true
    fi
    # avahi-daemon and dbus-daemon of namespace B: only the pids recorded there.
    for f in "$work/avahi.pid" "$work/dbus.pid"; do
        [[ -s "$f" ]] && kill -KILL "$(cat "$f")" 2>/dev/null || true
    done
    ip netns del "$ns_a" 2>/dev/null || true
    ip netns del "$ns_b" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
ok() { passed=$((passed + 1)); echo "PASS: $*"; }
bad() { failed=$((failed + 1)); echo "FAIL: $*"; }

ip netns add "$ns_a"
ip netns add "$ns_b"
ip link add "pbxa$tag" type veth peer name "pbxb$tag"
ip link set "pbxa$tag" netns "$ns_a"
ip link set "pbxb$tag" netns "$ns_b"
ip -n "$ns_a" addr add 169.254.77.1/16 dev "pbxa$tag"
ip -n "$ns_b" addr add 169.254.77.2/16 dev "pbxb$tag"
for ns in "$ns_a" "$ns_b"; do
    ip -n "$ns" link set lo up
done
ip -n "$ns_a" link set "pbxa$tag" up
ip -n "$ns_b" link set "pbxb$tag" up

# Namespace B: a private /run with its own system bus and avahi-daemon.
ip netns exec "$ns_b" unshare --mount --uts --propagation private bash -c "
    set -e
    hostname avahi-peer
    mount -t tmpfs tmpfs /run
    mkdir -p /run/dbus /run/avahi-daemon
    dbus-daemon --system --fork --print-pid >'$work/dbus.pid'
    avahi-daemon --daemonize --no-chroot --no-rlimits
    for i in \$(seq 50); do [[ -s /run/avahi-daemon/pid ]] && break; sleep 0.1; done
    cp /run/avahi-daemon/pid '$work/avahi.pid'
    # Browse until told to stop; -p: one parsable line per event (+ new, = resolved, - gone).
    exec avahi-browse --resolve --parsable --no-db-lookup _dicom._tcp
" >"$work/browse.log" 2>"$work/browse.err" &
browse_pid=$!

# Namespace A: pacsbox as the image runs it, under its own host name.
cat >"$work/pacsbox.toml" <<EOF
data_dir = "$work/data"
ae_title = "AVAHICHECK"
mdns = true
EOF
ip netns exec "$ns_a" unshare --uts bash -c "hostname pacsbox-avahi; exec '$bin' serve --config '$work/pacsbox.toml'" \
    >"$work/pacsbox.log" 2>&1 &
pacsbox_pid=$!

t0=$SECONDS
until grep -q '^=;.*;AVAHICHECK;_dicom._tcp;' "$work/browse.log"; do
    if ((SECONDS - t0 > 60)); then
        cat "$work/browse.err" "$work/pacsbox.log" >&2
        break
    fi
    sleep 0.5
done
line="$(grep -m1 '^=;.*;AVAHICHECK;_dicom._tcp;' "$work/browse.log" || true)"
echo "avahi-browse: ${line:-nothing}"
if [[ -n "$line" ]]; then ok "avahi resolves _dicom._tcp AVAHICHECK ($((SECONDS - t0)) s)"; else bad "avahi resolves _dicom._tcp"; fi
[[ "$line" == *'"AET=AVAHICHECK"'* ]] && ok "TXT AET=AVAHICHECK" || bad "TXT AET"
[[ "$line" == *'"PrimaryDeviceType=ARCHIVE"'* ]] && ok "TXT PrimaryDeviceType=ARCHIVE" || bad "TXT PrimaryDeviceType"
[[ "$(echo "$line" | cut -d';' -f7,9)" == "pacsbox-avahi.local;11112" ]] && ok "host pacsbox-avahi.local, port 11112" ||
    bad "host and port: $(echo "$line" | cut -d';' -f7,9)"

kill -TERM "$pacsbox_pid"
t0=$SECONDS
until grep -q '^-;.*;AVAHICHECK;_dicom._tcp;' "$work/browse.log"; do
    ((SECONDS - t0 > 20)) && break
    sleep 0.2
done
if grep -q '^-;.*;AVAHICHECK;_dicom._tcp;' "$work/browse.log"; then
    ok "goodbye seen by avahi $((SECONDS - t0)) s after SIGTERM"
else
    bad "no goodbye within 20 s of SIGTERM"
fi
wait "$pacsbox_pid" 2>/dev/null || true
pacsbox_pid=""
echo "$passed passed, $failed failed"
((failed == 0))

# shellcheck shell=bash
# The Debian 12 root that scripts/vm-systemd boots with systemd-nspawn inside
# the test VM: systemd 252 as the container's PID 1. Source it after common.sh.
#
#   systemd_root_ensure      prints the root's path, building it when missing
#
# Knobs:
#   BULKHEAD_SYSTEMD_ROOT    where the root lives (default
#                            /tmp/bulkhead-cache/debian12-systemd: /tmp is
#                            visible in the VM, /var/cache is not)
#   BULKHEAD_DEBIAN_MIRROR   the mirror (default: the first URI of the host's
#                            apt sources, else http://deb.debian.org/debian)
#
# The root is built once (debootstrap, about 40 s) and reused while its stamp
# matches SYSTEMD_ROOT_STAMP; bump the stamp when what is baked in changes.
# Nothing of bulkhead is baked in: the binaries, the unit and the test script
# are bound in at boot, so a rebuild of bulkhead never rebuilds the root.

SYSTEMD_ROOT_STAMP="bulkhead-systemd-root v1: bookworm minbase systemd systemd-sysv dbus procps"

systemd_root_path() {
    printf '%s\n' "${BULKHEAD_SYSTEMD_ROOT:-/tmp/bulkhead-cache/debian12-systemd}"
}

debian_mirror() {
    if [[ -n ${BULKHEAD_DEBIAN_MIRROR:-} ]]; then
        printf '%s\n' "$BULKHEAD_DEBIAN_MIRROR"
        return
    fi
    local uri
    uri=$(cat /etc/apt/sources.list.d/*.sources 2>/dev/null |
        awk '/^URIs:/ && $2 !~ /security/ { print $2; exit }')
    if [[ -z $uri ]]; then
        uri=$(awk '/^deb / && $0 !~ /security/ { for (i = 2; i <= NF; i++) if ($i ~ /^http/) { print $i; exit } }' \
            /etc/apt/sources.list 2>/dev/null || true)
    fi
    printf '%s\n' "${uri:-http://deb.debian.org/debian}"
}

# The oneshot unit that runs the bound-in test script once the container
# booted, then powers the container off whatever the script's outcome.
_systemd_test_unit() {
    cat <<'UNIT'
[Unit]
Description=bulkhead under systemd: the checks in /opt/bh-test/check.sh
After=basic.target dbus.service

[Service]
Type=oneshot
ExecStart=/bin/bash /opt/bh-test/check.sh
ExecStopPost=/bin/systemctl poweroff --no-block
StandardOutput=journal+console
StandardError=journal+console
TimeoutStartSec=infinity

[Install]
WantedBy=multi-user.target
UNIT
}

systemd_root_ensure() {
    local root tmp
    root=$(systemd_root_path)
    if [[ -f $root/.bulkhead-root && $(cat "$root/.bulkhead-root") == "$SYSTEMD_ROOT_STAMP" ]]; then
        log "systemd root: cached at $root"
        printf '%s\n' "$root"
        return
    fi
    command -v debootstrap >/dev/null || die "debootstrap not found (run scripts/setup)"
    command -v systemd-nspawn >/dev/null || die "systemd-nspawn not found (run scripts/setup)"
    tmp="$root.tmp.$$"
    rm -rf "$tmp"
    mkdir -p "$(dirname "$root")"
    local mirror start=$SECONDS
    mirror=$(debian_mirror)
    log "systemd root: debootstrap bookworm into $tmp from $mirror"
    debootstrap --variant=minbase --include=systemd,systemd-sysv,dbus,procps \
        bookworm "$tmp" "$mirror" >"$tmp.log" 2>&1 ||
        { tail -n 30 "$tmp.log" >&2; rm -rf "$tmp"; die "debootstrap failed (log above)"; }
    rm -f "$tmp.log"
    # Quicker boots, no prompts on the console: no getty, no timers.
    local unit
    for unit in console-getty.service getty@.service container-getty@.service \
        apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer fstrim.timer \
        systemd-networkd.service systemd-resolved.service systemd-timesyncd.service; do
        ln -sf /dev/null "$tmp/etc/systemd/system/$unit"
    done
    echo bulkhead-systemd >"$tmp/etc/hostname"
    _systemd_test_unit >"$tmp/etc/systemd/system/bulkhead-systemd-test.service"
    mkdir -p "$tmp/etc/systemd/system/multi-user.target.wants" "$tmp/opt/bh" "$tmp/opt/bh-test" \
        "$tmp/opt/bh-config" "$tmp/out"
    ln -sf ../bulkhead-systemd-test.service \
        "$tmp/etc/systemd/system/multi-user.target.wants/bulkhead-systemd-test.service"
    apt-get -q clean -o RootDir="$tmp" 2>/dev/null || rm -rf "$tmp"/var/cache/apt/archives/*.deb
    printf '%s\n' "$SYSTEMD_ROOT_STAMP" >"$tmp/.bulkhead-root"
    rm -rf "$root"
    mv "$tmp" "$root"
    log "systemd root: built in $((SECONDS - start))s at $root"
    printf '%s\n' "$root"
}

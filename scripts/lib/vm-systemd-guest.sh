#!/usr/bin/env bash
# Runs INSIDE the test VM (started by scripts/vm-systemd through vm_run).
#   vm-systemd-guest.sh RESULTS_DIR ROOT BIN_DIR REPO
# Boots ROOT (a Debian 12 root with systemd 252) as a container with
# systemd-nspawn --boot. In it, bulkhead-systemd-test.service (baked into
# ROOT) runs tests/systemd/check.sh, which writes its log and
# RESULTS_DIR/exit-code (seen as /out in the container), then powers the
# container off. Binds: BIN_DIR -> /opt/bh (bulkhead, bulkhead-init),
# REPO/tests/systemd -> /opt/bh-test, REPO/config -> /opt/bh-config.
# --register=no --keep-unit: the VM's PID 1 is not systemd (no machined, no
# D-Bus here); --volatile=overlay: ROOT comes in read-only, the container
# writes to a tmpfs overlay that vanishes with it. --capability=all and
# bpf allowed: nspawn's defaults drop CAP_BPF and filter bpf(), which the
# services' device programs need; on a host, systemd's PID 1 has both.
set -uo pipefail

results=${1:?usage: vm-systemd-guest.sh RESULTS_DIR ROOT BIN_DIR REPO}
root=${2:?} bindir=${3:?} repo=${4:?}

echo "vm-systemd: kernel $(uname -r), controllers: $(cat /sys/fs/cgroup/cgroup.controllers 2>&1)"
: >"$results/started"
start=$SECONDS
timeout -k 10 "${BULKHEAD_SYSTEMD_TIMEOUT:-900}" systemd-nspawn -D "$root" \
    --volatile=overlay --register=no --keep-unit \
    --capability=all --system-call-filter=bpf \
    --bind-ro="$bindir:/opt/bh" --bind-ro="$repo/tests/systemd:/opt/bh-test" \
    --bind-ro="$repo/config:/opt/bh-config" --bind="$results:/out" \
    --boot </dev/null
rc=$?
echo "vm-systemd: the container ran $((SECONDS - start))s, systemd-nspawn exit status $rc"
echo "$rc" >"$results/nspawn.rc"
sync

#!/usr/bin/env bash
# Runs INSIDE the test VM (started by scripts/vm-test through vm_run).
#   vm-guest.sh RESULTS_DIR [TEST-ARGS...]
# Runs every test binary listed in RESULTS_DIR/binaries (one path a line) with
# --ignored --test-threads=1 --nocapture TEST-ARGS. Each binary's output goes to
# the console (the host's log) and to RESULTS_DIR/<name>.log, its status to
# RESULTS_DIR/<name>.rc. Last, RESULTS_DIR/exit-code gets 0 if all passed.
# The host trusts only that file, not vng's exit status.
set -uo pipefail

results=${1:?usage: vm-guest.sh RESULTS_DIR [TEST-ARGS...]}
shift

export BULKHEAD_VM=1
export RUST_BACKTRACE=1
# Scratch files live under /run: every compartment gets a /tmp of its own
# (protect.tmp), and the checkout may be under /tmp, /home or /root, which
# compartments do not see: the workload the services run is copied here.
export TMPDIR=/run/bh-tests
mkdir -p "$TMPDIR/bin"
chmod 1777 "$TMPDIR"
first_bin=$(head -n 1 "$results/binaries")
examples="$(dirname "$(dirname "$first_bin")")/examples"
if [[ -x $examples/workload ]]; then
    cp "$examples/workload" "$TMPDIR/bin/workload"
    export BULKHEAD_TEST_WORKLOAD=$TMPDIR/bin/workload
fi
if [[ -x $examples/escape ]]; then
    cp "$examples/escape" "$TMPDIR/bin/escape"
    export BULKHEAD_TEST_ESCAPE=$TMPDIR/bin/escape
fi

echo "vm-guest: kernel $(uname -r), cgroup $(cat /proc/self/cgroup)"
echo "vm-guest: controllers: $(cat /sys/fs/cgroup/cgroup.controllers 2>&1)"
: >"$results/started"

status=0
while IFS= read -r bin; do
    [[ -n $bin ]] || continue
    name=$(basename "$bin")
    echo
    echo "---- vm-guest: running $name ----"
    "$bin" --ignored --test-threads=1 --nocapture "$@" 2>&1 | tee "$results/$name.log"
    rc=${PIPESTATUS[0]}
    echo "$rc" >"$results/$name.rc"
    echo "---- vm-guest: $name exited with $rc ----"
    [[ $rc -eq 0 ]] || status=1
done <"$results/binaries"

echo "$status" >"$results/exit-code"
sync
exit "$status"

#!/usr/bin/env bash
# The part of scripts/demo that needs cgroup v2 controllers: run as root on a
# cgroup v2 host, or inside the VM through vm_run.
#   demo-guest.sh BULKHEAD_BIN
# Each step shows the kernel enforcing a limit on a command started by
# `bulkhead exec`, and what bulkhead says about it.
set -uo pipefail

bin=${1:?usage: demo-guest.sh BULKHEAD_BIN}
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
run() { printf '$ %s\n' "$*"; "$@"; printf '(exit status %s)\n' "$?"; }

step "bulkhead check: every controller bulkhead needs is here"
"$bin" check

step "born inside its cgroup: the first thing the command does is read /proc/self/cgroup"
run "$bin" exec --pids 64 -- /bin/cat /proc/self/cgroup

step "a fork bomb under pids.max 16: the kernel refuses the 17th task, the host never notices"
run "$bin" exec --pids 16 -- /bin/sh -c \
    'sleep 2 & timer=$!; bomb() { bomb | bomb & }; bomb 2>/dev/null; wait $timer; set -- /proc/[0-9]*; echo "tasks in the compartment: $#"'

step "a 200 MiB allocation under memory.max 64M, no swap: OOM-killed inside its own cgroup only"
run "$bin" exec --memory 64M --swap 0 -- /bin/dd if=/dev/zero of=/dev/null bs=200M count=1

step "a CPU spin under cpu.max 0.2 cores: throttled"
run "$bin" exec --cpus 0.2 -- /bin/sh -c 'end=$(($(date +%s) + 2)); while [ "$(date +%s)" -lt "$end" ]; do :; done'

step "the default seccomp profile: unshare and mount are refused, ordinary programs run"
run "$bin" exec -- /bin/sh -c 'unshare -m true; mount -t tmpfs none /mnt; ls / | head -n 3'

step "no capabilities and no_new_privs unless asked"
run "$bin" exec --user nobody -- /bin/grep -E '^(CapEff|CapBnd|NoNewPrivs|Seccomp):' /proc/self/status

step "a setup failure names its step and errno"
run "$bin" exec --user nobody --cwd /root -- /bin/true

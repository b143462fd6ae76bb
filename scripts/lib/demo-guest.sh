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

# ---------------------------------------------------------------- the daemon
cfg=config/demo.yaml
sock=/run/bulkhead-demo/control.sock
root=/sys/fs/cgroup/bulkhead
daemon_log=/tmp/bulkhead-demo-daemon.log
status() { printf '$ bulkhead status   (t=%ss)\n' "$((SECONDS - t0))"; "$bin" status --socket "$sock"; }
kernel() { cat "$root/$1/0/$2" 2>/dev/null; }

step "bulkhead run -c $cfg: the supervisor daemon with five services and a template"
"$bin" run -c "$cfg" >"$daemon_log" 2>&1 &
daemon=$!
t0=$SECONDS
for _ in $(seq 100); do
    [[ -S $sock ]] && break
    sleep 0.2
done
sleep 5
status

# Launch once web is healthy: python3 starts slowly under emulation, and
# the sandboxes' own python3 would compete with it for the CPU.
for _ in $(seq 60); do
    "$bin" health web --socket "$sock" >/dev/null 2>&1 && break
    sleep 1
done
step "templates on demand: bulkhead launch gets or creates one instance per namespace"
for ns in tenant-a tenant-b tenant-a tenant-c tenant-d; do
    echo "\$ bulkhead launch sandbox --namespace $ns"
    "$bin" launch sandbox --namespace "$ns" --socket "$sock" || true
done
echo '$ bulkhead list'
"$bin" list --socket "$sock"

web_checks=0 web_ok=0
probe_web() {
    web_checks=$((web_checks + 1))
    local line=""
    if exec 3<>/dev/tcp/127.0.0.1/8080 2>/dev/null; then
        printf 'GET / HTTP/1.0\r\n\r\n' >&3
        read -r -t 3 line <&3 || true
        exec 3<&-
    fi
    [[ $line == "HTTP/1."*" 200 "* ]] && web_ok=$((web_ok + 1))
}
for pause in 15 30 30; do
    for _ in $(seq $((pause / 5))); do
        sleep 5
        probe_web
    done
    step "t=$((SECONDS - t0))s"
    status
done

step "what the kernel enforced (read from each instance's cgroup files)"
printf 'forkbomb  pids.current %s of pids.max %s; fork refused %s times (pids.events max)\n' \
    "$(kernel forkbomb pids.current)" "$(kernel forkbomb pids.max)" \
    "$(kernel forkbomb pids.events | awk '/^max/ {print $2}')"
printf 'spinner   throttled in %s of %s periods (cpu.stat), cpu.max %s\n' \
    "$(kernel spinner cpu.stat | awk '/^nr_throttled/ {print $2}')" \
    "$(kernel spinner cpu.stat | awk '/^nr_periods/ {print $2}')" \
    "$(kernel spinner cpu.max)"
printf 'leaker    memory.max %s; the OOM kills are in bulkhead status above (each instance gets a fresh cgroup)\n' \
    "$(kernel leaker memory.max)"
printf 'web       answered %s of %s HTTP requests made by this script during the demo\n' "$web_ok" "$web_checks"

step "what the daemon did"
"$bin" status --json --socket "$sock" | python3 -c '
import json, sys
r = json.load(sys.stdin)
for s in r["services"]:
    for i in s["instances"]:
        name = s["name"] if len(s["instances"]) == 1 and not s.get("isolation") else f'{s["name"]}/{i["instance"]}'
        state, restarts = i["state"], i["restarts"]
        last = i.get("last_event") or i.get("last_exit") or "-"
        print(f"{name:19} {state:9} restarts {restarts:2}  {last}")
'
echo
echo '$ bulkhead top --sort cpu -n 2 -d 2s   (plain frames when not a terminal; the second has rates)'
"$bin" top --sort cpu -n 2 -d 2s --socket "$sock" | awk '/^bulkhead / { n = 0 } { line[n++] = $0 } END { for (i = 0; i < n; i++) print line[i] }'
echo
echo '$ curl -s 127.0.0.1:9464/metrics | grep ...   (what Prometheus scrapes; a few series)'
python3 - <<'PY'
import urllib.request
text = urllib.request.urlopen("http://127.0.0.1:9464/metrics", timeout=10).read().decode()
keep = ("bulkhead_instances{", "bulkhead_restarts_total{", "bulkhead_violations_total{",
        "bulkhead_launches_total{", "bulkhead_oom_kills_total{", "bulkhead_pids_forks_refused_total{",
        "bulkhead_group_memory_current_bytes{", "bulkhead_launch_duration_seconds_count{")
lines = [l for l in text.splitlines() if l.startswith(keep) and not l.endswith(" 0")]
print("\n".join(lines[:24]))
print(f"... {len(text.splitlines())} lines in all")
PY
echo
echo '$ bulkhead events   (violations and restarts with their reasons; the last 12)'
"$bin" events --socket "$sock" | grep -E 'violation|reason' | tail -n 12
echo
echo '$ bulkhead status leaker'
"$bin" status leaker --socket "$sock"
echo
echo '$ bulkhead logs intruder -n 5'
"$bin" logs intruder -n 5 --socket "$sock"
echo '$ bulkhead logs crasher -n 4'
"$bin" logs crasher -n 4 --socket "$sock"
echo '$ bulkhead logs leaker -n 3'
"$bin" logs leaker -n 3 --socket "$sock"

step "SIGTERM: every service stopped in reverse dependency order, cgroups removed"
kill -TERM "$daemon"
wait "$daemon"
echo "daemon exit status $?"
if [[ -d $root ]]; then
    echo "left behind:"
    find "$root" -type d
else
    echo "$root is gone"
fi
echo
echo "the daemon's own log (last 25 lines):"
tail -n 25 "$daemon_log"

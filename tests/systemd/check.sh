#!/bin/bash
# Runs INSIDE the systemd container (scripts/vm-systemd): systemd 252 is PID 1
# and this script is bulkhead-systemd-test.service, a oneshot that powers the
# container off when it ends. It installs bulkhead as config/bulkhead.service's
# comment says, then checks what an operator relies on:
#   start: active, READY, a STATUS line; the service in its compartment and in
#     systemd's accounting (under system.slice);
#   kill -9 the daemon: systemd restarts it, the service is adopted (same pid);
#   reload: a broken config fails `systemctl reload` and changes nothing; a
#     good one is applied;
#   kill -STOP the daemon: the watchdog gets it restarted, the service keeps
#     its pid;
#   the scope's keeper and the daemon killed: the restarted daemon gives the
#     services' scope a new keeper and adopts the services;
#   stop: the services are stopped and their cgroups removed;
#   the STATUS line follows the services, the journal has SERVICE= fields;
#   a health check slower than TimeoutStartSec: EXTEND_TIMEOUT_USEC holds
#     systemd's start timeout off until READY.
# Each check appends its name to /out/passed or /out/failed; /out/exit-code
# is 0 when none failed. The log is /out/checks.log, the journal
# /out/journal.txt.
set -uo pipefail

OUT=/out
exec > >(tee -a "$OUT/checks.log") 2>&1
: >"$OUT/passed"
: >"$OUT/failed"
CG=/sys/fs/cgroup

pass() { echo "PASS: $*"; echo "$*" >>"$OUT/passed"; }
fail() { echo "FAIL: $*"; echo "$*" >>"$OUT/failed"; }
check() { # check NAME COMMAND...
    local name=$1
    shift
    if "$@"; then pass "$name"; else fail "$name"; fi
}
# wait_for SECONDS COMMAND...: polls every 0.5 s until COMMAND succeeds.
wait_for() {
    local deadline=$((SECONDS + $1))
    shift
    until "$@"; do
        [[ $SECONDS -lt $deadline ]] || return 1
        sleep 0.5
    done
}
prop() { systemctl show -p "$1" --value bulkhead; }
main_pid() { prop MainPID; }
# kill_main SIGNAL: signals the daemon; never `kill 0` (this script's own
# process group) when systemd has no main pid.
kill_main() {
    local m
    m=$(main_pid)
    [[ $m =~ ^[1-9][0-9]*$ ]] || { echo "no daemon to signal (MainPID=$m)"; return 1; }
    kill "$1" "$m"
}
# `bulkhead status SERVICE --json` on one line, from its instances on (no
# jq in the container).
svc_json() { bulkhead status "$1" --json 2>/dev/null | tr -d ' \n' | grep -o '"instances".*'; }
# The pid and the state of SERVICE's first instance.
svc_pid() { svc_json "$1" | grep -o '"pid":[0-9]*' | head -n 1 | cut -d: -f2; }
svc_state() { svc_json "$1" | grep -o '"state":"[a-z]*"' | head -n 1 | cut -d'"' -f4; }
running() { [[ $(svc_state "$1") == running ]]; }
is_active() { [[ $(prop ActiveState) == active ]]; }
diag() { # what systemd and the daemon say, for a failed check
    systemctl status bulkhead --no-pager -l 2>&1 | head -n 30
    journalctl -u bulkhead --no-pager -n 40 2>&1
}
finish() {
    journalctl -b --no-pager >"$OUT/journal.txt" 2>&1
    local n
    n=$(wc -l <"$OUT/failed")
    echo "checks: $(wc -l <"$OUT/passed") passed, $n failed"
    [[ $n -eq 0 ]] && echo 0 >"$OUT/exit-code" || echo 1 >"$OUT/exit-code"
    sync
}
trap finish EXIT

echo "systemd: $(systemctl --version | head -n 1)"
echo "cgroup: $(cat /proc/self/cgroup); controllers: $(cat $CG/cgroup.controllers)"

# 1. Install as the unit's comment says.
install -m 0755 /opt/bh/bulkhead /opt/bh/bulkhead-init /usr/local/bin/
install -m 0644 /opt/bh-config/bulkhead.service /etc/systemd/system/bulkhead.service
mkdir -p /etc/bulkhead
cat >/etc/bulkhead/good1.yaml <<'YAML'
services:
  steady:
    command: [/bin/sleep, infinity]
YAML
cat >/etc/bulkhead/good2.yaml <<'YAML'
services:
  steady:
    command: [/bin/sleep, infinity]
  second:
    command: [/bin/sleep, infinity]
YAML
cat >/etc/bulkhead/broken.yaml <<'YAML'
services:
  steady:
    command: [/bin/sleep, infinity]
  second:
    command: [/bin/sleep, infinity]
    resources: { memory: { max: lots } }
YAML
cp /etc/bulkhead/good1.yaml /etc/bulkhead/bulkhead.yaml
systemctl daemon-reload
systemctl enable bulkhead 2>&1

# 2. Start: Type=notify, so `systemctl start` returns once READY=1 came.
echo "---- start"
check "systemctl start bulkhead succeeds" timeout 180 systemctl start bulkhead
check "bulkhead is active" is_active
status_text=$(prop StatusText)
echo "StatusText: $status_text"
check "systemctl shows the daemon's STATUS line" test -n "$status_text"
check "the service steady runs" wait_for 60 running steady
pid=$(svc_pid steady)
echo "steady: pid ${pid:-none}, cgroup $(cat "/proc/${pid:-0}/cgroup" 2>&1)"
check "steady runs in a PID namespace of its own" \
    test "$(readlink "/proc/${pid:-0}/ns/pid")" != "$(readlink /proc/self/ns/pid)"
check "steady's cgroup is in systemd's accounting (system.slice)" \
    grep -q '^0::/system.slice/.*steady/0$' "/proc/${pid:-0}/cgroup"
systemd-cgls --no-pager "$CG/system.slice" 2>&1 | head -n 20
# The control socket refuses a root process inside a compartment: its
# cgroup is in the services' scope, not the daemon's unit.
leaf=$(cut -d: -f3 "/proc/${pid:-0}/cgroup")
from_compartment() {
    sh -c 'echo $$ >"$1/cgroup.procs" && exec bulkhead status' sh "$CG$leaf" 2>&1
}
denied=$(from_compartment)
echo "bulkhead status from $leaf: $denied"
check "the control socket refuses root inside a compartment (the scope)" \
    eval '[[ $denied == *CONTROL_DENIED* ]]'
[[ -s $OUT/failed ]] && diag

# 3. A crash: systemd restarts the daemon, which adopts the service.
echo "---- kill -9 the daemon"
old_main=$(main_pid)
kill_main -9
new_daemon() { local m; m=$(main_pid); [[ $m != 0 && $m != "$old_main" ]] && is_active; }
check "after kill -9, systemd restarts the daemon (active again)" wait_for 120 new_daemon
echo "NRestarts=$(prop NRestarts) MainPID=$(main_pid) Result=$(prop Result)"
check "the restarted daemon adopted steady (same pid $pid)" \
    wait_for 30 eval '[[ $(svc_pid steady) == "$pid" ]] && running steady'
if journalctl -u bulkhead --no-pager | grep -q 'status=219/CGROUP'; then
    fail "no restart attempt failed with 219/CGROUP"
    journalctl -u bulkhead --no-pager | grep -m 5 -B2 'status=219/CGROUP'
else
    pass "no restart attempt failed with 219/CGROUP"
fi
[[ -s $OUT/failed ]] && diag

# 4. Reload: a broken config fails and changes nothing; a good one applies.
echo "---- reload"
main=$(main_pid)
cp /etc/bulkhead/broken.yaml /etc/bulkhead/bulkhead.yaml
if timeout 120 systemctl reload bulkhead; then
    fail "systemctl reload with a broken config fails"
else
    pass "systemctl reload with a broken config fails"
fi
check "after the refused reload the daemon still runs (same pid)" \
    eval '[[ $(main_pid) == "$main" ]] && is_active'
check "the refused reload changed nothing (no service 'second')" \
    eval '! bulkhead status second >/dev/null 2>&1 && [[ $(svc_pid steady) == "$pid" ]]'
cp /etc/bulkhead/good2.yaml /etc/bulkhead/bulkhead.yaml
check "systemctl reload with a good config succeeds" timeout 120 systemctl reload bulkhead
check "the good reload applied: 'second' runs" wait_for 60 running second
check "steady kept its pid through both reloads" eval '[[ $(svc_pid steady) == "$pid" ]]'
status_now() { [[ $(prop StatusText) == "2 running" ]]; }
check "the STATUS line follows the services (2 running after the reload)" wait_for 30 status_now
echo "StatusText: $(prop StatusText)"
# The daemon's structured fields reach the journal as journald fields.
by_field() { journalctl -u bulkhead --no-pager -o cat SERVICE=second 2>/dev/null | grep -q .; }
check "journalctl -u bulkhead SERVICE=second finds the service's events" wait_for 10 by_field
[[ -s $OUT/failed ]] && diag

# 5. A hung daemon: the watchdog (WatchdogSec) gets it restarted.
echo "---- kill -STOP the daemon (WatchdogSec=$(prop WatchdogUSec))"
old_main=$(main_pid)
restarts=$(prop NRestarts)
kill_main -STOP
check "after kill -STOP, the watchdog gets the daemon restarted" wait_for 150 new_daemon
echo "NRestarts=$restarts -> $(prop NRestarts), Result=$(prop Result)"
check "the daemon restarted after the watchdog adopted steady (same pid)" \
    wait_for 30 eval '[[ $(svc_pid steady) == "$pid" ]] && running steady'
[[ -s $OUT/failed ]] && diag

# 6. The scope's keeper killed by someone, then a daemon crash: the
# restarted daemon gives the scope a new keeper and adopts the services.
echo "---- kill the scope's keeper, then kill -9 the daemon"
SCOPE=$CG/system.slice/bulkhead-services.scope
keeper=$(head -n 1 "$SCOPE/supervisor/cgroup.procs" 2>/dev/null)
echo "keeper: ${keeper:-none} ($(cat "/proc/${keeper:-0}/cmdline" 2>/dev/null | tr '\0' ' '))"
[[ -n $keeper ]] && kill -9 "$keeper"
old_main=$(main_pid)
kill_main -9
check "after the keeper and the daemon died, systemd restarts the daemon" wait_for 120 new_daemon
check "the restarted daemon adopted steady again (same pid)" \
    wait_for 30 eval '[[ $(svc_pid steady) == "$pid" ]] && running steady'
new_keeper() { local k; k=$(head -n 1 "$SCOPE/supervisor/cgroup.procs" 2>/dev/null); [[ -n $k && $k != "$keeper" ]]; }
check "the scope has a new keeper" new_keeper
[[ -s $OUT/failed ]] && diag

# 7. Stop: the services stop and their cgroups go.
echo "---- stop"
second=$(svc_pid second)
check "systemctl stop bulkhead succeeds" timeout 180 systemctl stop bulkhead
check "bulkhead is inactive" eval '[[ $(prop ActiveState) == inactive ]]'
check "steady's process is gone" eval '! kill -0 "${pid:-0}" 2>/dev/null'
check "second's process is gone" eval '! kill -0 "${second:-0}" 2>/dev/null'
# systemd removes the emptied scope on its own, a moment after the daemon
# ended its keeper.
leftovers() {
    find "$CG" -type d \( -name steady -o -name second -o -name bulkhead.service \
        -o -name 'bulkhead-*.scope' \) 2>/dev/null
}
check "the services' cgroups and the scope are gone" wait_for 30 eval '[[ -z $(leftovers) ]]'
echo "cgroups left: $(leftovers)"
[[ -s $OUT/failed ]] && diag
systemd-cgls --no-pager "$CG/system.slice" 2>&1 | head -n 20

# 8. A health check slower than the unit's start timeout: the daemon asks
# for more time (EXTEND_TIMEOUT_USEC) while it runs, and READY comes once
# the service is healthy.
echo "---- a health check slower than TimeoutStartSec"
mkdir -p /etc/systemd/system/bulkhead.service.d
printf '[Service]\nTimeoutStartSec=10s\n' >/etc/systemd/system/bulkhead.service.d/slow.conf
cat >/etc/bulkhead/bulkhead.yaml <<'YAML'
services:
  slow:
    command: [/bin/sh, -c, 'sleep 30; touch /tmp/ready; exec sleep infinity']
    health:
      exec: [/bin/test, -e, /tmp/ready]
      interval: 2s
      timeout: 1s
      failures: 1
      start_period: 300s
YAML
systemctl daemon-reload
t0=$SECONDS
check "systemctl start waits past TimeoutStartSec=10s for the slow check" \
    timeout 300 systemctl start bulkhead
echo "start took $((SECONDS - t0))s; StatusText: $(prop StatusText)"
check "bulkhead is active once the slow check passed" is_active
check "the start took longer than TimeoutStartSec (the check held READY)" \
    test $((SECONDS - t0)) -gt 10
if journalctl -u bulkhead --no-pager | grep -q 'start operation timed out'; then
    fail "systemd did not time the start out"
else
    pass "systemd did not time the start out"
fi
timeout 180 systemctl stop bulkhead
rm /etc/systemd/system/bulkhead.service.d/slow.conf
systemctl daemon-reload
[[ -s $OUT/failed ]] && diag
exit 0

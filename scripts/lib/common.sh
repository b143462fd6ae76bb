# shellcheck shell=bash
# Shared helpers for the scripts in scripts/. Source it, do not run it:
#   source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
#
# Knobs (environment variables), all optional:
#   BULKHEAD_VM_KERNEL   kernel image for the VM (default: newest /boot/vmlinuz-*)
#   BULKHEAD_VM_CPUS     guest CPUs (default 2)
#   BULKHEAD_VM_MEMORY   guest memory (default 2G)
#   BULKHEAD_VM_TIMEOUT  seconds before the whole VM run is killed (default 1500)

# Repository root: the parent of the scripts/ directory holding this file.
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
export REPO_ROOT

# cargo lives in ~/.cargo/bin (rustup); vng lives in the /opt/vng virtualenv.
# CI starts with a plain environment, so put both on PATH here once.
VNG_VENV=/opt/vng
for _dir in "${HOME:-/root}/.cargo/bin" /root/.cargo/bin "$VNG_VENV/bin"; do
    case ":$PATH:" in
        *":$_dir:"*) ;;
        *) PATH="$PATH:$_dir" ;; # even if missing yet: setup may create it
    esac
done
unset _dir
export PATH

# Never prompt: CI runs with no stdin.
export DEBIAN_FRONTEND=noninteractive
# cargo: keep colours off in logs unless the caller chose otherwise.
if [[ ! -t 1 ]]; then
    export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
fi

log() { printf '%s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# section "Title": a header that is easy to find in a long CI log.
section() {
    printf '\n==== %s ====\n' "$*"
}

# shquote ARG...: each ARG quoted for a POSIX sh (the guest runs --exec through
# /bin/sh, i.e. dash), joined by spaces.
shquote() {
    local out='' arg
    for arg in "$@"; do
        out+="'${arg//\'/\'\\\'\'}' "
    done
    printf '%s' "${out% }"
}

# vm_kernel: path of the kernel the VM boots.
vm_kernel() {
    if [[ -n ${BULKHEAD_VM_KERNEL:-} ]]; then
        printf '%s\n' "$BULKHEAD_VM_KERNEL"
        return
    fi
    local k
    k="$(find /boot -maxdepth 1 -name 'vmlinuz-*' -print 2>/dev/null | sort -V | tail -n 1)"
    [[ -n $k ]] || die "no kernel in /boot (run scripts/setup: it installs linux-image-amd64)"
    printf '%s\n' "$k"
}

# vm_run RWDIR GUEST-COMMAND...
# Boots one VM (virtme-ng, software emulation) and runs GUEST-COMMAND in it as
# root, from the current directory. The host filesystem is visible read-only
# in the guest; RWDIR (created if needed) is writable and shared with the host,
# so use it for anything the guest must hand back. The guest's /tmp and /run
# are throwaway overlays. The guest starts with a minimal environment
# (HOME, PATH=/sbin:/usr/sbin:/bin:/usr/bin:...); host variables do not cross,
# but BULKHEAD_VM=1 is set for the command.
# Guest stdout and stderr both go to this function's stdout. Returns vng's
# status: the guest command's exit status when it ran, 255 when the guest died
# (e.g. kernel panic), 124 on timeout, 1 when vng itself failed.
# Do not rely on the status alone: have the guest write a result into RWDIR.
vm_run() {
    [[ $# -ge 2 ]] || die "usage: vm_run RWDIR GUEST-COMMAND..."
    local rwdir=$1
    shift
    command -v vng >/dev/null || die "vng not found (run scripts/setup)"
    local kernel
    kernel="$(vm_kernel)"
    [[ -f $kernel ]] || die "kernel image not found: $kernel"
    mkdir -p "$rwdir"
    rwdir="$(cd "$rwdir" && pwd)"

    # vng passes the command base64-encoded on the kernel command line, which
    # holds 2048 bytes in all: put anything long in a script under RWDIR.
    local guest_cmd
    guest_cmd="env BULKHEAD_VM=1 $(shquote "$@")"
    [[ ${#guest_cmd} -le 1024 ]] || die "vm_run: guest command too long (${#guest_cmd} bytes); use a script"

    local -a cmd=(
        vng --run "$kernel" --disable-kvm
        --cpus "${BULKHEAD_VM_CPUS:-2}" --memory "${BULKHEAD_VM_MEMORY:-2G}"
        --rwdir "$rwdir"
        --exec "$guest_cmd"
    )
    log "vm: ${cmd[*]:0:${#cmd[@]}-2} --exec \"$guest_cmd\""
    # - stdin from /dev/null: CI has none, and qemu must not read a terminal.
    # - output through a pipe: qemu reopens /proc/self/fd/{1,2} with O_TRUNC,
    #   which would truncate a log file that stdout/stderr point to.
    # - timeout signals its whole process group, so qemu dies with vng.
    local rc=0
    timeout -k 20 "${BULKHEAD_VM_TIMEOUT:-1500}" "${cmd[@]}" </dev/null 2>&1 | cat ||
        rc=${PIPESTATUS[0]}
    if [[ $rc -eq 124 ]]; then
        log "vm: timed out after ${BULKHEAD_VM_TIMEOUT:-1500}s"
    fi
    return "$rc"
}

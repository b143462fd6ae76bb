//! What a compromised service tries first, for the escape suite
//! (tests/vm_escape.rs) and the demo: each attack prints one line
//!
//! ```text
//! RESULT <attack> held <why it failed>
//! RESULT <attack> escaped <what it got>
//! ```
//! and none of them changes anything when it succeeds (writes are opens for
//! writing, files made are removed again), so a run against a weaker build
//! shows what would have escaped without harming the machine.
//!
//! ```text
//! escape all            every attack below, in order
//! escape ATTACK...      the named ones
//! escape tiocsti        push a keystroke into the controlling terminal
//! escape victim         be the neighbour: leave secrets in /tmp and /dev/shm, then sleep
//! ```
//! `chmod-suid` and `creat-suid` make a setuid/setgid file where the
//! service may write ($TMPDIR, else /tmp): a file someone else may later
//! run with the service's uid or gid (or root's, when the service runs as
//! root), so it escapes when the file ends up with S_ISUID or S_ISGID.
//!
//! Targets come from the environment: `OWN_CG` and `VICTIM_CG` (host paths
//! of the attacker's and a neighbour's cgroup), `BH_SOCK` (the control
//! socket), `BH_STATE`, `BH_LOGS` (bulkhead's state and log dirs), `BH_BIN`
//! (the bulkhead binary).

use std::fs::OpenOptions;
use std::io::{Read, Write};
use std::path::Path;
use std::process::ExitCode;

type Outcome = Result<String, String>;
type Attack = fn() -> Outcome;
type Try<'a> = (String, &'a dyn Fn(&str) -> std::io::Result<()>);

const ATTACKS: &[(&str, Attack)] = &[
    ("raise-limits", raise_limits),
    ("leave-cgroup", leave_cgroup),
    ("freeze-neighbour", freeze_neighbour),
    ("kill-neighbour", kill_neighbour),
    ("core-pattern", || {
        open_write("/proc/sys/kernel/core_pattern")
    }),
    ("modprobe", || open_write("/proc/sys/kernel/modprobe")),
    ("sysrq-trigger", || open_write("/proc/sysrq-trigger")),
    ("write-etc", || create_remove("/etc/bh-escape")),
    ("write-usr", || create_remove("/usr/bin/bh-escape")),
    ("write-bulkhead-binary", write_binary),
    ("read-shadow", || read_some("/etc/shadow")),
    ("write-block-device", write_block_device),
    ("mknod", mknod),
    ("read-kcore", || read_some("/proc/kcore")),
    ("kallsyms-addresses", kallsyms),
    ("see-init", see_init),
    ("init-privileges", init_privileges),
    ("ptrace-init", ptrace_init),
    ("control-socket", control_socket),
    ("neighbour-logs", neighbour_logs),
    ("bulkhead-state", bulkhead_state),
    ("neighbour-tmp", || read_some("/tmp/victim-secret")),
    ("neighbour-shm", || read_some("/dev/shm/victim-secret")),
    ("mount", mount),
    ("user-namespace", user_namespace),
    ("chmod-suid", chmod_suid),
    ("creat-suid", creat_suid),
];

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("victim") => victim(),
        Some("tiocsti") => report("tiocsti", tiocsti()),
        Some("all") => {
            for (name, attack) in ATTACKS {
                report(name, attack());
            }
        }
        Some(_) => {
            for a in &args {
                match ATTACKS.iter().find(|(n, _)| n == a) {
                    Some((name, attack)) => report(name, attack()),
                    None => {
                        eprintln!("escape: no attack {a}");
                        return ExitCode::from(2);
                    }
                }
            }
        }
        None => {
            eprintln!("usage: escape all | victim | tiocsti | ATTACK...");
            return ExitCode::from(2);
        }
    }
    let _ = std::io::stdout().flush();
    ExitCode::SUCCESS
}

fn report(name: &str, o: Outcome) {
    let line = match o {
        Ok(what) => format!("RESULT {name} escaped {what}"),
        Err(why) => format!("RESULT {name} held {why}"),
    };
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_default()
}

/// Every path the attack tries, the first success wins.
fn first_ok(tries: &[Try<'_>]) -> Outcome {
    let mut why = Vec::new();
    for (path, f) in tries {
        match f(path) {
            Ok(()) => return Ok(path.clone()),
            Err(e) => why.push(format!("{path}: {e}")),
        }
    }
    Err(why.join("; "))
}

fn write_file(path: &str, text: &str) -> std::io::Result<()> {
    OpenOptions::new()
        .write(true)
        .open(path)?
        .write_all(text.as_bytes())
}

/// The cgroup's own limits, from the paths a service could know: its
/// cgroup namespace root, and its host path.
fn raise_limits() -> Outcome {
    let own = env("OWN_CG");
    let write = |p: &str| write_file(p, "max");
    first_ok(&[
        ("/sys/fs/cgroup/memory.max".into(), &write),
        ("/sys/fs/cgroup/pids.max".into(), &write),
        (format!("{own}/memory.max"), &write),
        (format!("{own}/pids.max"), &write),
    ])
}

fn own_cgroup() -> String {
    std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default()
}

fn leave_cgroup() -> Outcome {
    let before = own_cgroup();
    let pid = std::process::id().to_string();
    for p in [
        "/sys/fs/cgroup/cgroup.procs",
        "/sys/fs/cgroup/unified/cgroup.procs",
    ] {
        let _ = write_file(p, &pid);
    }
    // A path outside the namespace root, as seen from the host.
    if let Some(parent) = Path::new(&env("OWN_CG")).parent().and_then(Path::parent) {
        let _ = write_file(&format!("{}/cgroup.procs", parent.display()), &pid);
    }
    let after = own_cgroup();
    if after == before {
        Err(format!("still in {}", before.trim()))
    } else {
        Ok(format!("moved from {} to {}", before.trim(), after.trim()))
    }
}

fn freeze_neighbour() -> Outcome {
    let v = env("VICTIM_CG");
    // Writing 0 is what a probe would do without harm: the open and write
    // succeeding is the escape.
    let write = |p: &str| write_file(p, "0");
    first_ok(&[(format!("{v}/cgroup.freeze"), &write)])
}

fn kill_neighbour() -> Outcome {
    let v = env("VICTIM_CG");
    let open = |p: &str| OpenOptions::new().write(true).open(p).map(drop);
    first_ok(&[(format!("{v}/cgroup.kill"), &open)])
}

fn open_write(path: &str) -> Outcome {
    OpenOptions::new()
        .write(true)
        .open(path)
        .map(|_| format!("{path} open for writing"))
        .map_err(|e| format!("{path}: {e}"))
}

fn create_remove(path: &str) -> Outcome {
    let p = format!("{path}-{}", std::process::id());
    match OpenOptions::new().write(true).create_new(true).open(&p) {
        Ok(_) => {
            let _ = std::fs::remove_file(&p);
            Ok(format!("created {p}"))
        }
        Err(e) => Err(format!("{p}: {e}")),
    }
}

fn write_binary() -> Outcome {
    let bin = env("BH_BIN");
    OpenOptions::new()
        .append(true)
        .open(&bin)
        .map(|_| format!("{bin} open for writing"))
        .map_err(|e| format!("{bin}: {e}"))
}

fn read_some(path: &str) -> Outcome {
    let mut f = std::fs::File::open(path).map_err(|e| format!("{path}: {e}"))?;
    let mut buf = [0u8; 64];
    match f.read(&mut buf) {
        Ok(0) => Err(format!("{path}: empty (masked)")),
        Ok(n) => Ok(format!("read {n} bytes of {path}")),
        Err(e) => Err(format!("{path}: {e}")),
    }
}

fn write_block_device() -> Outcome {
    let open = |p: &str| OpenOptions::new().write(true).open(p).map(drop);
    first_ok(&[
        ("/dev/nullb0".into(), &open),
        ("/dev/vda".into(), &open),
        ("/dev/sda".into(), &open),
    ])
}

fn mknod() -> Outcome {
    let p = format!("/tmp/bh-nullb-{}", std::process::id());
    let dev = nix::sys::stat::makedev(254, 0);
    match nix::sys::stat::mknod(
        p.as_str(),
        nix::sys::stat::SFlag::S_IFBLK,
        nix::sys::stat::Mode::from_bits_truncate(0o600),
        dev,
    ) {
        Ok(()) => {
            // Made: can it be opened (a device program would still refuse)?
            let opened = OpenOptions::new().write(true).open(&p).is_ok();
            let _ = std::fs::remove_file(&p);
            if opened {
                Ok(format!("made and opened {p}"))
            } else {
                Err(format!("made {p} but could not open it"))
            }
        }
        Err(e) => Err(format!("{p}: {e}")),
    }
}

fn kallsyms() -> Outcome {
    let text = std::fs::read_to_string("/proc/kallsyms").map_err(|e| format!("{e}"))?;
    let nonzero = text
        .lines()
        .take(2000)
        .filter(|l| {
            l.split(' ')
                .next()
                .is_some_and(|a| a.chars().any(|c| c != '0'))
        })
        .count();
    if nonzero > 0 {
        Ok(format!("{nonzero} addresses visible"))
    } else {
        Err("every address reads 0".into())
    }
}

/// The init (PID 1) or any process not of this service's user.
fn see_init() -> Outcome {
    let me = nix::unistd::getuid().as_raw();
    let mut seen = Vec::new();
    for e in std::fs::read_dir("/proc")
        .map_err(|e| e.to_string())?
        .flatten()
    {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.parse::<u32>().is_err() {
            continue;
        }
        let uid = std::fs::read_to_string(format!("/proc/{name}/status"))
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("Uid:"))
                    .and_then(|l| l.split_whitespace().nth(1).map(str::to_string))
            });
        if name == "1" || uid.as_deref() != Some(me.to_string().as_str()) {
            seen.push(format!("{name}(uid {})", uid.unwrap_or_default()));
        }
    }
    if seen.is_empty() {
        Err("only this service's own processes".into())
    } else {
        Ok(format!("sees {}", seen.join(" ")))
    }
}

/// What PID 1 would give a service that took it over: its capabilities
/// beyond CAP_KILL, or its environment.
fn init_privileges() -> Outcome {
    let status = match std::fs::read_to_string("/proc/1/status") {
        Ok(s) => s,
        Err(e) => return Err(format!("/proc/1 not visible: {e}")),
    };
    let field = |k: &str| {
        status
            .lines()
            .find(|l| l.starts_with(k))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| u64::from_str_radix(v, 16).ok())
            .unwrap_or(0)
    };
    let (eff, bnd) = (field("CapEff:"), field("CapBnd:"));
    let nnp = status
        .lines()
        .any(|l| l.starts_with("NoNewPrivs:") && l.ends_with('1'));
    // "Seccomp: 2": the init runs under a filter of its own.
    let filtered = status
        .lines()
        .any(|l| l.starts_with("Seccomp:") && l.ends_with('2'));
    const CAP_KILL: u64 = 1 << 5;
    if eff & !CAP_KILL != 0 || bnd & !CAP_KILL != 0 || !nnp || !filtered {
        Ok(format!(
            "init holds CapEff={eff:x} CapBnd={bnd:x} no_new_privs={nnp} seccomp_filter={filtered}"
        ))
    } else {
        Err(format!(
            "init holds CapEff={eff:x} CapBnd={bnd:x}, no_new_privs, a seccomp filter"
        ))
    }
}

/// Attaching is refused, or the init it reaches holds nothing
/// (`init-privileges` says what it holds).
fn ptrace_init() -> Outcome {
    let null = std::ptr::null_mut::<libc::c_void>();
    // SAFETY: PTRACE_SEIZE and PTRACE_DETACH take a pid and integer
    // arguments; no memory of ours is read or written.
    let r = unsafe { libc::ptrace(libc::PTRACE_SEIZE, 1, null, null) };
    match if r == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    } {
        Ok(()) => {
            // SAFETY: as above.
            unsafe { libc::ptrace(libc::PTRACE_DETACH, 1, null, null) };
            match init_privileges() {
                Ok(what) => Ok(format!("attached to PID 1, which {what}")),
                Err(why) => Err(format!("attached to PID 1, which is harmless: {why}")),
            }
        }
        Err(e) => Err(format!("PTRACE_SEIZE 1: {e}")),
    }
}

fn control_socket() -> Outcome {
    let sock = env("BH_SOCK");
    let mut s =
        std::os::unix::net::UnixStream::connect(&sock).map_err(|e| format!("{sock}: {e}"))?;
    let _ = s.set_read_timeout(Some(std::time::Duration::from_secs(10)));
    s.write_all(
        b"POST /v1/services/victim/stop HTTP/1.1\r\nHost: bulkhead\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    )
    .map_err(|e| format!("write: {e}"))?;
    let mut reply = String::new();
    let _ = s.read_to_string(&mut reply);
    let status = reply.lines().next().unwrap_or("").to_string();
    if status.contains(" 2") {
        Ok(format!("the daemon answered {status}"))
    } else {
        Err(format!("connected, but the daemon answered {status:?}"))
    }
}

fn neighbour_logs() -> Outcome {
    let logs = env("BH_LOGS");
    let read = |p: &str| {
        std::fs::read_dir(p).and_then(|d| {
            let n = d.count();
            if n > 0 {
                Ok(())
            } else {
                Err(std::io::Error::other("empty"))
            }
        })
    };
    first_ok(&[(logs, &read)])
}

fn bulkhead_state() -> Outcome {
    let state = env("BH_STATE");
    let list = |p: &str| {
        std::fs::read_dir(p).and_then(|d| {
            if d.count() > 0 {
                Ok(())
            } else {
                Err(std::io::Error::other("empty"))
            }
        })
    };
    first_ok(&[(state, &list)])
}

fn mount() -> Outcome {
    let none: Option<&str> = None;
    nix::mount::mount(
        Some("tmpfs"),
        "/tmp",
        Some("tmpfs"),
        nix::mount::MsFlags::empty(),
        none,
    )
    .map(|()| "mounted a tmpfs on /tmp".to_string())
    .map_err(|e| format!("mount: {e}"))
}

fn user_namespace() -> Outcome {
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWUSER)
        .map(|()| "in a new user namespace".to_string())
        .map_err(|e| format!("unshare(CLONE_NEWUSER): {e}"))
}

fn tmp_dir() -> String {
    std::env::var("TMPDIR").unwrap_or_else(|_| "/tmp".into())
}

/// The setuid/setgid bits `path` has, 0 when it has none or is not there.
fn sxid_bits(path: &str) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).map_or(0, |m| m.permissions().mode() & 0o6000)
}

/// An executable file of its own, then chmod u+s (and g+s).
fn chmod_suid() -> Outcome {
    use std::os::unix::fs::PermissionsExt;
    let p = format!("{}/bh-suid-{}", tmp_dir(), std::process::id());
    std::fs::write(&p, "#!/bin/sh\nid\n").map_err(|e| format!("{p}: {e} (nothing to chmod)"))?;
    let mut why = Vec::new();
    for mode in [0o4755, 0o2755] {
        match std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)) {
            Ok(()) if sxid_bits(&p) != 0 => {
                let got = sxid_bits(&p);
                let _ = std::fs::remove_file(&p);
                return Ok(format!("chmod {mode:o} made {p} mode {got:o}"));
            }
            Ok(()) => why.push(format!("chmod {mode:o}: no setuid/setgid bit stayed")),
            Err(e) => why.push(format!("chmod {mode:o}: {e}")),
        }
    }
    let _ = std::fs::remove_file(&p);
    Err(format!("{p}: {}", why.join("; ")))
}

/// A new file created with mode 04755: through open(O_CREAT) as the C
/// library does it, and through creat(2).
fn creat_suid() -> Outcome {
    use std::os::unix::fs::OpenOptionsExt;
    let p = format!("{}/bh-creat-{}", tmp_dir(), std::process::id());
    let mut why = Vec::new();
    let opened = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o4755)
        .open(&p);
    match opened {
        Ok(_) if sxid_bits(&p) != 0 => {
            let got = sxid_bits(&p);
            let _ = std::fs::remove_file(&p);
            return Ok(format!("open(O_CREAT, 04755) made {p} with {got:o}"));
        }
        Ok(_) => why.push("open(O_CREAT, 04755): made without the bit".to_string()),
        Err(e) => why.push(format!("open(O_CREAT, 04755): {e}")),
    }
    let _ = std::fs::remove_file(&p);
    let c = std::ffi::CString::new(p.clone()).map_err(|e| e.to_string())?;
    // SAFETY: creat reads the NUL-terminated path, a live CString.
    let fd = unsafe { libc::creat(c.as_ptr(), 0o4755) };
    if fd >= 0 {
        // SAFETY: closes the descriptor creat just returned.
        unsafe { libc::close(fd) };
        let got = sxid_bits(&p);
        let _ = std::fs::remove_file(&p);
        if got != 0 {
            return Ok(format!("creat(04755) made {p} with {got:o}"));
        }
        why.push("creat(04755): made without the bit".to_string());
    } else {
        why.push(format!("creat(04755): {}", std::io::Error::last_os_error()));
    }
    Err(format!("{p}: {}", why.join("; ")))
}

/// TIOCSTI: one byte pushed into the terminal's input queue, which the
/// shell that ran `bulkhead exec` would read as typed.
fn tiocsti() -> Outcome {
    let byte: u8 = b'#';
    // SAFETY: TIOCSTI reads one byte through the pointer, which points at a
    // live local; fd 0 is this process's stdin.
    let r = unsafe { libc::ioctl(0, libc::TIOCSTI, &raw const byte) };
    if r == 0 {
        Ok("pushed a byte into the terminal".into())
    } else {
        Err(format!("TIOCSTI: {}", std::io::Error::last_os_error()))
    }
}

/// The neighbour: secrets in its /tmp and /dev/shm, then sleep.
fn victim() {
    let _ = std::fs::write("/tmp/victim-secret", "secret");
    let _ = std::fs::write("/dev/shm/victim-secret", "secret");
    println!("victim ready");
    let _ = std::io::stdout().flush();
    loop {
        std::thread::sleep(std::time::Duration::from_secs(3600));
    }
}

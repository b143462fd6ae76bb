//! Misbehaving workloads for the privileged tests and the demo: fork until
//! refused, allocate until killed, spin, write to a block device.
//!
//! ```text
//! workload [--join CGROUP_DIR] forks N [--retry]   spawn N sleepers; stop (exit 3) or retry on EAGAIN
//! workload [--join CGROUP_DIR] forkloop            spawn and reap /bin/true forever
//! workload [--join CGROUP_DIR] alloc MIB           allocate and touch MIB MiB, 1 MiB at a time
//! workload [--join CGROUP_DIR] squeeze MIB SECS    keep touching MIB MiB for SECS seconds
//! workload [--join CGROUP_DIR] spin SECS           burn CPU for SECS seconds of wall time
//! workload [--join CGROUP_DIR] write-direct DEV MIB  O_DIRECT writes of MIB MiB to DEV
//! workload [--join CGROUP_DIR] sleep SECS
//! workload [--join CGROUP_DIR] fds N               open N descriptors of /dev/null, then sleep
//! ```
//! With `--join`, the process first moves itself into the cgroup (writes its
//! pid to `cgroup.procs`), so everything after runs under its limits.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

fn main() -> ExitCode {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--join") {
        let dir = args.get(1).cloned().unwrap_or_default();
        if let Err(e) = std::fs::write(
            format!("{dir}/cgroup.procs"),
            std::process::id().to_string(),
        ) {
            eprintln!("workload: cannot join {dir}: {e}");
            return ExitCode::from(2);
        }
        args.drain(..2);
    }
    let num = |i: usize| -> u64 { args.get(i).and_then(|a| a.parse().ok()).unwrap_or(0) };
    let out = match args.first().map(String::as_str) {
        Some("forks") => forks(num(1), args.iter().any(|a| a == "--retry")),
        Some("forkloop") => forkloop(),
        Some("alloc") => alloc(num(1)),
        Some("squeeze") => squeeze(num(1), num(2)),
        Some("spin") => spin(num(1)),
        Some("write-direct") => write_direct(args.get(1).map_or("", String::as_str), num(2)),
        Some("fds") => fds(num(1)),
        Some("sleep") => {
            std::thread::sleep(Duration::from_secs(num(1)));
            0
        }
        _ => {
            eprintln!(
                "usage: workload [--join DIR] forks|forkloop|alloc|squeeze|spin|write-direct|fds|sleep ..."
            );
            2
        }
    };
    ExitCode::from(out)
}

fn say(msg: &str) {
    let mut o = std::io::stdout().lock();
    let _ = writeln!(o, "{msg}");
    let _ = o.flush();
}

fn sleeper() -> std::io::Result<Child> {
    // No inherited pipes: a test waiting for this workload's output must not
    // also wait for its children.
    Command::new("/bin/sleep")
        .arg("600")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
}

/// Spawns `n` sleepers. A refused fork is reported with its errno; with
/// `retry` the loop waits and tries again (the live pids.max test raises the
/// limit meanwhile).
fn forks(n: u64, retry: bool) -> u8 {
    let mut children = Vec::new();
    let mut refused = 0u64;
    while (children.len() as u64) < n {
        match sleeper() {
            Ok(c) => children.push(c),
            Err(e) => {
                refused += 1;
                if refused == 1 {
                    say(&format!(
                        "fork refused after {} children: {e} (errno {:?})",
                        children.len(),
                        e.raw_os_error()
                    ));
                }
                if !retry {
                    reap(children);
                    return 3;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
    say(&format!("spawned {n} children ({refused} refusals)"));
    reap(children);
    0
}

fn reap(children: Vec<Child>) {
    for mut c in children {
        let _ = c.kill();
        let _ = c.wait();
    }
}

fn forkloop() -> u8 {
    let mut keep = Vec::new();
    loop {
        match Command::new("/bin/true")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
        {
            Ok(mut c) => {
                let _ = c.wait();
            }
            Err(_) => std::thread::sleep(Duration::from_millis(1)),
        }
        if keep.len() < 8
            && let Ok(c) = sleeper()
        {
            keep.push(c);
        }
    }
}

/// Touches one byte per page so the memory is really charged.
fn touch(buf: &mut [u8], seed: u8) {
    for i in (0..buf.len()).step_by(4096) {
        buf[i] = seed;
    }
}

fn alloc(mib: u64) -> u8 {
    let mut chunks: Vec<Vec<u8>> = Vec::new();
    for i in 0..mib {
        let mut c = vec![0u8; 1 << 20];
        touch(&mut c, 1);
        chunks.push(c);
        if (i + 1) % 16 == 0 {
            say(&format!("allocated {} MiB", i + 1));
        }
    }
    say(&format!("allocated {mib} MiB in total"));
    0
}

fn squeeze(mib: u64, secs: u64) -> u8 {
    let mut chunks: Vec<Vec<u8>> = (0..mib).map(|_| vec![0u8; 1 << 20]).collect();
    let end = Instant::now() + Duration::from_secs(secs);
    let mut rounds = 0u8;
    while Instant::now() < end {
        rounds = rounds.wrapping_add(1);
        for c in &mut chunks {
            touch(c, rounds);
        }
    }
    say(&format!("squeezed {mib} MiB for {secs}s"));
    0
}

/// Opens `n` descriptors (stopping early at EMFILE) and holds them.
fn fds(n: u64) -> u8 {
    let mut held = Vec::new();
    for _ in 0..n {
        match std::fs::File::open("/dev/null") {
            Ok(f) => held.push(f),
            Err(e) => {
                say(&format!("open #{}: {e}", held.len()));
                break;
            }
        }
    }
    say(&format!("holding {} descriptors", held.len()));
    std::thread::sleep(Duration::from_secs(100_000));
    drop(held);
    0
}

fn spin(secs: u64) -> u8 {
    let end = Instant::now() + Duration::from_secs(secs);
    let mut x = 0u64;
    while Instant::now() < end {
        for i in 0..10_000u64 {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(i);
        }
    }
    say(&format!("spun for {secs}s ({x:x})"));
    0
}

/// O_DIRECT writes bypass the page cache, so io.max throttles the writer itself.
fn write_direct(dev: &str, mib: u64) -> u8 {
    const BLOCK: usize = 64 << 10;
    let mut f = match std::fs::OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_DIRECT)
        .open(dev)
    {
        Ok(f) => f,
        Err(e) => {
            eprintln!("workload: open {dev}: {e}");
            return 2;
        }
    };
    // O_DIRECT needs a buffer aligned to the logical block size; take an
    // aligned window of a larger allocation.
    let raw = vec![0xa5u8; BLOCK + 4096];
    let off = (4096 - (raw.as_ptr() as usize % 4096)) % 4096;
    let buf = &raw[off..off + BLOCK];
    let start = Instant::now();
    let blocks = mib * (1 << 20) / BLOCK as u64;
    for _ in 0..blocks {
        if let Err(e) = f.write_all(buf) {
            eprintln!("workload: write {dev}: {e}");
            return 2;
        }
    }
    say(&format!(
        "wrote {mib} MiB in {:.2}s",
        start.elapsed().as_secs_f64()
    ));
    0
}

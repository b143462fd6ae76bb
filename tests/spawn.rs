//! The spawn path on the host: the cgroup2 mount exists here (without
//! controllers), so being born in a cgroup, the fallback placement, the
//! init's log file and its memory footprint can all be shown without the VM.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use bulkhead::sandbox::spawn::{self, NamespaceFlags, SpawnError, SpawnRequest};
use bulkhead::sandbox::spec::{ExitRecord, InitSpec, LogSpec, Step};

/// A cgroup directly under the cgroup2 mount, removed on drop.
struct HostCgroup {
    dir: PathBuf,
    /// The path /proc/self/cgroup shows for it.
    rel: String,
}

impl HostCgroup {
    fn new(name: &str) -> HostCgroup {
        assert!(nix::unistd::geteuid().is_root(), "spawn tests need root");
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        let mount = bulkhead::cgroup::discover::cgroup2_mount(&mountinfo).expect("a cgroup2 mount");
        let leaf = format!("bulkhead-spawn-test-{}-{name}", std::process::id());
        let dir = mount.join(&leaf);
        std::fs::create_dir(&dir).unwrap();
        // /proc/self/cgroup shows paths from the root of our cgroup namespace,
        // which is where the mount's root is on these hosts and in the VM.
        HostCgroup {
            dir,
            rel: format!("/{leaf}"),
        }
    }
}

impl Drop for HostCgroup {
    fn drop(&mut self) {
        let _ = common::poll_until(Duration::from_secs(2), || {
            std::fs::remove_dir(&self.dir).is_ok()
        });
    }
}

fn spec(script: &str, dir: &Path) -> InitSpec {
    InitSpec {
        program: "/bin/sh".into(),
        argv: vec!["sh".into(), "-c".into(), script.into()],
        env: vec!["PATH=/usr/bin:/bin".into()],
        working_dir: "/".into(),
        mount_proc: true,
        status_file: Some(dir.join("status.json")),
        log: Some(LogSpec {
            path: dir.join("out.log"),
            max_size: 1 << 20,
            keep: 1,
        }),
        // The init's own filter, as every real spawn has it: rotation,
        // reaping and the status record all run under it here.
        init_seccomp: bulkhead::seccomp::own::init_program()
            .expect("the init's filter")
            .to_vec(),
        ..InitSpec::default()
    }
}

fn start(spec: &InitSpec, cgroup: &Path, attach_after_clone: bool) -> Result<i32, SpawnError> {
    let req = SpawnRequest {
        spec,
        cgroup,
        namespaces: NamespaceFlags {
            pid: true,
            mount: true,
            net: false,
            uts: false,
            ipc: false,
            cgroup: false,
        },
        die_with_parent: true,
        init_exe: Path::new(env!("CARGO_BIN_EXE_bulkhead")),
        attach_after_clone,
    };
    spawn::spawn(&req).map(|s| s.pid)
}

/// Waits for the init and returns its exit code.
fn wait(pid: i32) -> i32 {
    match nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None).unwrap() {
        nix::sys::wait::WaitStatus::Exited(_, code) => code,
        other => panic!("init ended as {other:?}"),
    }
}

fn born_in_the_cgroup(attach_after_clone: bool) {
    let cg = HostCgroup::new(if attach_after_clone { "attach" } else { "into" });
    let tmp = tempfile::tempdir().unwrap();
    // The first thing the service does is read its own cgroup.
    let s = spec(
        "cat /proc/self/cgroup; echo pid=$$; echo to-stderr >&2; exit 7",
        tmp.path(),
    );
    let pid = start(&s, &cg.dir, attach_after_clone).unwrap();
    assert_eq!(wait(pid), 7, "the init exits with the service's status");
    let log = std::fs::read_to_string(tmp.path().join("out.log")).unwrap();
    println!("{log}");
    // Each line is "<RFC 3339 time> <out|err> <text>".
    let lines: Vec<(&str, &str)> = log
        .lines()
        .map(|l| {
            let mut parts = l.splitn(3, ' ');
            let ts = parts.next().unwrap();
            assert!(
                ts.len() == 24 && ts.ends_with('Z'),
                "bad timestamp in {l:?}"
            );
            (parts.next().unwrap(), parts.next().unwrap_or(""))
        })
        .collect();
    // On a hybrid host the v1 hierarchies are listed too; the v2 line is
    // the one that counts.
    let v2 = lines.iter().find(|(_, t)| t.starts_with("0::")).unwrap();
    assert_eq!(*v2, ("out", format!("0::{}", cg.rel).as_str()));
    // The service is PID 2: the init is PID 1 of the new namespace.
    assert!(lines.contains(&("out", "pid=2")), "{log}");
    assert!(
        lines.contains(&("err", "to-stderr")),
        "stderr is tagged err"
    );
    let status: ExitRecord =
        serde_json::from_slice(&std::fs::read(tmp.path().join("status.json")).unwrap()).unwrap();
    assert_eq!(status, ExitRecord::Exited { code: 7 });
}

#[test]
fn born_inside_its_cgroup_with_clone_into_cgroup() {
    born_in_the_cgroup(false);
}

#[test]
fn born_inside_its_cgroup_when_placed_after_the_clone() {
    born_in_the_cgroup(true);
}

#[test]
fn a_failed_placement_is_its_own_step_and_runs_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let marker = tmp.path().join("ran");
    let s = spec(&format!("touch {}", marker.display()), tmp.path());
    // /proc is no cgroup: writing its cgroup.procs fails.
    match start(&s, Path::new("/proc"), true) {
        Err(SpawnError::Step {
            step: Step::JoinCgroup,
            ..
        }) => {}
        other => panic!("expected a join-cgroup failure, got {other:?}"),
    }
    assert!(!marker.exists(), "the command ran outside its cgroup");
}

#[test]
fn the_log_file_rotates_by_size() {
    let cg = HostCgroup::new("rotate");
    let tmp = tempfile::tempdir().unwrap();
    let mut s = spec(
        "i=0; while [ $i -lt 300 ]; do echo line-$i-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx; i=$((i+1)); done",
        tmp.path(),
    );
    if let Some(l) = s.log.as_mut() {
        l.max_size = 4096;
        l.keep = 2;
    }
    let pid = start(&s, &cg.dir, false).unwrap();
    assert_eq!(wait(pid), 0);
    let read = |n: &str| std::fs::read_to_string(tmp.path().join(n)).unwrap_or_default();
    let (cur, one, two) = (read("out.log"), read("out.log.1"), read("out.log.2"));
    assert!(cur.ends_with("line-299-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\n"));
    for f in [&cur, &one, &two] {
        assert!(!f.is_empty() && f.len() <= 4096, "{} bytes", f.len());
    }
    assert!(!tmp.path().join("out.log.3").exists());
}

/// The init is charged to the service's memory.max, so it must stay small:
/// the memory only it holds while it supervises a service, its anonymous
/// pages (heap, stack, relocated data copied on write). The binary's text is
/// page cache, shared by every init and reclaimable; it is synced first,
/// because a freshly linked binary's dirty page cache would otherwise show
/// as the init's "private dirty" pages (smaps counts a dirty page mapped by
/// one process as its own).
#[test]
fn the_init_stays_under_one_mib_of_unique_memory() {
    // With a log file, the init's largest configuration: it reads two pipes
    // and writes the lines.
    for bin in [
        env!("CARGO_BIN_EXE_bulkhead"),
        env!("CARGO_BIN_EXE_bulkhead-init"),
    ] {
        std::fs::File::open(bin).unwrap().sync_all().unwrap();
    }
    let tmp = tempfile::tempdir().unwrap();
    let log = tmp.path().join("out.log");
    let mut exec = std::process::Command::new(env!("CARGO_BIN_EXE_bulkhead"))
        .args(["exec", "--seccomp", "unconfined", "--log"])
        .arg(&log)
        .args(["--", "/bin/sh", "-c", "echo started; exec sleep 3"])
        .spawn()
        .unwrap();
    let children = format!("/proc/{0}/task/{0}/children", exec.id());
    let init = common::wait_until(
        "the init and its service started",
        Duration::from_secs(2),
        || {
            let pid = std::fs::read_to_string(&children).unwrap_or_default();
            let pid = pid.split_whitespace().next()?;
            // Wait until the init has forked the service.
            let grandchildren = format!("/proc/{pid}/task/{pid}/children");
            let forked = !std::fs::read_to_string(grandchildren)
                .unwrap_or_default()
                .trim()
                .is_empty();
            forked.then(|| pid.to_string())
        },
    );
    std::thread::sleep(Duration::from_millis(100));
    let rollup = std::fs::read_to_string(format!("/proc/{init}/smaps_rollup")).unwrap();
    let kb = |field: &str| -> u64 {
        rollup
            .lines()
            .find(|l| l.starts_with(field))
            .and_then(|l| l.split_whitespace().nth(1))
            .unwrap()
            .parse()
            .unwrap()
    };
    let (clean, dirty, anon) = (kb("Private_Clean:"), kb("Private_Dirty:"), kb("Anonymous:"));
    println!(
        "init anonymous {anon} KiB; USS {} KiB (private clean {clean}, private dirty {dirty}); RSS {} KiB",
        clean + dirty,
        kb("Rss:")
    );
    // SIGTERM reaches the service; exec then removes its cgroup.
    let exec_pid = nix::unistd::Pid::from_raw(i32::try_from(exec.id()).unwrap());
    nix::sys::signal::kill(exec_pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    let _ = exec.wait();
    assert!(anon < 1024, "the init holds {anon} KiB of anonymous memory");
}

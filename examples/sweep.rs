//! The sweep benchmark (run by `scripts/bench sweep`): reading the stat files
//! of N cgroups (a) with the [`Sampler`], which keeps them open and preads
//! them, and (b) by opening, reading and closing each file every time, in the
//! same run, interleaved so both see the same machine state.
//!
//! ```text
//! sweep --root DIR [--counts 10,100,1000] [--sweeps 200] [--files cpu.stat,...]
//! ```
//! DIR holds at least max(counts) cgroup directories (the first N in name
//! order are used). Files a cgroup lacks are skipped by both methods, so both
//! read exactly the same files.

use std::fs::File;
use std::hint::black_box;
use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use bulkhead::cgroup::sampler::{Sampler, raise_open_file_limit};
use bulkhead::cgroup::stats::{StatFile, Stats};

const DEFAULT_FILES: &str = "cpu.stat,memory.current,memory.events,memory.pressure";

struct Args {
    root: PathBuf,
    counts: Vec<usize>,
    sweeps: usize,
    files: Vec<StatFile>,
}

fn parse_args() -> Result<Args, String> {
    let mut root = None;
    let mut counts = vec![10, 100, 1000];
    let mut sweeps = 200;
    let mut files = DEFAULT_FILES.to_string();
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut val = || it.next().ok_or(format!("{a} needs a value"));
        match a.as_str() {
            "--root" => root = Some(PathBuf::from(val()?)),
            "--counts" => {
                counts = val()?
                    .split(',')
                    .map(|c| c.parse().map_err(|_| format!("bad count {c:?}")))
                    .collect::<Result<_, _>>()?
            }
            "--sweeps" => sweeps = val()?.parse().map_err(|_| "bad --sweeps".to_string())?,
            "--files" => files = val()?,
            _ => return Err(format!("unknown argument {a:?}")),
        }
    }
    let files = files
        .split(',')
        .map(|f| StatFile::from_name(f).ok_or(format!("unknown stat file {f:?}")))
        .collect::<Result<_, _>>()?;
    Ok(Args {
        root: root.ok_or("--root is required")?,
        counts,
        sweeps,
        files,
    })
}

/// Median and 90th percentile.
fn summary(mut t: Vec<Duration>) -> (Duration, Duration) {
    t.sort();
    let at = |q: usize| t[(t.len() * q / 100).min(t.len() - 1)];
    (at(50), at(90))
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// One sweep the way a poller without kept descriptors does it.
fn open_read_close(paths: &[(StatFile, PathBuf)], buf: &mut [u8], stats: &mut Stats) -> usize {
    let mut errors = 0;
    for (file, path) in paths {
        let text = File::open(path).and_then(|mut f| f.read(buf));
        match text {
            Ok(n) => {
                let text = std::str::from_utf8(&buf[..n]).unwrap_or_default();
                if stats.update(*file, text).is_err() {
                    errors += 1;
                }
            }
            Err(_) => errors += 1,
        }
    }
    errors
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("sweep: {e}");
            return ExitCode::from(2);
        }
    };
    // 1000 cgroups x 4 files: more than the usual soft limit of 1024.
    if let Err(e) = raise_open_file_limit() {
        eprintln!("sweep: cannot raise the open-file limit: {e}");
    }
    let mut dirs: Vec<PathBuf> = match std::fs::read_dir(&args.root) {
        Ok(rd) => rd
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.is_dir())
            .collect(),
        Err(e) => {
            eprintln!("sweep: cannot list {}: {e}", args.root.display());
            return ExitCode::from(2);
        }
    };
    dirs.sort();
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    println!(
        "sweep benchmark: kernel {}, {} cgroups under {}",
        kernel.trim(),
        dirs.len(),
        args.root.display()
    );

    let mut header = false;
    for &n in &args.counts {
        if n > dirs.len() {
            eprintln!("sweep: {n} cgroups wanted, {} exist", dirs.len());
            return ExitCode::from(2);
        }
        let mut sampler = Sampler::new(&args.files);
        let mut paths = Vec::with_capacity(n);
        for d in &dirs[..n] {
            let id = match sampler.add(d) {
                Ok(id) => id,
                Err(e) => {
                    eprintln!("sweep: {e}");
                    return ExitCode::from(1);
                }
            };
            let p: Vec<(StatFile, PathBuf)> = sampler
                .open_files(id)
                .into_iter()
                .map(|f| (f, d.join(f.name())))
                .collect();
            paths.push(p);
        }
        if !header {
            let present = sampler.open_files(sampler.samples()[0].id);
            let absent: Vec<&str> = args
                .files
                .iter()
                .filter(|f| !present.contains(f))
                .map(|f| f.name())
                .collect();
            let present: Vec<&str> = present.iter().map(|f| f.name()).collect();
            println!(
                "files read per cgroup: {}{}",
                present.join(" "),
                if absent.is_empty() {
                    String::new()
                } else {
                    format!(" (absent here: {})", absent.join(" "))
                }
            );
            println!();
            println!(
                "{:>6} {:>6} {:>6} | {:>25} {:>9} | {:>25} {:>9} | {:>6}",
                "N",
                "files",
                "sweeps",
                "(a) pread median / p90",
                "/cgroup",
                "(b) open+read median / p90",
                "/cgroup",
                "b/a"
            );
            header = true;
        }
        let reps = if n >= 1000 {
            (args.sweeps / 2).max(1)
        } else {
            args.sweeps.max(1)
        };
        let mut buf = vec![0u8; 64 << 10];
        let mut stats: Vec<Stats> = vec![Stats::default(); n];
        let baseline = |buf: &mut [u8], stats: &mut [Stats]| -> usize {
            paths
                .iter()
                .zip(stats.iter_mut())
                .map(|(p, s)| open_read_close(p, buf, s))
                .sum()
        };
        // Warm-up: dentries, kernfs nodes, the sampler's buffer.
        for _ in 0..5 {
            black_box(sampler.sweep().reads);
            black_box(baseline(&mut buf, &mut stats));
        }
        let (mut ta, mut tb) = (Vec::with_capacity(reps), Vec::with_capacity(reps));
        let (mut errors_a, mut errors_b, mut reads) = (0usize, 0usize, 0usize);
        for _ in 0..reps {
            let t = Instant::now();
            let sweep = sampler.sweep();
            ta.push(t.elapsed());
            reads = sweep.reads;
            errors_a +=
                sweep.samples.iter().map(|s| s.errors.len()).sum::<usize>() + sweep.gone.len();
            let t = Instant::now();
            errors_b += black_box(baseline(&mut buf, &mut stats));
            tb.push(t.elapsed());
        }
        if errors_a + errors_b > 0 {
            eprintln!("sweep: N={n}: {errors_a} sampler errors, {errors_b} baseline errors");
            return ExitCode::from(1);
        }
        let ((ma, pa), (mb, pb)) = (summary(ta), summary(tb));
        let per = |d: Duration| us(d) / n as f64;
        println!(
            "{:>6} {:>6} {:>6} | {:>10.1}µs {:>10.1}µs {:>7.2}µs | {:>10.1}µs {:>10.1}µs {:>7.2}µs | {:>5.2}x",
            n,
            reads,
            reps,
            us(ma),
            us(pa),
            per(ma),
            us(mb),
            us(pb),
            per(mb),
            us(mb) / us(ma)
        );
    }
    ExitCode::SUCCESS
}

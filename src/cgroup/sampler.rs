//! A sampler for many cgroups: the stat files stay open, and each sweep reads
//! them with `pread` at offset 0, which makes kernfs generate the content
//! afresh. A sweep over N cgroups with F files each costs N*F small reads and
//! no `open`/`close` (and no path lookups), into one reused buffer.
//!
//! The sampler holds F descriptors per cgroup: 1000 cgroups with 4 files need
//! an open-file limit above 4000 ([`raise_open_file_limit`], `ulimit -n`,
//! systemd `LimitNOFILE=`).

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::Instant;

use super::CgroupError;
use super::stats::{StatError, StatFile, Stats};

/// The kernel's id of a cgroup: the inode number of its directory on the
/// cgroup2 filesystem (what `bpf_get_current_cgroup_id()` and
/// `name_to_handle_at` report). Another filesystem's inode in tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CgroupId(pub u64);

impl fmt::Display for CgroupId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Why one file of one cgroup gave no value in a sweep. The other files and
/// cgroups are read regardless.
#[derive(Debug, thiserror::Error)]
pub enum SampleError {
    #[error("failed to read {file}: {source}")]
    Read { file: StatFile, source: io::Error },
    #[error(transparent)]
    Parse(#[from] StatError),
}

/// The latest values of one cgroup.
#[derive(Debug)]
pub struct Sample {
    pub id: CgroupId,
    pub dir: PathBuf,
    /// Files the cgroup does not have stay `None`.
    pub stats: Stats,
    /// This sweep's failures; their fields in `stats` are `None`.
    pub errors: Vec<SampleError>,
}

/// A cgroup that disappeared (its files read ENODEV or ENOENT). The sampler
/// closed its files and forgot it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gone {
    pub id: CgroupId,
    pub dir: PathBuf,
}

/// The outcome of one sweep.
#[derive(Debug)]
pub struct Sweep<'a> {
    /// When the sweep started.
    pub at: Instant,
    /// Every cgroup still registered, sorted by id.
    pub samples: &'a [Sample],
    /// Cgroups found gone in this sweep.
    pub gone: Vec<Gone>,
    /// How many files were read.
    pub reads: usize,
}

impl Sweep<'_> {
    pub fn get(&self, id: CgroupId) -> Option<&Sample> {
        find(self.samples, id)
    }
}

fn find(samples: &[Sample], id: CgroupId) -> Option<&Sample> {
    samples
        .binary_search_by_key(&id, |s| s.id)
        .ok()
        .and_then(|i| samples.get(i))
}

/// ENODEV: the file's cgroup was removed while open (kernfs deactivated it).
/// ENOENT: it was removed before the open.
pub fn is_gone(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ENODEV) | Some(libc::ENOENT))
}

/// Cgroup files are a few KiB at most (`memory.stat`), but `cgroup.procs`
/// grows with the processes; beyond this, something is wrong.
const MAX_FILE: usize = 16 << 20;

/// Reads the whole file from offset 0 into `buf`, growing it when the content
/// does not fit (then re-reading from 0, so the text is one snapshot).
/// Returns the length. A short read is the end: kernfs fills the buffer as
/// far as the content goes.
fn read_whole(file: &File, buf: &mut Vec<u8>) -> io::Result<usize> {
    loop {
        let n = loop {
            match file.read_at(buf, 0) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                r => break r?,
            }
        };
        if n < buf.len() {
            return Ok(n);
        }
        if buf.len() >= MAX_FILE {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("larger than {} MiB", MAX_FILE >> 20),
            ));
        }
        let len = buf.len() * 2;
        buf.resize(len, 0);
    }
}

/// Raises this process's soft open-file limit to its hard limit (commonly
/// 1024 soft, 524288 hard), since the sampler holds a descriptor per file and
/// cgroup. Returns the soft limit now in force (`None`: unlimited).
pub fn raise_open_file_limit() -> io::Result<Option<u64>> {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let lim = getrlimit(Resource::Nofile);
    if lim.current != lim.maximum {
        setrlimit(
            Resource::Nofile,
            Rlimit {
                current: lim.maximum,
                maximum: lim.maximum,
            },
        )?;
    }
    Ok(lim.maximum)
}

/// Opens one cgroup file read-only for pread. `Ok(None)` when the cgroup does
/// not have it (controller not enabled, older kernel).
pub fn open_stat(dir: &Path, file: StatFile) -> Result<Option<File>, CgroupError> {
    let path = dir.join(file.name());
    match OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_CLOEXEC)
        .open(&path)
    {
        Ok(f) => Ok(Some(f)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(CgroupError::Read { path, source }),
    }
}

/// Keeps the chosen stat files of many cgroups open and reads them all in
/// one [`sweep`](Sampler::sweep).
pub struct Sampler {
    files: Vec<StatFile>,
    /// Sorted by id; `open[i]` holds the files of `samples[i]`.
    samples: Vec<Sample>,
    open: Vec<Vec<(StatFile, File)>>,
    buf: Vec<u8>,
}

impl Sampler {
    /// A sampler reading `files` (those present) of every cgroup added.
    pub fn new(files: &[StatFile]) -> Self {
        let mut files = files.to_vec();
        files.sort();
        files.dedup();
        Sampler {
            files,
            samples: Vec::new(),
            open: Vec::new(),
            buf: vec![0; 4096],
        }
    }

    /// Starts sampling the cgroup directory `dir`: opens those of the chosen
    /// files it has. Adding a cgroup twice returns the same id.
    pub fn add(&mut self, dir: &Path) -> Result<CgroupId, CgroupError> {
        let read_err = |source| CgroupError::Read {
            path: dir.to_path_buf(),
            source,
        };
        let id = CgroupId(std::fs::metadata(dir).map_err(read_err)?.ino());
        let at = match self.samples.binary_search_by_key(&id, |s| s.id) {
            Ok(_) => return Ok(id),
            Err(at) => at,
        };
        let mut open = Vec::with_capacity(self.files.len());
        for &file in &self.files {
            if let Some(f) = open_stat(dir, file)? {
                open.push((file, f));
            }
        }
        // With no file open, a sweep could never notice the cgroup going away.
        if open.is_empty() && !dir.exists() {
            return Err(read_err(io::Error::from_raw_os_error(libc::ENOENT)));
        }
        self.samples.insert(
            at,
            Sample {
                id,
                dir: dir.to_path_buf(),
                stats: Stats::default(),
                errors: Vec::new(),
            },
        );
        self.open.insert(at, open);
        Ok(id)
    }

    /// Stops sampling a cgroup and closes its files. Whether it was registered.
    pub fn remove(&mut self, id: CgroupId) -> bool {
        match self.samples.binary_search_by_key(&id, |s| s.id) {
            Ok(i) => {
                self.samples.remove(i);
                self.open.remove(i);
                true
            }
            Err(_) => false,
        }
    }

    pub fn len(&self) -> usize {
        self.samples.len()
    }

    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }

    /// The files each cgroup is sampled for (those it has).
    pub fn files(&self) -> &[StatFile] {
        &self.files
    }

    /// The files open for one cgroup.
    pub fn open_files(&self, id: CgroupId) -> Vec<StatFile> {
        match self.samples.binary_search_by_key(&id, |s| s.id) {
            Ok(i) => self.open[i].iter().map(|(f, _)| *f).collect(),
            Err(_) => Vec::new(),
        }
    }

    /// Descriptors held in all.
    pub fn open_count(&self) -> usize {
        self.open.iter().map(Vec::len).sum()
    }

    /// The latest sample of a cgroup.
    pub fn get(&self, id: CgroupId) -> Option<&Sample> {
        find(&self.samples, id)
    }

    pub fn samples(&self) -> &[Sample] {
        &self.samples
    }

    /// Reads and parses every open file of every cgroup. A cgroup whose file
    /// reads ENODEV/ENOENT was removed: it is dropped and listed in
    /// [`Sweep::gone`]; any other failure is recorded in its sample's
    /// `errors`. Nothing fails the sweep as a whole.
    pub fn sweep(&mut self) -> Sweep<'_> {
        let at = Instant::now();
        let mut reads = 0;
        let mut gone_at = Vec::new();
        for (i, (sample, files)) in self.samples.iter_mut().zip(&self.open).enumerate() {
            sample.errors.clear();
            for (file, fd) in files {
                reads += 1;
                match read_whole(fd, &mut self.buf) {
                    Ok(n) => {
                        // Cgroup files are ASCII; anything else fails to parse
                        // (validating is cheaper than `from_utf8_lossy`).
                        let bytes = &self.buf[..n];
                        let text = match std::str::from_utf8(bytes) {
                            Ok(t) => std::borrow::Cow::Borrowed(t),
                            Err(_) => String::from_utf8_lossy(bytes),
                        };
                        if let Err(e) = sample.stats.update(*file, &text) {
                            sample.errors.push(e.into());
                        }
                    }
                    Err(e) if is_gone(&e) => {
                        gone_at.push(i);
                        break;
                    }
                    Err(source) => sample.errors.push(SampleError::Read {
                        file: *file,
                        source,
                    }),
                }
            }
        }
        let mut gone = Vec::with_capacity(gone_at.len());
        for i in gone_at.into_iter().rev() {
            self.open.remove(i);
            let s = self.samples.remove(i);
            gone.push(Gone {
                id: s.id,
                dir: s.dir,
            });
        }
        gone.reverse();
        Sweep {
            at,
            samples: &self.samples,
            gone,
            reads,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CPU: &str = "usage_usec 100\nuser_usec 60\nsystem_usec 40\n";
    const PSI: &str = "some avg10=1.00 avg60=0.50 avg300=0.10 total=1234\n\
                       full avg10=0.00 avg60=0.00 avg300=0.00 total=0\n";

    /// A fake cgroup: a directory of regular files.
    fn cgroup(root: &Path, name: &str, files: &[(&str, &str)]) -> PathBuf {
        let d = root.join(name);
        std::fs::create_dir(&d).unwrap();
        for (f, text) in files {
            std::fs::write(d.join(f), text).unwrap();
        }
        d
    }

    #[test]
    fn opens_present_files_and_parses_them() {
        let tmp = tempfile::tempdir().unwrap();
        let a = cgroup(
            tmp.path(),
            "a",
            &[("cpu.stat", CPU), ("memory.pressure", PSI)],
        );
        let mut s = Sampler::new(&[
            StatFile::MemoryPressure,
            StatFile::CpuStat,
            StatFile::MemoryCurrent,
            StatFile::CpuStat,
        ]);
        assert_eq!(s.files().len(), 3);
        let id = s.add(&a).unwrap();
        assert_eq!(
            s.open_files(id),
            vec![StatFile::CpuStat, StatFile::MemoryPressure]
        );
        let sweep = s.sweep();
        assert_eq!(sweep.reads, 2);
        let sample = sweep.get(id).unwrap();
        assert!(sample.errors.is_empty(), "{:?}", sample.errors);
        assert_eq!(sample.stats.cpu.unwrap().usage_usec, 100);
        assert_eq!(sample.stats.memory_pressure.unwrap().some.total, 1234);
        assert_eq!(sample.stats.memory_current, None);
    }

    #[test]
    fn pread_at_zero_sees_new_content() {
        let tmp = tempfile::tempdir().unwrap();
        let a = cgroup(tmp.path(), "a", &[("memory.current", "4096\n")]);
        let mut s = Sampler::new(&[StatFile::MemoryCurrent]);
        let id = s.add(&a).unwrap();
        assert_eq!(s.sweep().get(id).unwrap().stats.memory_current, Some(4096));
        // Rewritten in place (same inode), as cgroupfs content changes.
        std::fs::write(a.join("memory.current"), "123456789\n").unwrap();
        assert_eq!(
            s.sweep().get(id).unwrap().stats.memory_current,
            Some(123456789)
        );
        std::fs::write(a.join("memory.current"), "7\n").unwrap();
        assert_eq!(s.sweep().get(id).unwrap().stats.memory_current, Some(7));
    }

    #[test]
    fn files_larger_than_the_buffer() {
        let tmp = tempfile::tempdir().unwrap();
        let mut stat = String::new();
        for k in [
            "anon",
            "file",
            "kernel_stack",
            "slab",
            "sock",
            "shmem",
            "file_mapped",
            "file_dirty",
            "file_writeback",
            "pgfault",
            "pgmajfault",
        ] {
            stat += &format!("{k} 1\n");
        }
        for i in 0..2000 {
            stat += &format!("zz_field_{i} {i}\n");
        }
        stat += "pgmajfault 42\n";
        assert!(stat.len() > 3 * 4096);
        let a = cgroup(tmp.path(), "a", &[("memory.stat", &stat)]);
        let mut s = Sampler::new(&[StatFile::MemoryStat]);
        let id = s.add(&a).unwrap();
        let sweep = s.sweep();
        let m = sweep.get(id).unwrap().stats.memory_stat.clone().unwrap();
        assert_eq!((m.pgmajfault, m.get("zz_field_1999")), (42, Some(1999)));
    }

    #[test]
    fn a_bad_file_does_not_spoil_the_sweep() {
        let tmp = tempfile::tempdir().unwrap();
        let good = cgroup(tmp.path(), "good", &[("cpu.stat", CPU)]);
        let bad = cgroup(
            tmp.path(),
            "bad",
            &[("cpu.stat", "usage_usec 1\n"), ("cpu.pressure", PSI)],
        );
        let mut s = Sampler::new(&[StatFile::CpuStat, StatFile::CpuPressure]);
        let (g, b) = (s.add(&good).unwrap(), s.add(&bad).unwrap());
        let sweep = s.sweep();
        assert!(sweep.get(g).unwrap().errors.is_empty());
        let bad = sweep.get(b).unwrap();
        assert_eq!(bad.errors.len(), 1);
        assert_eq!(
            bad.errors[0].to_string(),
            "cpu.stat: missing field `user_usec`"
        );
        assert_eq!(bad.stats.cpu, None);
        assert!(bad.stats.cpu_pressure.is_some());
        assert!(sweep.gone.is_empty());
    }

    #[test]
    fn registry_is_keyed_by_directory_inode() {
        let tmp = tempfile::tempdir().unwrap();
        let mut s = Sampler::new(&[StatFile::CpuStat]);
        let mut ids = Vec::new();
        for i in 0..20 {
            let d = cgroup(tmp.path(), &format!("cg{i}"), &[("cpu.stat", CPU)]);
            let id = s.add(&d).unwrap();
            assert_eq!(id.0, std::fs::metadata(&d).unwrap().ino());
            assert_eq!(s.add(&d).unwrap(), id, "added twice");
            ids.push(id);
        }
        assert_eq!((s.len(), s.open_count()), (20, 20));
        let sorted: Vec<CgroupId> = s.samples().iter().map(|x| x.id).collect();
        assert!(sorted.windows(2).all(|w| w[0] < w[1]));
        for id in &ids {
            assert_eq!(s.get(*id).unwrap().id, *id);
        }
        assert!(s.remove(ids[3]));
        assert!(!s.remove(ids[3]));
        assert!(s.get(ids[3]).is_none());
        assert_eq!(s.sweep().samples.len(), 19);
    }

    #[test]
    fn adding_a_missing_cgroup_fails_with_its_path() {
        let tmp = tempfile::tempdir().unwrap();
        let mut s = Sampler::new(&[StatFile::CpuStat]);
        let e = s.add(&tmp.path().join("nope")).unwrap_err();
        assert_eq!(e.io().raw_os_error(), Some(libc::ENOENT));
        assert!(e.to_string().contains("nope"), "{e}");
        assert!(s.is_empty());
        // A directory without any chosen file is still sampled (for nothing).
        let empty = cgroup(tmp.path(), "empty", &[]);
        let id = s.add(&empty).unwrap();
        assert!(s.open_files(id).is_empty());
        assert_eq!(s.sweep().reads, 0);
    }

    #[test]
    fn open_file_limit_is_raised_to_the_hard_limit() {
        let hard = rustix::process::getrlimit(rustix::process::Resource::Nofile).maximum;
        assert_eq!(raise_open_file_limit().unwrap(), hard);
        let now = rustix::process::getrlimit(rustix::process::Resource::Nofile);
        assert_eq!(now.current, hard);
    }

    #[test]
    fn vanished_errors() {
        assert!(is_gone(&io::Error::from_raw_os_error(libc::ENODEV)));
        assert!(is_gone(&io::Error::from_raw_os_error(libc::ENOENT)));
        assert!(!is_gone(&io::Error::from_raw_os_error(libc::EIO)));
    }

    /// A removed cgroup on the host's real cgroup2 mount (any cgroup2 mount
    /// has cpu.stat and cgroup.events). Skipped where it cannot be created.
    #[test]
    fn removed_cgroup_is_reported_gone_on_a_real_cgroup2() {
        let Some(mount) = std::fs::read_to_string("/proc/self/mountinfo")
            .ok()
            .and_then(|m| crate::cgroup::discover::cgroup2_mount(&m))
        else {
            eprintln!("skipped: no cgroup2 mount");
            return;
        };
        let parent = mount.join(format!("bulkhead-sampler-test-{}", std::process::id()));
        if let Err(e) = std::fs::create_dir(&parent) {
            eprintln!("skipped: cannot create {}: {e}", parent.display());
            return;
        }
        let (a, b) = (parent.join("a"), parent.join("b"));
        std::fs::create_dir(&a).unwrap();
        std::fs::create_dir(&b).unwrap();
        let mut s = Sampler::new(&[StatFile::CpuStat, StatFile::CgroupEvents]);
        let (ia, ib) = (s.add(&a).unwrap(), s.add(&b).unwrap());
        {
            let sweep = s.sweep();
            let sa = sweep.get(ia).unwrap();
            assert!(sa.errors.is_empty(), "{:?}", sa.errors);
            assert!(!sa.stats.events.unwrap().populated);
        }
        std::fs::remove_dir(&a).unwrap();
        let sweep = s.sweep();
        let gone = sweep.gone.clone();
        let left: Vec<CgroupId> = sweep.samples.iter().map(|x| x.id).collect();
        std::fs::remove_dir(&b).unwrap();
        std::fs::remove_dir(&parent).unwrap();
        assert_eq!(gone, vec![Gone { id: ia, dir: a }]);
        assert_eq!(left, vec![ib]);
        assert_eq!(s.open_count(), 2);
    }
}

//! The cgroup v2 device program: which device nodes a compartment may open
//! or create.
//!
//! cgroup v2 has no `devices.allow` file. The kernel asks a BPF program of
//! type `BPF_PROG_TYPE_CGROUP_DEVICE`, attached to the cgroup, on every
//! open(2) of a device node and every mknod(2) of one; it returns 1 to allow
//! and 0 to deny (the syscall then fails with EPERM, even for root). The
//! program sees one `struct bpf_cgroup_dev_ctx`:
//!
//! ```text
//! offset 0  u32 access_type   (access << 16) | type
//!                             type:   1 block, 2 char
//!                             access: 1 mknod, 2 read, 4 write (any mix)
//! offset 4  u32 major
//! offset 8  u32 minor
//! ```
//!
//! bulkhead writes that program itself, a handful of instructions per rule,
//! with no BPF compiler and no helper call:
//!
//! 1. [`parse_allow`] turns one allow entry (`c 1:3 rw`, `/dev/nullb0 r`) into
//!    a [`DeviceRule`]; [`default_allow`] is what a minimal `/dev` needs.
//! 2. [`program`] (pure) turns rules into instructions: the first rule that
//!    matches allows, and nothing matching denies. [`allowed`] is the same
//!    decision in plain Rust, the reference the program is tested against.
//! 3. [`attach`] loads the program and attaches it to a cgroup, replacing the
//!    device program bulkhead attached there before.
//!
//! The program applies to the cgroup and every cgroup below it, so attach it
//! to an instance's cgroup before the first process enters (clone3 with
//! `CLONE_INTO_CGROUP` into it). It checks opens, not file descriptors
//! already open: a service keeps the stdio it inherited.

use std::fmt;
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

use crate::sys::bpf;

/// Which kind of device node a rule covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DevType {
    Char,
    Block,
    /// Both kinds.
    Any,
}

impl DevType {
    /// The `type` half of the kernel's `access_type` (`BPF_DEVCG_DEV_*`);
    /// `None` for [`DevType::Any`], which checks no type.
    pub fn kernel_code(self) -> Option<u32> {
        match self {
            DevType::Block => Some(1),
            DevType::Char => Some(2),
            DevType::Any => None,
        }
    }

    fn letter(self) -> char {
        match self {
            DevType::Char => 'c',
            DevType::Block => 'b',
            DevType::Any => 'a',
        }
    }
}

/// What a rule lets a process do with a device: read, write, mknod, in any
/// mix. The bits are the kernel's (`BPF_DEVCG_ACC_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Access(u8);

impl Access {
    pub const NONE: Access = Access(0);
    pub const MKNOD: Access = Access(1);
    pub const READ: Access = Access(2);
    pub const WRITE: Access = Access(4);
    pub const RW: Access = Access(2 | 4);
    pub const RWM: Access = Access(1 | 2 | 4);

    /// The kernel's bits for this access.
    pub fn bits(self) -> u8 {
        self.0
    }

    /// `Some` when `bits` has no bit beyond read, write and mknod.
    pub fn from_bits(bits: u8) -> Option<Access> {
        (bits & !Access::RWM.0 == 0).then_some(Access(bits))
    }

    /// Every bit of `other` is in `self`.
    pub fn contains(self, other: Access) -> bool {
        self.0 & other.0 == other.0
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// Parses `r`, `w`, `m` in any order, each at most once.
    pub fn parse(text: &str) -> Result<Access, String> {
        let mut acc = Access::NONE;
        for c in text.chars() {
            let bit = match c {
                'r' => Access::READ,
                'w' => Access::WRITE,
                'm' => Access::MKNOD,
                other => {
                    return Err(format!(
                        "access `{text}`: `{other}` is not one of r (read), w (write), m (mknod)"
                    ));
                }
            };
            if acc.contains(bit) {
                return Err(format!("access `{text}`: `{c}` given twice"));
            }
            acc = acc | bit;
        }
        if acc.is_empty() {
            return Err("access is empty: give some of r, w, m".into());
        }
        Ok(acc)
    }
}

impl std::ops::BitOr for Access {
    type Output = Access;
    fn bitor(self, rhs: Access) -> Access {
        Access(self.0 | rhs.0)
    }
}

impl fmt::Display for Access {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (bit, c) in [
            (Access::READ, 'r'),
            (Access::WRITE, 'w'),
            (Access::MKNOD, 'm'),
        ] {
            if self.contains(bit) {
                write!(f, "{c}")?;
            }
        }
        Ok(())
    }
}

/// One allow rule: devices of `kind` with `major:minor` (`None` is any), and
/// what may be done with them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DeviceRule {
    pub kind: DevType,
    pub major: Option<u32>,
    pub minor: Option<u32>,
    pub access: Access,
}

impl DeviceRule {
    /// A character device `major:minor` with `access`.
    pub const fn char(major: u32, minor: Option<u32>, access: Access) -> DeviceRule {
        DeviceRule {
            kind: DevType::Char,
            major: Some(major),
            minor,
            access,
        }
    }

    /// The rule covers this request: same kind (or any), same numbers (or
    /// any), and every access asked for is granted.
    pub fn matches(&self, kind: DevType, major: u32, minor: u32, access: Access) -> bool {
        (self.kind == DevType::Any || self.kind == kind)
            && self.major.is_none_or(|m| m == major)
            && self.minor.is_none_or(|m| m == minor)
            && self.access.contains(access)
    }
}

impl fmt::Display for DeviceRule {
    /// `c 1:3 rw`, `c 136:* rw`, `a *:* rwm`: the form [`parse_allow`] reads.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let num = |n: Option<u32>| n.map_or_else(|| "*".to_string(), |n| n.to_string());
        write!(
            f,
            "{} {}:{} {}",
            self.kind.letter(),
            num(self.major),
            num(self.minor),
            self.access
        )
    }
}

/// What a minimal `/dev` needs, all read-write and none creatable (no
/// mknod): `/dev/null` 1:3, `zero` 1:5, `full` 1:7, `random` 1:8, `urandom`
/// 1:9, `tty` 5:0, `ptmx` 5:2 (also `/dev/pts/ptmx`), and the pseudo
/// terminals `/dev/pts/*` 136:*.
///
/// This is systemd's list for `PrivateDevices=yes` (DevicePolicy=closed,
/// `bpf_devices_allow_list_static`) with two differences: systemd grants
/// `rwm` on the seven nodes (it drops CAP_MKNOD instead), bulkhead grants
/// `rw`, so even a compartment with CAP_MKNOD cannot create a device node;
/// and systemd's `/run/systemd/inaccessible/{chr,blk}` (0:0 nodes it
/// bind-mounts over InaccessiblePaths) are left out, as bulkhead masks paths
/// otherwise. Left out as well, as systemd does: `/dev/console` (5:1),
/// `/dev/net/tun` (10:200), `/dev/fuse` (10:229), `/dev/kmsg` (1:11).
/// All pseudo terminals live in major 136: devpts registers its 2^20 minors
/// from 136:0, which is one major (minors have 20 bits).
pub fn default_allow() -> Vec<DeviceRule> {
    let rw = Access::RW;
    vec![
        DeviceRule::char(1, Some(3), rw),
        DeviceRule::char(1, Some(5), rw),
        DeviceRule::char(1, Some(7), rw),
        DeviceRule::char(1, Some(8), rw),
        DeviceRule::char(1, Some(9), rw),
        DeviceRule::char(5, Some(0), rw),
        DeviceRule::char(5, Some(2), rw),
        DeviceRule::char(136, None, rw),
    ]
}

/// The largest major number: dev_t has 12 bits for it.
pub const MAX_MAJOR: u32 = (1 << 12) - 1;
/// The largest minor number: dev_t has 20 bits for it.
pub const MAX_MINOR: u32 = (1 << 20) - 1;
/// An allow entry longer than this is refused (a path is at most PATH_MAX).
pub const MAX_ENTRY_LEN: usize = 4096 + 16;

/// How [`parse_allow_with`] learns what a path is: the kind and numbers of
/// the device node it names (following symlinks), or `None` when it is no
/// device node.
pub type StatFn<'a> = &'a dyn Fn(&Path) -> io::Result<Option<(DevType, u32, u32)>>;

/// Parses one allow entry, resolving a path form with stat(2) on this host.
/// See [`parse_allow_with`].
pub fn parse_allow(entry: &str) -> Result<DeviceRule, String> {
    parse_allow_with(entry, &stat_device)
}

/// Parses one allow entry:
///
/// - `TYPE MAJOR:MINOR ACCESS`: TYPE is `c`/`char`, `b`/`block` or
///   `a`/`any`; MAJOR and MINOR are numbers or `*`; ACCESS is some of `rwm`.
///   `char 1:3 rw`, `c 136:* rw`, `b 8:0 r`.
/// - `PATH ACCESS`: an absolute path to a device node, whose kind and
///   numbers `stat` gives: `/dev/dri/renderD128 rw`. The rule holds the
///   numbers, so it follows the device, not the name.
pub fn parse_allow_with(entry: &str, stat: StatFn<'_>) -> Result<DeviceRule, String> {
    if entry.len() > MAX_ENTRY_LEN {
        return Err(format!(
            "device entry of {} bytes is longer than {MAX_ENTRY_LEN}",
            entry.len()
        ));
    }
    let usage = "expected `TYPE MAJOR:MINOR ACCESS` (e.g. `c 1:3 rw`, `c 136:* rw`) \
                 or `PATH ACCESS` (e.g. `/dev/dri/renderD128 rw`)";
    let fields: Vec<&str> = entry.split_whitespace().collect();
    match fields.as_slice() {
        [path, access] if path.starts_with('/') => {
            let access = Access::parse(access).map_err(|e| format!("device `{entry}`: {e}"))?;
            match stat(Path::new(path)) {
                Ok(Some((kind, major, minor))) => Ok(DeviceRule {
                    kind,
                    major: Some(major),
                    minor: Some(minor),
                    access,
                }),
                Ok(None) => Err(format!(
                    "device `{entry}`: {path} is not a character or block device node"
                )),
                Err(e) => Err(format!("device `{entry}`: cannot stat {path}: {e}")),
            }
        }
        [kind, numbers, access] => {
            let kind = match *kind {
                "c" | "char" => DevType::Char,
                "b" | "block" => DevType::Block,
                "a" | "any" => DevType::Any,
                other => {
                    return Err(format!(
                        "device `{entry}`: type `{other}` is not c (char), b (block) or a (any)"
                    ));
                }
            };
            let (major, minor) = numbers
                .split_once(':')
                .ok_or_else(|| format!("device `{entry}`: `{numbers}` is not MAJOR:MINOR"))?;
            let major = number(major, MAX_MAJOR).map_err(|e| format!("device `{entry}`: {e}"))?;
            let minor = number(minor, MAX_MINOR).map_err(|e| format!("device `{entry}`: {e}"))?;
            let access = Access::parse(access).map_err(|e| format!("device `{entry}`: {e}"))?;
            Ok(DeviceRule {
                kind,
                major,
                minor,
                access,
            })
        }
        _ => Err(format!("device `{entry}`: {usage}")),
    }
}

/// `*` or a decimal number up to `max`.
fn number(text: &str, max: u32) -> Result<Option<u32>, String> {
    if text == "*" {
        return Ok(None);
    }
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("`{text}` is not a number or `*`"));
    }
    match text.parse::<u32>() {
        Ok(n) if n <= max => Ok(Some(n)),
        _ => Err(format!("`{text}` is larger than {max}")),
    }
}

/// stat(2) of `path`, following symlinks: the device node's kind and numbers.
pub fn stat_device(path: &Path) -> io::Result<Option<(DevType, u32, u32)>> {
    use rustix::fs::FileType;
    let st = rustix::fs::stat(path)?;
    let kind = match FileType::from_raw_mode(st.st_mode) {
        FileType::CharacterDevice => DevType::Char,
        FileType::BlockDevice => DevType::Block,
        _ => return Ok(None),
    };
    Ok(Some((
        kind,
        rustix::fs::major(st.st_rdev),
        rustix::fs::minor(st.st_rdev),
    )))
}

/// The decision the program makes, in plain Rust: some rule matches.
/// `kind` is the device's ([`DevType::Char`] or [`DevType::Block`]).
pub fn allowed(
    rules: &[DeviceRule],
    kind: DevType,
    major: u32,
    minor: u32,
    access: Access,
) -> bool {
    rules.iter().any(|r| r.matches(kind, major, minor, access))
}

/// One eBPF instruction (`struct bpf_insn`), defined beside bpf(2) in `sys`.
pub use crate::sys::bpf::Insn;

/// Opcodes the device program uses (`linux/bpf.h`, `bpf_common.h`).
pub mod op {
    /// BPF_LDX | BPF_MEM | BPF_W (BPF_W is 0): dst = *(u32 *)(src + off).
    pub const LDX_W: u8 = 0x01 | 0x60;
    /// BPF_ALU | BPF_AND | BPF_K: dst = (u32)dst & imm.
    pub const AND32: u8 = 0x04 | 0x50;
    /// BPF_ALU | BPF_RSH | BPF_K: dst = (u32)dst >> imm.
    pub const RSH32: u8 = 0x04 | 0x70;
    /// BPF_ALU64 | BPF_MOV | BPF_K: dst = imm.
    pub const MOV64: u8 = 0x07 | 0xb0;
    /// BPF_JMP32 | BPF_JNE | BPF_K: if (u32)dst != imm, skip `off`.
    pub const JNE32: u8 = 0x06 | 0x50;
    /// BPF_JMP32 | BPF_JSET | BPF_K: if (u32)dst & imm, skip `off`.
    pub const JSET32: u8 = 0x06 | 0x40;
    /// BPF_JMP | BPF_EXIT: return r0.
    pub const EXIT: u8 = 0x05 | 0x90;
}

/// Registers: r0 is the verdict, r1 the context on entry; r2..r5 hold the
/// request's type, access, major and minor once the preamble ran.
pub mod reg {
    pub const R0: u8 = 0;
    pub const CTX: u8 = 1;
    pub const TYPE: u8 = 2;
    pub const ACCESS: u8 = 3;
    pub const MAJOR: u8 = 4;
    pub const MINOR: u8 = 5;
}

impl Insn {
    pub const fn new(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
        let regs = if cfg!(target_endian = "little") {
            (dst & 0xf) | (src << 4)
        } else {
            (dst << 4) | (src & 0xf)
        };
        Insn {
            code,
            regs,
            off,
            imm,
        }
    }

    pub const fn dst(self) -> u8 {
        if cfg!(target_endian = "little") {
            self.regs & 0xf
        } else {
            self.regs >> 4
        }
    }

    pub const fn src(self) -> u8 {
        if cfg!(target_endian = "little") {
            self.regs >> 4
        } else {
            self.regs & 0xf
        }
    }
}

/// A u32 as the instruction's signed immediate, bit for bit. JMP32
/// compares the low 32 bits, so every u32 compares exactly.
fn imm(v: u32) -> i32 {
    i32::from_ne_bytes(v.to_ne_bytes())
}

/// The program for `rules`: allow when a rule matches, deny otherwise.
///
/// ```text
///   r2 = ctx.access_type & 0xffff        ; type
///   r3 = ctx.access_type >> 16           ; access
///   r4 = ctx.major ; r5 = ctx.minor
/// per rule, e.g. `c 136:* rw`:
///   if w2 != 2 goto next                 ; kind, unless any
///   if w3 & 1 goto next                  ; an access outside rw (mknod)
///   if w4 != 136 goto next               ; major, unless *
///   r0 = 1 ; exit                        ; (minor is *: no check)
/// next: ...
///   r0 = 0 ; exit
/// ```
///
/// A rule with no check at all (`a *:* rwm`) allows everything; the rules
/// after it, and the final deny, would be unreachable, which the verifier
/// refuses, so the program ends there.
pub fn program(rules: &[DeviceRule]) -> Vec<Insn> {
    use op::*;
    use reg::*;
    let mut p = vec![
        Insn::new(LDX_W, TYPE, CTX, 0, 0),
        Insn::new(AND32, TYPE, 0, 0, 0xffff),
        Insn::new(LDX_W, ACCESS, CTX, 0, 0),
        Insn::new(RSH32, ACCESS, 0, 0, 16),
        Insn::new(LDX_W, MAJOR, CTX, 4, 0),
        Insn::new(LDX_W, MINOR, CTX, 8, 0),
    ];
    for rule in rules {
        let mut checks: Vec<(u8, u8, u32)> = Vec::with_capacity(4);
        if let Some(code) = rule.kind.kernel_code() {
            checks.push((JNE32, TYPE, code));
        }
        if rule.access != Access::RWM {
            let outside = u32::from(!rule.access.bits() & Access::RWM.bits());
            checks.push((JSET32, ACCESS, outside));
        }
        if let Some(major) = rule.major {
            checks.push((JNE32, MAJOR, major));
        }
        if let Some(minor) = rule.minor {
            checks.push((JNE32, MINOR, minor));
        }
        // Built backwards, so each check knows how far the next rule is:
        // the checks after it plus the two-instruction allow block.
        let mut block = vec![Insn::new(MOV64, R0, 0, 0, 1), Insn::new(EXIT, 0, 0, 0, 0)];
        for (skip, &(code, dst, value)) in (2i16..).zip(checks.iter().rev()) {
            block.insert(0, Insn::new(code, dst, 0, skip, imm(value)));
        }
        p.extend(block);
        if checks.is_empty() {
            return p;
        }
    }
    p.push(Insn::new(MOV64, R0, 0, 0, 0));
    p.push(Insn::new(EXIT, 0, 0, 0, 0));
    p
}

// ---- loading and attaching -------------------------------------------------

const BPF_PROG_TYPE_CGROUP_DEVICE: u32 = 15;
const BPF_CGROUP_DEVICE: u32 = 6;
const BPF_F_ALLOW_MULTI: u32 = 1 << 1;

/// How much verifier log bulkhead asks for when a load fails; the program
/// is tiny, so the log is short, and a longer one is cut.
const LOG_SIZE: usize = 64 * 1024;

/// BPF_PROG_LOAD as a cgroup device program. A refused program is loaded
/// again with the verifier's log, which goes into the error.
pub fn load(prog: &[Insn]) -> io::Result<OwnedFd> {
    // No helper is called, so no GPL-only one: any license string loads.
    let license = c"Apache-2.0";
    let mut name = [0u8; 16];
    name[..12].copy_from_slice(b"bulkhead_dev");
    if u32::try_from(prog.len()).is_err() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "device program too long",
        ));
    }
    let first = match bpf::prog_load(BPF_PROG_TYPE_CGROUP_DEVICE, prog, license, name, None) {
        Ok(fd) => return Ok(fd),
        Err(e) => e,
    };
    let mut log = vec![0u8; LOG_SIZE];
    // ENOSPC means the log was cut; the error is the first one either way.
    if let Ok(fd) = bpf::prog_load(
        BPF_PROG_TYPE_CGROUP_DEVICE,
        prog,
        license,
        name,
        Some(&mut log),
    ) {
        return Ok(fd);
    }
    let end = log.iter().position(|&b| b == 0).unwrap_or(log.len());
    let text = String::from_utf8_lossy(&log[..end]);
    let hint = if first.raw_os_error() == Some(libc::EPERM) {
        " (needs CAP_BPF or CAP_SYS_ADMIN; before Linux 5.11 also RLIMIT_MEMLOCK)"
    } else {
        ""
    };
    Err(io::Error::new(
        first.kind(),
        format!(
            "loading the device program ({} instructions) failed: {first}{hint}; verifier log: {}",
            prog.len(),
            text.trim()
        ),
    ))
}

/// The ids of the device programs attached to `cgroup_dir` itself (not
/// those inherited from its parents), in the order they run.
pub fn attached(cgroup_dir: &Path) -> io::Result<Vec<u32>> {
    let dir = open_dir(cgroup_dir)?;
    query(&dir).map_err(|e| with_path(e, "BPF_PROG_QUERY", cgroup_dir))
}

fn query(dir: &OwnedFd) -> io::Result<Vec<u32>> {
    let mut ids = vec![0u32; 64];
    loop {
        match bpf::prog_query(dir.as_fd(), BPF_CGROUP_DEVICE, &mut ids) {
            Ok(n) => {
                ids.truncate(usize::try_from(n).unwrap_or(usize::MAX));
                return Ok(ids);
            }
            // More than fit: the count says how many there are.
            Err((e, n)) if e.raw_os_error() == Some(libc::ENOSPC) && ids.len() < 1 << 16 => {
                let n = usize::try_from(n).unwrap_or(0);
                ids = vec![0u32; n.max(ids.len() * 2)];
            }
            Err((e, _)) => return Err(e),
        }
    }
}

/// Detaches the device program `id` from the cgroup; one already gone is
/// fine.
fn detach(dir: &OwnedFd, id: u32) -> io::Result<()> {
    let prog = match bpf::prog_get_fd_by_id(id) {
        Ok(fd) => fd,
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(()),
        Err(e) => return Err(e),
    };
    match bpf::prog_detach(dir.as_fd(), prog.as_fd(), BPF_CGROUP_DEVICE) {
        Ok(()) => Ok(()),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(()),
        Err(e) => Err(e),
    }
}

fn open_dir(cgroup_dir: &Path) -> io::Result<OwnedFd> {
    File::open(cgroup_dir)
        .map(OwnedFd::from)
        .map_err(|e| with_path(e, "open", cgroup_dir))
}

fn with_path(e: io::Error, what: &str, path: &Path) -> io::Error {
    io::Error::new(e.kind(), format!("{what} {}: {e}", path.display()))
}

/// Loads `prog` and makes it the device program of `cgroup_dir`, in place of
/// the ones attached there before.
///
/// Replacing: the programs attached to this cgroup are listed
/// (BPF_PROG_QUERY), the new one is attached with BPF_F_ALLOW_MULTI, then
/// the old ones are detached. Between the two steps both run, and a device
/// needs every program's consent, so the cgroup is never less confined than
/// either list. Calling `attach` again on a cgroup (a daemon restart, a
/// reload) therefore leaves one program, not a stack. Programs on parent
/// cgroups stay and still apply (all must allow). Every device program on
/// this cgroup is taken for bulkhead's: the cgroup is bulkhead's own. If a
/// detach fails, the error is returned and the cgroup keeps both programs,
/// the stricter state.
///
/// The attachment holds the program: the returned fd may be closed at once,
/// and the program lives until it is detached or the cgroup is removed.
/// Needs CAP_BPF with CAP_NET_ADMIN or CAP_SYS_ADMIN (root), and Linux 5.1
/// (JMP32 instructions); bulkhead's spawn needs 5.7 anyway.
pub fn attach(cgroup_dir: &Path, prog: &[Insn]) -> io::Result<OwnedFd> {
    let dir = open_dir(cgroup_dir)?;
    let fd = load(prog)?;
    let old = query(&dir).map_err(|e| with_path(e, "BPF_PROG_QUERY", cgroup_dir))?;
    bpf::prog_attach(
        dir.as_fd(),
        fd.as_fd(),
        BPF_CGROUP_DEVICE,
        BPF_F_ALLOW_MULTI,
    )
    .map_err(|e| with_path(e, "BPF_PROG_ATTACH (device program) to", cgroup_dir))?;
    for id in old {
        detach(&dir, id).map_err(|e| {
            with_path(
                e,
                &format!("BPF_PROG_DETACH of the old device program {id} from"),
                cgroup_dir,
            )
        })?;
    }
    Ok(fd)
}

/// The device program of `svc`'s instance cgroup `dir`, when its `/dev` is
/// private (`protect.devices`): the minimal /dev and `protect.device_allow`,
/// nothing else. Attached before the service is cloned into the cgroup, so
/// nothing runs there unconfined.
pub fn confine(dir: &Path, svc: &crate::config::Service) -> Result<(), crate::error::Diagnostics> {
    use crate::config::schema::PrivateDevices;
    use crate::error::{Code, Diagnostic};
    if svc.protect.devices != PrivateDevices::Private {
        return Ok(());
    }
    let mut rules = default_allow();
    for e in &svc.protect.device_allow {
        rules.push(parse_allow(e).map_err(|why| {
            Diagnostic::new(
                Code::ConfigInvalidValue,
                format!("services.{}.protect.device_allow: {why}", svc.name),
            )
            .suggest("name a device that exists on this host, e.g. \"/dev/dri/renderD128 rw\"")
        })?);
    }
    attach(dir, &program(&rules)).map(drop).map_err(|e| {
        Diagnostic::new(
            Code::SpawnFailed,
            format!("cannot attach the device program to {}", dir.display()),
        )
        .context("service", &svc.name)
        .cause(e)
        .suggest("cgroup device programs need root and Linux 5.7; `protect: { devices: host }` turns the private /dev off")
        .into()
    })
}

#[cfg(test)]
mod tests {
    use super::op::*;
    use super::reg::*;
    use super::*;
    use proptest::prelude::*;

    /// The low 32 bits, as a 32-bit ALU or JMP32 instruction sees a register.
    fn low(v: u64) -> u32 {
        u32::try_from(v & 0xffff_ffff).expect("masked")
    }

    /// Runs a device program the way the kernel would, for the instructions
    /// [`program`] emits; anything else fails the test. Also checks what
    /// the verifier would refuse on the way: a jump out of the program, a
    /// register read before it is written, falling off the end.
    fn run(prog: &[Insn], kind: DevType, major: u32, minor: u32, access: Access) -> bool {
        let ctx = [
            (u32::from(access.bits()) << 16) | kind.kernel_code().expect("a real kind"),
            major,
            minor,
        ];
        let mut r = [0u64; 11];
        let mut init = [false; 11];
        init[usize::from(CTX)] = true;
        let mut pc = 0usize;
        for _ in 0..prog.len() {
            let i = prog[pc];
            let (dst, src) = (usize::from(i.dst()), usize::from(i.src()));
            let read = |r: &[u64; 11], init: &[bool; 11], n: usize| {
                assert!(init[n], "r{n} read before written at {pc}");
                r[n]
            };
            let k = u32::from_ne_bytes(i.imm.to_ne_bytes());
            let mut next = pc + 1;
            match i.code {
                LDX_W => {
                    assert_eq!(src, usize::from(CTX), "load not from ctx at {pc}");
                    let field = match i.off {
                        0 => 0,
                        4 => 1,
                        8 => 2,
                        o => panic!("ctx offset {o} at {pc}"),
                    };
                    r[dst] = u64::from(ctx[field]);
                    init[dst] = true;
                }
                AND32 => r[dst] = u64::from(low(read(&r, &init, dst)) & k),
                RSH32 => r[dst] = u64::from(low(read(&r, &init, dst)) >> k),
                MOV64 => {
                    // Sign-extended to 64 bits, as the kernel does.
                    r[dst] = u64::from_ne_bytes(i64::from(i.imm).to_ne_bytes());
                    init[dst] = true;
                }
                JNE32 | JSET32 => {
                    let v = low(read(&r, &init, dst));
                    let jump = if i.code == JNE32 { v != k } else { v & k != 0 };
                    assert!(i.off > 0, "backward or null jump at {pc}");
                    if jump {
                        next = pc + 1 + usize::try_from(i.off).expect("forward");
                    }
                }
                EXIT => {
                    let v = read(&r, &init, usize::from(R0));
                    assert!(v <= 1, "verdict {v}");
                    return v == 1;
                }
                c => panic!("unexpected opcode {c:#x} at {pc}"),
            }
            assert!(next < prog.len(), "ran off the end after {pc}");
            pc = next;
        }
        panic!("no exit within {} steps", prog.len());
    }

    /// What the verifier checks without running: jumps land inside, every
    /// instruction is reachable, the last one is an exit.
    fn check_shape(prog: &[Insn]) {
        assert!(!prog.is_empty());
        assert_eq!(prog.last().map(|i| i.code), Some(EXIT));
        let mut reached = vec![false; prog.len()];
        let mut todo = vec![0usize];
        while let Some(pc) = todo.pop() {
            if std::mem::replace(&mut reached[pc], true) {
                continue;
            }
            let i = prog[pc];
            if i.code == EXIT {
                continue;
            }
            todo.push(pc + 1);
            if matches!(i.code, JNE32 | JSET32) {
                let t = pc + 1 + usize::try_from(i.off).expect("forward jump");
                assert!(t < prog.len(), "jump from {pc} lands outside");
                todo.push(t);
            }
        }
        let dead: Vec<usize> = (0..prog.len()).filter(|&i| !reached[i]).collect();
        assert!(dead.is_empty(), "unreachable instructions {dead:?}");
    }

    const KINDS: [DevType; 2] = [DevType::Char, DevType::Block];

    fn all_access() -> impl Iterator<Item = Access> {
        (1..=7).map(|b| Access::from_bits(b).expect("rwm bits"))
    }

    /// Every (kind, major, minor, access) from the given numbers: the
    /// program and [`allowed`] agree on all of them.
    fn agree(rules: &[DeviceRule], majors: &[u32], minors: &[u32]) {
        let prog = program(rules);
        check_shape(&prog);
        for kind in KINDS {
            for &major in majors {
                for &minor in minors {
                    for access in all_access() {
                        assert_eq!(
                            run(&prog, kind, major, minor, access),
                            allowed(rules, kind, major, minor, access),
                            "{kind:?} {major}:{minor} {access} with {rules:?}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn default_program_allows_exactly_the_minimal_dev() {
        let prog = program(&default_allow());
        check_shape(&prog);
        let c = DevType::Char;
        let b = DevType::Block;
        let (r, w, m) = (Access::READ, Access::WRITE, Access::MKNOD);
        let rw = Access::RW;
        // (kind, major, minor, access, allowed): written out by hand, not
        // derived from the rules.
        let table = [
            (c, 1, 3, rw, true), // /dev/null
            (c, 1, 3, r, true),  //
            (c, 1, 3, w, true),  //
            (c, 1, 3, m, false), // mknod of /dev/null
            (c, 1, 3, r | m, false),
            (c, 1, 5, rw, true),   // zero
            (c, 1, 7, rw, true),   // full
            (c, 1, 8, r, true),    // random
            (c, 1, 9, r, true),    // urandom
            (c, 1, 1, r, false),   // /dev/mem
            (c, 1, 2, r, false),   // /dev/kmem
            (c, 1, 4, rw, false),  // /dev/port
            (c, 1, 11, w, false),  // /dev/kmsg
            (c, 5, 0, rw, true),   // /dev/tty
            (c, 5, 1, rw, false),  // /dev/console
            (c, 5, 2, rw, true),   // /dev/ptmx
            (c, 5, 2, m, false),   //
            (c, 136, 0, rw, true), // /dev/pts/0
            (c, 136, MAX_MINOR, rw, true),
            (c, 136, 7, m, false), // mknod of a pty
            (c, 137, 0, rw, false),
            (c, 4, 1, rw, false),    // /dev/tty1
            (c, 10, 200, rw, false), // /dev/net/tun
            (c, 10, 229, rw, false), // /dev/fuse
            (c, 0, 0, r, false),
            (b, 1, 3, r, false), // a block device with null's numbers
            (b, 8, 0, r, false), // /dev/sda
            (b, 254, 0, r, false),
            (b, 7, 0, rw, false), // /dev/loop0
            (b, 136, 0, r, false),
        ];
        for (kind, major, minor, access, want) in table {
            assert_eq!(
                run(&prog, kind, major, minor, access),
                want,
                "{kind:?} {major}:{minor} {access}"
            );
        }
    }

    #[test]
    fn default_program_matches_the_rules_exhaustively() {
        agree(
            &default_allow(),
            &[0, 1, 2, 4, 5, 6, 135, 136, 137, 254, MAX_MAJOR],
            &[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 255, MAX_MINOR],
        );
    }

    #[test]
    fn default_program_is_preamble_then_one_block_per_rule() {
        let prog = program(&default_allow());
        // 6 preamble; 7 rules of type+access+major+minor+allow(2) = 6;
        // pts without minor = 5; the deny = 2.
        assert_eq!(prog.len(), 6 + 7 * 6 + 5 + 2);
        assert_eq!(prog[0], Insn::new(LDX_W, TYPE, CTX, 0, 0));
        assert_eq!(prog[1], Insn::new(AND32, TYPE, 0, 0, 0xffff));
        assert_eq!(prog[3], Insn::new(RSH32, ACCESS, 0, 0, 16));
        // /dev/null: char, nothing but rw (mknod bit set skips), 1, 3.
        assert_eq!(
            &prog[6..12],
            &[
                Insn::new(JNE32, TYPE, 0, 5, 2),
                Insn::new(JSET32, ACCESS, 0, 4, 1),
                Insn::new(JNE32, MAJOR, 0, 3, 1),
                Insn::new(JNE32, MINOR, 0, 2, 3),
                Insn::new(MOV64, R0, 0, 0, 1),
                Insn::new(EXIT, 0, 0, 0, 0),
            ]
        );
        assert_eq!(
            &prog[prog.len() - 2..],
            &[Insn::new(MOV64, R0, 0, 0, 0), Insn::new(EXIT, 0, 0, 0, 0)]
        );
    }

    #[test]
    fn no_rules_denies_everything() {
        let prog = program(&[]);
        assert_eq!(prog.len(), 8);
        agree(&[], &[0, 1, 5], &[0, 3]);
        assert!(!run(&prog, DevType::Char, 1, 3, Access::READ));
    }

    #[test]
    fn a_catch_all_rule_ends_the_program() {
        let all = DeviceRule {
            kind: DevType::Any,
            major: None,
            minor: None,
            access: Access::RWM,
        };
        let rules = [
            DeviceRule::char(1, Some(3), Access::READ),
            all,
            default_allow()[0],
        ];
        let prog = program(&rules);
        check_shape(&prog);
        // preamble, the /dev/null rule (4 checks + allow), the bare allow.
        assert_eq!(prog.len(), 6 + 6 + 2);
        assert!(prog.iter().all(|i| !(i.code == MOV64 && i.imm == 0)));
        agree(&rules, &[0, 1, 254], &[0, 3]);
    }

    #[test]
    fn any_kind_and_wildcards_and_full_access_skip_their_checks() {
        let rules = [
            DeviceRule {
                kind: DevType::Any,
                major: Some(254),
                minor: None,
                access: Access::RWM,
            },
            DeviceRule {
                kind: DevType::Block,
                major: None,
                minor: Some(0),
                access: Access::READ,
            },
        ];
        let prog = program(&rules);
        assert_eq!(prog.len(), 6 + (1 + 2) + (3 + 2) + 2);
        agree(&rules, &[0, 8, 254], &[0, 1]);
        assert!(run(&prog, DevType::Char, 254, 9, Access::RWM));
        assert!(run(&prog, DevType::Block, 8, 0, Access::READ));
        assert!(!run(&prog, DevType::Block, 8, 0, Access::WRITE));
        assert!(!run(&prog, DevType::Char, 8, 0, Access::READ));
    }

    #[test]
    fn numbers_above_i32_compare_exactly() {
        // Not real device numbers, but the comparison must not depend on
        // the sign of the immediate.
        let rules = [DeviceRule {
            kind: DevType::Char,
            major: Some(u32::MAX),
            minor: Some(0x8000_0000),
            access: Access::READ,
        }];
        agree(
            &rules,
            &[u32::MAX, u32::MAX - 1, 0],
            &[0x8000_0000, 0x7fff_ffff, 0],
        );
    }

    #[test]
    fn insn_registers_pack_as_the_kernel_bitfield() {
        let i = Insn::new(LDX_W, 4, 1, 4, 0);
        assert_eq!((i.dst(), i.src()), (4, 1));
        if cfg!(target_endian = "little") {
            assert_eq!(i.regs, 0x14);
        }
        assert_eq!(std::mem::size_of::<Insn>(), 8);
    }

    fn no_stat(_: &Path) -> io::Result<Option<(DevType, u32, u32)>> {
        panic!("a numeric entry must not stat")
    }

    #[test]
    fn parse_numeric_entries() {
        let p = |s: &str| parse_allow_with(s, &no_stat);
        assert_eq!(
            p("char 1:3 rw"),
            Ok(DeviceRule::char(1, Some(3), Access::RW))
        );
        assert_eq!(p("c 136:* rw"), Ok(DeviceRule::char(136, None, Access::RW)));
        assert_eq!(
            p("  b   8:0  r "),
            Ok(DeviceRule {
                kind: DevType::Block,
                major: Some(8),
                minor: Some(0),
                access: Access::READ,
            })
        );
        assert_eq!(
            p("a *:* mwr"),
            Ok(DeviceRule {
                kind: DevType::Any,
                major: None,
                minor: None,
                access: Access::RWM,
            })
        );
        assert_eq!(
            p("block 4095:1048575 m").map(|r| (r.major, r.minor)),
            Ok((Some(MAX_MAJOR), Some(MAX_MINOR)))
        );
        for (bad, says) in [
            ("", "expected `TYPE MAJOR:MINOR ACCESS`"),
            ("c 1:3", "expected"),
            ("c 1:3 rw extra", "expected"),
            ("x 1:3 rw", "type `x`"),
            ("c 1 rw", "not MAJOR:MINOR"),
            ("c 1:3:4 rw", "not a number"),
            ("c -1:3 rw", "not a number"),
            ("c +1:3 rw", "not a number"),
            ("c 4096:0 rw", "larger than 4095"),
            ("c 1:1048576 rw", "larger than 1048575"),
            ("c 1:3 rx", "`x` is not one of"),
            ("c 1:3 rr", "`r` given twice"),
            ("dev/null rw", "expected"),
        ] {
            let e = p(bad).expect_err(bad);
            assert!(e.contains(says), "{bad:?}: {e}");
        }
        let long = format!("/{} rw", "a".repeat(MAX_ENTRY_LEN));
        assert!(p(&long).is_err_and(|e| e.contains("longer than")));
    }

    #[test]
    fn parse_path_entries_through_stat() {
        let stat = |p: &Path| -> io::Result<Option<(DevType, u32, u32)>> {
            match p.to_str() {
                Some("/dev/dri/renderD128") => Ok(Some((DevType::Char, 226, 128))),
                Some("/dev/nullb0") => Ok(Some((DevType::Block, 254, 0))),
                Some("/etc/passwd") => Ok(None),
                _ => Err(io::Error::from_raw_os_error(libc::ENOENT)),
            }
        };
        assert_eq!(
            parse_allow_with("/dev/dri/renderD128 rw", &stat),
            Ok(DeviceRule::char(226, Some(128), Access::RW))
        );
        assert_eq!(
            parse_allow_with("/dev/nullb0 r", &stat).map(|r| r.to_string()),
            Ok("b 254:0 r".into())
        );
        let e = parse_allow_with("/etc/passwd r", &stat).expect_err("not a device");
        assert!(e.contains("not a character or block device"), "{e}");
        let e = parse_allow_with("/dev/nope r", &stat).expect_err("missing");
        assert!(e.contains("cannot stat /dev/nope"), "{e}");
        let e = parse_allow_with("/dev/nullb0 q", &stat).expect_err("bad access");
        assert!(e.contains("`q` is not one of"), "{e}");
    }

    #[test]
    fn stat_device_reads_this_hosts_null() {
        // /dev/null is 1:3 on every Linux host.
        assert_eq!(
            stat_device(Path::new("/dev/null")).ok(),
            Some(Some((DevType::Char, 1, 3)))
        );
        assert_eq!(stat_device(Path::new("/")).ok(), Some(None));
        assert!(parse_allow("/dev/null rw").is_ok_and(|r| r == default_allow()[0]));
    }

    #[test]
    fn display_is_what_parse_reads() {
        for rule in default_allow() {
            assert_eq!(parse_allow_with(&rule.to_string(), &no_stat), Ok(rule));
        }
        assert_eq!(default_allow()[7].to_string(), "c 136:* rw");
    }

    fn arb_rule() -> impl Strategy<Value = DeviceRule> {
        let kind = prop_oneof![
            Just(DevType::Char),
            Just(DevType::Block),
            Just(DevType::Any)
        ];
        let num = prop_oneof![Just(None), (0u32..4).prop_map(Some)];
        (kind, num.clone(), num, 0u8..8).prop_map(|(kind, major, minor, bits)| DeviceRule {
            kind,
            major,
            minor,
            access: Access::from_bits(bits).unwrap_or_default(),
        })
    }

    proptest! {
        #[test]
        fn any_rules_program_agrees_with_allowed(rules in prop::collection::vec(arb_rule(), 0..8)) {
            agree(&rules, &[0, 1, 2, 3, 4], &[0, 1, 2, 3, 4]);
        }
    }
}

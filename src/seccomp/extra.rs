//! Walls that cost a service nothing, added on top of whatever profile it
//! uses (never to `unconfined`): socket address families, real-time
//! scheduling, setting the clock, changing the personality, setuid/setgid
//! files. The meanings follow systemd's RestrictAddressFamilies=,
//! RestrictRealtime=, ProtectClock=, LockPersonality= and
//! RestrictSUIDSGID=.
//!
//! [`apply`] merges them into a resolved profile before [`super::compile`],
//! and the restriction always wins. For each call a wall covers, and only
//! when the profile lets that call through somewhere (a rule allows or logs
//! it, or the default action does):
//! - [`Wall::Deny`]: every rule of the profile for the call is replaced by
//!   one unconditional ERRNO rule.
//! - [`Wall::ArgIn`]: every rule R of the profile for the call becomes
//!   "R and argument i is one of the allowed values", one rule per value
//!   (`argI == v`, keeping R's other comparisons; a value R's own comparison
//!   of argument i excludes is dropped). The values left, the complement,
//!   get the wall's errno through rules of their own: `argI < first`,
//!   `argI > last`, and each gap between two allowed values as aligned
//!   blocks of `SCMP_CMP_MASKED_EQ` (3..9 is 3, 4-7, 8-9). The two sets of
//!   rules never match the same value, so libseccomp has nothing to merge,
//!   and an unconditional allow of the call is gone, so the rule "an
//!   unconditional rule and another with a different action" cannot fire.
//!
//! - [`Wall::AnyBits`]: the values to refuse are "argument i has one of
//!   these bits set" (and, with a guard, "argument g has one of its bits
//!   set" too). Both that set and its complement are cut into disjoint
//!   cells, each one `SCMP_CMP_MASKED_EQ` per argument ("some bit set" over
//!   bits b1 < b2 is `b1 set`, `b1 clear and b2 set`); every rule R of the
//!   profile becomes "R and the cell" for each allowed cell, and each
//!   refused cell gets the wall's errno. A comparison R already makes on
//!   the same argument is turned into aligned blocks (as above) and merged
//!   with the cell's mask, so one rule never compares one argument twice.
//!
//! Worked example: `address_families: [unix, inet]` on `default`, which
//! allows `socket` unconditionally, leaves
//! `socket: ALLOW if arg0 == 1`, `ALLOW if arg0 == 2`, and
//! `ERRNO(EAFNOSUPPORT) if arg0 < 1`, `if arg0 > 2`.
//!
//! The comparisons are on all 64 bits while the kernel reads these
//! arguments as 32-bit ints: a value with high bits set matches no allowed
//! value (they are compared exactly) and lands in `arg > last`, refused; so
//! the truncation can only refuse more, never let a refused value through.
//!
//! Rules the merge adds that no profile rule gave rise to carry
//! [`EXTRA_INDEX`] as their index.
//!
//! Worked example of the setuid wall: `chmod`, allowed unconditionally,
//! becomes `ALLOW if arg1 & 0o6000 == 0`, `ERRNO(EPERM) if arg1 & 0o2000 ==
//! 0o2000`, `ERRNO(EPERM) if arg1 & 0o6000 == 0o4000` (on `default`, whose
//! default action is EPERM, the allow alone is left). `openat` guards the
//! mode (arg3) with its flags (arg2): the mode only counts when O_CREAT or
//! O_TMPFILE is there, as the kernel reads it only then.
//!
//! The setuid wall, as systemd's RestrictSUIDSGID= (which refuses S_ISUID
//! and S_ISGID each on its own, with or without S_IXGRP), with two
//! differences: `open`/`openat` with O_TMPFILE are covered too (an unnamed
//! file created 04755 can be linked in afterwards), and `mkdir`/`mkdirat`
//! are left alone, because the kernel masks a new directory's mode to
//! 0o1777 (a directory inherits S_ISGID from its parent, never from the
//! call). `openat2` passes its mode in memory a filter cannot read: it gets
//! ENOSYS, so the C library falls back to `openat`. `fchmodat2` (Linux 6.6)
//! is covered where libseccomp knows it; where it does not, a profile
//! whose default is an errno answers ENOSYS above its highest named call
//! (see [`super::enosys`]), and a profile whose default allows lets it
//! through: that hole is libseccomp's age, not the wall's.

use super::{Action, ArgCmp, Op, ResolvedProfile, ResolvedRule, exists_on};

/// The index of a rule [`apply`] added (not from the profile's `syscalls`).
pub const EXTRA_INDEX: usize = usize::MAX;

/// The walls a service asks for. `Extra::default()` asks for none.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Extra {
    /// Socket address families allowed for socket()/socketpair(); None =
    /// any. Others fail with EAFNOSUPPORT, as if the kernel lacked them.
    pub address_families: Option<Vec<i32>>,
    /// sched_setscheduler to anything but SCHED_OTHER, SCHED_BATCH or
    /// SCHED_IDLE (with or without SCHED_RESET_ON_FORK) -> EPERM, and
    /// sched_setattr -> EPERM (its policy is in memory a filter cannot
    /// read).
    pub restrict_realtime: bool,
    /// clock_settime(64), settimeofday, stime, adjtimex, clock_adjtime(64)
    /// -> EPERM (adjtimex's read-only form too: its mode is in memory).
    pub protect_clock: bool,
    /// personality(x) only for x == PER_LINUX (0) or the query 0xffffffff;
    /// anything else -> EPERM.
    pub lock_personality: bool,
    /// A mode with S_ISUID or S_ISGID -> EPERM for chmod, fchmod,
    /// fchmodat(2), creat, mknod(at), and open/openat creating a file
    /// (O_CREAT or O_TMPFILE); openat2 -> ENOSYS.
    pub restrict_suid_sgid: bool,
}

/// What a wall does to one system call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Wall {
    /// Refuse the call with this errno.
    Deny { errno: u16 },
    /// Allow it only when argument `index` is one of `allowed`; every other
    /// value gets `errno`.
    ArgIn {
        index: u32,
        allowed: Vec<u64>,
        errno: u16,
    },
    /// Refuse it with `errno` when argument `index` has any of `bits` set
    /// and, with a `guard` (argument, bits), that argument has any of its
    /// bits set too; every other value keeps the profile's rules.
    AnyBits {
        guard: Option<(u32, u64)>,
        index: u32,
        bits: u64,
        errno: u16,
    },
}

/// Address family names (`AF_` prefix optional, any case) and numbers.
const FAMILIES: &[(&str, i32)] = &[
    ("unix", 1),
    ("local", 1),
    ("inet", 2),
    ("ax25", 3),
    ("ipx", 4),
    ("appletalk", 5),
    ("netrom", 6),
    ("bridge", 7),
    ("atmpvc", 8),
    ("x25", 9),
    ("inet6", 10),
    ("rose", 11),
    ("decnet", 12),
    ("netbeui", 13),
    ("security", 14),
    ("key", 15),
    ("netlink", 16),
    ("route", 16),
    ("packet", 17),
    ("ash", 18),
    ("econet", 19),
    ("atmsvc", 20),
    ("rds", 21),
    ("sna", 22),
    ("irda", 23),
    ("pppox", 24),
    ("wanpipe", 25),
    ("llc", 26),
    ("ib", 27),
    ("mpls", 28),
    ("can", 29),
    ("tipc", 30),
    ("bluetooth", 31),
    ("iucv", 32),
    ("rxrpc", 33),
    ("isdn", 34),
    ("phonet", 35),
    ("ieee802154", 36),
    ("caif", 37),
    ("alg", 38),
    ("nfc", 39),
    ("vsock", 40),
    ("kcm", 41),
    ("qipcrtr", 42),
    ("smc", 43),
    ("xdp", 44),
    ("mctp", 45),
];

const EPERM: u16 = 1;
const ENOSYS: u16 = 38;
const EAFNOSUPPORT: u16 = 97;

/// S_ISUID | S_ISGID.
const SUID_SGID: u64 = 0o6000;

/// The flags with which open/openat read their mode: O_CREAT and
/// O_TMPFILE's own bit (O_TMPFILE is that bit with O_DIRECTORY).
fn creating_flags() -> u64 {
    u64::from((libc::O_CREAT | (libc::O_TMPFILE & !libc::O_DIRECTORY)).unsigned_abs())
}

/// The calls that set a mode: (name, the mode's argument, the flags'
/// argument when the mode only counts with O_CREAT or O_TMPFILE).
const MODE_CALLS: &[(&str, u32, Option<u32>)] = &[
    ("chmod", 1, None),
    ("fchmod", 1, None),
    ("fchmodat", 2, None),
    ("fchmodat2", 2, None),
    ("creat", 1, None),
    ("mknod", 1, None),
    ("mknodat", 2, None),
    ("open", 2, Some(1)),
    ("openat", 3, Some(2)),
];

/// SCHED_OTHER, SCHED_BATCH, SCHED_IDLE, and each with SCHED_RESET_ON_FORK.
const NON_REALTIME: [u64; 6] = [0, 3, 5, 0x4000_0000, 0x4000_0003, 0x4000_0005];

/// PER_LINUX and the query that changes nothing.
const PERSONALITIES: [u64; 2] = [0, 0xffff_ffff];

const CLOCK_CALLS: &[&str] = &[
    "adjtimex",
    "clock_adjtime",
    "clock_adjtime64",
    "clock_settime",
    "clock_settime64",
    "settimeofday",
    "stime",
];

impl Extra {
    /// `unix`, `inet`, `inet6`, `netlink`, `packet`, ... (or `AF_INET`) ->
    /// its number.
    pub fn parse_family(name: &str) -> Option<i32> {
        let lower = name.to_ascii_lowercase();
        let bare = lower.strip_prefix("af_").unwrap_or(&lower);
        FAMILIES.iter().find(|(n, _)| *n == bare).map(|(_, v)| *v)
    }

    /// The family names [`Extra::parse_family`] takes, for suggestions.
    pub fn family_names() -> Vec<&'static str> {
        FAMILIES.iter().map(|(n, _)| *n).collect()
    }

    /// Asks for no wall.
    pub fn is_empty(&self) -> bool {
        *self == Extra::default()
    }

    /// The walls, by system call name.
    pub fn walls(&self) -> Vec<(&'static str, Wall)> {
        let mut out = Vec::new();
        if let Some(families) = &self.address_families {
            let allowed: Vec<u64> = families
                .iter()
                .filter_map(|f| u64::try_from(*f).ok())
                .collect();
            for call in ["socket", "socketpair"] {
                out.push((
                    call,
                    Wall::ArgIn {
                        index: 0,
                        allowed: allowed.clone(),
                        errno: EAFNOSUPPORT,
                    },
                ));
            }
        }
        if self.restrict_realtime {
            out.push((
                "sched_setscheduler",
                Wall::ArgIn {
                    index: 1,
                    allowed: NON_REALTIME.to_vec(),
                    errno: EPERM,
                },
            ));
            out.push(("sched_setattr", Wall::Deny { errno: EPERM }));
        }
        if self.protect_clock {
            for call in CLOCK_CALLS {
                out.push((call, Wall::Deny { errno: EPERM }));
            }
        }
        if self.lock_personality {
            out.push((
                "personality",
                Wall::ArgIn {
                    index: 0,
                    allowed: PERSONALITIES.to_vec(),
                    errno: EPERM,
                },
            ));
        }
        if self.restrict_suid_sgid {
            for (call, mode, flags) in MODE_CALLS {
                out.push((
                    call,
                    Wall::AnyBits {
                        guard: flags.map(|f| (f, creating_flags())),
                        index: *mode,
                        bits: SUID_SGID,
                        errno: EPERM,
                    },
                ));
            }
            out.push(("openat2", Wall::Deny { errno: ENOSYS }));
        }
        out
    }
}

fn lets_through(a: Action) -> bool {
    matches!(a, Action::Allow | Action::Log)
}

/// Does `c` hold for the value `v` of its argument?
fn holds(c: &ArgCmp, v: u64) -> bool {
    match c.op {
        Op::Ne => v != c.value,
        Op::Lt => v < c.value,
        Op::Le => v <= c.value,
        Op::Eq => v == c.value,
        Op::Ge => v >= c.value,
        Op::Gt => v > c.value,
        Op::MaskedEq => v & c.value == c.value_two,
    }
}

fn cmp(index: u32, op: Op, value: u64, value_two: u64) -> ArgCmp {
    ArgCmp {
        index,
        op,
        value,
        value_two,
    }
}

/// [lo, hi] as aligned blocks, each (mask, value) for
/// `(arg & mask) == value`: 3..=9 -> 3, 4-7, 8-9.
pub fn blocks(mut lo: u64, hi: u64) -> Vec<(u64, u64)> {
    let mut out = Vec::new();
    if lo > hi {
        return out;
    }
    loop {
        let mut k = lo.trailing_zeros().min(63);
        while k > 0 && hi - lo < (1u64 << k) - 1 {
            k -= 1;
        }
        let span = (1u64 << k) - 1;
        out.push((!span, lo));
        if lo + span >= hi {
            return out;
        }
        lo += span + 1;
    }
}

/// Comparisons of argument `index`, one per rule, that together match
/// exactly the values not in `allowed` (sorted, distinct). `[None]` means
/// one unconditional rule (nothing is allowed).
fn complement(index: u32, allowed: &[u64]) -> Vec<Option<ArgCmp>> {
    let (Some(&first), Some(&last)) = (allowed.first(), allowed.last()) else {
        return vec![None];
    };
    let mut out = Vec::new();
    if first > 0 {
        out.push(Some(cmp(index, Op::Lt, first, 0)));
    }
    for w in allowed.windows(2) {
        if w[1] > w[0] + 1 {
            for (mask, value) in blocks(w[0] + 1, w[1] - 1) {
                out.push(Some(cmp(index, Op::MaskedEq, mask, value)));
            }
        }
    }
    if last < u64::MAX {
        out.push(Some(cmp(index, Op::Gt, last, 0)));
    }
    out
}

/// "Some bit of `bits` is set in argument `index`" as disjoint
/// `(arg & mask) == value` cells, lowest bit first: 0o6000 -> `& 0o2000 ==
/// 0o2000`, `& 0o6000 == 0o4000`.
fn any_set(index: u32, bits: u64) -> Vec<ArgCmp> {
    let mut out = Vec::new();
    let mut below = 0u64;
    for k in 0..64 {
        let bit = 1u64 << k;
        if bits & bit != 0 {
            out.push(cmp(index, Op::MaskedEq, below | bit, bit));
            below |= bit;
        }
    }
    out
}

/// "No bit of `bits` is set in argument `index`".
fn none_set(index: u32, bits: u64) -> ArgCmp {
    cmp(index, Op::MaskedEq, bits, 0)
}

/// The cells (each a conjunction, one comparison per argument) of an
/// [`Wall::AnyBits`]: (allowed, refused). Together they cover every value
/// once.
fn any_bits_cells(
    guard: Option<(u32, u64)>,
    index: u32,
    bits: u64,
) -> (Vec<Vec<ArgCmp>>, Vec<Vec<ArgCmp>>) {
    let Some((g, gbits)) = guard else {
        let refused = any_set(index, bits).into_iter().map(|c| vec![c]).collect();
        return (vec![vec![none_set(index, bits)]], refused);
    };
    let mut allowed = vec![vec![none_set(g, gbits)]];
    let mut refused = Vec::new();
    for s in any_set(g, gbits) {
        allowed.push(vec![s, none_set(index, bits)]);
        for t in any_set(index, bits) {
            refused.push(vec![s, t]);
        }
    }
    (allowed, refused)
}

/// The values `c` holds for, as aligned `(mask, value)` blocks (`(arg &
/// mask) == value`), so it can be merged with a mask of the same argument.
fn as_masks(c: &ArgCmp) -> Vec<(u64, u64)> {
    let v = c.value;
    let below = |v: u64| if v == 0 { Vec::new() } else { blocks(0, v - 1) };
    let above = |v: u64| {
        if v == u64::MAX {
            Vec::new()
        } else {
            blocks(v + 1, u64::MAX)
        }
    };
    match c.op {
        Op::Eq => vec![(u64::MAX, v)],
        Op::MaskedEq if c.value_two & !v != 0 => Vec::new(),
        Op::MaskedEq => vec![(v, c.value_two)],
        Op::Lt => below(v),
        Op::Le => blocks(0, v),
        Op::Gt => above(v),
        Op::Ge => blocks(v, u64::MAX),
        Op::Ne => below(v).into_iter().chain(above(v)).collect(),
    }
}

/// `(x & m1) == v1 and (x & m2) == v2` as one mask, or `None` when no `x`
/// satisfies both.
fn merge((m1, v1): (u64, u64), (m2, v2): (u64, u64)) -> Option<(u64, u64)> {
    if v1 & !m1 != 0 || v2 & !m2 != 0 || v1 & m2 != v2 & m1 {
        return None;
    }
    Some((m1 | m2, v1 | v2))
}

/// `args` (one rule's conjunction) and `cell`, as conjunctions with one
/// comparison per argument; empty when they exclude each other.
fn intersect(args: &[ArgCmp], cell: &[ArgCmp]) -> Vec<Vec<ArgCmp>> {
    let mut alts: Vec<Vec<ArgCmp>> = vec![
        args.iter()
            .filter(|a| !cell.iter().any(|c| c.index == a.index))
            .copied()
            .collect(),
    ];
    for c in cell {
        let mine = (c.value, c.value_two);
        let theirs: Vec<&ArgCmp> = args.iter().filter(|a| a.index == c.index).collect();
        let mut masks = vec![mine];
        for t in theirs {
            masks = as_masks(t)
                .into_iter()
                .flat_map(|m| masks.iter().filter_map(move |k| merge(*k, m)))
                .collect();
        }
        alts = alts
            .iter()
            .flat_map(|alt| {
                masks.iter().map(move |&(mask, value)| {
                    let mut a = alt.clone();
                    a.push(if mask == u64::MAX {
                        cmp(c.index, Op::Eq, value, 0)
                    } else {
                        cmp(c.index, Op::MaskedEq, mask, value)
                    });
                    a
                })
            })
            .collect();
    }
    for a in &mut alts {
        a.sort_by_key(|c| c.index);
    }
    alts
}

/// `r` restricted to argument `index` being one of `allowed`: one rule per
/// value R can take there.
fn restrict(r: &ResolvedRule, name: &str, index: u32, allowed: &[u64]) -> Vec<ResolvedRule> {
    allowed
        .iter()
        .filter(|v| {
            r.args
                .iter()
                .filter(|c| c.index == index)
                .all(|c| holds(c, **v))
        })
        .map(|v| {
            let mut args: Vec<ArgCmp> = r
                .args
                .iter()
                .filter(|c| c.index != index)
                .copied()
                .collect();
            args.push(cmp(index, Op::Eq, *v, 0));
            args.sort_by_key(|c| c.index);
            ResolvedRule {
                index: r.index,
                names: vec![name.to_string()],
                action: r.action,
                args,
            }
        })
        .collect()
}

/// `p` with the walls of `extra` merged in (see the module doc).
pub fn apply(p: &ResolvedProfile, extra: &Extra) -> ResolvedProfile {
    let mut out = p.clone();
    for (name, wall) in extra.walls() {
        if !out.arches.iter().any(|a| exists_on(name, *a)) {
            continue;
        }
        let mine: Vec<ResolvedRule> = out
            .rules
            .iter()
            .filter(|r| r.names.iter().any(|n| n == name))
            .cloned()
            .collect();
        if !lets_through(out.default_action) && !mine.iter().any(|r| lets_through(r.action)) {
            continue;
        }
        for r in &mut out.rules {
            r.names.retain(|n| n != name);
        }
        out.rules.retain(|r| !r.names.is_empty());
        let refuse = |errno: u16, args: Vec<ArgCmp>| ResolvedRule {
            index: EXTRA_INDEX,
            names: vec![name.to_string()],
            action: Action::Errno(errno),
            args,
        };
        match wall {
            Wall::Deny { errno } => {
                if Action::Errno(errno) != out.default_action {
                    out.rules.push(refuse(errno, Vec::new()));
                }
            }
            Wall::ArgIn {
                index,
                mut allowed,
                errno,
            } => {
                allowed.sort_unstable();
                allowed.dedup();
                let mut added: Vec<ResolvedRule> = Vec::new();
                for r in &mine {
                    for x in restrict(r, name, index, &allowed) {
                        if !added.contains(&x) && x.action != out.default_action {
                            added.push(x);
                        }
                    }
                }
                if Action::Errno(errno) != out.default_action {
                    for c in complement(index, &allowed) {
                        added.push(refuse(errno, c.into_iter().collect()));
                    }
                }
                out.rules.extend(added);
            }
            Wall::AnyBits {
                guard,
                index,
                bits,
                errno,
            } => {
                let (allowed, refused) = any_bits_cells(guard, index, bits);
                let mut added: Vec<ResolvedRule> = Vec::new();
                for r in mine.iter().filter(|r| r.action != out.default_action) {
                    for cell in &allowed {
                        for args in intersect(&r.args, cell) {
                            let x = ResolvedRule {
                                index: r.index,
                                names: vec![name.to_string()],
                                action: r.action,
                                args,
                            };
                            if !added.contains(&x) {
                                added.push(x);
                            }
                        }
                    }
                }
                if Action::Errno(errno) != out.default_action {
                    for cell in refused {
                        added.push(refuse(errno, cell));
                    }
                }
                out.rules.extend(added);
            }
        }
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use libseccomp::ScmpArch;

    fn rule(index: usize, names: &[&str], action: Action, args: Vec<ArgCmp>) -> ResolvedRule {
        ResolvedRule {
            index,
            names: names.iter().map(ToString::to_string).collect(),
            action,
            args,
        }
    }

    fn profile(default_action: Action, rules: Vec<ResolvedRule>) -> ResolvedProfile {
        ResolvedProfile {
            comment: None,
            default_action,
            arch: ScmpArch::X8664,
            arches: vec![ScmpArch::X8664],
            rules,
            not_applied: Vec::new(),
            unknown: Vec::new(),
            named_max: Vec::new(),
        }
    }

    /// What the merged rules do with `name` and argument values `args`:
    /// the action of the one matching rule (a second match is a bug), or
    /// the default.
    fn decide(p: &ResolvedProfile, name: &str, args: [u64; 6]) -> Action {
        let hits: Vec<Action> = p
            .rules
            .iter()
            .filter(|r| r.names.iter().any(|n| n == name))
            .filter(|r| r.args.iter().all(|c| holds(c, args[c.index as usize])))
            .map(|r| r.action)
            .collect();
        let mut distinct = hits.clone();
        distinct.dedup();
        assert!(distinct.len() <= 1, "{name} {args:?}: {hits:?}");
        hits.first().copied().unwrap_or(p.default_action)
    }

    fn families(list: &[&str]) -> Extra {
        Extra {
            address_families: Some(
                list.iter()
                    .map(|n| Extra::parse_family(n).unwrap())
                    .collect(),
            ),
            ..Extra::default()
        }
    }

    #[test]
    fn family_names() {
        assert_eq!(Extra::parse_family("unix"), Some(1));
        assert_eq!(Extra::parse_family("AF_INET6"), Some(10));
        assert_eq!(Extra::parse_family("Netlink"), Some(16));
        assert_eq!(Extra::parse_family("packet"), Some(17));
        assert_eq!(Extra::parse_family("inet7"), None);
        assert!(Extra::default().is_empty());
        assert!(Extra::default().walls().is_empty());
    }

    #[test]
    fn blocks_cover_a_range_exactly() {
        assert_eq!(blocks(3, 9), vec![(!0, 3), (!3, 4), (!1, 8)], "3, 4-7, 8-9");
        assert_eq!(blocks(5, 5), vec![(!0, 5)]);
        assert_eq!(blocks(1, 0xffff_fffe).len(), 62);
        for (lo, hi) in [(1u64, 1000u64), (17, 45), (0, 7), (6, 0x4000_0002)] {
            let b = blocks(lo, hi);
            for v in lo.saturating_sub(3)..=lo + 300 {
                let n = b.iter().filter(|(m, x)| v & m == *x).count();
                assert_eq!(n, usize::from((lo..=hi).contains(&v)), "{lo}..{hi} at {v}");
            }
            let n = b.iter().filter(|(m, x)| hi & m == *x).count();
            assert_eq!(n, 1);
            let n = b.iter().filter(|(m, x)| (hi + 1) & m == *x).count();
            assert_eq!(n, 0);
        }
    }

    #[test]
    fn an_unconditional_allow_of_socket_becomes_the_allowed_families() {
        let p = profile(
            Action::Errno(1),
            vec![rule(
                3,
                &["read", "socket", "socketpair"],
                Action::Allow,
                vec![],
            )],
        );
        let m = apply(&p, &families(&["unix", "inet", "inet6", "netlink"]));
        assert!(super::super::conflicts(&m).is_empty());
        // read keeps its rule; socket lost its unconditional one.
        assert_eq!(m.rules[0].names, ["read"]);
        let at = |f: u64| decide(&m, "socket", [f, 1, 0, 0, 0, 0]);
        for f in [1, 2, 10, 16] {
            assert_eq!(at(f), Action::Allow, "family {f}");
        }
        for f in [0, 3, 9, 11, 15, 17, 31, 45, 1000, 0x1_0000_0001, u64::MAX] {
            assert_eq!(at(f), Action::Errno(EAFNOSUPPORT), "family {f:#x}");
        }
        let pair = decide(&m, "socketpair", [17, 1, 0, 0, 0, 0]);
        assert_eq!(pair, Action::Errno(EAFNOSUPPORT));
        // The rules the profile gave rise to keep its index.
        assert!(
            m.rules
                .iter()
                .any(|r| r.index == 3 && r.names == ["socket"])
        );
    }

    #[test]
    fn conditional_profile_rules_are_narrowed_not_widened() {
        // strict-like: socket only for AF_UNIX; asking for inet adds nothing.
        let p = profile(
            Action::Errno(1),
            vec![rule(
                0,
                &["socket"],
                Action::Allow,
                vec![cmp(0, Op::Eq, 1, 0)],
            )],
        );
        let m = apply(&p, &families(&["inet"]));
        assert_eq!(
            decide(&m, "socket", [1, 0, 0, 0, 0, 0]),
            Action::Errno(EAFNOSUPPORT)
        );
        assert_eq!(decide(&m, "socket", [2, 0, 0, 0, 0, 0]), Action::Errno(1));
        let m = apply(&p, &families(&["unix", "inet"]));
        assert_eq!(decide(&m, "socket", [1, 0, 0, 0, 0, 0]), Action::Allow);
        assert_eq!(decide(&m, "socket", [2, 0, 0, 0, 0, 0]), Action::Errno(1));
        // A rule on another argument keeps it, ANDed with the family.
        let p = profile(
            Action::Errno(1),
            vec![rule(
                0,
                &["socket"],
                Action::Allow,
                vec![cmp(1, Op::Eq, 1, 0)],
            )],
        );
        let m = apply(&p, &families(&["unix"]));
        assert_eq!(decide(&m, "socket", [1, 1, 0, 0, 0, 0]), Action::Allow);
        assert_eq!(decide(&m, "socket", [1, 2, 0, 0, 0, 0]), Action::Errno(1));
        assert_eq!(
            decide(&m, "socket", [2, 1, 0, 0, 0, 0]),
            Action::Errno(EAFNOSUPPORT)
        );
    }

    #[test]
    fn a_blocklist_profile_gets_the_complement_as_refusals() {
        let p = profile(
            Action::Allow,
            vec![rule(0, &["uname"], Action::KillProcess, vec![])],
        );
        let m = apply(
            &p,
            &Extra {
                lock_personality: true,
                restrict_realtime: true,
                protect_clock: true,
                ..families(&["unix"])
            },
        );
        assert!(super::super::conflicts(&m).is_empty());
        let per = |x: u64| decide(&m, "personality", [x, 0, 0, 0, 0, 0]);
        assert_eq!(per(0), Action::Allow);
        assert_eq!(per(0xffff_ffff), Action::Allow);
        for x in [
            8,
            0x20000,
            0x0040_0000,
            0xffff_fffe,
            0x1_0000_0000,
            0x1_0000_0008,
        ] {
            assert_eq!(per(x), Action::Errno(EPERM), "personality {x:#x}");
        }
        let sched = |x: u64| decide(&m, "sched_setscheduler", [0, x, 0, 0, 0, 0]);
        for x in NON_REALTIME {
            assert_eq!(sched(x), Action::Allow, "policy {x:#x}");
        }
        for x in [1, 2, 4, 6, 0x4000_0001, 0x4000_0002, 0x1_0000_0001] {
            assert_eq!(sched(x), Action::Errno(EPERM), "policy {x:#x}");
        }
        for n in [
            "sched_setattr",
            "clock_settime",
            "settimeofday",
            "adjtimex",
            "clock_adjtime",
        ] {
            assert_eq!(decide(&m, n, [0; 6]), Action::Errno(EPERM), "{n}");
        }
        // Names x86_64 lacks get no rule.
        assert!(
            !m.rules
                .iter()
                .any(|r| r.names.iter().any(|n| n == "clock_settime64"))
        );
        assert_eq!(decide(&m, "socket", [1, 0, 0, 0, 0, 0]), Action::Allow);
        assert_eq!(
            decide(&m, "socket", [17, 0, 0, 0, 0, 0]),
            Action::Errno(EAFNOSUPPORT)
        );
        assert_eq!(decide(&m, "uname", [0; 6]), Action::KillProcess);
    }

    #[test]
    fn walls_leave_calls_the_profile_refuses_alone() {
        // The default refuses clock_settime and nothing lets it through.
        let p = profile(
            Action::Errno(1),
            vec![
                rule(0, &["read"], Action::Allow, vec![]),
                rule(1, &["settimeofday"], Action::KillProcess, vec![]),
            ],
        );
        let all = Extra {
            lock_personality: true,
            restrict_realtime: true,
            protect_clock: true,
            ..families(&[])
        };
        assert_eq!(apply(&p, &all), p);
        // An allowed clock call becomes EPERM, which is the default: the
        // allow goes, and no rule is added.
        let p = profile(
            Action::Errno(1),
            vec![rule(0, &["read", "clock_settime"], Action::Allow, vec![])],
        );
        let m = apply(&p, &all);
        assert_eq!(m.rules, vec![rule(0, &["read"], Action::Allow, vec![])]);
        // No family at all: socket is refused outright.
        let p = profile(Action::Allow, vec![]);
        let m = apply(&p, &families(&[]));
        assert_eq!(
            decide(&m, "socket", [1, 0, 0, 0, 0, 0]),
            Action::Errno(EAFNOSUPPORT)
        );
        assert!(super::super::conflicts(&m).is_empty());
    }

    fn suid() -> Extra {
        Extra {
            restrict_suid_sgid: true,
            ..Extra::default()
        }
    }

    const CREAT: u64 = 0o100;
    const TMPFILE: u64 = 0o20_200_000;

    /// Does the wall refuse mode `mode` (with `flags` for open/openat)?
    fn bad(flags: Option<u64>, mode: u64) -> bool {
        let creating = flags.is_none_or(|f| f & (CREAT | 0o20_000_000) != 0);
        creating && mode & 0o6000 != 0
    }

    const MODES: [u64; 12] = [
        0,
        0o644,
        0o755,
        0o1777,
        0o2745,
        0o2755,
        0o4000,
        0o4755,
        0o6755,
        0o7777,
        0x1_0000_0755,
        0x1_0000_4755,
    ];
    const FLAGS: [u64; 7] = [
        0,
        1,
        CREAT,
        CREAT | 1,
        CREAT | 0o200,
        TMPFILE | 2,
        0x1_0000_0000 | CREAT,
    ];

    /// Every (flags, mode) of `call` in `m` decides as `p` did, except the
    /// ones the wall refuses, which get EPERM.
    fn agrees_but_for_the_wall(p: &ResolvedProfile, m: &ResolvedProfile) {
        assert!(super::super::conflicts(m).is_empty(), "{:?}", m.rules);
        for (call, flag_arg, mode_arg) in [
            ("chmod", None, 1),
            ("fchmodat", None, 2),
            ("creat", None, 1),
            ("mknodat", None, 2),
            ("open", Some(1), 2),
            ("openat", Some(2), 3),
        ] {
            let flags: &[u64] = if flag_arg.is_some() { &FLAGS } else { &[0] };
            for &f in flags {
                for &mode in &MODES {
                    let mut args = [7u64; 6];
                    args[mode_arg] = mode;
                    if let Some(i) = flag_arg {
                        args[i] = f;
                    }
                    let want = if bad(flag_arg.map(|_| f), mode) {
                        Action::Errno(EPERM)
                    } else {
                        decide(p, call, args)
                    };
                    assert_eq!(
                        decide(m, call, args),
                        want,
                        "{call} flags {f:#o} mode {mode:#o}"
                    );
                }
            }
        }
    }

    #[test]
    fn some_bit_set_is_cut_into_disjoint_cells() {
        assert_eq!(
            any_set(1, 0o6000),
            vec![
                cmp(1, Op::MaskedEq, 0o2000, 0o2000),
                cmp(1, Op::MaskedEq, 0o6000, 0o4000)
            ]
        );
        assert_eq!(creating_flags(), CREAT | 0o20_000_000);
        for (guard, index, bits) in [
            (None, 1, 0o6000),
            (Some((2, CREAT | 0o20_000_000)), 3, 0o6000),
        ] {
            let (allowed, refused) = any_bits_cells(guard, index, bits);
            for f in FLAGS {
                for mode in MODES {
                    let mut args = [0u64; 6];
                    args[index as usize] = mode;
                    if let Some((g, _)) = guard {
                        args[g as usize] = f;
                    }
                    let hits = |cells: &[Vec<ArgCmp>]| {
                        cells
                            .iter()
                            .filter(|c| c.iter().all(|x| holds(x, args[x.index as usize])))
                            .count()
                    };
                    let b = bad(guard.map(|_| f), mode);
                    assert_eq!(hits(&refused), usize::from(b), "{f:#o} {mode:#o}");
                    assert_eq!(hits(&allowed), usize::from(!b), "{f:#o} {mode:#o}");
                }
            }
        }
    }

    #[test]
    fn comparisons_become_masks_that_merge() {
        let t = |op, v| cmp(1, op, v, 0);
        for c in [
            t(Op::Eq, 0o755),
            t(Op::Lt, 0o5000),
            t(Op::Le, 0o4755),
            t(Op::Gt, 0o2000),
            t(Op::Ge, 0o4000),
            t(Op::Ne, 0o4755),
            cmp(1, Op::MaskedEq, 0o7000, 0o4000),
        ] {
            let masks = as_masks(&c);
            for v in (0..0o10000).chain([u64::MAX, 1 << 40]) {
                let n = masks.iter().filter(|(m, x)| v & m == *x).count();
                assert_eq!(n, usize::from(holds(&c, v)), "{c} at {v:#o}");
            }
        }
        assert!(as_masks(&cmp(1, Op::MaskedEq, 0o7, 0o10)).is_empty());
        assert_eq!(merge((0o6000, 0), (0o7777, 0o755)), Some((0o7777, 0o755)));
        assert_eq!(merge((0o6000, 0), (0o7777, 0o4755)), None);
        assert_eq!(
            merge((0o2000, 0o2000), (0o100, 0o100)),
            Some((0o2100, 0o2100))
        );
    }

    #[test]
    fn setuid_modes_are_refused_on_an_allow_list() {
        // default-like: the calls allowed unconditionally in one rule.
        let p = profile(
            Action::Errno(1),
            vec![rule(
                0,
                &[
                    "read", "chmod", "fchmodat", "creat", "mknodat", "open", "openat", "openat2",
                ],
                Action::Allow,
                vec![],
            )],
        );
        let m = apply(&p, &suid());
        assert_eq!(m.rules[0].names, ["read"]);
        agrees_but_for_the_wall(&p, &m);
        assert_eq!(decide(&m, "openat2", [0; 6]), Action::Errno(ENOSYS));
        // The worked example of the module doc: EPERM is this default, so
        // only the allow is left.
        let chmod = |m: &ResolvedProfile| -> Vec<String> {
            m.rules
                .iter()
                .filter(|r| r.names == ["chmod"])
                .map(|r| format!("{} {}", r.action, r.args[0]))
                .collect()
        };
        assert_eq!(chmod(&m), ["ALLOW arg1 & 0xc00 == 0x0"]);
        let p13 = ResolvedProfile {
            default_action: Action::Errno(13),
            ..p.clone()
        };
        assert_eq!(
            chmod(&apply(&p13, &suid())),
            [
                "ALLOW arg1 & 0xc00 == 0x0",
                "ERRNO(EPERM) arg1 & 0x400 == 0x400",
                "ERRNO(EPERM) arg1 & 0xc00 == 0x800",
            ]
        );
        // A call the profile refuses stays refused, with no rule added.
        let p = profile(
            Action::Errno(1),
            vec![rule(0, &["read"], Action::Allow, vec![])],
        );
        assert_eq!(apply(&p, &suid()), p);
    }

    #[test]
    fn conditional_rules_keep_their_conditions_under_the_wall() {
        // Every operator on the mode and on the flags, allow list and
        // block list: each value decides as before unless the wall
        // refuses it.
        let on_mode = |op, v| {
            vec![
                rule(
                    0,
                    &["chmod", "fchmodat", "creat", "mknodat"],
                    Action::Allow,
                    vec![],
                ),
                rule(1, &["open"], Action::Allow, vec![cmp(2, op, v, 0)]),
                rule(
                    2,
                    &["openat"],
                    Action::Allow,
                    vec![cmp(3, op, v, 0), cmp(0, Op::Eq, 7, 0)],
                ),
            ]
        };
        let on_flags = |op, v| {
            vec![
                rule(1, &["open"], Action::Allow, vec![cmp(1, op, v, 0)]),
                rule(2, &["openat"], Action::Allow, vec![cmp(2, op, v, 0)]),
            ]
        };
        for (op, v) in [
            (Op::Eq, 0o755),
            (Op::Eq, 0o4755),
            (Op::Lt, 0o5000),
            (Op::Le, 0o2755),
            (Op::Gt, 0o755),
            (Op::Ge, 0o4000),
            (Op::Ne, 0o644),
            (Op::MaskedEq, 0o7000),
        ] {
            for rules in [on_mode(op, v), on_flags(op, v)] {
                for default in [Action::Errno(1), Action::Allow] {
                    let rules = if default == Action::Allow {
                        rules
                            .iter()
                            .map(|r| ResolvedRule {
                                action: Action::KillProcess,
                                ..r.clone()
                            })
                            .collect()
                    } else {
                        rules.clone()
                    };
                    let p = profile(default, rules);
                    agrees_but_for_the_wall(&p, &apply(&p, &suid()));
                }
            }
        }
    }
}

//! ENOSYS for system calls newer than the profile, as runc and crun do.
//!
//! A profile that refuses what it does not list with an errno (EPERM in
//! both built-in profiles) would also refuse every call added to the kernel
//! after it was written, and with EPERM a C library takes that for a real
//! refusal. With ENOSYS it takes it for an old kernel and falls back:
//! glibc's `clone3` -> `clone`, `faccessat2` -> `faccessat`,
//! `statx` -> `fstatat`. So a call whose number is above the highest number
//! the profile names (on that architecture) gets ENOSYS instead.
//!
//! libseccomp has no rule for a range of numbers, and a rule per number it
//! knows would miss the calls newer than libseccomp itself. So bulkhead
//! writes a few BPF instructions of its own and puts them in front of
//! libseccomp's program. Worked example, a profile naming `read` (0) to
//! `getppid` (110) on x86_64:
//!
//! ```text
//! 0  ld  [4]                    ; seccomp_data.arch
//! 1  jeq #0xc000003e, 0, 4      ; AUDIT_ARCH_X86_64? else to 6
//! 2  ld  [0]                    ; seccomp_data.nr
//! 3  jge #0x40000000, 1, 0      ; an x32 number: to 5
//! 4  jgt #110, 2, 3             ; above 110: ENOSYS (7), else libseccomp (8)
//! 5  ja  2                      ; x32 is not in the filter: libseccomp (8)
//! 6  ja  1                      ; no architecture matched: libseccomp (8)
//! 7  ret #0x00050026            ; SECCOMP_RET_ERRNO | ENOSYS (38)
//! 8  libseccomp's program, which loads the arch and number again
//! ```
//!
//! `clone3` (435) then fails with ENOSYS, `getuid` (102, not listed) with
//! EPERM, `read` is allowed. Calls the profile names, whatever it does with
//! them, are never reached by the stub: only numbers above all of them are.
//! The stub jumps only forward, into its own end or to the first
//! instruction of libseccomp's program, so libseccomp's jumps, all relative
//! and within its own program, are unchanged.
//!
//! Limits: architectures without an entry in [`audit_arch`] (mips, parisc,
//! sh, m68k) get no stub, their calls go to libseccomp as before; on arm a
//! profile naming the ARM-private calls (`cacheflush` is 0xf0002) sets the
//! highest number there, so arm gets ENOSYS only above those.

use libseccomp::ScmpArch;

use super::Insn;

/// `struct seccomp_data` offsets.
const OFF_NR: u32 = 0;
const OFF_ARCH: u32 = 4;

const LD_W_ABS: u16 = 0x20;
const JEQ_K: u16 = 0x15;
const JGT_K: u16 = 0x25;
const JGE_K: u16 = 0x35;
const JA: u16 = 0x05;
const RET_K: u16 = 0x06;

/// SECCOMP_RET_ERRNO
const RET_ERRNO: u32 = 0x0005_0000;
/// The bit x32 numbers carry on the x86_64 audit architecture.
pub const X32_SYSCALL_BIT: u32 = 0x4000_0000;

/// The kernel's AUDIT_ARCH_* value, as `seccomp_data.arch` holds it (x32
/// calls arrive as x86_64's, with [`X32_SYSCALL_BIT`] in the number).
pub fn audit_arch(a: ScmpArch) -> Option<u32> {
    Some(match a {
        ScmpArch::X8664 | ScmpArch::X32 => 0xc000_003e,
        ScmpArch::X86 => 0x4000_0003,
        ScmpArch::Aarch64 => 0xc000_00b7,
        ScmpArch::Arm => 0x4000_0028,
        ScmpArch::Riscv64 => 0xc000_00f3,
        ScmpArch::S390X => 0x8000_0016,
        ScmpArch::S390 => 0x0000_0016,
        ScmpArch::Ppc64Le => 0xc000_0015,
        ScmpArch::Ppc64 => 0x8000_0015,
        ScmpArch::Ppc => 0x0000_0014,
        ScmpArch::Loongarch64 => 0xc000_0102,
        _ => return None,
    })
}

/// A jump target while the stub is assembled.
#[derive(Clone, Copy)]
enum To {
    Next,
    Enosys,
    Lib,
    /// This many instructions ahead.
    Ahead(usize),
}

/// The stub for `maxes`, the highest number the profile names on each
/// architecture of the filter; empty when no architecture has an audit
/// value (then nothing goes in front of libseccomp's program).
pub fn stub(maxes: &[(ScmpArch, u32)]) -> Vec<Insn> {
    // (audit arch, the native max, x32's max), one block per audit arch.
    let mut blocks: Vec<(u32, Option<u32>, Option<u32>)> = Vec::new();
    for &(arch, max) in maxes {
        let Some(token) = audit_arch(arch) else {
            continue;
        };
        let i = match blocks.iter().position(|b| b.0 == token) {
            Some(i) => i,
            None => {
                blocks.push((token, None, None));
                blocks.len() - 1
            }
        };
        if arch == ScmpArch::X32 {
            blocks[i].2 = Some(max);
        } else {
            blocks[i].1 = Some(max);
        }
    }
    if blocks.is_empty() {
        return Vec::new();
    }
    // (code, jt, jf, k) with symbolic targets; jt/jf of a non-jump unused.
    let mut code: Vec<(u16, To, To, u32)> = vec![(LD_W_ABS, To::Ahead(0), To::Ahead(0), OFF_ARCH)];
    let mut block_starts = Vec::new();
    for (token, native, x32) in &blocks {
        block_starts.push(code.len());
        let is_x86_64 = *token == 0xc000_003e;
        code.push((JEQ_K, To::Ahead(0), To::Next, *token));
        code.push((LD_W_ABS, To::Ahead(0), To::Ahead(0), OFF_NR));
        if is_x86_64 {
            code.push((JGE_K, To::Ahead(1), To::Ahead(0), X32_SYSCALL_BIT));
        }
        for max in [Some(*native), is_x86_64.then_some(*x32)]
            .into_iter()
            .flatten()
        {
            match max {
                Some(m) => code.push((JGT_K, To::Enosys, To::Lib, m)),
                None => code.push((JA, To::Lib, To::Lib, 0)),
            }
        }
    }
    let tail = code.len();
    code.push((JA, To::Lib, To::Lib, 0));
    let enosys = code.len();
    let errno = u32::try_from(libc::ENOSYS).unwrap_or(38);
    code.push((RET_K, To::Ahead(0), To::Ahead(0), RET_ERRNO | errno));
    let lib = code.len();
    let next_of = |i: usize| {
        block_starts
            .iter()
            .copied()
            .find(|s| *s > i)
            .unwrap_or(tail)
    };
    let rel = |i: usize, t: To| -> usize {
        let target = match t {
            To::Next => next_of(i),
            To::Enosys => enosys,
            To::Lib => lib,
            To::Ahead(n) => i + 1 + n,
        };
        target - (i + 1)
    };
    code.iter()
        .enumerate()
        .map(|(i, &(c, jt, jf, k))| match c {
            // The stub is a few dozen instructions: every offset fits.
            JA => (c, 0, 0, u32::try_from(rel(i, jt)).unwrap_or(0)),
            JEQ_K | JGT_K | JGE_K => (
                c,
                u8::try_from(rel(i, jt)).unwrap_or(0),
                u8::try_from(rel(i, jf)).unwrap_or(0),
                k,
            ),
            _ => (c, 0, 0, k),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_x86_64_stub_is_the_worked_example() {
        let s = stub(&[(ScmpArch::X8664, 110)]);
        assert_eq!(
            s,
            vec![
                (LD_W_ABS, 0, 0, OFF_ARCH),
                (JEQ_K, 0, 4, 0xc000_003e),
                (LD_W_ABS, 0, 0, OFF_NR),
                (JGE_K, 1, 0, X32_SYSCALL_BIT),
                (JGT_K, 2, 3, 110),
                (JA, 0, 0, 2),
                (JA, 0, 0, 1),
                (RET_K, 0, 0, 0x0005_0026),
            ]
        );
    }

    #[test]
    fn architectures_without_an_audit_value_get_no_stub() {
        assert!(stub(&[]).is_empty());
        assert!(stub(&[(ScmpArch::Mips, 4000)]).is_empty());
    }
}

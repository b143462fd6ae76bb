//! Installing a compiled filter in a child about to exec, the last setup
//! step before execve (the service and an entered command alike).
//!
//! [`prepare`] in the parent turns the spec's `(code, jt, jf, k)` tuples
//! into `sock_filter`s and checks the length fits `sock_fprog.len` (a u16);
//! [`apply`] in the child is one prctl on that memory, no allocation
//! (`sys::seccomp::install`). It needs no_new_privs (or CAP_SYS_ADMIN), set
//! by [`crate::sandbox::creds`].
//!
//! Last, because everything after it runs under the filter: a profile
//! without brk or mmap still lets the child build nothing and report a
//! failed exec, as every buffer exec needs was made before.

pub use crate::sys::seccomp::Filter;
use crate::sys::step::Step;

/// The filter for `program`, as [`crate::sandbox::spec::InitSpec::seccomp`]
/// holds it. E2BIG (as the kernel would say) when it is longer than a
/// `sock_fprog` can count.
pub fn prepare(program: &[(u16, u8, u8, u32)]) -> Result<Filter, (Step, i32)> {
    if u16::try_from(program.len()).is_err() {
        return Err((Step::Seccomp, libc::E2BIG));
    }
    Filter::new(
        program
            .iter()
            .map(|&(code, jt, jf, k)| libc::sock_filter { code, jt, jf, k })
            .collect(),
    )
}

/// Installs `filter` in the calling thread (the child is single-threaded),
/// or does nothing when it is empty. No allocation.
pub fn apply(filter: &Filter) -> Result<(), (Step, i32)> {
    crate::sys::seccomp::install(filter)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tuples_become_instructions() {
        // BPF_RET | BPF_K, SECCOMP_RET_ALLOW
        let f = prepare(&[(0x06, 0, 0, 0x7fff_0000)]).unwrap();
        assert_eq!(f.len(), 1);
        assert_eq!((f.insns()[0].code, f.insns()[0].k), (0x06, 0x7fff_0000));
        assert!(prepare(&[]).unwrap().is_empty());
        apply(&Filter::default()).unwrap();
    }

    #[test]
    fn too_long_is_e2big() {
        let long = vec![(0x06, 0, 0, 0); usize::from(u16::MAX) + 1];
        assert_eq!(
            prepare(&long).map(|f| f.len()),
            Err((Step::Seccomp, libc::E2BIG))
        );
    }
}

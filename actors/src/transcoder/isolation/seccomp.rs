//! The conversion child's system-call filter (seccomp-bpf), installed
//! once it has read its request and before it touches any media, for all its
//! threads.
//!
//! It denies, with EPERM, what decoding media never needs and an attacker
//! who took over a decoder would want first: opening sockets (a child
//! cannot reach the network, the node's admin socket or a database),
//! creating processes (fork, vfork, exec; `clone` only makes threads, and
//! `clone3` answers ENOSYS so that glibc falls back to `clone`), tracing or
//! reading other processes (ptrace, process_vm_*), signalling any process
//! but itself, and the kernel's privileged interfaces (mounts, namespaces,
//! modules, BPF, keyrings, perf, userfaultfd). Everything else is allowed:
//! this is a deny-list, not yet the allow-list issue 15 asks for.

use std::collections::BTreeMap;

use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule,
};

/// Why the filter could not be installed.
#[derive(Debug, thiserror::Error)]
pub enum FilterError {
    #[error("building the seccomp filter")]
    Build(#[source] seccompiler::BackendError),
    #[error("installing the seccomp filter")]
    Install(#[source] seccompiler::Error),
}

/// Denied outright.
const DENIED: &[libc::c_long] = &[
    libc::SYS_socket,
    libc::SYS_connect,
    libc::SYS_bind,
    libc::SYS_listen,
    libc::SYS_accept,
    libc::SYS_accept4,
    libc::SYS_execve,
    libc::SYS_execveat,
    #[cfg(target_arch = "x86_64")]
    libc::SYS_fork,
    #[cfg(target_arch = "x86_64")]
    libc::SYS_vfork,
    libc::SYS_ptrace,
    libc::SYS_process_vm_readv,
    libc::SYS_process_vm_writev,
    libc::SYS_kcmp,
    libc::SYS_pidfd_open,
    libc::SYS_pidfd_getfd,
    libc::SYS_pidfd_send_signal,
    libc::SYS_tkill,
    libc::SYS_rt_sigqueueinfo,
    libc::SYS_rt_tgsigqueueinfo,
    libc::SYS_mount,
    libc::SYS_umount2,
    libc::SYS_pivot_root,
    libc::SYS_chroot,
    libc::SYS_unshare,
    libc::SYS_setns,
    libc::SYS_bpf,
    libc::SYS_perf_event_open,
    libc::SYS_userfaultfd,
    libc::SYS_keyctl,
    libc::SYS_add_key,
    libc::SYS_request_key,
    libc::SYS_init_module,
    libc::SYS_finit_module,
    libc::SYS_delete_module,
    libc::SYS_kexec_load,
    libc::SYS_reboot,
    libc::SYS_swapon,
    libc::SYS_swapoff,
    libc::SYS_acct,
];

/// The filters for a child whose process id is `me`: the denials (EPERM),
/// and `clone3` refused as unknown (ENOSYS), whose flags are in memory a
/// filter cannot read, so that glibc makes its threads with `clone`. (One
/// action per seccompiler filter, hence two; the kernel applies the most
/// restrictive answer of all installed filters.)
fn filters(me: libc::pid_t) -> Result<[BpfProgram; 2], seccompiler::BackendError> {
    let arg = |index, op, value| SeccompCondition::new(index, SeccompCmpArgLen::Qword, op, value);
    let mut rules: BTreeMap<i64, Vec<SeccompRule>> =
        DENIED.iter().map(|&call| (call, Vec::new())).collect();
    // A clone that does not make a thread makes a process.
    let thread = libc::CLONE_THREAD as u64;
    rules.insert(
        libc::SYS_clone,
        vec![SeccompRule::new(vec![arg(
            0,
            SeccompCmpOp::MaskedEq(thread),
            0,
        )?])?],
    );
    // Signals: to itself only (raise, abort and the runtime use these).
    let own = me as u64;
    for call in [libc::SYS_kill, libc::SYS_tgkill] {
        rules.insert(
            call,
            vec![SeccompRule::new(vec![arg(0, SeccompCmpOp::Ne, own)?])?],
        );
    }
    let arch = std::env::consts::ARCH.try_into()?;
    let denials = SeccompFilter::new(
        rules,
        SeccompAction::Allow,
        SeccompAction::Errno(libc::EPERM as u32),
        arch,
    )?;
    let clone3 = SeccompFilter::new(
        [(libc::SYS_clone3, Vec::new())].into_iter().collect(),
        SeccompAction::Allow,
        SeccompAction::Errno(libc::ENOSYS as u32),
        arch,
    )?;
    Ok([denials.try_into()?, clone3.try_into()?])
}

/// Installs the filters for every thread of this process.
pub fn install() -> Result<(), FilterError> {
    // SAFETY: getpid has no preconditions.
    let me = unsafe { libc::getpid() };
    for program in filters(me).map_err(FilterError::Build)? {
        seccompiler::apply_filter_all_threads(&program).map_err(FilterError::Install)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_filters_build_for_this_machine() {
        let [denials, clone3] = filters(1234).expect("filters");
        assert!(denials.len() > DENIED.len());
        assert!(!clone3.is_empty());
    }
}

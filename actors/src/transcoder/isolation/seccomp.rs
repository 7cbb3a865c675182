//! The conversion child's system-call filter (seccomp-bpf), installed
//! once it has read its request (and after Landlock) and before it touches
//! any media, for all its threads.
//!
//! It is an allow-list: the calls that demuxing, decoding and encoding make
//! here, found by tracing the child over every input kind and output format
//! (`scripts/child-syscalls` lists them, checks this list against them and
//! runs every conversion confined), plus their older or error-path forms
//! (`open` for `openat`, `clone` for `clone3`, `rt_sigreturn`): I/O on
//! descriptors it holds, opening files by path (Landlock says which),
//! memory, threads, time, waiting and its own signals. Not `ioctl` (devices
//! and terminals are no business of a converter). Any other call fails
//! with ENOSYS, as if this kernel did not have it (so glibc falls back where
//! it can, as from `clone3` to `clone`). Among those refused: sockets of any
//! kind, process creation (fork, vfork, exec; `clone` only makes threads),
//! tracing or reading other processes (ptrace, process_vm_*, pidfd_*),
//! signals to any process but itself, and the kernel's privileged
//! interfaces (mount, namespaces, modules, BPF, keyrings, perf,
//! userfaultfd, io_uring).

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

/// Allowed with any arguments.
const ALLOWED: &[libc::c_long] = &[
    // Descriptors it holds: its spools, its pipes to the node, the files
    // GStreamer opens.
    libc::SYS_read,
    libc::SYS_write,
    libc::SYS_readv,
    libc::SYS_writev,
    libc::SYS_pread64,
    libc::SYS_pwrite64,
    libc::SYS_lseek,
    libc::SYS_close,
    libc::SYS_fstat,
    libc::SYS_newfstatat,
    libc::SYS_statx,
    libc::SYS_fcntl,
    libc::SYS_dup,
    libc::SYS_dup3,
    libc::SYS_ftruncate,
    libc::SYS_fsync,
    libc::SYS_fdatasync,
    libc::SYS_fadvise64,
    libc::SYS_pipe2,
    libc::SYS_eventfd2,
    // By path (Landlock limits which): plugins and their libraries, the
    // spools through /proc/self/fd.
    libc::SYS_openat,
    libc::SYS_readlinkat,
    libc::SYS_faccessat,
    libc::SYS_faccessat2,
    libc::SYS_getdents64,
    #[cfg(target_arch = "x86_64")]
    libc::SYS_open,
    #[cfg(target_arch = "x86_64")]
    libc::SYS_stat,
    #[cfg(target_arch = "x86_64")]
    libc::SYS_lstat,
    #[cfg(target_arch = "x86_64")]
    libc::SYS_access,
    #[cfg(target_arch = "x86_64")]
    libc::SYS_readlink,
    // Memory.
    libc::SYS_mmap,
    libc::SYS_munmap,
    libc::SYS_mprotect,
    libc::SYS_mremap,
    libc::SYS_madvise,
    libc::SYS_brk,
    // libgcrypt's secure memory, when a plugin linking it is loaded; the
    // calling thread's NUMA policy. Its own pages only (RLIMIT_MEMLOCK).
    libc::SYS_mlock,
    libc::SYS_munlock,
    libc::SYS_get_mempolicy,
    libc::SYS_set_mempolicy,
    // Threads and waiting.
    libc::SYS_futex,
    libc::SYS_set_robust_list,
    libc::SYS_rseq,
    libc::SYS_sched_yield,
    libc::SYS_sched_getaffinity,
    libc::SYS_exit,
    libc::SYS_exit_group,
    libc::SYS_gettid,
    libc::SYS_getpid,
    libc::SYS_getppid,
    libc::SYS_prctl,
    libc::SYS_ppoll,
    #[cfg(target_arch = "x86_64")]
    libc::SYS_poll,
    libc::SYS_pselect6,
    // Its own signals.
    libc::SYS_rt_sigaction,
    libc::SYS_rt_sigprocmask,
    libc::SYS_rt_sigreturn,
    libc::SYS_sigaltstack,
    // Time, identity, limits.
    libc::SYS_clock_gettime,
    libc::SYS_clock_getres,
    libc::SYS_clock_nanosleep,
    libc::SYS_nanosleep,
    libc::SYS_gettimeofday,
    libc::SYS_getrandom,
    libc::SYS_getuid,
    libc::SYS_geteuid,
    libc::SYS_getgid,
    libc::SYS_getegid,
    libc::SYS_uname,
    libc::SYS_sysinfo,
    libc::SYS_prlimit64,
    libc::SYS_getrusage,
    libc::SYS_umask,
];

/// Allowed only without Landlock, where it adds nothing the child could not
/// do by opening a file for writing: ORC (GStreamer's SIMD compiler) maps
/// its code through a temporary file it removes at once. Under Landlock the
/// file cannot be made, and ORC maps anonymous memory instead.
const ALLOWED_WITHOUT_LANDLOCK: &[libc::c_long] = &[
    libc::SYS_unlinkat,
    #[cfg(target_arch = "x86_64")]
    libc::SYS_unlink,
];

/// The filter for a child whose process id is `me`, confined by Landlock
/// or not.
fn filter(me: libc::pid_t, landlock: bool) -> Result<BpfProgram, seccompiler::BackendError> {
    let arg = |index, op, value| SeccompCondition::new(index, SeccompCmpArgLen::Qword, op, value);
    let unconfined: &[libc::c_long] = if landlock {
        &[]
    } else {
        ALLOWED_WITHOUT_LANDLOCK
    };
    let mut rules: BTreeMap<i64, Vec<SeccompRule>> = ALLOWED
        .iter()
        .chain(unconfined)
        .map(|&call| (call, Vec::new()))
        .collect();
    // A connected pair of Unix sockets (GStreamer's bus wakes its reader
    // with one): no address, nothing outside the child at either end.
    rules.insert(
        libc::SYS_socketpair,
        vec![SeccompRule::new(vec![arg(
            0,
            SeccompCmpOp::Eq,
            libc::AF_UNIX as u64,
        )?])?],
    );
    // A clone that makes a thread; one that does not would make a process.
    let thread = libc::CLONE_THREAD as u64;
    rules.insert(
        libc::SYS_clone,
        vec![SeccompRule::new(vec![arg(
            0,
            SeccompCmpOp::MaskedEq(thread),
            thread,
        )?])?],
    );
    // Signals: to itself only (raise, abort and the runtime use these).
    let own = me as u64;
    for call in [libc::SYS_kill, libc::SYS_tgkill] {
        rules.insert(
            call,
            vec![SeccompRule::new(vec![arg(0, SeccompCmpOp::Eq, own)?])?],
        );
    }
    let filter = SeccompFilter::new(
        rules,
        SeccompAction::Errno(libc::ENOSYS as u32),
        SeccompAction::Allow,
        std::env::consts::ARCH.try_into()?,
    )?;
    filter.try_into()
}

/// Installs the filter for every thread of this process (`landlock`: it
/// confines this process already).
pub fn install(landlock: bool) -> Result<(), FilterError> {
    // SAFETY: getpid has no preconditions.
    let me = unsafe { libc::getpid() };
    let program = filter(me, landlock).map_err(FilterError::Build)?;
    seccompiler::apply_filter_all_threads(&program).map_err(FilterError::Install)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_filter_builds_for_this_machine() {
        for landlock in [true, false] {
            let program = filter(1234, landlock).expect("filter");
            assert!(program.len() > ALLOWED.len());
        }
    }

    #[test]
    fn nothing_that_makes_or_reaches_another_process_is_allowed() {
        for call in [
            libc::SYS_socket,
            libc::SYS_socketpair,
            libc::SYS_connect,
            libc::SYS_sched_setattr,
            libc::SYS_execve,
            libc::SYS_execveat,
            libc::SYS_clone3,
            libc::SYS_ptrace,
            libc::SYS_process_vm_readv,
            libc::SYS_pidfd_open,
            libc::SYS_mount,
            libc::SYS_unshare,
            libc::SYS_bpf,
            libc::SYS_io_uring_setup,
        ] {
            assert!(!ALLOWED.contains(&call), "{call} is allowed");
        }
    }
}

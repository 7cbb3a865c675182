//! What this kernel offers for confining conversion children, found out
//! once at start-up and reported in the log: seccomp filters (the child's
//! system-call filter needs them) and Landlock (its ABI version; not used
//! yet, reported so an operator knows what a later step can rely on).

use std::fmt;

/// The kernel's confinement features.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Support {
    /// seccomp in filter mode (`CONFIG_SECCOMP_FILTER`).
    pub seccomp_filter: bool,
    /// Landlock's ABI version, when the kernel has it enabled.
    pub landlock_abi: Option<u32>,
}

impl Support {
    pub fn probe() -> Self {
        Self {
            seccomp_filter: seccomp_filter(),
            landlock_abi: landlock_abi(),
        }
    }
}

impl fmt::Display for Support {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let seccomp = if self.seccomp_filter {
            "seccomp filters available"
        } else {
            "no seccomp filters"
        };
        match self.landlock_abi {
            Some(abi) => write!(f, "{seccomp}, Landlock ABI {abi}"),
            None => write!(f, "{seccomp}, no Landlock"),
        }
    }
}

/// `/proc/self/status` names a `Seccomp_filters` count on kernels built
/// with seccomp filters (4.10 and later); `PR_GET_SECCOMP` answers EINVAL
/// on kernels without seccomp at all.
fn seccomp_filter() -> bool {
    // SAFETY: PR_GET_SECCOMP reads this process's mode and changes nothing.
    let mode = unsafe { libc::prctl(libc::PR_GET_SECCOMP, 0, 0, 0, 0) };
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    mode >= 0 && status.lines().any(|l| l.starts_with("Seccomp_filters:"))
}

/// `landlock_create_ruleset(NULL, 0, LANDLOCK_CREATE_RULESET_VERSION)`
/// answers the ABI version, or fails (ENOSYS: not built in; EOPNOTSUPP:
/// disabled at boot).
fn landlock_abi() -> Option<u32> {
    const LANDLOCK_CREATE_RULESET_VERSION: libc::c_long = 1;
    // SAFETY: with a null attribute and size 0 this call only reports the
    // version; it creates nothing.
    let abi = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<libc::c_void>(),
            0usize,
            LANDLOCK_CREATE_RULESET_VERSION,
        )
    };
    u32::try_from(abi).ok().filter(|&v| v > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_in_words() {
        let both = Support {
            seccomp_filter: true,
            landlock_abi: Some(7),
        };
        assert_eq!(
            both.to_string(),
            "seccomp filters available, Landlock ABI 7"
        );
        let neither = Support {
            seccomp_filter: false,
            landlock_abi: None,
        };
        assert_eq!(neither.to_string(), "no seccomp filters, no Landlock");
    }
}

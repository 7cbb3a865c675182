//! The conversion child's file-system confinement (Landlock), applied once
//! it has read its request and before it touches any media, right before
//! its system-call filter.
//!
//! With it the child can open nothing by path but what it was handed and
//! what loading a GStreamer plugin needs: its input (fd 3, read) and its
//! outputs (fd 4 the audio, fd 5 the waveform: read, write, truncate) — by
//! their inodes, so the rules
//! name no directory that holds anything else — and the system's library
//! and plugin directories, read and map-executable only. Not the node's
//! configuration, its data directory, other jobs' files, `/home`, `/etc`
//! (but for the loader's `/etc/ld.so.cache`) or `/proc` of another
//! process. From ABI 4 it also handles TCP bind and connect (none allowed),
//! from ABI 6 it scopes signals and abstract Unix sockets to the child.
//!
//! The raw system calls are used (the kernel's API is three calls and two
//! structs); the ABI version found at start-up picks the rights handled.

use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// Why the confinement could not be applied.
#[derive(Debug, thiserror::Error)]
pub enum LandlockError {
    #[error("this kernel has no Landlock")]
    Unsupported,
    #[error("creating the Landlock ruleset")]
    Create(#[source] std::io::Error),
    #[error("adding the Landlock rule for {0}")]
    Rule(String, #[source] std::io::Error),
    #[error("the child has {0} threads; Landlock confines the calling thread only")]
    Threads(usize),
    #[error("enforcing the Landlock ruleset")]
    Restrict(#[source] std::io::Error),
}

// File-system access rights (linux/landlock.h).
const EXECUTE: u64 = 1 << 0;
const WRITE_FILE: u64 = 1 << 1;
const READ_FILE: u64 = 1 << 2;
const READ_DIR: u64 = 1 << 3;
/// Everything up to MAKE_SYM (ABI 1).
const ABI1_ALL: u64 = (1 << 13) - 1;
const REFER: u64 = 1 << 13;
const TRUNCATE: u64 = 1 << 14;
const IOCTL_DEV: u64 = 1 << 15;
// Network rights (ABI 4) and scopes (ABI 6).
const NET_BIND_TCP: u64 = 1 << 0;
const NET_CONNECT_TCP: u64 = 1 << 1;
const SCOPE_ABSTRACT_UNIX_SOCKET: u64 = 1 << 0;
const SCOPE_SIGNAL: u64 = 1 << 1;

const RULE_PATH_BENEATH: libc::c_int = 1;

#[repr(C)]
struct RulesetAttr {
    handled_access_fs: u64,
    handled_access_net: u64,
    scoped: u64,
}

#[repr(C, packed)]
struct PathBeneathAttr {
    allowed_access: u64,
    parent_fd: i32,
}

/// Directories read (and mapped executable) by the dynamic loader and
/// GStreamer when a plugin is first used; those that do not exist are left
/// out. `GST_PLUGIN_PATH` and `GST_PLUGIN_SYSTEM_PATH`, passed through to
/// the child, add theirs.
const LIBRARY_DIRS: &[&str] = &[
    "/usr/lib",
    "/usr/lib64",
    "/usr/lib32",
    "/usr/local/lib",
    "/lib",
    "/lib64",
    "/lib32",
    "/usr/share/gstreamer-1.0",
];
/// Single files the loader reads.
const LIBRARY_FILES: &[&str] = &["/etc/ld.so.cache"];

/// The rights this ABI knows: all of them are handled (so denied unless a
/// rule allows them).
fn handled_fs(abi: u32) -> u64 {
    let mut rights = ABI1_ALL;
    if abi >= 2 {
        rights |= REFER;
    }
    if abi >= 3 {
        rights |= TRUNCATE;
    }
    if abi >= 5 {
        rights |= IOCTL_DEV;
    }
    rights
}

/// Confines this process (which must have one thread) to its input `input`,
/// its `outputs` and the library directories.
pub fn confine(abi: u32, input: RawFd, outputs: &[RawFd]) -> Result<(), LandlockError> {
    if abi == 0 {
        return Err(LandlockError::Unsupported);
    }
    let threads = thread_count();
    if threads != 1 {
        return Err(LandlockError::Threads(threads));
    }
    let handled = handled_fs(abi);
    let attr = RulesetAttr {
        handled_access_fs: handled,
        handled_access_net: if abi >= 4 {
            NET_BIND_TCP | NET_CONNECT_TCP
        } else {
            0
        },
        scoped: if abi >= 6 {
            SCOPE_ABSTRACT_UNIX_SOCKET | SCOPE_SIGNAL
        } else {
            0
        },
    };
    // SAFETY: the attribute is a live, correctly laid out struct of the
    // size passed; the kernel reads it and returns a new descriptor.
    let ruleset = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            &attr as *const RulesetAttr,
            std::mem::size_of::<RulesetAttr>(),
            0u32,
        )
    };
    let ruleset = owned(ruleset).map_err(LandlockError::Create)?;

    let file_rights = READ_FILE | WRITE_FILE | (handled & TRUNCATE);
    add_rule(&ruleset, input, READ_FILE).map_err(|e| LandlockError::Rule("its input".into(), e))?;
    for &output in outputs {
        add_rule(&ruleset, output, file_rights)
            .map_err(|e| LandlockError::Rule(format!("its output (fd {output})"), e))?;
    }
    let plugin_paths = ["GST_PLUGIN_PATH", "GST_PLUGIN_SYSTEM_PATH"]
        .into_iter()
        .filter_map(std::env::var_os)
        .flat_map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>());
    let dirs = LIBRARY_DIRS
        .iter()
        .map(std::path::PathBuf::from)
        .chain(plugin_paths);
    for dir in dirs {
        allow_path(&ruleset, &dir, EXECUTE | READ_FILE | READ_DIR)?;
    }
    for file in LIBRARY_FILES {
        allow_path(&ruleset, std::path::Path::new(file), READ_FILE)?;
    }

    // SAFETY: plain system call on a descriptor we own; no_new_privs is set
    // (before exec, by the node), as the kernel requires.
    let restricted =
        unsafe { libc::syscall(libc::SYS_landlock_restrict_self, ruleset.as_raw_fd(), 0u32) };
    if restricted < 0 {
        return Err(LandlockError::Restrict(std::io::Error::last_os_error()));
    }
    Ok(())
}

/// Allows `rights` beneath `path`, if it exists (a missing library
/// directory is no error).
fn allow_path(ruleset: &OwnedFd, path: &std::path::Path, rights: u64) -> Result<(), LandlockError> {
    let Ok(name) = CString::new(path.as_os_str().as_encoded_bytes()) else {
        return Ok(());
    };
    // SAFETY: a NUL-terminated path; O_PATH opens for reference only.
    let fd = unsafe { libc::open(name.as_ptr(), libc::O_PATH | libc::O_CLOEXEC) };
    let Ok(fd) = owned(fd as libc::c_long) else {
        return Ok(());
    };
    // A file (not a directory) takes file rights only.
    let rights = if path.is_dir() {
        rights
    } else {
        rights & (EXECUTE | READ_FILE | WRITE_FILE | TRUNCATE | IOCTL_DEV)
    };
    add_rule(ruleset, fd.as_raw_fd(), rights)
        .map_err(|e| LandlockError::Rule(path.display().to_string(), e))
}

fn add_rule(ruleset: &OwnedFd, fd: RawFd, rights: u64) -> std::io::Result<()> {
    let attr = PathBeneathAttr {
        allowed_access: rights,
        parent_fd: fd,
    };
    // SAFETY: the attribute is a live, packed struct as the kernel expects.
    let added = unsafe {
        libc::syscall(
            libc::SYS_landlock_add_rule,
            ruleset.as_raw_fd(),
            RULE_PATH_BENEATH,
            &attr as *const PathBeneathAttr,
            0u32,
        )
    };
    if added < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(())
    }
}

fn owned(fd: libc::c_long) -> std::io::Result<OwnedFd> {
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    let fd = RawFd::try_from(fd).map_err(std::io::Error::other)?;
    // SAFETY: the kernel just returned this descriptor to us alone.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn thread_count() -> usize {
    std::fs::read_dir("/proc/self/task")
        .map(|tasks| tasks.count())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_abi_handles_the_rights_it_knows() {
        assert_eq!(handled_fs(1), ABI1_ALL);
        assert_eq!(handled_fs(2), ABI1_ALL | REFER);
        assert_eq!(handled_fs(4), ABI1_ALL | REFER | TRUNCATE);
        assert_eq!(handled_fs(7), ABI1_ALL | REFER | TRUNCATE | IOCTL_DEV);
        assert_eq!(std::mem::size_of::<PathBeneathAttr>(), 12);
        assert_eq!(std::mem::size_of::<RulesetAttr>(), 24);
    }
}

//! What a child's end means when it reported no outcome: which signal
//! killed it, which limit it ran into, or that it just stopped. Its last
//! lines on stderr (kept, bounded, and logged) help tell a memory limit
//! from any other abort.

use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;

use tokio::io::AsyncBufReadExt;
use tokio::process::ChildStderr;
use tokio::task::JoinHandle;
use tracing::debug;

use super::Sandbox;
use crate::transcoder::pipeline::TranscodeError;

/// How much of the child's stderr is kept: its last lines.
const TAIL_BYTES: usize = 4096;

/// Reads a child's stderr as it comes (so it never blocks on a full pipe),
/// logging each line at debug level and keeping the last few.
pub struct StderrTail(Option<JoinHandle<String>>);

impl StderrTail {
    pub fn collect(stderr: Option<ChildStderr>) -> Self {
        Self(stderr.map(|stderr| {
            tokio::spawn(async move {
                let mut tail = String::new();
                let mut lines = tokio::io::BufReader::new(stderr).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    debug!(target: "vidaud::transcode_child", "{line}");
                    tail.push_str(&line);
                    tail.push('\n');
                    if tail.len() > TAIL_BYTES {
                        let cut = tail.len() - TAIL_BYTES;
                        let cut = (cut..tail.len())
                            .find(|&i| tail.is_char_boundary(i))
                            .unwrap_or(tail.len());
                        tail.drain(..cut);
                    }
                }
                tail
            })
        }))
    }

    /// The kept lines, once the child's stderr has closed.
    pub async fn finish(self) -> String {
        match self.0 {
            Some(task) => task.await.unwrap_or_default(),
            None => String::new(),
        }
    }
}

/// Why a child that reported no outcome ended as it did.
pub fn classify(status: ExitStatus, stderr: &str, sandbox: &Sandbox) -> TranscodeError {
    let out_of_memory = stderr.contains("memory allocation of")
        || stderr.contains("failed to allocate")
        || stderr.contains("Cannot allocate memory");
    match status.signal() {
        Some(libc::SIGABRT) if out_of_memory && sandbox.memory_mib > 0 => {
            TranscodeError::MemoryLimit(sandbox.memory_mib)
        }
        Some(libc::SIGXCPU) => TranscodeError::CpuLimit(sandbox.cpu_secs),
        Some(libc::SIGXFSZ) => TranscodeError::OutputLimit(sandbox.output_mib),
        Some(signal) => TranscodeError::Crashed(signal_name(signal)),
        None => TranscodeError::Protocol(match status.code() {
            Some(0) => "the converter ended without a result".to_owned(),
            Some(code) => format!("the converter exited with code {code} without a result"),
            None => "the converter ended without a result".to_owned(),
        }),
    }
}

fn signal_name(signal: i32) -> String {
    let name = match signal {
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGBUS => "SIGBUS",
        libc::SIGILL => "SIGILL",
        libc::SIGFPE => "SIGFPE",
        libc::SIGABRT => "SIGABRT",
        libc::SIGKILL => "SIGKILL",
        libc::SIGTERM => "SIGTERM",
        libc::SIGSYS => "SIGSYS",
        other => return format!("signal {other}"),
    };
    name.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sandbox() -> Sandbox {
        Sandbox {
            binary: "vidaud".into(),
            memory_mib: 512,
            cpu_secs: 100,
            open_files: 64,
            output_mib: 1024,
            seccomp: true,
            landlock_abi: 7,
        }
    }

    #[test]
    fn signals_and_limits_are_named() {
        let signalled = |s: i32| ExitStatus::from_raw(s);
        let s = sandbox();
        assert_eq!(
            classify(signalled(libc::SIGSEGV), "", &s),
            TranscodeError::Crashed("SIGSEGV".into())
        );
        assert_eq!(
            classify(
                signalled(libc::SIGABRT),
                "memory allocation of 16777216 bytes failed\n",
                &s
            ),
            TranscodeError::MemoryLimit(512)
        );
        assert_eq!(
            classify(signalled(libc::SIGABRT), "assertion failed\n", &s),
            TranscodeError::Crashed("SIGABRT".into())
        );
        assert_eq!(
            classify(signalled(libc::SIGXCPU), "", &s),
            TranscodeError::CpuLimit(100)
        );
        assert_eq!(
            classify(signalled(libc::SIGXFSZ), "", &s),
            TranscodeError::OutputLimit(1024)
        );
        // exit(3): the status word holds the code in its second byte.
        assert!(matches!(
            classify(ExitStatus::from_raw(3 << 8), "", &s),
            TranscodeError::Protocol(_)
        ));
    }
}

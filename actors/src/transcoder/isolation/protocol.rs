//! What the node and a conversion child say to each other: the child says
//! it is ready (started and GStreamer loaded; a child started ahead says
//! so long before its job), then gets one request (a JSON line on its
//! stdin), then reports (JSON lines on its stdout) — progress as it goes,
//! and exactly one outcome at the end.
//!
//! The child's stdin stays open for the whole conversion: its end of file
//! tells the child that the node is gone.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::output::ResolvedOutput;
use crate::transcoder::pipeline::{AudioShape, Control, Progress, Summary, TranscodeError};
use crate::transcoder::segments::{Joined, SplitPlan, SplitSettings};

/// The input is the child's file descriptor 3, the audio it writes its 4,
/// the waveform it writes its 5.
pub const INPUT_FD: i32 = 3;
pub const OUTPUT_FD: i32 = 4;
pub const WAVEFORM_FD: i32 = 5;

/// Longest report line the node reads; a longer one breaks the protocol.
pub const MAX_LINE: usize = 64 * 1024;

/// What a child is asked to do with its input.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Task {
    /// Convert it (or the request's segment of it): `Report::Done`; or,
    /// asked with `split` and long enough to be split, `Report::Long`.
    #[default]
    Convert,
    /// Join the segments its input holds, one after another, into the
    /// audio and waveform outputs: `Report::Joined`. The segments are
    /// what other children wrote from an upload, so they are parsed where
    /// an upload is: in a child.
    Join(JoinTask),
}

/// A join's plan and where each segment's audio and waveform are in the
/// input: `(offset, length)`, in the plan's order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JoinTask {
    pub plan: SplitPlan,
    pub audio: Vec<(u64, u64)>,
    pub waveforms: Vec<(u64, u64)>,
}

/// The one message the node sends.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Request {
    #[serde(default)]
    pub task: Task,
    /// When and how finely the node splits jobs: a conversion whose audio
    /// the plan would split is not made; the child says how long it is
    /// (`Report::Long`) and the node splits the job. `None`: convert
    /// whatever its length.
    #[serde(default)]
    pub split: Option<SplitSettings>,
    /// Validated and resolved when the job was created.
    pub options: ResolvedOutput,
    /// The part of the input to convert (a split conversion's segment);
    /// `None`: all of it.
    #[serde(default)]
    pub segment: Option<crate::transcoder::pipeline::Segment>,
    pub limits: Limits,
    /// How the child confines itself before it touches the media; set by
    /// the sandbox, not by whoever asks for the conversion.
    #[serde(default)]
    pub confine: Confine,
    /// Failure injection for tests (`transcoder.inject_child_*`).
    pub fault: Option<Fault>,
}

/// The confinement a child applies to itself once it has its request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Confine {
    /// Install the system-call filter (seccomp).
    pub seccomp: bool,
    /// Apply Landlock with this ABI version (0: not at all).
    pub landlock_abi: u32,
}

/// The limits the pipeline enforces itself (the rlimits are the kernel's).
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct Limits {
    pub stall_after: Duration,
    pub max_wall: Duration,
    pub max_input: Duration,
}

impl From<&Control> for Limits {
    fn from(control: &Control) -> Self {
        Self {
            stall_after: control.stall_after,
            max_wall: control.max_wall,
            max_input: control.max_input,
        }
    }
}

impl Limits {
    /// The pipeline's control for these limits, with its own stop switch.
    pub fn control(&self) -> Control {
        Control {
            cancel: Arc::new(AtomicBool::new(false)),
            stall_after: self.stall_after,
            max_wall: self.max_wall,
            max_input: self.max_input,
            ..Control::default()
        }
    }
}

/// A failure the child brings about on purpose, to test the node's side.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Fault {
    /// Dies by SIGSEGV, as a memory-safety bug in a demuxer would.
    Segfault,
    /// Allocates without bound until its address-space limit stops it.
    Runaway,
    /// Tries what a taken-over decoder would (a socket, a new process, a
    /// signal to its parent) and aborts if any of it works.
    Escape,
}

/// What the child says.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "report", rename_all = "snake_case")]
pub enum Report {
    /// Started, with GStreamer loaded: waiting for its request.
    Ready,
    Progress {
        progress: Progress,
    },
    Done {
        summary: Box<Summary>,
        /// The child's peak resident memory, KiB.
        #[serde(default)]
        peak_rss_kib: u64,
    },
    /// The answer to a `Task::Join`.
    Joined {
        joined: Joined,
        #[serde(default)]
        peak_rss_kib: u64,
    },
    /// A conversion asked with `split` whose audio is long enough to be
    /// split: nothing converted; the audio's shape, for the node to plan.
    Long {
        shape: AudioShape,
        #[serde(default)]
        peak_rss_kib: u64,
    },
    Failed {
        error: TranscodeError,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_round_trip() {
        for report in [
            Report::Ready,
            Report::Progress {
                progress: Progress {
                    position: Duration::from_millis(1500),
                    duration: Some(Duration::from_secs(10)),
                },
            },
            Report::Failed {
                error: TranscodeError::NoSuchTrack { asked: 2, found: 1 },
            },
        ] {
            let line = serde_json::to_string(&report).unwrap();
            assert!(!line.contains('\n'));
            let back: Report = serde_json::from_str(&line).unwrap();
            assert_eq!(format!("{back:?}"), format!("{report:?}"));
        }
    }
}

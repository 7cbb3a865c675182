//! The job: its states and its record, whichever backend keeps it.
//!
//! The audio file id is chosen at upload time and travels in the job's
//! message, so every attempt of a job writes to the same file id: a retry
//! replaces, it never adds a second file.

use serde::{Deserialize, Serialize};

use super::events::JobEvent;
use super::ids::{FileId, JobId};
use super::loudness::{LoudnessReport, ReplayGainReport};
use super::messages::VideoMessage;
use super::owner::Owner;
use super::segment::Segments;
use super::time::Timestamp;
use super::webhook::Callback;
use crate::output::ResolvedOutput;

/// Where a job is in its life. Transitions only go forward:
/// `queued → converting → done | failed`, `converting → queued` when an
/// attempt is handed back for a retry, `failed → queued` when its owner asks
/// for a retry (`retries` + 1), and any state `→ deleted` when its owner
/// deletes it. `deleted` is a tombstone: its files are gone, the API no
/// longer shows it, and a message still queued for it is simply acked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    Queued,
    Converting,
    Done,
    Failed,
    Deleted,
}

impl JobState {
    /// The states the API shows (a deleted job is a tombstone).
    pub const LIVE: [JobState; 4] = [
        JobState::Queued,
        JobState::Converting,
        JobState::Done,
        JobState::Failed,
    ];

    /// Every state, tombstone included (what a store may hold).
    pub const ALL: [JobState; 5] = [
        JobState::Queued,
        JobState::Converting,
        JobState::Done,
        JobState::Failed,
        JobState::Deleted,
    ];

    /// Queued or converting: what counts toward a user's active jobs.
    pub const ACTIVE: [JobState; 2] = [JobState::Queued, JobState::Converting];

    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Converting => "converting",
            JobState::Done => "done",
            JobState::Failed => "failed",
            JobState::Deleted => "deleted",
        }
    }

    /// A state the API shows, by name (`deleted` is not one).
    pub fn parse(name: &str) -> Option<Self> {
        Self::LIVE.into_iter().find(|s| s.as_str() == name)
    }

    /// Any stored state by name, tombstone included (for stores).
    pub fn from_stored(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == name)
    }

    pub fn is_final(self) -> bool {
        matches!(self, JobState::Done | JobState::Failed | JobState::Deleted)
    }
}

/// A number that only grows over a job's life, whatever node reports it:
/// the id of its server-sent events, so a client resuming with
/// `Last-Event-ID` is sent only what is newer than what it saw. Ordered by
/// owner retries, then attempt (a requeued job counts toward its next
/// attempt), then stage, then tenths of a percent.
pub fn event_sequence(retries: u32, attempts: u32, state: JobState, progress: Option<f64>) -> u64 {
    let (slot, stage) = match state {
        JobState::Queued => (attempts.saturating_add(1), 0),
        JobState::Converting => (attempts, 1),
        JobState::Done | JobState::Failed => (attempts, 2),
        JobState::Deleted => return u64::MAX,
    };
    let permille = progress.map_or(0, |p| (p.clamp(0.0, 100.0) * 10.0).round() as u64);
    u64::from(retries.min(1_000_000)) * 1_000_000_000_000
        + u64::from(slot.min(1_000_000)) * 100_000
        + stage * 10_000
        + permille
}

/// A node's claim on sending a job's mail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailClaim {
    pub node: String,
    pub until: Timestamp,
}

/// The audio a done job made: its size and length, and its loudness when
/// it was normalised.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AudioSummary {
    /// Size of the audio file.
    pub bytes: u64,
    /// Length of the audio, milliseconds.
    pub duration_ms: u64,
    /// What normalising measured and did (jobs with `loudness` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loudness: Option<LoudnessReport>,
    /// The ReplayGain tags written (jobs with `replaygain` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replaygain: Option<ReplayGainReport>,
}

/// A job record, one per accepted upload.
#[derive(Debug, Clone, PartialEq)]
pub struct JobRecord {
    pub id: JobId,
    /// The owner's user id (hex): who may see, retry and delete the job.
    pub owner: Owner,
    /// The owner's e-mail when the job was made: where its mail goes, and
    /// the `username` of its queue messages (the reference's field).
    pub username: String,
    pub filename: String,
    pub video_fid: FileId,
    pub mp3_fid: FileId,
    pub state: JobState,
    pub error: Option<String>,
    pub attempts: u32,
    /// Times the owner asked for a failed job to be tried again.
    pub retries: u32,
    /// What the audio is to be (resolved: a lossy format has its bitrate).
    pub output: ResolvedOutput,
    /// Percent of the input converted by the current attempt.
    pub progress: Option<f64>,
    pub node: Option<String>,
    /// Set once the final-state `mp3` message is confirmed by the queue; a
    /// redelivered job that is final but not notified re-publishes it.
    pub notified: bool,
    /// Set by the notifier once the owner's mail was accepted by SMTP.
    pub mailed: bool,
    /// The node sending the owner's mail right now, and until when its
    /// claim holds (renewed while SMTP runs): another node that gets the
    /// same `mp3` message meanwhile waits instead of sending it again.
    pub mail_claim: Option<MailClaim>,
    /// What the audio turned out to be (set when the job is done).
    pub audio: Option<AudioSummary>,
    /// The job's own webhook, if a `callback_url` was given at upload.
    pub callback: Option<Callback>,
    /// Until when the converting attempt owns the job; it renews the lease
    /// while it works, so an expired lease means the attempt is gone. A
    /// split job has none while its segments convert (each has its own);
    /// the attempt joining them takes one again.
    pub lease_until: Option<Timestamp>,
    /// A split job's segments: how many, how many done (`None`: converted
    /// in one pass, or not yet planned).
    pub segments: Option<Segments>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

impl JobRecord {
    pub fn new(
        owner: Owner,
        username: &str,
        filename: &str,
        video_fid: FileId,
        output: ResolvedOutput,
    ) -> Self {
        let now = Timestamp::now();
        Self {
            id: JobId::new(),
            owner,
            username: username.to_owned(),
            filename: filename.to_owned(),
            video_fid,
            mp3_fid: FileId::new(),
            state: JobState::Queued,
            error: None,
            attempts: 0,
            retries: 0,
            output,
            progress: None,
            node: None,
            notified: false,
            mailed: false,
            mail_claim: None,
            audio: None,
            callback: None,
            lease_until: None,
            segments: None,
            created_at: now,
            updated_at: now,
        }
    }

    /// This record as an event (what a watcher is sent first).
    pub fn event(&self, node: &str) -> JobEvent {
        JobEvent {
            job_id: self.id,
            owner: self.owner.clone(),
            state: self.state,
            progress: match self.state {
                JobState::Converting => self.progress.or(Some(0.0)),
                JobState::Done => Some(100.0),
                _ => None,
            },
            attempts: self.attempts,
            retries: self.retries,
            error: self
                .error
                .clone()
                .filter(|_| self.state == JobState::Failed),
            node: node.to_owned(),
        }
    }

    /// The event announcing this job's deletion (by its owner or by age).
    pub fn deleted_event(&self, node: &str) -> JobEvent {
        JobEvent {
            state: JobState::Deleted,
            progress: None,
            error: None,
            ..self.event(node)
        }
    }

    pub fn video_message(&self) -> VideoMessage {
        VideoMessage {
            job_id: self.id,
            video_fid: self.video_fid,
            mp3_fid: self.mp3_fid,
            username: self.username.clone(),
            user_id: Some(self.owner.clone()),
            segment: None,
        }
    }

    /// The message of this job's segment `index` (queue `video`, as the
    /// job's own message).
    pub fn segment_message(&self, index: u32) -> VideoMessage {
        VideoMessage {
            segment: Some(index),
            ..self.video_message()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_sequence_only_grows_over_a_life() {
        use JobState::*;
        let life = [
            (0, 0, Queued, None),
            (0, 1, Converting, Some(0.0)),
            (0, 1, Converting, Some(42.5)),
            (0, 1, Queued, None), // attempt handed back
            (0, 2, Converting, Some(10.0)),
            (0, 2, Failed, None),
            (1, 0, Queued, None), // owner retried
            (1, 1, Converting, Some(99.9)),
            (1, 1, Done, Some(100.0)),
            (1, 1, Deleted, None),
        ];
        let seqs: Vec<u64> = life
            .iter()
            .map(|&(r, a, s, p)| event_sequence(r, a, s, p))
            .collect();
        assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
    }

    #[test]
    fn final_states() {
        assert!(JobState::Done.is_final() && JobState::Failed.is_final());
        assert!(!JobState::Queued.is_final() && !JobState::Converting.is_final());
        for state in JobState::ALL {
            assert_eq!(JobState::from_stored(state.as_str()), Some(state));
        }
        assert_eq!(JobState::parse("deleted"), None);
    }
}

//! The job: its record in MongoDB and the messages that carry it through
//! RabbitMQ.
//!
//! The wire messages keep the reference system's field names (`video_fid`,
//! `mp3_fid`, `username`) so its tools can read our queues; we only add
//! fields. The audio file id is chosen at upload time and travels in the
//! message, so every attempt of a job writes to the same GridFS id: a retry
//! replaces, it never adds a second file.

use mongodb::bson::{DateTime, oid::ObjectId};
use serde::{Deserialize, Serialize};

use crate::output::OutputOptions;

/// Where a job is in its life. Transitions only go forward:
/// `queued → converting → done | failed`, `converting → queued` when an
/// attempt is handed back for a retry, `failed → queued` when its owner asks
/// for a retry (`retries` + 1), and any state `→ deleted` when its owner
/// deletes it. `deleted` is a tombstone: its files are gone, the API no
/// longer shows it, and a message still queued for it is simply acked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
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

    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Converting => "converting",
            JobState::Done => "done",
            JobState::Failed => "failed",
            JobState::Deleted => "deleted",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::LIVE.into_iter().find(|s| s.as_str() == name)
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

/// A job record, one per accepted upload (collection `jobs`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JobRecord {
    #[serde(rename = "_id")]
    pub id: ObjectId,
    pub owner: String,
    pub filename: String,
    pub video_fid: ObjectId,
    pub mp3_fid: ObjectId,
    pub state: JobState,
    #[serde(default)]
    pub error: Option<String>,
    #[serde(default)]
    pub attempts: u32,
    /// Times the owner asked for a failed job to be tried again.
    #[serde(default)]
    pub retries: u32,
    /// What the audio is to be (resolved: a lossy format has its bitrate).
    /// Records from before options existed read as the MP3 default.
    #[serde(default)]
    pub output: OutputOptions,
    /// Percent of the input converted by the current attempt.
    #[serde(default)]
    pub progress: Option<f64>,
    #[serde(default)]
    pub node: Option<String>,
    /// Set once the final-state `mp3` message is confirmed by the broker; a
    /// redelivered job that is final but not notified re-publishes it.
    #[serde(default)]
    pub notified: bool,
    /// Set by the notifier once the owner's mail was accepted by SMTP.
    #[serde(default)]
    pub mailed: bool,
    /// Until when the converting attempt owns the job; it renews the lease
    /// while it works, so an expired lease means the attempt is gone.
    #[serde(default)]
    pub lease_until: Option<DateTime>,
    pub created_at: DateTime,
    pub updated_at: DateTime,
}

impl JobRecord {
    pub fn new(owner: &str, filename: &str, video_fid: ObjectId, output: OutputOptions) -> Self {
        let now = DateTime::now();
        Self {
            id: ObjectId::new(),
            owner: owner.to_owned(),
            filename: filename.to_owned(),
            video_fid,
            mp3_fid: ObjectId::new(),
            state: JobState::Queued,
            error: None,
            attempts: 0,
            retries: 0,
            output,
            progress: None,
            node: None,
            notified: false,
            mailed: false,
            lease_until: None,
            created_at: now,
            updated_at: now,
        }
    }

    /// This record as an event (what a watcher is sent first).
    pub fn event(&self, node: &str) -> JobEvent {
        JobEvent {
            job_id: self.id.to_hex(),
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
            job_id: self.id.to_hex(),
            video_fid: self.video_fid.to_hex(),
            mp3_fid: self.mp3_fid.to_hex(),
            username: self.owner.clone(),
        }
    }
}

/// Published to the `video` queue for every accepted upload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VideoMessage {
    pub job_id: String,
    pub video_fid: String,
    pub mp3_fid: String,
    pub username: String,
}

/// Published to the events exchange when a job changes state or makes
/// progress; best effort (a missed event is superseded by the next one and
/// the job record stays the truth).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobEvent {
    pub job_id: String,
    pub owner: String,
    pub state: JobState,
    /// Percent converted, while converting and when done.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<f64>,
    /// The attempt and the owner's retries the event belongs to (they
    /// order events, see [`event_sequence`]).
    #[serde(default)]
    pub attempts: u32,
    #[serde(default)]
    pub retries: u32,
    /// Why the job failed, on `failed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub node: String,
}

impl JobEvent {
    pub fn sequence(&self) -> u64 {
        event_sequence(self.retries, self.attempts, self.state, self.progress)
    }
}

/// Published to the `mp3` queue when a job reaches a final state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mp3Message {
    pub job_id: String,
    pub video_fid: String,
    pub mp3_fid: String,
    pub username: String,
    pub filename: String,
    /// `done` or `failed`.
    pub state: JobState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Mp3Message {
    pub fn for_job(job: &JobRecord) -> Self {
        Self {
            job_id: job.id.to_hex(),
            video_fid: job.video_fid.to_hex(),
            mp3_fid: job.mp3_fid.to_hex(),
            username: job.owner.clone(),
            filename: job.filename.clone(),
            state: job.state,
            error: job.error.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn video_message_keeps_reference_field_names() {
        let job = JobRecord::new(
            "a@example.com",
            "clip.mp4",
            ObjectId::new(),
            OutputOptions::default(),
        );
        let json: serde_json::Value = serde_json::to_value(job.video_message()).unwrap();
        for field in ["job_id", "video_fid", "mp3_fid", "username"] {
            assert!(json.get(field).is_some_and(|v| v.is_string()), "{field}");
        }
        assert_eq!(json["username"], "a@example.com");
        assert_eq!(json["mp3_fid"], job.mp3_fid.to_hex());
    }

    #[test]
    fn reference_style_video_message_decodes_only_with_job_id() {
        // The reference publishes mp3_fid: null and no job_id: we refuse it
        // rather than guess, so such a message is dead-lettered, not looped.
        let reference = r#"{"video_fid":"656f","mp3_fid":null,"username":"u"}"#;
        assert!(serde_json::from_str::<VideoMessage>(reference).is_err());
    }

    #[test]
    fn mp3_message_round_trips_and_omits_empty_error() {
        let mut job = JobRecord::new(
            "u@example.com",
            "a.mkv",
            ObjectId::new(),
            OutputOptions::default(),
        );
        job.state = JobState::Done;
        let text = serde_json::to_string(&Mp3Message::for_job(&job)).unwrap();
        assert!(!text.contains("error"));
        assert!(text.contains(r#""state":"done""#));
        let back: Mp3Message = serde_json::from_str(&text).unwrap();
        assert_eq!(back, Mp3Message::for_job(&job));
    }

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
    }
}

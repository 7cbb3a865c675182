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
/// `queued → converting → done | failed`, and `converting → queued` when an
/// attempt is handed back for a retry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    Queued,
    Converting,
    Done,
    Failed,
}

impl JobState {
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Converting => "converting",
            JobState::Done => "done",
            JobState::Failed => "failed",
        }
    }

    pub fn is_final(self) -> bool {
        matches!(self, JobState::Done | JobState::Failed)
    }
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
    pub node: String,
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
    fn final_states() {
        assert!(JobState::Done.is_final() && JobState::Failed.is_final());
        assert!(!JobState::Queued.is_final() && !JobState::Converting.is_final());
    }
}

//! The messages of the job queue. They keep the reference system's field
//! names (`video_fid`, `mp3_fid`, `username`) so its tools can read the
//! cluster's queues; we only add fields. Ids are parsed when a message is
//! read: a message whose ids are not ids is not a vidaud job.

use serde::{Deserialize, Serialize};

use super::ids::{FileId, JobId};
use super::job::{JobRecord, JobState};
use super::owner::Owner;

/// Queued for every accepted upload (queue `video`), and for each segment
/// of a split job (`segment`: its index).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VideoMessage {
    pub job_id: JobId,
    pub video_fid: FileId,
    pub mp3_fid: FileId,
    /// The owner's e-mail (the reference's field).
    pub username: String,
    /// The owner's user id (not in the reference's messages).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<Owner>,
    /// The segment of a split job this message is for; `None`: the job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub segment: Option<u32>,
}

/// Queued when a job reaches a final state (queue `mp3`), for the notifier.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mp3Message {
    pub job_id: JobId,
    pub video_fid: FileId,
    pub mp3_fid: FileId,
    /// The owner's e-mail: where the mail goes.
    pub username: String,
    /// The owner's user id (not in the reference's messages).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<Owner>,
    pub filename: String,
    /// `done` or `failed`.
    pub state: JobState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Mp3Message {
    pub fn for_job(job: &JobRecord) -> Self {
        Self {
            job_id: job.id,
            video_fid: job.video_fid,
            mp3_fid: job.mp3_fid,
            username: job.username.clone(),
            user_id: Some(job.owner.clone()),
            filename: job.filename.clone(),
            state: job.state,
            error: job.error.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{FileId, UserId};
    use crate::output::ResolvedOutput;

    fn job() -> JobRecord {
        JobRecord::new(
            Owner::User(UserId::parse("656f0a0b0c0d0e0f10111213").expect("id")),
            "a@example.com",
            "clip.mp4",
            FileId::new(),
            ResolvedOutput::default(),
        )
    }

    #[test]
    fn video_message_keeps_reference_field_names() {
        let job = job();
        let json: serde_json::Value = serde_json::to_value(job.video_message()).unwrap();
        for field in ["job_id", "video_fid", "mp3_fid", "username"] {
            assert!(json.get(field).is_some_and(|v| v.is_string()), "{field}");
        }
        assert_eq!(json["username"], "a@example.com");
        assert_eq!(json["mp3_fid"], job.mp3_fid.to_hex());
    }

    #[test]
    fn reference_style_or_malformed_messages_do_not_decode() {
        // The reference publishes mp3_fid: null and no job_id: we refuse it
        // rather than guess, so such a message is dead-lettered, not looped.
        let reference = r#"{"video_fid":"656f","mp3_fid":null,"username":"u"}"#;
        assert!(serde_json::from_str::<VideoMessage>(reference).is_err());
        let bad_ids = r#"{"job_id":"x","video_fid":"y","mp3_fid":"z","username":"u"}"#;
        assert!(serde_json::from_str::<VideoMessage>(bad_ids).is_err());
    }

    #[test]
    fn mp3_message_round_trips_and_omits_empty_error() {
        let mut job = job();
        job.state = JobState::Done;
        let text = serde_json::to_string(&Mp3Message::for_job(&job)).unwrap();
        assert!(!text.contains("error"));
        assert!(text.contains(r#""state":"done""#));
        let back: Mp3Message = serde_json::from_str(&text).unwrap();
        assert_eq!(back, Mp3Message::for_job(&job));
    }
}

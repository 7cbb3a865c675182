//! A job record as the `jobs` collection holds it: ObjectIds and BSON
//! dates, field names as they have always been (tests and operators read
//! them). Translated to and from the domain's [`JobRecord`] here only.

use mongodb::bson::{DateTime, oid::ObjectId};
use serde::{Deserialize, Serialize};

use super::{from_oid, oid};
use crate::domain::{
    AudioSummary, Callback, JobRecord, JobState, LoudnessReport, MailClaim, Owner,
    ReplayGainReport, Segments, Timestamp,
};
use crate::output::ResolvedOutput;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JobDoc {
    #[serde(rename = "_id")]
    pub id: ObjectId,
    /// The owner's user id (hex; an e-mail in records from before ids,
    /// until `carry_over` rewrites them).
    pub owner: Owner,
    /// The owner's e-mail when the job was made.
    #[serde(default)]
    pub username: String,
    pub filename: String,
    pub video_fid: ObjectId,
    pub mp3_fid: ObjectId,
    pub state: JobState,
    #[serde(default)]
    pub error: Option<String>,
    #[serde(default)]
    pub attempts: u32,
    #[serde(default)]
    pub retries: u32,
    /// Records from before options existed read as the MP3 default.
    #[serde(default)]
    pub output: ResolvedOutput,
    #[serde(default)]
    pub progress: Option<f64>,
    #[serde(default)]
    pub node: Option<String>,
    #[serde(default)]
    pub notified: bool,
    #[serde(default)]
    pub mailed: bool,
    #[serde(default)]
    pub lease_until: Option<DateTime>,
    /// The node sending the mail, and until when (see `claim_mail`).
    #[serde(default)]
    pub mail_node: Option<String>,
    #[serde(default)]
    pub mail_until: Option<DateTime>,
    #[serde(default)]
    pub audio: Option<AudioDoc>,
    /// The job's own webhook (`callback_url` at upload), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub callback: Option<CallbackDoc>,
    /// A split job's segments: how many, how many done.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub segments: Option<Segments>,
    pub created_at: DateTime,
    pub updated_at: DateTime,
}

/// What a done job's audio is (counts as BSON's signed 64-bit integers).
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct AudioDoc {
    pub bytes: i64,
    pub duration_ms: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loudness: Option<LoudnessReport>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replaygain: Option<ReplayGainReport>,
}

impl From<AudioSummary> for AudioDoc {
    fn from(audio: AudioSummary) -> Self {
        Self {
            bytes: i64::try_from(audio.bytes).unwrap_or(i64::MAX),
            duration_ms: i64::try_from(audio.duration_ms).unwrap_or(i64::MAX),
            loudness: audio.loudness,
            replaygain: audio.replaygain,
        }
    }
}

impl From<AudioDoc> for AudioSummary {
    fn from(audio: AudioDoc) -> Self {
        Self {
            bytes: u64::try_from(audio.bytes).unwrap_or(0),
            duration_ms: u64::try_from(audio.duration_ms).unwrap_or(0),
            loudness: audio.loudness,
            replaygain: audio.replaygain,
        }
    }
}

/// A job's callback: where, and the secret it is signed with.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CallbackDoc {
    pub url: String,
    pub secret: String,
}

impl From<&Callback> for CallbackDoc {
    fn from(c: &Callback) -> Self {
        Self {
            url: c.url.clone(),
            secret: c.secret.clone(),
        }
    }
}

impl From<CallbackDoc> for Callback {
    fn from(c: CallbackDoc) -> Self {
        Self {
            url: c.url,
            secret: c.secret,
        }
    }
}

pub fn date(time: Timestamp) -> DateTime {
    DateTime::from_millis(time.millis())
}

pub fn time(date: DateTime) -> Timestamp {
    Timestamp::from_millis(date.timestamp_millis())
}

impl From<&JobRecord> for JobDoc {
    fn from(job: &JobRecord) -> Self {
        Self {
            id: oid(job.id),
            owner: job.owner.clone(),
            username: job.username.clone(),
            filename: job.filename.clone(),
            video_fid: oid(job.video_fid),
            mp3_fid: oid(job.mp3_fid),
            state: job.state,
            error: job.error.clone(),
            attempts: job.attempts,
            retries: job.retries,
            output: job.output.clone(),
            progress: job.progress,
            node: job.node.clone(),
            notified: job.notified,
            mailed: job.mailed,
            lease_until: job.lease_until.map(date),
            mail_node: job.mail_claim.as_ref().map(|c| c.node.clone()),
            mail_until: job.mail_claim.as_ref().map(|c| date(c.until)),
            audio: job.audio.map(AudioDoc::from),
            callback: job.callback.as_ref().map(CallbackDoc::from),
            segments: job.segments,
            created_at: date(job.created_at),
            updated_at: date(job.updated_at),
        }
    }
}

impl From<JobDoc> for JobRecord {
    fn from(doc: JobDoc) -> Self {
        Self {
            id: from_oid(doc.id),
            owner: doc.owner,
            username: doc.username,
            filename: doc.filename,
            video_fid: from_oid(doc.video_fid),
            mp3_fid: from_oid(doc.mp3_fid),
            state: doc.state,
            error: doc.error,
            attempts: doc.attempts,
            retries: doc.retries,
            output: doc.output,
            progress: doc.progress,
            node: doc.node,
            notified: doc.notified,
            mailed: doc.mailed,
            lease_until: doc.lease_until.map(time),
            mail_claim: match (doc.mail_node, doc.mail_until) {
                (Some(node), Some(until)) => Some(MailClaim {
                    node,
                    until: time(until),
                }),
                _ => None,
            },
            audio: doc.audio.map(AudioSummary::from),
            callback: doc.callback.map(Callback::from),
            segments: doc.segments,
            created_at: time(doc.created_at),
            updated_at: time(doc.updated_at),
        }
    }
}

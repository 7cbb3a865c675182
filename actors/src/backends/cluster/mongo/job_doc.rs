//! A job record as the `jobs` collection holds it: ObjectIds and BSON
//! dates, field names as they have always been (tests and operators read
//! them). Translated to and from the domain's [`JobRecord`] here only.

use mongodb::bson::{DateTime, oid::ObjectId};
use serde::{Deserialize, Serialize};

use super::{from_oid, oid};
use crate::domain::{JobRecord, JobState, Timestamp};
use crate::output::OutputOptions;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JobDoc {
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
    #[serde(default)]
    pub retries: u32,
    /// Records from before options existed read as the MP3 default.
    #[serde(default)]
    pub output: OutputOptions,
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
    pub created_at: DateTime,
    pub updated_at: DateTime,
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
            created_at: time(doc.created_at),
            updated_at: time(doc.updated_at),
        }
    }
}

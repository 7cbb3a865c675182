//! A split job's segments: a long input converted in parts that any
//! worker on any node takes from the job queue, each with its own lease
//! and attempts, joined into the job's one audio file by the worker that
//! finds the last one done.
//!
//! What a segment converts (its input samples, which of its output
//! samples the join keeps) is the transcoder's business: a record carries
//! it as the transcoder wrote it (`work`, JSON text), and stores keep it
//! as they keep any text. The states and the lease are the domain's, as a
//! job's are.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::ids::{FileId, JobId};
use super::time::Timestamp;

/// How far a split job is: shown as `"segments"` on the job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Segments {
    /// How many segments the input was cut into.
    pub total: u32,
    /// How many of them are converted.
    pub done: u32,
}

/// Where a segment is in its life: `queued → converting → done | failed`,
/// `converting → queued` when an attempt is handed back. A failed segment
/// fails its job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SegmentState {
    Queued,
    Converting,
    Done,
    Failed,
}

impl SegmentState {
    pub const ALL: [SegmentState; 4] = [
        SegmentState::Queued,
        SegmentState::Converting,
        SegmentState::Done,
        SegmentState::Failed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            SegmentState::Queued => "queued",
            SegmentState::Converting => "converting",
            SegmentState::Done => "done",
            SegmentState::Failed => "failed",
        }
    }

    pub fn from_stored(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == name)
    }

    pub fn is_final(self) -> bool {
        matches!(self, SegmentState::Done | SegmentState::Failed)
    }
}

/// One segment of a split job.
#[derive(Debug, Clone, PartialEq)]
pub struct SegmentRecord {
    pub job_id: JobId,
    /// Its place in the job, from 0.
    pub index: u32,
    /// What it converts, as the transcoder wrote it (JSON).
    pub work: String,
    pub state: SegmentState,
    pub attempts: u32,
    /// The node of the attempt converting it, and until when its lease
    /// holds (renewed while it converts: a lapsed lease is a dead attempt).
    pub node: Option<String>,
    pub lease_until: Option<Timestamp>,
    /// Percent of the segment converted by the current attempt.
    pub progress: Option<f64>,
    /// The last attempt's error (a failed segment's reason).
    pub error: Option<String>,
}

impl SegmentRecord {
    pub fn new(job_id: JobId, index: u32, work: String) -> Self {
        Self {
            job_id,
            index,
            work,
            state: SegmentState::Queued,
            attempts: 0,
            node: None,
            lease_until: None,
            progress: None,
            error: None,
        }
    }
}

/// The id a segment's audio (and its waveform) is stored under: made from
/// the job's audio id and the segment's index, so every attempt of the
/// segment writes the same file and whoever deletes the job finds them
/// from its record alone. The first four bytes are the audio id's (its
/// minting time); the rest a digest, so two jobs' segments never meet.
pub fn segment_file(audio: FileId, index: u32) -> FileId {
    let mut digest = Sha256::new();
    digest.update(b"vidaud segment");
    digest.update(audio.bytes());
    digest.update(index.to_be_bytes());
    let digest = digest.finalize();
    let mut bytes = audio.bytes();
    bytes[4..].copy_from_slice(&digest[..8]);
    FileId::from_bytes(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segment_files_are_distinct_and_stable() {
        let audio = FileId::new();
        let ids: Vec<FileId> = (0..100).map(|i| segment_file(audio, i)).collect();
        let mut unique = ids.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), ids.len());
        assert_eq!(segment_file(audio, 7), ids[7]);
        assert_eq!(ids[0].minted(), audio.minted());
        assert_ne!(segment_file(FileId::new(), 0), ids[0]);
    }

    #[test]
    fn states_round_trip() {
        for state in SegmentState::ALL {
            assert_eq!(SegmentState::from_stored(state.as_str()), Some(state));
        }
        assert!(SegmentState::Done.is_final() && !SegmentState::Converting.is_final());
    }
}

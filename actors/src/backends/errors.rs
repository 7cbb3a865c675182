//! The errors a backend reports, in the domain's terms. A backend's own
//! error (MongoDB's, SQLite's, an AMQP channel's) is kept as the `source`,
//! never flattened into text, so logs show the whole chain.

/// A backend's own failure, boxed so no driver type leaks out.
pub type Cause = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Storing or reading jobs and files.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The backend is away or refused the operation (a retry may succeed).
    #[error("{backend} failed")]
    Backend {
        backend: &'static str,
        #[source]
        source: Cause,
    },
    #[error("file I/O while streaming")]
    Io(#[from] std::io::Error),
    #[error("upload is larger than the limit of {limit} bytes")]
    TooLarge { limit: u64 },
    #[error("the upload would exceed the owner's storage quota of {quota} bytes")]
    QuotaExceeded { quota: u64 },
    /// The file was deleted (or is not as its record says) since its
    /// record was read.
    #[error("file {id} is gone")]
    Gone { id: crate::domain::FileId },
    /// A resumable write holds fewer bytes than its record says were
    /// stored for good (its pieces were removed behind its back).
    #[error("the unfinished file {id} holds {stored} bytes where {offset} were stored")]
    Truncated {
        id: crate::domain::FileId,
        stored: u64,
        offset: u64,
    },
    /// The storage device is full: nothing was stored, what was is intact.
    #[error("the storage is full")]
    Full(#[source] std::io::Error),
}

impl StoreError {
    pub fn backend(backend: &'static str, source: impl Into<Cause>) -> Self {
        Self::Backend {
            backend,
            source: source.into(),
        }
    }
}

/// Publishing to or consuming from the job queue or the event bus.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("{backend} failed")]
    Backend {
        backend: &'static str,
        #[source]
        source: Cause,
    },
    #[error("the queue refused the message (nack)")]
    Nacked,
    #[error("encoding a message")]
    Encode(#[from] serde_json::Error),
}

impl QueueError {
    pub fn backend(backend: &'static str, source: impl Into<Cause>) -> Self {
        Self::Backend {
            backend,
            source: source.into(),
        }
    }
}

/// Reading or writing the user directory.
#[derive(Debug, thiserror::Error)]
pub enum UsersError {
    #[error("{backend} failed")]
    Backend {
        backend: &'static str,
        #[source]
        source: Cause,
    },
}

impl UsersError {
    pub fn backend(backend: &'static str, source: impl Into<Cause>) -> Self {
        Self::Backend {
            backend,
            source: source.into(),
        }
    }
}

/// The error and all its causes on one line, for logs and reasons that
/// leave the process as text (a job's error, a dead letter's header).
pub fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(inner) = cause {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        cause = inner.source();
    }
    text
}

//! The application layer: what may be done with jobs, each rule in one
//! place with one failure policy, whatever the entry point (a multipart
//! upload, a tus upload, a retry, the retention sweep). Routes parse and
//! render; they ask here.
//!
//! - [`access`]: who may see and change what (the one ownership rule).
//! - [`admission`]: the room a new or retried job needs (the owner's
//!   active-job limit and storage quota), reserved so that concurrent
//!   requests of one user, on one node or several, never together go over.
//! - [`submit`]: an uploaded video becomes a job: recorded and queued,
//!   or nothing is kept (multipart), or completed exactly once however
//!   often it is asked (tus).
//! - [`retry`](retry()): a failed job queued again, admitted as an upload is.
//! - [`delete`](delete()): a job deleted by its owner or by age.
//! - [`limits_of`]: the limits that bind a job's owner.
//!
//! Architecture Invariant: this module knows no HTTP: its errors are the
//! domain's, and the routes turn them into problem documents. Routes never
//! move a job or reserve room themselves.

pub mod access;
pub mod admission;
mod delete;
mod owners;
mod retry;
pub mod submit;

pub use access::Viewer;
pub use delete::delete;
pub use owners::limits_of;
pub use retry::{RetryError, retry};

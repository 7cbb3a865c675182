//! The application layer: what may be done with jobs, each rule in one
//! place with one failure policy, whatever the entry point (a multipart
//! upload, a tus upload, a retry). Routes parse and render; they ask here.
//!
//! - [`admission`]: the room a new or retried job needs (the owner's
//!   active-job limit and storage quota), reserved so that concurrent
//!   requests of one user, on one node or several, never together go over.
//!
//! Architecture Invariant: this module knows no HTTP: its errors are the
//! domain's, and the routes turn them into problem documents.

pub mod admission;

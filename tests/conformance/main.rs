//! The backend conformance suite: the rules every implementation of the
//! backend traits keeps (`JobStore`, `JobQueue`, `BlobStore`,
//! `UploadStore`, `ReservationStore`, `SegmentStore`, `UserDirectory`), written once and run
//! against the embedded and the cluster backend directly — no daemon, no
//! HTTP, seconds a test. A change to one backend that breaks a rule fails
//! here, named by the rule.
//!
//! Each rule is a `conformance!` test: `rule::embedded` and `rule::cluster`
//! run the same body on [`harness::Stores`] of that backend (the cluster on
//! the suite's RabbitMQ, MariaDB and SecantusDB, on names of its own).

#[path = "../common/mod.rs"]
mod common;
mod harness;

mod blobs;
mod jobs;
mod queue;
mod reservations;
mod segments;
mod uploads;
mod users;

/// `conformance!(rule, |stores: Stores| async move { .. })`: the rule on
/// both backends.
#[macro_export]
macro_rules! conformance {
    ($name:ident, $body:expr) => {
        $crate::both_backends!($name, |backend| async move {
            ($body)($crate::harness::Stores::open(backend).await).await
        });
    };
}

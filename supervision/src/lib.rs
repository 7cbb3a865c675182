//! The supervisor tree of a vidaud node.
//!
//! ```text
//! RootSupervisor
//! ├── auth        (users of the user directory, token issue)
//! ├── notifier    (consumes the finished-jobs queue `mp3`, sends e-mail)
//! ├── transcoder  (pool actor) ── worker 0..N   (the pool supervises its workers)
//! ├── bridge      (consumes the job queue `video`, feeds the pool)
//! ├── retention   (the retention sweep)
//! └── http        (the API; uses auth)
//! ```
//!
//! Every child gets a clone of the node's `Backends` (built first, from
//! `[backend] kind`): the tree is the same on both backends.
//!
//! Children start in that order, each only after the ones it depends on.
//! When a child fails it is restarted together with the children that hold
//! a reference to it (see [`Child::dependents`]); more than
//! `max_restarts` restarts within `restart_window` escalate: the root stops
//! and the process exits non-zero, so systemd restarts it whole.

mod children;
mod control;
mod policy;
mod root;

pub use children::Child;
pub use control::{Command, MAX_WORKERS};
pub use policy::RestartIntensity;
pub use root::{RootArgs, RootMsg, RootSupervisor, Shutdown};

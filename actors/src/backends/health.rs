//! The health of a node's backends, as a list of named checks each backend
//! supplies ("mongodb", "rabbitmq", "mysql" for the cluster; "sqlite" and
//! "data_dir" for the embedded one), checked the same way for `GET /ready`,
//! the admin socket's `status` and the `dependency_up` gauges. Each check
//! is bounded in time, so a dependency that hangs reads as down.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

/// What a part of the node needs a check's dependency for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    Jobs,
    Files,
    Queue,
    Users,
}

#[async_trait]
pub trait Check: Send + Sync {
    /// As shown in `/ready` and the `dependency` label.
    fn name(&self) -> &'static str;
    /// The parts of the node that cannot work while this is down.
    fn serves(&self) -> &'static [Part];
    async fn up(&self) -> bool;
}

const CHECK: Duration = Duration::from_secs(2);

/// One round of every check.
#[derive(Debug, Clone)]
pub struct Health {
    results: Vec<(&'static str, &'static [Part], bool)>,
}

impl Health {
    /// Runs all checks at once, each bounded to two seconds.
    pub async fn check(checks: &[Arc<dyn Check>]) -> Self {
        let rounds = checks.iter().map(|check| async move {
            let up = matches!(tokio::time::timeout(CHECK, check.up()).await, Ok(true));
            (check.name(), check.serves(), up)
        });
        Self {
            results: futures::future::join_all(rounds).await,
        }
    }

    pub fn all_up(&self) -> bool {
        self.results.iter().all(|(_, _, up)| *up)
    }

    /// Every check's name and whether it is up.
    pub fn each(&self) -> impl Iterator<Item = (&'static str, bool)> + '_ {
        self.results.iter().map(|(name, _, up)| (*name, *up))
    }

    /// Whether every dependency `part` needs is up.
    pub fn serves(&self, part: Part) -> bool {
        self.results
            .iter()
            .filter(|(_, parts, _)| parts.contains(&part))
            .all(|(_, _, up)| *up)
    }

    /// `{"mongodb": "up"|"down", ...}`.
    pub fn to_json(&self) -> serde_json::Value {
        let word = |up: bool| if up { "up" } else { "down" };
        self.each()
            .map(|(name, up)| (name.to_owned(), word(up).into()))
            .collect::<serde_json::Map<_, _>>()
            .into()
    }
}

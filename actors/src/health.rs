//! The health of the node's dependencies, checked the same way for
//! `GET /ready` and the admin socket's `status`: each check is bounded in
//! time, so a dependency that hangs reads as down rather than stalling.

use std::time::Duration;

use ractor::ActorRef;
use ractor::rpc::CallResult;
use serde::Serialize;

use crate::auth::AuthMsg;
use crate::queue::Broker;
use crate::store::Store;

const CHECK: Duration = Duration::from_secs(2);

#[derive(Debug, Clone, Copy, Serialize)]
pub struct Dependencies {
    pub mongodb: bool,
    pub rabbitmq: bool,
    pub mysql: bool,
}

impl Dependencies {
    /// Checks all three at once.
    pub async fn check(store: &Store, broker: &Broker, auth: Option<&ActorRef<AuthMsg>>) -> Self {
        let mongodb =
            async { matches!(tokio::time::timeout(CHECK, store.ping()).await, Ok(Ok(()))) };
        let rabbitmq =
            async { matches!(tokio::time::timeout(CHECK, broker.check()).await, Ok(true)) };
        let mysql = async {
            let Some(auth) = auth else { return false };
            let ping = auth
                .call(|reply| AuthMsg::Ping { reply }, Some(CHECK))
                .await;
            matches!(ping, Ok(CallResult::Success(true)))
        };
        let (mongodb, rabbitmq, mysql) = tokio::join!(mongodb, rabbitmq, mysql);
        Self {
            mongodb,
            rabbitmq,
            mysql,
        }
    }

    pub fn all_up(&self) -> bool {
        self.mongodb && self.rabbitmq && self.mysql
    }

    /// `{"mongodb": "up"|"down", ...}`.
    pub fn to_json(self) -> serde_json::Value {
        let word = |up: bool| if up { "up" } else { "down" };
        serde_json::json!({
            "mongodb": word(self.mongodb),
            "rabbitmq": word(self.rabbitmq),
            "mysql": word(self.mysql),
        })
    }
}

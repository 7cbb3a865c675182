//! Webhooks: job events delivered to the endpoints users register, signed
//! per Standard Webhooks (sign.rs), at least once, durable across restarts
//! and nodes, one at a time per endpoint.
//!
//! - intake.rs: the one way in — the notifier and the HTTP front announce
//!   a job's event; it becomes a stored delivery per endpoint.
//! - this file: the dispatcher actor, a child of the root. It looks for
//!   due deliveries when woken (a local announcement) and every second
//!   (another node's, a retry's time), locks each due target, sends that
//!   target's deliveries oldest first, records every attempt, and unlocks.
//! - send.rs: one attempt (reqwest; redirects not followed; bounded).
//! - guard.rs: which destinations may be reached (SSRF), checked after DNS.
//!
//! A delivery that fails waits `webhooks.retry_schedule_secs[n]` before
//! attempt n + 2; after the schedule it has failed, and can be re-sent.
//!
//! Architecture Invariant: the dispatcher reaches storage only through
//! [`WebhookStore`]; nothing outside this folder sends a webhook.

mod guard;
mod intake;
mod send;
pub mod sign;

pub use guard::{Cidr, Guard, REFUSED, Refused};
pub use intake::{Front, Intake};
pub use send::{Sender, SenderError};

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ractor::{Actor, ActorProcessingErr, ActorRef};
use tokio::sync::{Notify, Semaphore};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::backends::{StoreError, WebhookStore, chain};
use crate::domain::{DeliveryState, Timestamp};
use crate::metrics::{Metrics, ResultLabels};
use crate::settings::WebhookSettings;

/// How often the store is asked for due deliveries without a wake-up.
const POLL: Duration = Duration::from_secs(1);

pub struct DispatcherArgs {
    pub intake: Intake,
    pub settings: WebhookSettings,
    pub metrics: Arc<Metrics>,
    pub node_id: String,
}

pub struct DispatcherState {
    stop: CancellationToken,
    task: JoinHandle<()>,
}

pub struct Dispatcher;

impl Actor for Dispatcher {
    type Msg = ();
    type State = DispatcherState;
    type Arguments = DispatcherArgs;

    async fn pre_start(
        &self,
        _myself: ActorRef<()>,
        args: DispatcherArgs,
    ) -> Result<DispatcherState, ActorProcessingErr> {
        let sender = Sender::new(&args.settings)?;
        let work = Arc::new(Work {
            store: args.intake.store(),
            sender,
            lease: Duration::from_secs(args.settings.timeout_secs.max(1) * 2 + 5),
            schedule: args
                .settings
                .retry_schedule_secs
                .iter()
                .map(|s| Duration::from_secs(*s))
                .collect(),
            metrics: args.metrics,
            node_id: args.node_id,
            busy: Mutex::new(HashSet::new()),
        });
        let stop = CancellationToken::new();
        let permits = Arc::new(Semaphore::new(args.settings.concurrency.max(1) as usize));
        info!(
            retries = work.schedule.len(),
            "webhook dispatcher delivering job events"
        );
        let task = tokio::spawn(dispatch(work, args.intake.wake(), permits, stop.clone()));
        Ok(DispatcherState { stop, task })
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<()>,
        state: &mut DispatcherState,
    ) -> Result<(), ActorProcessingErr> {
        // An attempt cut short is recorded by nobody: its target's lock
        // runs out and the delivery is tried again (at least once).
        state.stop.cancel();
        if tokio::time::timeout(Duration::from_secs(5), &mut state.task)
            .await
            .is_err()
        {
            state.task.abort();
        }
        Ok(())
    }
}

/// What every delivery task needs.
struct Work {
    store: Arc<dyn WebhookStore>,
    sender: Sender,
    /// How long a target's lock lasts unrenewed: longer than an attempt
    /// (twice the timeout, and 5 s).
    lease: Duration,
    schedule: Vec<Duration>,
    metrics: Arc<Metrics>,
    node_id: String,
    /// Targets this node is delivering to right now.
    busy: Mutex<HashSet<String>>,
}

async fn dispatch(
    work: Arc<Work>,
    wake: Arc<Notify>,
    permits: Arc<Semaphore>,
    stop: CancellationToken,
) {
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = wake.notified() => {}
            _ = tokio::time::sleep(POLL) => {}
        }
        let due = match work.store.due_targets(Timestamp::now(), 64).await {
            Ok(due) => due,
            Err(e) => {
                debug!("cannot look for due webhooks: {}", chain(&e));
                continue;
            }
        };
        for target in due {
            let Ok(permit) = permits.clone().try_acquire_owned() else {
                break;
            };
            if !work.busy_insert(&target) {
                continue;
            }
            let work = work.clone();
            let stop = stop.clone();
            tokio::spawn(async move {
                let _permit = permit;
                if let Err(e) = deliver_target(&work, &target, &stop).await {
                    warn!(%target, "webhook deliveries interrupted: {}", chain(&e));
                }
                work.busy_remove(&target);
            });
        }
    }
}

impl Work {
    fn busy_insert(&self, target: &str) -> bool {
        self.busy
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(target.to_owned())
    }

    fn busy_remove(&self, target: &str) {
        self.busy
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(target);
    }

    fn count(&self, result: &'static str) {
        self.metrics
            .webhooks
            .get_or_create(&ResultLabels { result })
            .inc();
    }
}

/// Locks `target` and sends its due deliveries one at a time, oldest
/// first, until none is due (or the node stops).
async fn deliver_target(
    work: &Work,
    target: &str,
    stop: &CancellationToken,
) -> Result<(), StoreError> {
    let node = &work.node_id;
    if !work
        .store
        .lock_target(target, node, Timestamp::now(), work.lease)
        .await?
    {
        return Ok(()); // another node is delivering to it
    }
    let delivered = async {
        while !stop.is_cancelled() {
            let Some(mut delivery) = work.store.next_due(target, Timestamp::now()).await? else {
                break;
            };
            // An endpoint removed after this was queued (an announcement
            // racing the removal, a crash between the two writes) gets
            // nothing more.
            if let Some(endpoint) = delivery.endpoint
                && work.store.endpoint(endpoint).await?.is_none()
            {
                delivery.state = DeliveryState::Failed;
                delivery.next_at = None;
                work.store.update(&delivery).await?;
                continue;
            }
            let tried = tokio::select! {
                tried = work.sender.attempt(&delivery) => tried,
                _ = stop.cancelled() => break,
            };
            work.metrics
                .webhook_duration
                .observe(tried.attempt.latency_ms as f64 / 1000.0);
            let next_pause = work.schedule.get(delivery.attempts as usize).copied();
            let error = tried.attempt.error.clone();
            delivery.after(tried.attempt, next_pause);
            work.count(match (tried.refused, delivery.state) {
                (true, _) => "refused",
                (_, DeliveryState::Delivered) => "delivered",
                (_, DeliveryState::Pending) => "retry",
                (_, DeliveryState::Failed) => "gave_up",
            });
            match (&delivery.state, error) {
                (DeliveryState::Failed, Some(error)) => warn!(
                    delivery = %delivery.id, url = %delivery.url,
                    "webhook failed for good after {} attempts: {error}", delivery.attempts
                ),
                (_, Some(error)) => info!(
                    delivery = %delivery.id, url = %delivery.url, attempt = delivery.attempts,
                    "webhook attempt failed, will retry: {error}"
                ),
                _ => {}
            }
            work.store.update(&delivery).await?;
            // Still ours for the next one.
            work.store
                .lock_target(target, node, Timestamp::now(), work.lease)
                .await?;
        }
        Ok(())
    }
    .await;
    if let Err(e) = work.store.unlock_target(target, node).await {
        debug!(%target, "webhook target not unlocked (its lease runs out): {}", chain(&e));
    }
    delivered
}

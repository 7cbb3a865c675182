//! The root supervisor: connects the backends the configuration chooses,
//! starts the children in order, restarts them by policy, and stops them in
//! reverse order.

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use ractor::{Actor, ActorCell, ActorId, ActorProcessingErr, ActorRef, SupervisionEvent};
use tracing::{error, info, warn};
use vidaud_actors::Settings;
use vidaud_actors::auth::{LinkKeys, TokenKeys};
use vidaud_actors::backends::{Backends, Part, chain};
use vidaud_actors::mailbox::Mailboxes;
use vidaud_actors::metrics::{Metrics, QueueLabels, StateLabels};
use vidaud_actors::settings::MailboxSettings;
use vidaud_actors::transcoder::{BridgeMsg, PoolMsg};

use crate::children::{self, Child, NodeContext, Running};
use crate::control::{Command, MAX_WORKERS};
use crate::policy::RestartIntensity;

/// How the root ended, for the process's exit code.
#[derive(Default)]
pub struct Shutdown {
    escalated: OnceLock<String>,
}

impl Shutdown {
    /// Why the tree gave up, if it did.
    pub fn escalated(&self) -> Option<&str> {
        self.escalated.get().map(String::as_str)
    }
}

pub struct RootArgs {
    pub settings: Settings,
    pub node_id: String,
    pub keys: Arc<TokenKeys>,
    /// Signs and verifies download links (mail, `POST /jobs/{id}/link`).
    pub links: Arc<LinkKeys>,
    pub metrics: Arc<Metrics>,
    pub shutdown: Arc<Shutdown>,
}

pub enum RootMsg {
    /// Try again to start a child whose restart failed.
    Retry(Child),
    /// An operator command (admin socket); answers with a JSON object.
    Control {
        command: Command,
        reply: ractor::RpcReplyPort<serde_json::Value>,
    },
    /// New mailbox capacities (SIGHUP); answers when they are in force.
    SetMailboxes {
        capacities: MailboxSettings,
        reply: ractor::RpcReplyPort<()>,
    },
    /// Time to refresh the sampled metrics (pool, dependencies, jobs, queues).
    Sample,
}

pub struct RootState {
    /// A metrics sample is being taken (they never overlap).
    sampling: Arc<AtomicBool>,
    started: Instant,
    /// Failures per child since start (the admin socket shows them).
    restarts: BTreeMap<Child, u64>,
    /// Consecutive failed starts per child, for the retry backoff.
    retries: BTreeMap<Child, u32>,
    ctx: NodeContext,
    running: Running,
    cells: BTreeMap<Child, ActorCell>,
    /// Children we are stopping on purpose; their exit is not a failure.
    stopping: HashSet<ActorId>,
    intensity: RestartIntensity,
    shutdown: Arc<Shutdown>,
}

pub struct RootSupervisor;

const MAX_RESTARTS: usize = 10;
const RESTART_WINDOW: Duration = Duration::from_secs(60);
const CHILD_STOP_TIMEOUT: Duration = Duration::from_secs(30);

impl RootSupervisor {
    async fn restart(&self, myself: &ActorRef<RootMsg>, child: Child, state: &mut RootState) {
        for dependent in child.dependents() {
            if let Some(cell) = state.cells.remove(dependent) {
                state.stopping.insert(cell.get_id());
                let _ = cell.stop_and_wait(None, Some(CHILD_STOP_TIMEOUT)).await;
            }
        }
        let mut group = vec![child];
        group.extend_from_slice(child.dependents());
        group.sort();
        for member in group {
            match children::start(member, &state.ctx, &mut state.running, myself.get_cell()).await {
                Ok(Some(cell)) => {
                    info!(child = member.name(), "restarted");
                    state.retries.remove(&member);
                    state.cells.insert(member, cell);
                }
                Ok(None) => {}
                Err(e) => {
                    // Usually a dependency that is away (RabbitMQ restarting):
                    // retry with capped backoff for as long as it takes. Only
                    // failures of running children count toward escalation.
                    let tries = state.retries.entry(member).or_insert(0);
                    *tries += 1;
                    let delay =
                        Duration::from_millis(250 << (*tries).min(7)).min(Duration::from_secs(30));
                    warn!(
                        child = member.name(),
                        "restart failed: {e}; retrying in {delay:?}"
                    );
                    myself.send_after(delay, move || RootMsg::Retry(member));
                    // Dependents of a child that is not up are started with it.
                    return;
                }
            }
        }
    }
}

impl Actor for RootSupervisor {
    type Msg = RootMsg;
    type State = RootState;
    type Arguments = RootArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<RootMsg>,
        args: RootArgs,
    ) -> Result<RootState, ActorProcessingErr> {
        let settings = args.settings;
        let backends = Backends::connect(&settings, &args.node_id).await?;
        info!(backend = backends.kind, "backends connected");
        let mailboxes = Mailboxes::new(&settings.mailboxes, &args.metrics);
        let intake = vidaud_actors::webhooks::Intake::new(
            backends.webhooks.clone(),
            args.links.clone(),
            &settings.http.public_url,
            settings.webhooks.enabled,
        );
        let ctx = NodeContext {
            intake,
            mailboxes,
            settings,
            draining: false,
            node_id: args.node_id,
            keys: args.keys,
            links: args.links,
            metrics: args.metrics,
            standings: Arc::new(vidaud_actors::auth::Standings::new(backends.users.clone())),
            backends,
        };
        let mut running = Running::default();
        let mut cells = BTreeMap::new();
        for child in Child::START_ORDER {
            let cell = children::start(child, &ctx, &mut running, myself.get_cell())
                .await
                .map_err(|e| format!("starting {}: {}", child.name(), chain(e.as_ref())))?;
            if let Some(cell) = cell {
                info!(child = child.name(), "started");
                cells.insert(child, cell);
            }
        }
        myself.send_interval(SAMPLE_EVERY, || RootMsg::Sample);
        Ok(RootState {
            sampling: Arc::new(AtomicBool::new(false)),
            started: Instant::now(),
            restarts: BTreeMap::new(),
            retries: BTreeMap::new(),
            ctx,
            running,
            cells,
            stopping: HashSet::new(),
            intensity: RestartIntensity::new(MAX_RESTARTS, RESTART_WINDOW),
            shutdown: args.shutdown,
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<RootMsg>,
        msg: RootMsg,
        state: &mut RootState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            RootMsg::Retry(child) => {
                if !state.cells.contains_key(&child) {
                    self.restart(&myself, child, state).await;
                }
            }
            RootMsg::Control { command, reply } => {
                let answer = self.control(command, state).await;
                let _ = reply.send(answer);
            }
            RootMsg::SetMailboxes { capacities, reply } => {
                self.set_mailboxes(&myself, capacities, state).await;
                let _ = reply.send(());
            }
            RootMsg::Sample => sample(state),
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<RootMsg>,
        event: SupervisionEvent,
        state: &mut RootState,
    ) -> Result<(), ActorProcessingErr> {
        let (cell, reason) = match event {
            SupervisionEvent::ActorFailed(cell, err) => (cell, err.to_string()),
            SupervisionEvent::ActorTerminated(cell, _, reason) => {
                (cell, reason.unwrap_or_else(|| "stopped".into()))
            }
            _ => return Ok(()),
        };
        if state.stopping.remove(&cell.get_id()) {
            return Ok(());
        }
        let Some(child) = state
            .cells
            .iter()
            .find(|(_, c)| c.get_id() == cell.get_id())
            .map(|(child, _)| *child)
        else {
            return Ok(());
        };
        state.cells.remove(&child);
        *state.restarts.entry(child).or_insert(0) += 1;
        state.ctx.metrics.restarted(child.name());
        error!(child = child.name(), %reason, "child failed");
        if !state.intensity.allow(Instant::now()) {
            return self.escalate(
                &myself,
                state,
                format!("restart intensity exceeded ({MAX_RESTARTS} in {RESTART_WINDOW:?}); last: {} failed: {reason}", child.name()),
            );
        }
        self.restart(&myself, child, state).await;
        Ok(())
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<RootMsg>,
        state: &mut RootState,
    ) -> Result<(), ActorProcessingErr> {
        // Reverse start order: the HTTP front stops taking requests first,
        // the bridge stops taking deliveries before the pool stops.
        for child in Child::START_ORDER.iter().rev() {
            if let Some(cell) = state.cells.remove(child) {
                state.stopping.insert(cell.get_id());
                let timeout = match child {
                    // The pool waits for the conversions in progress.
                    Child::Transcoder => {
                        let grace = state.ctx.settings.transcoder.shutdown_grace_secs;
                        Duration::from_secs(grace) + CHILD_STOP_TIMEOUT
                    }
                    _ => CHILD_STOP_TIMEOUT,
                };
                if cell.stop_and_wait(None, Some(timeout)).await.is_err() {
                    warn!(child = child.name(), "did not stop in time");
                }
            }
        }
        Ok(())
    }
}

impl RootSupervisor {
    fn escalate(
        &self,
        myself: &ActorRef<RootMsg>,
        state: &mut RootState,
        reason: String,
    ) -> Result<(), ActorProcessingErr> {
        error!("{reason}; stopping the node");
        let _ = state.shutdown.escalated.set(reason.clone());
        myself.stop(Some(reason));
        Ok(())
    }
}

/// Asks a child and waits briefly; `None` when it is not there or slow.
async fn ask<M: ractor::Message, T: Send + 'static>(
    actor: Option<&ActorRef<M>>,
    message: impl FnOnce(ractor::RpcReplyPort<T>) -> M,
) -> Option<T> {
    let call = actor?.call(message, Some(ASK_TIMEOUT)).await;
    match call {
        Ok(ractor::rpc::CallResult::Success(value)) => Some(value),
        _ => None,
    }
}

const ASK_TIMEOUT: Duration = Duration::from_secs(5);

/// How often the sampled metrics are refreshed.
const SAMPLE_EVERY: Duration = Duration::from_secs(5);

/// Refreshes the metrics that are read rather than counted: the pool's
/// size and load, dependency health, jobs by state and queue depths. Runs in
/// a task of its own, so a slow dependency never stalls supervision.
fn sample(state: &RootState) {
    if state.sampling.swap(true, Ordering::SeqCst) {
        return;
    }
    let sampling = state.sampling.clone();
    let ctx = &state.ctx;
    let (backends, metrics) = (ctx.backends.clone(), ctx.metrics.clone());
    let pool = state.running.pool.clone();
    metrics.draining.set(i64::from(ctx.draining));
    tokio::spawn(async move {
        if let Some(p) = ask(pool.as_ref(), |reply| PoolMsg::Status { reply }).await {
            metrics.workers.set(p.size as i64);
            metrics.workers_busy.set(p.busy as i64);
            metrics.unacked.set((p.busy + p.waiting) as i64);
        }
        let deps = backends.health().await;
        for (name, up) in deps.each() {
            metrics.dependency(name, up);
        }
        if deps.serves(Part::Jobs)
            && let Ok(counts) = backends.jobs.count_by_state().await
        {
            for (state, count) in counts {
                let labels = StateLabels {
                    state: state.as_str(),
                };
                metrics
                    .jobs_by_state
                    .get_or_create(&labels)
                    .set(count as i64);
            }
        }
        if deps.serves(Part::Queue)
            && let Ok(depths) = backends.queue.depths().await
        {
            for (queue, count) in depths {
                let labels = QueueLabels { queue };
                metrics
                    .queue_messages
                    .get_or_create(&labels)
                    .set(i64::try_from(count).unwrap_or(i64::MAX));
            }
        }
        sampling.store(false, Ordering::SeqCst);
    });
}

/// The bridge's prefetch follows the pool size and the pool's mailbox.
async fn follow_prefetch(state: &RootState) {
    let prefetch = children::prefetch(&state.ctx.settings);
    let set = ask(state.running.bridge.as_ref(), |reply| {
        BridgeMsg::SetPrefetch(prefetch, reply)
    })
    .await;
    if let Some(Err(e)) = set {
        warn!("prefetch not changed: {e}");
    }
}

fn failure(message: impl std::fmt::Display) -> serde_json::Value {
    serde_json::json!({ "ok": false, "error": message.to_string() })
}

impl RootSupervisor {
    async fn control(&self, command: Command, state: &mut RootState) -> serde_json::Value {
        match command {
            Command::Status => {}
            Command::Resize { workers } => {
                if workers == 0 || workers > MAX_WORKERS {
                    return failure(format!("workers must be between 1 and {MAX_WORKERS}"));
                }
                let resized = ask(state.running.pool.as_ref(), |reply| PoolMsg::Resize {
                    workers,
                    reply,
                })
                .await;
                if resized.is_none() {
                    return failure("the transcoder pool is not running; try again");
                }
                state.ctx.settings.transcoder.workers = workers;
                follow_prefetch(state).await;
            }
            Command::Drain => {
                state.ctx.draining = true;
                let _ = ask(state.running.bridge.as_ref(), BridgeMsg::Drain).await;
            }
            Command::Resume => {
                state.ctx.draining = false;
                let resumed = ask(state.running.bridge.as_ref(), BridgeMsg::Resume).await;
                if let Some(Err(e)) = resumed {
                    return failure(format!("cannot consume again: {e}"));
                }
            }
        }
        self.status(state).await
    }

    async fn set_mailboxes(
        &self,
        myself: &ActorRef<RootMsg>,
        capacities: MailboxSettings,
        state: &mut RootState,
    ) {
        let old = std::mem::replace(&mut state.ctx.settings.mailboxes, capacities);
        let new = &state.ctx.settings.mailboxes;
        state.ctx.mailboxes.set_capacities(new);
        if new.transcoder != old.transcoder {
            follow_prefetch(state).await;
        }
        if new.notifier != old.notifier {
            // The mp3 prefetch is fixed per consumer: a new notifier takes
            // over once the old one has finished the mails in hand.
            if let Some(cell) = state.cells.remove(&Child::Notifier) {
                state.stopping.insert(cell.get_id());
                let _ = cell.stop_and_wait(None, Some(CHILD_STOP_TIMEOUT)).await;
            }
            self.restart(myself, Child::Notifier, state).await;
        }
    }

    async fn status(&self, state: &RootState) -> serde_json::Value {
        let ctx = &state.ctx;
        let pool = ask(state.running.pool.as_ref(), |reply| PoolMsg::Status {
            reply,
        })
        .await;
        let queue = ask(state.running.bridge.as_ref(), BridgeMsg::Status).await;
        let deps = ctx.backends.health().await;
        let restarts: BTreeMap<&str, u64> = Child::START_ORDER
            .iter()
            .map(|c| (c.name(), state.restarts.get(c).copied().unwrap_or(0)))
            .collect();
        serde_json::json!({
            "ok": true,
            "version": env!("CARGO_PKG_VERSION"),
            "node": ctx.node_id,
            "backend": ctx.backends.kind,
            "uptime_secs": state.started.elapsed().as_secs(),
            "draining": ctx.draining,
            "pool": pool,
            "unacked": pool.as_ref().map(|p| p.busy + p.waiting),
            "queue": queue,
            "mailboxes": ctx.mailboxes.status(),
            "restarts": restarts,
            "dependencies": deps.to_json(),
        })
    }
}

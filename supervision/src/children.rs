//! The children of the root supervisor: how each is started and which
//! others hold a reference to it.

use std::sync::Arc;
use std::sync::atomic::AtomicU32;

use ractor::{Actor, ActorCell, ActorProcessingErr, ActorRef};
use std::time::Duration;

use vidaud_actors::auth::{AuthActor, AuthArgs, AuthMsg, LinkKeys, Standings, TokenKeys};
use vidaud_actors::backends::Backends;
use vidaud_actors::background::{Background, Loop};
use vidaud_actors::http::{AppState, HttpFront};
use vidaud_actors::mailbox::Mailboxes;
use vidaud_actors::metrics::Metrics;
use vidaud_actors::notifier::{MailError, Mailer, Notifier, NotifierArgs};
use vidaud_actors::retention::SweepPlan;
use vidaud_actors::transcoder::{
    BridgeArgs, BridgeMsg, PoolArgs, PoolMsg, QueueBridge, TranscoderPool,
};
use vidaud_actors::webhooks::{Dispatcher, DispatcherArgs, Intake};
use vidaud_actors::{Settings, transcoder};

/// Start order is declaration order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Child {
    Auth,
    Revocations,
    Webhooks,
    Notifier,
    Transcoder,
    Bridge,
    Retention,
    Eraser,
    Http,
}

impl Child {
    pub const START_ORDER: [Child; 9] = [
        Child::Auth,
        Child::Revocations,
        Child::Webhooks,
        Child::Notifier,
        Child::Transcoder,
        Child::Bridge,
        Child::Retention,
        Child::Eraser,
        Child::Http,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Child::Auth => "auth",
            Child::Revocations => "revocations",
            Child::Webhooks => "webhooks",
            Child::Notifier => "notifier",
            Child::Transcoder => "transcoder",
            Child::Bridge => "bridge",
            Child::Retention => "retention",
            Child::Eraser => "eraser",
            Child::Http => "http",
        }
    }

    /// Children holding an `ActorRef` to this one: they restart with it.
    pub fn dependents(self) -> &'static [Child] {
        match self {
            Child::Auth => &[Child::Http],
            Child::Transcoder => &[Child::Bridge],
            Child::Revocations
            | Child::Webhooks
            | Child::Notifier
            | Child::Bridge
            | Child::Retention
            | Child::Eraser
            | Child::Http => &[],
        }
    }
}

/// What the children are built from; made once by the root.
pub struct NodeContext {
    /// Live settings: a pool resize updates `transcoder.workers` here, so a
    /// restarted child starts with the size in force.
    pub settings: Settings,
    /// Whether the node is drained (takes no new jobs); survives restarts.
    pub draining: bool,
    pub node_id: String,
    pub keys: Arc<TokenKeys>,
    pub links: Arc<LinkKeys>,
    pub metrics: Arc<Metrics>,
    /// Outlive the children: a restarted actor inherits its mailbox.
    pub mailboxes: Mailboxes,
    pub backends: Backends,
    /// What the node knows of its users' tokens (revoked, disabled, ended
    /// sessions): kept current by the `revocations` child, read by the
    /// HTTP front, and what the `eraser` learns deleted accounts from.
    pub standings: Arc<Standings>,
    /// Where job events become webhook deliveries (notifier, HTTP front),
    /// and what wakes the dispatcher.
    pub intake: Intake,
}

/// References the dependents need, filled as children start.
#[derive(Default)]
pub struct Running {
    pub auth: Option<ActorRef<AuthMsg>>,
    pub pool: Option<ActorRef<PoolMsg>>,
    pub bridge: Option<ActorRef<BridgeMsg>>,
}

/// Where mails go without an SMTP server: `notifier.maildir`, else the
/// data directory's `maildir`.
/// How conversions are confined (`None`: in the node, for debugging),
/// with what the kernel offers reported in the log.
fn sandbox(settings: &vidaud_actors::settings::TranscoderSettings) -> Option<transcoder::Sandbox> {
    if !settings.isolate {
        tracing::warn!("transcoder.isolate is off: uploads are decoded inside the node");
        return None;
    }
    let kernel = transcoder::isolation::kernel::Support::probe();
    let sandbox = transcoder::Sandbox::from_settings(settings, kernel);
    let no_seccomp = settings.child_seccomp && !sandbox.seccomp;
    let no_landlock = settings.child_landlock && sandbox.landlock_abi == 0;
    if no_seccomp || no_landlock {
        let missing = match (no_seccomp, no_landlock) {
            (true, true) => "without a system-call filter or file-system confinement",
            (true, false) => "without a system-call filter",
            _ => "without file-system confinement (Landlock)",
        };
        tracing::warn!("conversion children: {kernel}; they run {missing}");
    } else {
        tracing::info!(
            seccomp = sandbox.seccomp,
            landlock_abi = sandbox.landlock_abi,
            "conversion children in a sandbox: {kernel}"
        );
    }
    Some(sandbox)
}

/// The notifier's mailer, when mails are on (the notifier's, and the
/// HTTP front's for account-deletion confirmations).
fn mailer(settings: &Settings, ctx: &NodeContext) -> Result<Option<Mailer>, MailError> {
    if !settings.notifier.enabled {
        return Ok(None);
    }
    Mailer::new(
        &settings.notifier,
        &settings.http.public_url,
        ctx.links.clone(),
        maildir(settings),
    )
    .map(Some)
}

fn maildir(settings: &Settings) -> std::path::PathBuf {
    match settings.notifier.maildir.trim() {
        "" => std::path::Path::new(&settings.backend.data_dir).join("maildir"),
        dir => dir.into(),
    }
}

/// The bridge's prefetch for the pool size in force.
pub fn prefetch(settings: &Settings) -> u16 {
    let prefetch = settings.transcoder.workers.max(1) + settings.mailboxes.transcoder.max(1);
    u16::try_from(prefetch).unwrap_or(u16::MAX)
}

pub async fn start(
    child: Child,
    ctx: &NodeContext,
    running: &mut Running,
    supervisor: ActorCell,
) -> Result<Option<ActorCell>, ActorProcessingErr> {
    let s = &ctx.settings;
    let name = Some(format!("{}-{}", child.name(), ctx.node_id));
    let cell = match child {
        Child::Auth => {
            let args = AuthArgs {
                users: ctx.backends.users.clone(),
                keys: ctx.keys.clone(),
                cost: vidaud_actors::auth::HashCost {
                    memory_kib: s.auth.argon2_memory_kib,
                    iterations: s.auth.argon2_iterations,
                },
            };
            let (actor, _) = Actor::spawn_linked(name, AuthActor, args, supervisor).await?;
            running.auth = Some(actor.clone());
            actor.get_cell()
        }
        Child::Webhooks => {
            if !s.webhooks.enabled {
                return Ok(None);
            }
            let args = DispatcherArgs {
                intake: ctx.intake.clone(),
                settings: s.webhooks.clone(),
                metrics: ctx.metrics.clone(),
                node_id: ctx.node_id.clone(),
            };
            Actor::spawn_linked(name, Dispatcher, args, supervisor)
                .await?
                .0
                .get_cell()
        }
        Child::Notifier => {
            if !s.notifier.enabled && !s.webhooks.enabled {
                return Ok(None);
            }
            let args = NotifierArgs {
                backends: ctx.backends.clone(),
                mailer: mailer(s, ctx)?,
                intake: s.webhooks.enabled.then(|| ctx.intake.clone()),
                metrics: ctx.metrics.clone(),
                mailbox: ctx.mailboxes.notifier.clone(),
                node_id: ctx.node_id.clone(),
            };
            Actor::spawn_linked(name, Notifier, args, supervisor)
                .await?
                .0
                .get_cell()
        }
        Child::Transcoder => {
            let args = PoolArgs {
                workers: s.transcoder.workers,
                context: Arc::new(transcoder::WorkerContext {
                    backends: ctx.backends.clone(),
                    node_id: ctx.node_id.clone(),
                    settings: s.transcoder.clone(),
                    metrics: ctx.metrics.clone(),
                    panics_left: AtomicU32::new(s.transcoder.inject_panics),
                    sandbox: sandbox(&s.transcoder),
                    child_crashes_left: AtomicU32::new(s.transcoder.inject_child_crashes),
                    child_runaways_left: AtomicU32::new(s.transcoder.inject_child_runaway),
                    child_escapes_left: AtomicU32::new(s.transcoder.inject_child_escapes),
                    quota_bytes_per_user: s.storage.quota_bytes_per_user,
                }),
            };
            let (actor, _) = Actor::spawn_linked(name, TranscoderPool, args, supervisor).await?;
            running.pool = Some(actor.clone());
            actor.get_cell()
        }
        Child::Bridge => {
            let pool = running
                .pool
                .clone()
                .ok_or("the bridge needs the transcoder pool")?;
            let args = BridgeArgs {
                backends: ctx.backends.clone(),
                pool,
                mailbox: ctx.mailboxes.transcoder.clone(),
                prefetch: prefetch(s),
                node_id: ctx.node_id.clone(),
                draining: ctx.draining,
            };
            let (actor, _) = Actor::spawn_linked(name, QueueBridge, args, supervisor).await?;
            running.bridge = Some(actor.clone());
            actor.get_cell()
        }
        Child::Revocations => {
            let run = vidaud_actors::auth::refresh_revocations(ctx.standings.clone());
            background(name, Loop::new("revocation refresh", run), supervisor).await?
        }
        Child::Retention => {
            let plan = SweepPlan {
                keep: (s.storage.retention_days > 0)
                    .then(|| Duration::from_secs(s.storage.retention_days * 86_400)),
                upload_grace: s.upload_grace(),
                keep_deliveries: (s.webhooks.keep_deliveries_days > 0)
                    .then(|| Duration::from_secs(s.webhooks.keep_deliveries_days * 86_400)),
                every: Duration::from_secs(s.storage.sweep_every_secs),
            };
            let run = vidaud_actors::retention::run_sweeper(
                ctx.backends.clone(),
                ctx.intake.clone(),
                ctx.node_id.clone(),
                plan,
            );
            background(name, Loop::new("retention sweep", run), supervisor).await?
        }
        Child::Eraser => {
            let run = vidaud_actors::erasure::erase_deleted_accounts(
                ctx.backends.clone(),
                ctx.standings.clone(),
                ctx.node_id.clone(),
            );
            background(name, Loop::new("eraser", run), supervisor).await?
        }
        Child::Http => {
            let state = AppState {
                auth: running
                    .auth
                    .clone()
                    .ok_or("the HTTP front needs the auth actor")?,
                keys: ctx.keys.clone(),
                links: ctx.links.clone(),
                backends: ctx.backends.clone(),
                metrics: ctx.metrics.clone(),
                settings: s.http.clone(),
                output_defaults: s.transcoder.output_defaults(),
                mailboxes: ctx.mailboxes.clone(),
                node_id: ctx.node_id.clone(),
                limits: vidaud_actors::http::AuthLimits::new(&s.auth),
                registration_open: s.auth.registration_open,
                closing: Default::default(),
                storage: s.storage.clone(),
                webhooks: vidaud_actors::webhooks::Front::new(ctx.intake.clone(), &s.webhooks)?,
                standings: ctx.standings.clone(),
                mailer: mailer(s, ctx)?,
            };
            Actor::spawn_linked(name, HttpFront, state, supervisor)
                .await?
                .0
                .get_cell()
        }
    };
    Ok(Some(cell))
}

/// Starts a background loop as a child of `supervisor`.
async fn background(
    name: Option<String>,
    run: Loop,
    supervisor: ActorCell,
) -> Result<ActorCell, ActorProcessingErr> {
    Ok(Actor::spawn_linked(name, Background, run, supervisor)
        .await?
        .0
        .get_cell())
}

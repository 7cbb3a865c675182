//! The HTTP front actor: the reference-compatible API over hyper (axum).
//!
//! The actor owns the listening socket and the server task; stopping the
//! actor stops accepting and lets requests in flight finish. Handlers reach
//! the other parts of the node through [`AppState`]: the auth actor for
//! login/register, the shared token keys for in-process verification, and
//! the backends for jobs, files, the job queue and job events.

mod body;
mod client_addr;
mod cors;
mod error;
mod extract;
mod limits;
mod linger;
pub mod openapi;
mod routes;
mod server;
mod small_body;
mod web;

pub use client_addr::ClientAddr;
pub use error::ApiError;
pub use limits::AuthLimits;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{delete, get, post, put};
use ractor::{Actor, ActorProcessingErr, ActorRef};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, info, info_span};

use crate::auth::{AuthMsg, LinkKeys, TokenKeys};
use crate::backends::Backends;
use crate::mailbox::Mailboxes;
use crate::metrics::{HttpLabels, Metrics, RouteLabels};
use crate::settings::{HttpSettings, StorageSettings};

#[derive(Clone)]
pub struct AppState {
    pub auth: ActorRef<AuthMsg>,
    pub keys: Arc<TokenKeys>,
    pub links: Arc<LinkKeys>,
    pub backends: Backends,
    pub metrics: Arc<Metrics>,
    pub settings: HttpSettings,
    /// What the node decides for options a job leaves out.
    pub output_defaults: crate::output::OutputDefaults,
    /// Uploads (`http`) and auth requests (`auth`) take a ticket first; a
    /// full mailbox is a 503 with Retry-After.
    pub mailboxes: Mailboxes,
    pub node_id: String,
    /// Login/register rate limits.
    pub limits: AuthLimits,
    /// Whether `POST /register` is open to anyone.
    pub registration_open: bool,
    /// Cancelled when the node stops: long-lived responses end.
    pub closing: CancellationToken,
    /// Per-user quotas and retention.
    pub storage: StorageSettings,
    /// Endpoints, deliveries, and `job.deleted` announcements.
    pub webhooks: crate::webhooks::Front,
    /// Each user's token generation: revoked tokens are refused.
    pub standings: Arc<crate::auth::Standings>,
    /// Sends the confirmation of an account's deletion (`None`: mails off).
    pub mailer: Option<crate::notifier::Mailer>,
}

impl AppState {
    /// The rules a new or retried job is admitted by (`jobs::admission`).
    pub fn admission_rules(&self) -> crate::jobs::admission::Rules<'_> {
        crate::jobs::admission::Rules {
            storage: &self.storage,
            http: &self.settings,
        }
    }
}

pub fn router(state: AppState) -> Router {
    // Every route but the uploads reads its (small) body whole first,
    // under a deadline and a size cap; the uploads stream theirs.
    let bounded = Router::new()
        .route("/register", post(routes::account::register))
        .route("/login", post(routes::account::login))
        .route("/validate", post(routes::account::validate))
        .route("/me", get(routes::me::me).delete(routes::me::delete_me))
        .route("/me/password", post(routes::me::change_password))
        .route("/me/logout-all", post(routes::me::logout_all))
        .route("/users", get(routes::me::list_users))
        .route("/users/{email}/disable", post(routes::me::disable))
        .route("/users/{email}/enable", post(routes::me::enable))
        .route("/users/{email}", delete(routes::me::delete_user))
        .route("/users/{email}/limits", put(routes::me::set_limits))
        .route("/jobs", get(routes::jobs::list_jobs))
        .route(
            "/jobs/{id}",
            get(routes::jobs::get_job).delete(routes::jobs::delete_job),
        )
        .route("/jobs/{id}/retry", post(routes::jobs::retry_job))
        .route("/jobs/{id}/link", post(routes::links::create_link))
        .route("/jobs/{id}/audio", get(routes::files::job_audio))
        .route("/jobs/{id}/waveform", get(routes::files::job_waveform))
        .route("/jobs/{id}/events", get(routes::events::job_events))
        .route(
            "/jobs/{id}/deliveries",
            get(routes::webhooks::job_deliveries),
        )
        .route(
            "/jobs/{id}/deliveries/{delivery_id}/resend",
            post(routes::webhooks::job_resend),
        )
        .route("/events", get(routes::events::all_events))
        .route("/options", get(routes::options::catalogue))
        .route(
            "/webhooks",
            get(routes::webhooks::list).post(routes::webhooks::create),
        )
        .route(
            "/webhooks/{id}",
            get(routes::webhooks::show).delete(routes::webhooks::delete),
        )
        .route(
            "/webhooks/{id}/deliveries",
            get(routes::webhooks::deliveries),
        )
        .route(
            "/webhooks/{id}/deliveries/{delivery_id}/resend",
            post(routes::webhooks::resend),
        )
        .route("/download", get(routes::files::download))
        .route("/health", get(routes::ops::health))
        .route("/ready", get(routes::ops::ready))
        .route("/metrics", get(routes::ops::metrics))
        .merge(web::router())
        .merge(openapi::docs_router())
        .route_layer(middleware::from_fn_with_state(
            small_body::BodyBounds::new(&state.settings),
            small_body::bounded,
        ));
    bounded
        .route("/upload", post(routes::upload::upload))
        .merge(routes::tus::router())
        .fallback(error::no_route)
        .layer(middleware::from_fn_with_state(
            state.closing.clone(),
            linger::linger,
        ))
        .layer(middleware::from_fn(error::problems_only))
        .layer(middleware::from_fn_with_state(state.clone(), observe))
        .layer(middleware::from_fn_with_state(
            cors::Policy::new(&state.settings.cors_origins),
            cors::cross_origin,
        ))
        .with_state(state)
}

/// A span per request, and the reference's request metrics labelled with
/// the route template (never the raw URL, which carries ids).
async fn observe(
    State(app): State<AppState>,
    client: ClientAddr,
    request: Request,
    next: Next,
) -> Response {
    let method = request.method().as_str().to_owned();
    let path = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let span = info_span!("request", %method, %path, client = %client.0);
    let started = Instant::now();
    let response = next.run(request).instrument(span).await;
    let status = response.status().as_u16();
    app.metrics
        .http_requests
        .get_or_create(&HttpLabels {
            method: method.clone(),
            path: path.clone(),
            status,
        })
        .inc();
    app.metrics
        .http_duration
        .get_or_create(&RouteLabels { method, path })
        .observe(started.elapsed().as_secs_f64());
    response
}

pub struct HttpFront;

pub struct HttpState {
    closing: CancellationToken,
    server: JoinHandle<()>,
    metrics_server: Option<JoinHandle<()>>,
}

/// How long requests in flight may take to finish when the node stops.
const DRAIN: Duration = Duration::from_secs(10);

impl Actor for HttpFront {
    type Msg = ();
    type State = HttpState;
    type Arguments = AppState;

    async fn pre_start(
        &self,
        _myself: ActorRef<()>,
        state: AppState,
    ) -> Result<HttpState, ActorProcessingErr> {
        let listener = tokio::net::TcpListener::bind(&state.settings.listen)
            .await
            .map_err(|e| format!("cannot listen on {}: {e}", state.settings.listen))?;
        info!(listen = %listener.local_addr()?, "HTTP front listening");
        let metrics_server = match state.settings.metrics_listen.trim() {
            "" => None,
            address => {
                let listener = tokio::net::TcpListener::bind(address)
                    .await
                    .map_err(|e| format!("cannot listen on {address} (metrics): {e}"))?;
                info!(listen = %listener.local_addr()?, "metrics listening");
                let app = Router::new()
                    .route("/metrics", get(routes::ops::metrics))
                    .with_state(state.clone());
                let (settings, closing) = (state.settings.clone(), state.closing.clone());
                let peers = server::Peers::new(&settings)?;
                Some(tokio::spawn(async move {
                    server::serve(listener, app, &settings, peers, closing, DRAIN).await;
                }))
            }
        };
        let closing = state.closing.clone();
        let settings = state.settings.clone();
        let peers = server::Peers::new(&settings)?;
        let app = router(state);
        let server = {
            let closing = closing.clone();
            tokio::spawn(async move {
                server::serve(listener, app, &settings, peers, closing, DRAIN).await;
            })
        };
        Ok(HttpState {
            closing,
            server,
            metrics_server,
        })
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<()>,
        state: &mut HttpState,
    ) -> Result<(), ActorProcessingErr> {
        state.closing.cancel();
        let _ = tokio::time::timeout(DRAIN + Duration::from_secs(1), &mut state.server).await;
        if let Some(metrics) = state.metrics_server.as_mut() {
            let _ = tokio::time::timeout(Duration::from_secs(1), metrics).await;
        }
        Ok(())
    }
}

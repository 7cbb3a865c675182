//! Turning a job's end (or its deletion) into durable deliveries: one per
//! endpoint of the owner that wants the event. Called by the notifier (for
//! `job.done` and `job.failed`, before it acks the `mp3` message, so a
//! crash re-announces) and by the HTTP front (`job.deleted`). Announcing
//! twice is harmless: a delivery's id is its target and event.

use std::sync::Arc;

use serde_json::json;
use tokio::sync::Notify;

use super::guard::{CidrError, Guard};
use super::sign;
use crate::auth::LinkKeys;
use crate::backends::{StoreError, WebhookStore};
use crate::domain::{
    Callback, Delivery, DeliveryState, EndpointId, JobEventType, JobRecord, JobState, Owner,
    Timestamp,
};
use crate::settings::WebhookSettings;

/// What the HTTP front needs of webhooks: the intake, and the rules for
/// registering an endpoint.
#[derive(Clone)]
pub struct Front {
    pub intake: Intake,
    guard: Arc<Guard>,
    pub max_endpoints: u32,
}

impl Front {
    pub fn new(intake: Intake, settings: &WebhookSettings) -> Result<Self, CidrError> {
        Ok(Self {
            intake,
            guard: Arc::new(Guard::new(&settings.allowed_networks)?),
            max_endpoints: settings.max_endpoints_per_user,
        })
    }

    /// Why `url` cannot receive webhooks, if it cannot (a name is checked
    /// again, after DNS, at each attempt).
    pub fn check_url(&self, url: &str) -> Result<(), String> {
        if url.chars().count() > MAX_URL_CHARS {
            return Err(format!("longer than {MAX_URL_CHARS} characters"));
        }
        self.guard.check_url(url).map(|_| ())
    }

    /// A job's callback to `url` with a fresh secret, or why there cannot
    /// be one.
    pub fn callback(&self, url: &str) -> Result<Callback, String> {
        if !self.intake.enabled {
            return Err("webhooks are turned off on this server (webhooks.enabled)".into());
        }
        let url = url.trim();
        self.check_url(url)?;
        Ok(Callback {
            url: url.to_owned(),
            secret: sign::new_secret(),
        })
    }
}

/// The longest URL a webhook may have.
const MAX_URL_CHARS: usize = 2000;

/// The webhook component's one way in; cheap to clone.
#[derive(Clone)]
pub struct Intake {
    store: Arc<dyn WebhookStore>,
    links: Arc<LinkKeys>,
    public_url: String,
    /// Wakes this node's dispatcher, so a new delivery goes out at once.
    wake: Arc<Notify>,
    /// `webhooks.enabled`: when off, nothing is announced.
    enabled: bool,
}

impl Intake {
    pub fn new(
        store: Arc<dyn WebhookStore>,
        links: Arc<LinkKeys>,
        public_url: &str,
        enabled: bool,
    ) -> Self {
        Self {
            store,
            links,
            public_url: public_url.trim_end_matches('/').to_owned(),
            wake: Arc::new(Notify::new()),
            enabled,
        }
    }

    pub fn wake(&self) -> Arc<Notify> {
        self.wake.clone()
    }

    pub fn store(&self) -> Arc<dyn WebhookStore> {
        self.store.clone()
    }

    /// Queues `event` of `job` for every endpoint of its owner that wants
    /// it, and for the job's own callback; how many deliveries that makes.
    /// Removes what is queued or registered for `owner`, an erased account
    /// (an announcement that raced its erasure).
    pub async fn forget(&self, owner: &Owner) -> Result<u64, StoreError> {
        self.store.remove_owned(owner).await
    }

    pub async fn announce(
        &self,
        job: &JobRecord,
        event: JobEventType,
    ) -> Result<usize, StoreError> {
        if !self.enabled {
            return Ok(0);
        }
        let mut destinations: Vec<(String, Option<EndpointId>, String, String)> = self
            .store
            .endpoints(&job.owner)
            .await?
            .into_iter()
            .filter(|e| e.wants(event))
            .map(|e| (e.target(), Some(e.id), e.url, e.secret))
            .collect();
        if let Some(callback) = &job.callback {
            let target = Callback::target(job.id);
            destinations.push((target, None, callback.url.clone(), callback.secret.clone()));
        }
        if destinations.is_empty() {
            return Ok(0);
        }
        let now = Timestamp::now();
        let payload = self.payload(job, event, now);
        let event_key = format!("{}:{}:{}", event.as_str(), job.id, job.retries);
        for (target, endpoint, url, secret) in &destinations {
            self.store
                .enqueue(&Delivery {
                    id: Delivery::id_for(target, &event_key),
                    target: target.clone(),
                    endpoint: *endpoint,
                    owner: job.owner.clone(),
                    job_id: job.id,
                    url: url.clone(),
                    secret: secret.clone(),
                    event,
                    payload: payload.clone(),
                    state: DeliveryState::Pending,
                    attempts: 0,
                    next_at: Some(now),
                    created_at: now,
                    history: Vec::new(),
                })
                .await?;
        }
        self.wake.notify_one();
        Ok(destinations.len())
    }

    /// The JSON body: `{"type", "timestamp", "data"}`, as Standard Webhooks
    /// suggests; a done job's data has a signed download link.
    fn payload(&self, job: &JobRecord, event: JobEventType, now: Timestamp) -> String {
        let download_url =
            (job.state == JobState::Done && event == JobEventType::Done).then(|| {
                let exp = jsonwebtoken::get_current_timestamp() + self.links.ttl_secs;
                self.links.url(&self.public_url, &job.mp3_fid.to_hex(), exp)
            });
        json!({
            "type": event.as_str(),
            "timestamp": now.to_rfc3339(),
            "data": {
                "job_id": job.id.to_hex(),
                "owner": job.username,
                "owner_id": job.owner,
                "filename": job.filename,
                "state": match event {
                    JobEventType::Deleted => "deleted",
                    _ => job.state.as_str(),
                },
                "format": job.output.format.name(),
                "audio": job.audio.filter(|_| event == JobEventType::Done),
                "error": job.error.as_deref().filter(|_| event == JobEventType::Failed),
                "mp3_fid": (event == JobEventType::Done).then(|| job.mp3_fid.to_hex()),
                "download_url": download_url,
                "job_url": format!("{}/jobs/{}", self.public_url, job.id),
            },
        })
        .to_string()
    }
}

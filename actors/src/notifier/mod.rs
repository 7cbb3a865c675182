//! The notifier actor: consumes `mp3` and e-mails the job's owner, once.
//!
//! A message is acked only after the SMTP server accepted the mail (or the
//! mail can never be sent, e.g. the relay refuses it for good); an SMTP or
//! storage failure hands the message back after a pause, so mail is delayed,
//! not lost.
//!
//! One mail per job, across nodes and redeliveries: before it talks to the
//! SMTP server a node claims the job's mail (a short lease on the job
//! record, renewed while SMTP runs), and marks it mailed after. A copy of
//! the message delivered elsewhere meanwhile (the broker hands back an
//! unacked message when a connection drops) waits for the claim instead of
//! sending, then finds the job mailed. Once the server has the mail, the
//! mark is retried until written, never the mail. Only a node that dies
//! between the server's accept and the mark sends a mail twice, and then
//! with the same Message-ID, so it is the same message.

mod compose;
mod mail;
mod smtp;

pub use compose::{Composed, Notice, compose};
pub use mail::{MailError, Mailer, message_id};
pub use smtp::{SmtpClient, SmtpConfigError, SmtpError, Step};

use std::sync::Arc;
use std::time::Duration;

use ractor::{Actor, ActorProcessingErr, ActorRef};
use tokio::task::JoinHandle;
use tracing::{info, warn};

use crate::backends::{
    Backends, Consumer, Delivery, JobStore, Queue, QueueError, chain, run_consumer,
};
use crate::domain::{JobEventType, JobId, JobRecord, JobState, Mp3Message, Owner, Timestamp};
use crate::mailbox::Mailbox;
use crate::metrics::{Metrics, ResultLabels};
use crate::webhooks::Intake;

/// How long a stopping notifier may take to finish the mails in hand.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(15);

/// How long a node's claim on sending a job's mail lasts unrenewed; it is
/// renewed every third of that while the SMTP exchange runs.
const MAIL_CLAIM: Duration = Duration::from_secs(30);

pub enum NotifierMsg {
    ConsumerEnded(String),
}

pub struct NotifierArgs {
    pub backends: Backends,
    /// `None` when mail is off (`notifier.enabled = false`).
    pub mailer: Option<Mailer>,
    /// Announces each job's end as webhooks; `None` when they are off.
    pub intake: Option<Intake>,
    pub metrics: Arc<Metrics>,
    /// Its capacity is the `mp3` prefetch: mails in hand at once.
    pub mailbox: Mailbox,
    pub node_id: String,
}

/// What every mail in hand needs.
struct Work {
    mailer: Option<Mailer>,
    intake: Option<Intake>,
    jobs: Arc<dyn JobStore>,
    metrics: Arc<Metrics>,
    node_id: String,
}

pub struct NotifierState {
    consumer: JoinHandle<()>,
    /// Tells the consumer to cancel; it finishes the mail in hand first.
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

/// What to do with an `mp3` delivery.
enum Outcome {
    Done,
    RetryLater,
}

pub struct Notifier;

impl Actor for Notifier {
    type Msg = NotifierMsg;
    type State = NotifierState;
    type Arguments = NotifierArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<NotifierMsg>,
        args: NotifierArgs,
    ) -> Result<NotifierState, ActorProcessingErr> {
        let prefetch = u16::try_from(args.mailbox.capacity()).unwrap_or(u16::MAX);
        let consumer_tag = format!("vidaud-notifier-{}", args.node_id);
        let consumer = args
            .backends
            .queue
            .consume(Queue::Finished, prefetch, &consumer_tag)
            .await?;
        info!(prefetch, "notifier consuming finished jobs");
        let NotifierArgs {
            mailer,
            intake,
            metrics,
            backends,
            mailbox,
            node_id,
        } = args;
        let work = Arc::new(Work {
            mailer,
            intake,
            jobs: backends.jobs,
            metrics,
            node_id,
        });
        let (stop, stopped) = tokio::sync::oneshot::channel();
        let consumer = tokio::spawn(async move {
            let reason = consume(consumer, stopped, work, mailbox).await;
            let _ = myself.cast(NotifierMsg::ConsumerEnded(reason));
        });
        Ok(NotifierState {
            consumer,
            stop: Some(stop),
        })
    }

    async fn handle(
        &self,
        _myself: ActorRef<NotifierMsg>,
        msg: NotifierMsg,
        _state: &mut NotifierState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            NotifierMsg::ConsumerEnded(reason) => {
                Err(format!("mp3 consumer ended: {reason}").into())
            }
        }
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<NotifierMsg>,
        state: &mut NotifierState,
    ) -> Result<(), ActorProcessingErr> {
        if let Some(stop) = state.stop.take() {
            let _ = stop.send(());
        }
        // The consumer ends once the cancel is through; the mail in hand
        // (and those already delivered to us) are finished and acked first.
        // Aborting mid-send could repeat a mail the server already took.
        if tokio::time::timeout(DRAIN_TIMEOUT, &mut state.consumer)
            .await
            .is_err()
        {
            warn!("the notifier did not finish its mail in time; stopping it");
            state.consumer.abort();
        }
        Ok(())
    }
}

/// Mails deliveries one at a time, each holding a ticket of the notifier's
/// mailbox until it is settled (the broker holds up to the prefetch more).
/// Returns why the stream ended (cancelled, or the channel lost).
async fn consume(
    consumer: Box<dyn Consumer>,
    stopped: tokio::sync::oneshot::Receiver<()>,
    work: Arc<Work>,
    mailbox: Mailbox,
) -> String {
    run_consumer(consumer, stopped, |delivery| {
        let (work, mailbox) = (work.clone(), mailbox.clone());
        async move {
            let _ticket = mailbox.take();
            settle(delivery, &work).await.map_err(|e| chain(&e))
        }
    })
    .await
}

/// Mails one delivery and acks it, or hands it back after a pause.
async fn settle(delivery: Delivery, work: &Work) -> Result<(), QueueError> {
    match deliver(&delivery, work).await {
        Outcome::Done => delivery.settle.ack().await,
        Outcome::RetryLater => {
            tokio::time::sleep(Duration::from_secs(5)).await;
            delivery.settle.requeue().await
        }
    }
}

/// Whether this node may send a job's mail.
enum Turn {
    /// Ours: the record as claimed.
    Ours(Box<JobRecord>),
    /// Nothing to send: mailed already, deleted, or no such job.
    Settled,
    /// The job store is out of reach.
    Unavailable,
}

async fn deliver(delivery: &Delivery, work: &Work) -> Outcome {
    let count = |result| {
        work.metrics
            .emails
            .get_or_create(&ResultLabels { result })
            .inc();
    };
    let message = match serde_json::from_slice::<Mp3Message>(&delivery.payload) {
        Ok(message) => message,
        Err(e) => {
            warn!("dropping an unreadable mp3 message: {e}");
            return Outcome::Done;
        }
    };
    let id = message.job_id;
    // Webhooks first: stored before the ack, so a crash announces again
    // (the same deliveries: their ids are the job's event).
    if let Some(intake) = &work.intake
        && let Err(e) = announce(intake, work, &message).await
    {
        warn!(job_id = %id, "cannot queue the job's webhooks: {}", chain(&e));
        return Outcome::RetryLater;
    }
    let Some(mailer) = &work.mailer else {
        return Outcome::Done;
    };
    let job = match claim_mail(work, id).await {
        Turn::Ours(job) => job,
        Turn::Settled => return Outcome::Done,
        Turn::Unavailable => return Outcome::RetryLater,
    };
    match send_holding_claim(work, mailer, &message, &job).await {
        Ok(()) => count("sent"),
        Err(e) if e.is_permanent() => {
            // The relay refused this mail for good: retrying would loop.
            count("failed");
            warn!(job_id = %id, "e-mail refused by the SMTP server, not retrying: {}", chain(&e));
        }
        Err(e) => {
            count("failed");
            warn!(job_id = %id, "e-mail not sent, will retry: {}", chain(&e));
            return Outcome::RetryLater;
        }
    }
    mark_mailed(work, id).await;
    Outcome::Done
}

/// Queues the webhooks of the job's end, as the record has it now (a job
/// retried since is announced by its own later message).
async fn announce(
    intake: &Intake,
    work: &Work,
    message: &Mp3Message,
) -> Result<(), crate::backends::StoreError> {
    let event = match message.state {
        JobState::Done => JobEventType::Done,
        JobState::Failed => JobEventType::Failed,
        _ => return Ok(()),
    };
    let job = match work.jobs.get(message.job_id).await? {
        Some(job) if job.state == message.state => job,
        _ => return Ok(()),
    };
    intake.announce(&job, event).await?;
    // The owner's account erased meanwhile (its deleted jobs are cut loose
    // from it last, before the erasure removes webhooks once more): what
    // was just queued for it goes too, so nothing of the account stays.
    if let Some(now) = work.jobs.get(job.id).await?
        && now.owner == Owner::Forgotten
    {
        intake.forget(&job.owner).await?;
    }
    Ok(())
}

/// Claims the job's mail, waiting while another node holds the claim (it
/// is sending that mail right now) until it marks the job mailed or its
/// claim runs out.
async fn claim_mail(work: &Work, id: JobId) -> Turn {
    let mut waited = false;
    loop {
        let now = Timestamp::now();
        match work
            .jobs
            .claim_mail(id, &work.node_id, now, MAIL_CLAIM)
            .await
        {
            Ok(Some(job)) => return Turn::Ours(Box::new(job)),
            Ok(None) => {}
            Err(e) => {
                warn!(job_id = %id, "cannot claim the owner's mail: {}", chain(&e));
                return Turn::Unavailable;
            }
        }
        let held_until = match work.jobs.get(id).await {
            Ok(Some(job)) if job.mailed || job.state == JobState::Deleted => {
                return Turn::Settled;
            }
            Ok(None) => return Turn::Settled,
            Ok(Some(job)) => job.mail_claim.map(|claim| claim.until),
            Err(e) => {
                warn!(job_id = %id, "cannot check whether the owner was mailed: {}", chain(&e));
                return Turn::Unavailable;
            }
        };
        if !waited {
            info!(job_id = %id, "another node is sending this job's mail; waiting for it");
            waited = true;
        }
        let left = held_until.map_or(0, |until| until.millis() - now.millis());
        let pause = u64::try_from(left).unwrap_or(0).clamp(100, 1000);
        tokio::time::sleep(Duration::from_millis(pause)).await;
    }
}

/// Sends the mail, renewing this node's claim on it while SMTP runs.
async fn send_holding_claim(
    work: &Work,
    mailer: &Mailer,
    message: &Mp3Message,
    job: &JobRecord,
) -> Result<(), MailError> {
    let send = mailer.send(message, job);
    tokio::pin!(send);
    let every = MAIL_CLAIM / 3;
    let mut renew = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    loop {
        tokio::select! {
            sent = &mut send => return sent,
            _ = renew.tick() => {
                let renewed = work
                    .jobs
                    .claim_mail(job.id, &work.node_id, Timestamp::now(), MAIL_CLAIM)
                    .await;
                if let Err(e) = renewed {
                    warn!(job_id = %job.id, "cannot renew the claim on the owner's mail: {}", chain(&e));
                }
            }
        }
    }
}

/// Records the mail as sent, retrying until the record is written: the
/// SMTP server has the mail, so sending it again is what must not happen.
async fn mark_mailed(work: &Work, id: JobId) {
    let mut pause = Duration::from_millis(250);
    loop {
        match work.jobs.mark_mailed(id).await {
            Ok(()) => return,
            Err(e) => {
                warn!(job_id = %id, "cannot record the mail yet, retrying: {}", chain(&e));
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(10));
            }
        }
    }
}

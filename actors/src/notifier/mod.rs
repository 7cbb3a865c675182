//! The notifier actor: consumes `mp3` and e-mails the job's owner, once.
//!
//! A message is acked only after the SMTP server accepted the mail (or the
//! mail can never be sent, e.g. the relay refuses it for good); an SMTP or
//! storage failure hands the message back after a pause, so mail is delayed,
//! not lost. The job record's `mailed` flag, checked before sending and set
//! after, makes a re-published `mp3` message harmless: one mail per job.
//! Only a crash between the SMTP server's accept and that mark can send a
//! mail twice, and then with the same Message-ID, so it is the same message.

mod mail;

pub use mail::{MailError, Mailer, compose, message_id};

use std::sync::Arc;
use std::time::Duration;

use ractor::{Actor, ActorProcessingErr, ActorRef};
use tokio::task::JoinHandle;
use tracing::{info, warn};

use crate::backends::{
    Backends, Consumer, Delivery, JobStore, Queue, QueueError, chain, run_consumer,
};
use crate::domain::{JobState, Mp3Message};
use crate::mailbox::Mailbox;
use crate::metrics::{Metrics, ResultLabels};

/// How long a stopping notifier may take to finish the mails in hand.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(15);

pub enum NotifierMsg {
    ConsumerEnded(String),
}

pub struct NotifierArgs {
    pub backends: Backends,
    pub mailer: Mailer,
    pub metrics: Arc<Metrics>,
    /// Its capacity is the `mp3` prefetch: mails in hand at once.
    pub mailbox: Mailbox,
    pub node_id: String,
}

/// What every mail in hand needs.
struct Work {
    mailer: Mailer,
    jobs: Arc<dyn JobStore>,
    metrics: Arc<Metrics>,
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
            metrics,
            backends,
            mailbox,
            ..
        } = args;
        let work = Arc::new(Work {
            mailer,
            jobs: backends.jobs,
            metrics,
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
/// One at a time on purpose: the `mailed` check and mark are not atomic, so
/// two copies of one job's message mailed concurrently could both send.
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
    match work.jobs.get(id).await {
        Ok(Some(job)) if job.mailed || job.state == JobState::Deleted => return Outcome::Done,
        Ok(_) => {}
        Err(e) => {
            warn!(job_id = %id, "cannot check whether the owner was mailed: {}", chain(&e));
            return Outcome::RetryLater;
        }
    }
    match work.mailer.send(&message).await {
        Ok(()) => count("sent"),
        Err(e) if e.is_permanent() => {
            // The relay refused this mail for good: retrying would loop.
            count("failed");
            warn!(job_id = %message.job_id, "e-mail refused by the SMTP server, not retrying: {e}");
        }
        Err(e) => {
            count("failed");
            warn!(job_id = %message.job_id, "e-mail not sent, will retry: {e}");
            return Outcome::RetryLater;
        }
    }
    if let Err(e) = work.jobs.mark_mailed(id).await {
        warn!(job_id = %id, "cannot record the mail: {}", chain(&e));
    }
    Outcome::Done
}

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

use futures::StreamExt;
use lapin::message::Delivery;
use lapin::options::{BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicNackOptions};
use lapin::types::FieldTable;
use mongodb::bson::oid::ObjectId;
use ractor::{Actor, ActorProcessingErr, ActorRef};
use tokio::task::JoinHandle;
use tracing::{info, warn};

use crate::job::{JobState, Mp3Message};
use crate::mailbox::Mailbox;
use crate::metrics::{Metrics, ResultLabels};
use crate::queue::Broker;
use crate::store::Store;

/// How long a stopping notifier may take to finish the mails in hand.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(15);

pub enum NotifierMsg {
    ConsumerEnded(String),
}

pub struct NotifierArgs {
    pub broker: Broker,
    pub store: Store,
    pub mailer: Mailer,
    pub metrics: Arc<Metrics>,
    /// Its capacity is the `mp3` prefetch: mails in hand at once.
    pub mailbox: Mailbox,
    pub node_id: String,
}

/// What every mail in hand needs.
struct Work {
    mailer: Mailer,
    store: Store,
    metrics: Arc<Metrics>,
}

pub struct NotifierState {
    consumer: JoinHandle<()>,
    channel: lapin::Channel,
    consumer_tag: String,
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
        let channel = args.broker.consumer_channel(prefetch).await?;
        let queue = args.broker.settings().mp3_queue.clone();
        let consumer_tag = format!("vidaud-notifier-{}", args.node_id);
        let consumer = channel
            .basic_consume(
                queue.as_str().into(),
                consumer_tag.as_str().into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await?;
        info!(%queue, prefetch, "notifier consuming");
        let NotifierArgs {
            mailer,
            metrics,
            store,
            mailbox,
            ..
        } = args;
        let work = Arc::new(Work {
            mailer,
            store,
            metrics,
        });
        let consumer = tokio::spawn(async move {
            let reason = consume(consumer, work, mailbox).await;
            let _ = myself.cast(NotifierMsg::ConsumerEnded(reason));
        });
        Ok(NotifierState {
            consumer,
            channel,
            consumer_tag,
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
        let _ = state
            .channel
            .basic_cancel(
                state.consumer_tag.as_str().into(),
                BasicCancelOptions::default(),
            )
            .await;
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
        let _ = state
            .channel
            .close(200, "vidaud notifier stopping".into())
            .await;
        Ok(())
    }
}

/// Mails deliveries one at a time, each holding a ticket of the notifier's
/// mailbox until it is settled (the broker holds up to the prefetch more).
/// One at a time on purpose: the `mailed` check and mark are not atomic, so
/// two copies of one job's message mailed concurrently could both send.
/// Returns why the stream ended (cancelled, or the channel lost).
async fn consume(mut consumer: lapin::Consumer, work: Arc<Work>, mailbox: Mailbox) -> String {
    loop {
        let delivery = match consumer.next().await {
            Some(Ok(delivery)) => delivery,
            Some(Err(e)) => return e.to_string(),
            None => return "consumer cancelled".to_owned(),
        };
        let _ticket = mailbox.take();
        if let Err(e) = settle(delivery, &work).await {
            return e.to_string();
        }
    }
}

/// Mails one delivery and acks it, or hands it back after a pause.
async fn settle(delivery: Delivery, work: &Work) -> Result<bool, lapin::Error> {
    match deliver(&delivery, &work.mailer, &work.store, &work.metrics).await {
        Outcome::Done => delivery.acker.ack(BasicAckOptions::default()).await,
        Outcome::RetryLater => {
            tokio::time::sleep(Duration::from_secs(5)).await;
            let requeue = BasicNackOptions {
                requeue: true,
                ..Default::default()
            };
            delivery.acker.nack(requeue).await
        }
    }
}

async fn deliver(
    delivery: &Delivery,
    mailer: &Mailer,
    store: &Store,
    metrics: &Metrics,
) -> Outcome {
    let count = |result| {
        metrics.emails.get_or_create(&ResultLabels { result }).inc();
    };
    let message = match serde_json::from_slice::<Mp3Message>(&delivery.data) {
        Ok(message) => message,
        Err(e) => {
            warn!("dropping an unreadable mp3 message: {e}");
            return Outcome::Done;
        }
    };
    let job_id = ObjectId::parse_str(&message.job_id).ok();
    if let Some(id) = job_id {
        match store.job(id).await {
            Ok(Some(job)) if job.mailed || job.state == JobState::Deleted => return Outcome::Done,
            Ok(_) => {}
            Err(e) => {
                warn!(job_id = %message.job_id, "cannot check whether the owner was mailed: {e}");
                return Outcome::RetryLater;
            }
        }
    }
    match mailer.send(&message).await {
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
    if let Some(id) = job_id
        && let Err(e) = store.mark_mailed(id).await
    {
        warn!(job_id = %message.job_id, "cannot record the mail: {e}");
    }
    Outcome::Done
}

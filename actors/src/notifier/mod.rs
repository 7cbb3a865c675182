//! The notifier actor: consumes `mp3` and e-mails the job's owner.
//!
//! A message is acked only after the SMTP server accepted the mail (or the
//! mail can never be sent, e.g. the owner is not an e-mail address); an
//! SMTP failure hands the message back after a pause, so mail is delayed,
//! not lost.

mod mail;

pub use mail::{Mailer, compose};

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use lapin::options::{BasicAckOptions, BasicConsumeOptions, BasicNackOptions};
use lapin::types::FieldTable;
use ractor::{Actor, ActorProcessingErr, ActorRef};
use tokio::task::JoinHandle;
use tracing::{info, warn};

use crate::job::Mp3Message;
use crate::metrics::{Metrics, ResultLabels};
use crate::queue::Broker;

pub enum NotifierMsg {
    ConsumerEnded(String),
}

pub struct NotifierArgs {
    pub broker: Broker,
    pub mailer: Mailer,
    pub metrics: Arc<Metrics>,
    pub prefetch: u16,
    pub node_id: String,
}

pub struct NotifierState {
    consumer: JoinHandle<()>,
    channel: lapin::Channel,
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
        let channel = args.broker.consumer_channel(args.prefetch).await?;
        let queue = args.broker.settings().mp3_queue.clone();
        let mut consumer = channel
            .basic_consume(
                queue.as_str().into(),
                format!("vidaud-notifier-{}", args.node_id).into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await?;
        info!(%queue, "notifier consuming");
        let NotifierArgs {
            mailer, metrics, ..
        } = args;
        let consumer = tokio::spawn(async move {
            let reason = loop {
                let delivery = match consumer.next().await {
                    Some(Ok(d)) => d,
                    Some(Err(e)) => break e.to_string(),
                    None => break "consumer cancelled".to_owned(),
                };
                let sent = match serde_json::from_slice::<Mp3Message>(&delivery.data) {
                    Ok(message) => mailer.send(&message).await,
                    Err(e) => {
                        warn!("dropping an unreadable mp3 message: {e}");
                        Ok(())
                    }
                };
                let result = match sent {
                    Ok(()) => {
                        metrics
                            .emails
                            .get_or_create(&ResultLabels { result: "sent" })
                            .inc();
                        delivery.acker.ack(BasicAckOptions::default()).await
                    }
                    Err(e) if e.is_permanent() => {
                        // The relay refused this mail for good: retrying
                        // would loop. Counted, logged, dropped.
                        metrics
                            .emails
                            .get_or_create(&ResultLabels { result: "failed" })
                            .inc();
                        warn!("e-mail refused by the SMTP server, not retrying: {e}");
                        delivery.acker.ack(BasicAckOptions::default()).await
                    }
                    Err(e) => {
                        metrics
                            .emails
                            .get_or_create(&ResultLabels { result: "failed" })
                            .inc();
                        warn!("e-mail not sent, will retry: {e}");
                        tokio::time::sleep(Duration::from_secs(5)).await;
                        let requeue = BasicNackOptions {
                            requeue: true,
                            ..Default::default()
                        };
                        delivery.acker.nack(requeue).await
                    }
                };
                if let Err(e) = result {
                    break e.to_string();
                }
            };
            let _ = myself.cast(NotifierMsg::ConsumerEnded(reason));
        });
        Ok(NotifierState { consumer, channel })
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
        state.consumer.abort();
        let _ = state
            .channel
            .close(200, "vidaud notifier stopping".into())
            .await;
        Ok(())
    }
}

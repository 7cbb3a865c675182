//! The suite's RabbitMQ as a test sees it: queue depths and prefetch,
//! raw publishes (poison, the reference's messages), the events exchange,
//! and removing a group's queues.

use super::*;

pub const AMQP_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";

/// Runs `work` to its end on a thread and runtime of its own: from any
/// context, a `Drop` on an ending runtime too.
pub fn on_a_runtime_of_its_own<F>(work: F)
where
    F: std::future::Future<Output = ()> + Send + 'static,
{
    std::thread::spawn(move || {
        if let Ok(rt) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            rt.block_on(work);
        }
    })
    .join()
    .ok();
}

/// Deletes `queues` from the suite's broker, from any context.
pub fn remove_queues(queues: Vec<String>) {
    on_a_runtime_of_its_own(async move {
        let Ok(conn) =
            lapin::Connection::connect(AMQP_URL, lapin::ConnectionProperties::default()).await
        else {
            return;
        };
        if let Ok(channel) = conn.create_channel().await {
            for queue in &queues {
                let _ = channel
                    .queue_delete(queue.as_str().into(), Default::default())
                    .await;
            }
        }
        let _ = conn.close(200, "test done".into()).await;
    });
}

/// Ready messages in a queue (0 when it does not exist).
pub async fn queue_depth(queue: &str) -> u32 {
    let Ok(conn) =
        lapin::Connection::connect(AMQP_URL, lapin::ConnectionProperties::default()).await
    else {
        panic!("RabbitMQ is not reachable");
    };
    let channel = conn.create_channel().await.expect("channel");
    let options = lapin::options::QueueDeclareOptions {
        passive: true,
        ..Default::default()
    };
    let depth = channel
        .queue_declare(queue.into(), options, Default::default())
        .await
        .map(|q| q.message_count())
        .unwrap_or(0);
    let _ = conn.close(200, "done".into()).await;
    depth
}

/// Publishes a raw message to a queue, as another producer would.
pub async fn publish_raw(queue: &str, payload: &[u8]) {
    let conn = lapin::Connection::connect(AMQP_URL, lapin::ConnectionProperties::default())
        .await
        .expect("RabbitMQ");
    let channel = conn.create_channel().await.expect("channel");
    channel
        .confirm_select(Default::default())
        .await
        .expect("confirms");
    channel
        .basic_publish(
            "".into(),
            queue.into(),
            Default::default(),
            payload,
            lapin::BasicProperties::default().with_delivery_mode(2),
        )
        .await
        .expect("publish")
        .await
        .expect("confirm");
    let _ = conn.close(200, "done".into()).await;
}

/// The prefetch RabbitMQ holds for the consumers of `queue`.
pub fn broker_prefetch(queue: &str) -> Vec<u32> {
    let out = std::process::Command::new("rabbitmqctl")
        .args([
            "list_consumers",
            "-q",
            "--no-table-headers",
            "queue_name",
            "prefetch_count",
        ])
        .output()
        .expect("rabbitmqctl");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let mut fields = l.split_whitespace();
            (fields.next() == Some(queue)).then(|| fields.next().and_then(|n| n.parse().ok()))?
        })
        .collect()
}

/// Listens to the job events exchange: a private queue bound to it, and the
/// events read from it until `until` says stop or `limit` passes.
pub struct EventTap {
    _connection: lapin::Connection,
    consumer: lapin::Consumer,
}

impl EventTap {
    pub async fn bind(exchange: &str) -> Self {
        let connection =
            lapin::Connection::connect(AMQP_URL, lapin::ConnectionProperties::default())
                .await
                .expect("RabbitMQ");
        let channel = connection.create_channel().await.expect("channel");
        let queue = channel
            .queue_declare(
                "".into(),
                lapin::options::QueueDeclareOptions {
                    exclusive: true,
                    auto_delete: true,
                    ..Default::default()
                },
                Default::default(),
            )
            .await
            .expect("queue");
        channel
            .queue_bind(
                queue.name().as_str().into(),
                exchange.into(),
                "".into(),
                Default::default(),
                Default::default(),
            )
            .await
            .expect("bind");
        let consumer = channel
            .basic_consume(
                queue.name().as_str().into(),
                "".into(),
                lapin::options::BasicConsumeOptions {
                    no_ack: true,
                    ..Default::default()
                },
                Default::default(),
            )
            .await
            .expect("consume");
        Self {
            _connection: connection,
            consumer,
        }
    }

    /// The events of `job_id` until one in a final state (or `limit`).
    pub async fn job_events(&mut self, job_id: &str, limit: Duration) -> Vec<Value> {
        use futures::StreamExt;
        let mut events = Vec::new();
        let deadline = tokio::time::Instant::now() + limit;
        while let Ok(Some(Ok(delivery))) =
            tokio::time::timeout_at(deadline, self.consumer.next()).await
        {
            let event: Value = serde_json::from_slice(&delivery.data).unwrap_or(Value::Null);
            if event["job_id"] != job_id {
                continue;
            }
            let last = event["state"] == "done" || event["state"] == "failed";
            events.push(event);
            if last {
                break;
            }
        }
        events
    }
}

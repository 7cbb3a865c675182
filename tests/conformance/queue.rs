//! `JobQueue`: durable publishing, a consumer's prefetch bound, the three
//! ways a delivery is settled, and redelivery of what a consumer that went
//! away held.

use std::time::Duration;

use vidaud_actors::backends::{Consumer, Delivery, Queue};

use crate::conformance;
use crate::harness::Stores;

/// The next delivery, within a bound (a hang fails here, named).
async fn next(consumer: &mut Box<dyn Consumer>, what: &str) -> Delivery {
    tokio::time::timeout(Duration::from_secs(10), consumer.next())
        .await
        .unwrap_or_else(|_| panic!("no delivery within 10 s: {what}"))
        .unwrap_or_else(|| panic!("the consumer ended: {what}"))
        .unwrap_or_else(|e| panic!("the consumer failed ({e}): {what}"))
}

/// Nothing delivered within a moment.
async fn nothing(consumer: &mut Box<dyn Consumer>, what: &str) {
    let got = tokio::time::timeout(Duration::from_millis(500), consumer.next()).await;
    assert!(got.is_err(), "delivered, but should not be: {what}");
}

/// The jobs queue's ready messages, once the broker has counted them.
async fn depth_reaches(stores: &Stores, expected: u64) {
    let mut last = Vec::new();
    for _ in 0..50 {
        last = stores.queue.depths().await.expect("depths");
        if last.contains(&(stores.jobs_queue().to_owned(), expected)) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the jobs queue never held {expected} ready: {last:?}");
}

conformance!(
    a_consumer_holds_at_most_its_prefetch_and_requeued_comes_again,
    |stores: Stores| async move {
        for n in 0..3u8 {
            stores.queue.publish(Queue::Jobs, &[n]).await.unwrap();
        }
        depth_reaches(&stores, 3).await;
        let mut consumer = stores.queue.consume(Queue::Jobs, 2, "t").await.unwrap();
        let one = next(&mut consumer, "first").await;
        let two = next(&mut consumer, "second").await;
        assert_eq!(
            (one.payload.as_slice(), two.payload.as_slice()),
            (&[0u8][..], &[1u8][..]),
            "in order"
        );
        assert!(!one.redelivered && !two.redelivered);
        // At its prefetch, the consumer waits; a settle frees a place.
        nothing(&mut consumer, "beyond the prefetch").await;
        one.settle.ack().await.unwrap();
        two.settle.requeue().await.unwrap();
        let mut seen = Vec::new();
        for _ in 0..2 {
            let d = next(&mut consumer, "after settling").await;
            seen.push((d.payload[0], d.redelivered));
            d.settle.ack().await.unwrap();
        }
        seen.sort();
        assert_eq!(
            seen,
            [(1, true), (2, false)],
            "the requeued one again, marked"
        );
        nothing(&mut consumer, "an acked message").await;
        consumer.cancel().await;
        assert!(consumer.next().await.is_none(), "ends once cancelled");
        depth_reaches(&stores, 0).await;
    }
);

conformance!(
    what_a_vanished_consumer_held_is_delivered_again,
    |stores: Stores| async move {
        for n in 0..2u8 {
            stores.queue.publish(Queue::Jobs, &[n]).await.unwrap();
        }
        let mut consumer = stores.queue.consume(Queue::Jobs, 10, "t").await.unwrap();
        let held = [
            next(&mut consumer, "first").await,
            next(&mut consumer, "second").await,
        ];
        // The consumer goes away holding both, settled neither way.
        drop(held);
        drop(consumer);
        let mut again = stores.queue.consume(Queue::Jobs, 10, "t2").await.unwrap();
        let mut seen = Vec::new();
        for _ in 0..2 {
            let d = next(&mut again, "redelivery").await;
            seen.push((d.payload[0], d.redelivered));
            d.settle.ack().await.unwrap();
        }
        seen.sort();
        assert_eq!(seen, [(0, true), (1, true)]);
    }
);

conformance!(
    published_messages_outlive_the_node,
    |mut stores: Stores| async move {
        stores
            .queue
            .publish(Queue::Jobs, b"{\"a\":1}")
            .await
            .unwrap();
        stores
            .queue
            .publish(Queue::Finished, b"{\"b\":2}")
            .await
            .unwrap();
        stores.restart().await;
        for (queue, payload) in [
            (Queue::Jobs, &b"{\"a\":1}"[..]),
            (Queue::Finished, b"{\"b\":2}"),
        ] {
            let mut consumer = stores.queue.consume(queue, 1, "t").await.unwrap();
            let d = next(&mut consumer, "after a restart").await;
            assert_eq!(d.payload, payload);
            d.settle.ack().await.unwrap();
        }
    }
);

conformance!(
    rejected_is_dropped_and_dead_letters_are_kept_apart,
    |stores: Stores| async move {
        stores.queue.publish(Queue::Jobs, b"poison").await.unwrap();
        let mut consumer = stores.queue.consume(Queue::Jobs, 1, "t").await.unwrap();
        let d = next(&mut consumer, "the poison").await;
        stores.dead_letter(&d.payload, "not a job").await.unwrap();
        d.settle.reject().await.unwrap();
        // Settling again does not count.
        d.settle.ack().await.ok();
        nothing(&mut consumer, "a rejected message").await;
        let mut dead = stores
            .queue
            .consume(Queue::DeadLetters, 1, "t")
            .await
            .unwrap();
        let parked = next(&mut dead, "the dead letter").await;
        assert_eq!(parked.payload, b"poison");
        parked.settle.ack().await.unwrap();
        depth_reaches(&stores, 0).await;
    }
);

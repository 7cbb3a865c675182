//! Bounded mailboxes: how much unfinished work each actor may hold.
//!
//! ractor's mailboxes are unbounded and do not report their length, so the
//! bound lives here. Whoever hands an actor work first takes a [`Ticket`]
//! from that actor's [`Mailbox`]; the ticket travels with the work and gives
//! its place back when dropped — when the work is done, or abandoned with an
//! actor that died. Depth therefore counts work accepted and not finished,
//! which is what memory and latency grow with.
//!
//! [`Mailbox::try_take`] refuses when the mailbox is full: the HTTP front
//! turns that into 503 with Retry-After, before it reads a request body.
//! [`Mailbox::take`] never refuses; it is for work that was already accepted
//! elsewhere and must not be dropped (an unacked delivery), whose bound is
//! enforced upstream by the broker's prefetch, sized from the same capacity.
//!
//! The mailboxes outlive the actors (a restarted actor inherits its
//! mailbox), and capacities change live on SIGHUP.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use prometheus_client::metrics::gauge::Gauge;
use serde::Serialize;

use crate::metrics::Metrics;
use crate::settings::MailboxSettings;

#[derive(Debug, thiserror::Error)]
#[error("the {actor} mailbox is full ({capacity})")]
pub struct MailboxFull {
    pub actor: &'static str,
    pub capacity: usize,
}

#[derive(Clone)]
pub struct Mailbox {
    inner: Arc<Inner>,
}

struct Inner {
    actor: &'static str,
    depth: AtomicUsize,
    capacity: AtomicUsize,
    depth_gauge: Gauge,
    capacity_gauge: Gauge,
}

/// A place in a mailbox, given back on drop.
pub struct Ticket {
    inner: Arc<Inner>,
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.inner.depth.fetch_sub(1, Ordering::AcqRel);
        self.inner.depth_gauge.dec();
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct MailboxStatus {
    pub depth: usize,
    pub capacity: usize,
}

impl Mailbox {
    pub fn new(actor: &'static str, capacity: usize, metrics: &Metrics) -> Self {
        let (depth_gauge, capacity_gauge) = metrics.mailbox_gauges(actor);
        let mailbox = Self {
            inner: Arc::new(Inner {
                actor,
                depth: AtomicUsize::new(0),
                capacity: AtomicUsize::new(0),
                depth_gauge,
                capacity_gauge,
            }),
        };
        mailbox.set_capacity(capacity);
        mailbox
    }

    /// A place if there is one.
    pub fn try_take(&self) -> Result<Ticket, MailboxFull> {
        let capacity = self.capacity();
        self.inner
            .depth
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |depth| {
                (depth < capacity).then_some(depth + 1)
            })
            .map_err(|_| MailboxFull {
                actor: self.inner.actor,
                capacity,
            })?;
        Ok(self.issued())
    }

    /// A place even beyond the capacity (for work that must not be dropped).
    pub fn take(&self) -> Ticket {
        self.inner.depth.fetch_add(1, Ordering::AcqRel);
        self.issued()
    }

    fn issued(&self) -> Ticket {
        self.inner.depth_gauge.inc();
        Ticket {
            inner: self.inner.clone(),
        }
    }

    pub fn capacity(&self) -> usize {
        self.inner.capacity.load(Ordering::Acquire)
    }

    /// Takes effect for the next ticket; work already accepted stays.
    pub fn set_capacity(&self, capacity: usize) {
        let capacity = capacity.max(1);
        self.inner.capacity.store(capacity, Ordering::Release);
        self.inner
            .capacity_gauge
            .set(i64::try_from(capacity).unwrap_or(i64::MAX));
    }

    pub fn status(&self) -> MailboxStatus {
        MailboxStatus {
            depth: self.inner.depth.load(Ordering::Acquire),
            capacity: self.capacity(),
        }
    }
}

/// The bounded mailboxes of a node, one per actor that takes work.
#[derive(Clone)]
pub struct Mailboxes {
    /// Uploads streaming in the HTTP front.
    pub http: Mailbox,
    /// Register and login requests being hashed and checked.
    pub auth: Mailbox,
    /// Deliveries waiting in the transcoder pool for a free worker.
    pub transcoder: Mailbox,
    /// `mp3` deliveries the notifier holds.
    pub notifier: Mailbox,
}

impl Mailboxes {
    pub fn new(settings: &MailboxSettings, metrics: &Metrics) -> Self {
        Self {
            http: Mailbox::new("http", settings.http, metrics),
            auth: Mailbox::new("auth", settings.auth, metrics),
            transcoder: Mailbox::new("transcoder", settings.transcoder, metrics),
            notifier: Mailbox::new("notifier", settings.notifier, metrics),
        }
    }

    pub fn set_capacities(&self, settings: &MailboxSettings) {
        self.http.set_capacity(settings.http);
        self.auth.set_capacity(settings.auth);
        self.transcoder.set_capacity(settings.transcoder);
        self.notifier.set_capacity(settings.notifier);
    }

    pub fn status(&self) -> BTreeMap<&'static str, MailboxStatus> {
        [&self.http, &self.auth, &self.transcoder, &self.notifier]
            .into_iter()
            .map(|m| (m.inner.actor, m.status()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tickets_are_refused_when_full_and_returned_on_drop() {
        let metrics = Metrics::new();
        let mailbox = Mailbox::new("auth", 2, &metrics);
        let a = mailbox.try_take().expect("first");
        let _b = mailbox.try_take().expect("second");
        let full = mailbox.try_take().err().expect("third is refused");
        assert_eq!(full.capacity, 2);
        drop(a);
        let _c = mailbox.try_take().expect("a place came back");
        let _forced = mailbox.take();
        assert_eq!(
            mailbox.status(),
            MailboxStatus {
                depth: 3,
                capacity: 2
            }
        );
        let text = metrics.encode();
        assert!(
            text.contains("actor_mailbox_depth{actor=\"auth\"} 3"),
            "{text}"
        );
        assert!(
            text.contains("actor_mailbox_capacity{actor=\"auth\"} 2"),
            "{text}"
        );
    }

    #[test]
    fn a_larger_capacity_applies_to_the_next_ticket() {
        let metrics = Metrics::new();
        let mailbox = Mailbox::new("http", 1, &metrics);
        let _a = mailbox.try_take().expect("first");
        assert!(mailbox.try_take().is_err());
        mailbox.set_capacity(2);
        let _b = mailbox.try_take().expect("room after the change");
    }
}

//! A background loop as a supervised actor: the retention sweep, the
//! revocation refresh and the eraser of deleted accounts' data each run as
//! one long task, and each is a child of the root like any actor — started
//! in order, listed (with its restarts) by `vidaud ctl status`, stopped on
//! shutdown, and restarted by the root's policy if its task panics or ends.
//!
//! The loop itself is a plain future (`run_sweeper`, `refresh_revocations`,
//! `erase_deleted_accounts`): it knows nothing of actors, so it is tested
//! and read on its own. This actor only runs it and watches it.
//!
//! Architecture Invariant: a loop that runs for the node's life is started
//! here, by the root, never by another actor (where the supervisor could
//! not see it die).

use futures::future::BoxFuture;
use ractor::{ActorProcessingErr, ActorRef};
use tokio::task::{AbortHandle, JoinHandle};

/// The actor that runs one background loop.
pub struct Background;

/// What the actor runs: its name (for logs) and the loop, made anew at
/// every (re)start.
pub struct Loop {
    pub what: &'static str,
    pub run: BoxFuture<'static, ()>,
}

impl Loop {
    pub fn new(what: &'static str, run: impl Future<Output = ()> + Send + 'static) -> Self {
        Self {
            what,
            run: Box::pin(run),
        }
    }
}

/// The loop's task ended: how (it never should).
pub struct Ended(String);

pub struct Running {
    what: &'static str,
    task: AbortHandle,
    watch: JoinHandle<()>,
}

impl ractor::Actor for Background {
    type Msg = Ended;
    type State = Running;
    type Arguments = Loop;

    async fn pre_start(
        &self,
        myself: ActorRef<Ended>,
        Loop { what, run }: Loop,
    ) -> Result<Running, ActorProcessingErr> {
        let task = tokio::spawn(run);
        let abort = task.abort_handle();
        // A panic in the loop is not the actor's own: watched, it becomes
        // the actor's failure, which the root sees and restarts.
        let watch = tokio::spawn(async move {
            let how = match task.await {
                Ok(()) => "ended".to_owned(),
                Err(e) if e.is_panic() => format!("panicked: {}", panic_message(e.into_panic())),
                Err(_) => return, // aborted: the actor is stopping
            };
            let _ = myself.cast(Ended(how));
        });
        Ok(Running {
            what,
            task: abort,
            watch,
        })
    }

    async fn handle(
        &self,
        _myself: ActorRef<Ended>,
        Ended(how): Ended,
        state: &mut Running,
    ) -> Result<(), ActorProcessingErr> {
        Err(format!("the {} loop {how}", state.what).into())
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<Ended>,
        state: &mut Running,
    ) -> Result<(), ActorProcessingErr> {
        state.task.abort();
        state.watch.abort();
        Ok(())
    }
}

fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(no message)".to_owned())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::time::Duration;

    use ractor::{Actor, SupervisionEvent};

    use super::*;

    /// A supervisor that reports how each child ended.
    struct Watcher(tokio::sync::mpsc::UnboundedSender<String>);

    impl Actor for Watcher {
        type Msg = ();
        type State = ();
        type Arguments = ();

        async fn pre_start(&self, _: ActorRef<()>, _: ()) -> Result<(), ActorProcessingErr> {
            Ok(())
        }

        async fn handle_supervisor_evt(
            &self,
            _: ActorRef<()>,
            event: SupervisionEvent,
            _: &mut (),
        ) -> Result<(), ActorProcessingErr> {
            let said = match event {
                SupervisionEvent::ActorFailed(_, why) => format!("failed: {why}"),
                SupervisionEvent::ActorTerminated(..) => "stopped".to_owned(),
                _ => return Ok(()),
            };
            let _ = self.0.send(said);
            Ok(())
        }
    }

    async fn supervised(
        run: Loop,
    ) -> (
        ActorRef<Ended>,
        tokio::sync::mpsc::UnboundedReceiver<String>,
    ) {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let (watcher, _) = Actor::spawn(None, Watcher(tx), ()).await.unwrap();
        let (actor, _) = Actor::spawn_linked(None, Background, run, watcher.get_cell())
            .await
            .unwrap();
        (actor, rx)
    }

    async fn next(rx: &mut tokio::sync::mpsc::UnboundedReceiver<String>) -> String {
        tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .expect("the supervisor heard within 10 s")
            .expect("the supervisor is there")
    }

    #[tokio::test]
    async fn a_panicking_loop_is_its_actors_failure() {
        let (_actor, mut rx) = supervised(Loop::new("doomed", async {
            panic!("out of luck");
        }))
        .await;
        assert_eq!(
            next(&mut rx).await,
            "failed: the doomed loop panicked: out of luck"
        );
    }

    #[tokio::test]
    async fn a_loop_that_ends_is_a_failure_too() {
        let (_actor, mut rx) = supervised(Loop::new("short", async {})).await;
        assert_eq!(next(&mut rx).await, "failed: the short loop ended");
    }

    #[tokio::test]
    async fn stopping_the_actor_stops_its_loop() {
        let turns = Arc::new(AtomicU32::new(0));
        let counted = turns.clone();
        let (actor, mut rx) = supervised(Loop::new("counting", async move {
            loop {
                counted.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }))
        .await;
        while turns.load(Ordering::SeqCst) == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        actor.stop(None);
        assert_eq!(next(&mut rx).await, "stopped");
        let after = turns.load(Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(turns.load(Ordering::SeqCst), after, "the loop goes with it");
    }
}

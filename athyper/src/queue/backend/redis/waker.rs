//! Parks idle workers until a job may be available: one task per queue and
//! process blocks in `BLPOP` on the queue's marker list, while at least one
//! worker of this process waits, and wakes them all when it pops the marker.
//!
//! Workers never issue the blocking call themselves, so dropping their wait
//! (they race it against shutdown and their own running jobs) can never
//! leave a connection with a reply in flight.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::Conn;

#[derive(Debug, Default)]
pub(super) struct Waker {
    /// Workers parked in `wait`.
    waiting: AtomicUsize,
    /// Wakes the parked workers.
    wake: Notify,
    /// Tells the blocking task that a worker started waiting.
    demand: Notify,
}

struct Parked<'a>(&'a AtomicUsize);

impl Drop for Parked<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Waker {
    /// Starts the blocking task for one queue's marker list.
    pub(super) fn start(
        blocking: Conn,
        main: Conn,
        marker: String,
        block: Duration,
        stop: CancellationToken,
    ) -> Arc<Waker> {
        let waker = Arc::new(Waker::default());
        tokio::spawn(
            waker
                .clone()
                .block_on_marker(blocking, main, marker, block, stop),
        );
        waker
    }

    /// Parks until the marker arrives or `timeout` passes.
    pub(super) async fn wait(&self, timeout: Duration) {
        let notified = self.wake.notified();
        tokio::pin!(notified);
        // Registered before the count goes up, so a marker popped from now
        // on reaches this worker.
        notified.as_mut().enable();
        self.waiting.fetch_add(1, Ordering::SeqCst);
        let _parked = Parked(&self.waiting);
        self.demand.notify_one();
        let _ = tokio::time::timeout(timeout, notified).await;
    }

    async fn block_on_marker(
        self: Arc<Self>,
        mut blocking: Conn,
        mut main: Conn,
        marker: String,
        block: Duration,
        stop: CancellationToken,
    ) {
        loop {
            if self.waiting.load(Ordering::SeqCst) == 0 {
                tokio::select! {
                    () = stop.cancelled() => return,
                    () = self.demand.notified() => continue,
                }
            }
            let mut blpop = redis::cmd("BLPOP");
            blpop.arg(&marker).arg(block.as_secs_f64());
            let pop = blpop.query_async::<Option<(String, String)>>(&mut blocking);
            let popped = tokio::select! {
                () = stop.cancelled() => return,
                popped = pop => popped,
            };
            match popped {
                Ok(Some(_)) if self.waiting.load(Ordering::SeqCst) > 0 => {
                    self.wake.notify_waiters()
                }
                Ok(Some(_)) => {
                    // Everyone here stopped waiting meanwhile: pass the
                    // marker on to other processes.
                    let give_back = redis::pipe()
                        .cmd("LPUSH")
                        .arg(&marker)
                        .arg("1")
                        .ignore()
                        .cmd("LTRIM")
                        .arg(&marker)
                        .arg(0)
                        .arg(0)
                        .ignore()
                        .query_async::<()>(&mut main)
                        .await;
                    if let Err(error) = give_back {
                        tracing::debug!(%error, "could not hand the wake-up marker on");
                    }
                }
                Ok(None) => {}
                Err(error) => {
                    tracing::debug!(%error, "blocking wait failed; retrying");
                    // Parked workers poll on their own timeout meanwhile.
                    tokio::select! {
                        () = stop.cancelled() => return,
                        () = tokio::time::sleep(Duration::from_millis(200)) => {}
                    }
                }
            }
        }
    }
}

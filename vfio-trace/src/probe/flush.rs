//! Drains on request. A collector that yields leaves records in the rings
//! while the workload runs; a live view (`serve`'s scrape, `top`'s refresh)
//! asks every reader to drain now, whatever the yielding rule says, and
//! waits until each has sent what its ring held.

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use tokio::sync::{Notify, watch};

/// How long a request waits for the readers. A reader that ended (its ring
/// failed) never answers; the view then shows what the others sent.
const PATIENCE: Duration = Duration::from_secs(2);

/// The session's side: asks, and waits for every reader's answer.
#[derive(Debug)]
pub struct Flush {
    asked: watch::Sender<u64>,
    drained: Mutex<Vec<Arc<AtomicU64>>>,
    answered: Arc<Notify>,
}

/// A reader's side: learns of requests and answers them.
#[derive(Debug)]
pub struct FlushRequests {
    asked: watch::Receiver<u64>,
    drained: Arc<AtomicU64>,
    answered: Arc<Notify>,
}

impl Default for Flush {
    fn default() -> Self {
        Self {
            asked: watch::channel(0).0,
            drained: Mutex::new(Vec::new()),
            answered: Arc::new(Notify::new()),
        }
    }
}

impl Flush {
    /// A new reader's side of the requests.
    pub fn reader(&self) -> FlushRequests {
        let drained = Arc::new(AtomicU64::new(*self.asked.borrow()));
        if let Ok(mut all) = self.drained.lock() {
            all.push(Arc::clone(&drained));
        }
        FlushRequests {
            asked: self.asked.subscribe(),
            drained,
            answered: Arc::clone(&self.answered),
        }
    }

    /// Asks every reader to drain and waits until all have, or
    /// [`PATIENCE`] passed; true when all did.
    pub async fn now(&self) -> bool {
        self.within(PATIENCE).await
    }

    async fn within(&self, patience: Duration) -> bool {
        let mut asked = 0;
        self.asked.send_modify(|n| {
            *n += 1;
            asked = *n;
        });
        let all_drained = || {
            self.drained
                .lock()
                .is_ok_and(|all| all.iter().all(|d| d.load(Ordering::Acquire) >= asked))
        };
        let wait = async {
            loop {
                let answered = self.answered.notified();
                tokio::pin!(answered);
                // Registered before the check: an answer between the two is not missed.
                answered.as_mut().enable();
                if all_drained() {
                    return;
                }
                answered.await;
            }
        };
        tokio::time::timeout(patience, wait).await.is_ok()
    }
}

impl FlushRequests {
    /// Resolves when a drain is asked for; pending forever once the session is gone.
    pub async fn asked(&mut self) {
        if self.asked.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }

    /// Whether a request is waiting for this reader's answer.
    pub fn pending(&self) -> bool {
        *self.asked.borrow() > self.drained.load(Ordering::Acquire)
    }

    /// The reader drained everything up to now: answers every request made
    /// before the drain began. Call with the request seen before draining.
    pub fn answer(&self, upto: u64) {
        self.drained.fetch_max(upto, Ordering::AcqRel);
        self.answered.notify_waiters();
    }

    /// The latest request.
    pub fn latest(&self) -> u64 {
        *self.asked.borrow()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
    }

    /// A reader task that answers each request after `delay`; counts drains.
    fn answering(mut r: FlushRequests, delay: Duration, drains: Arc<AtomicU64>) {
        tokio::spawn(async move {
            loop {
                r.asked().await;
                let upto = r.latest();
                tokio::time::sleep(delay).await;
                drains.fetch_add(1, Ordering::Relaxed);
                r.answer(upto);
            }
        });
    }

    #[test]
    fn a_request_waits_for_every_reader() {
        rt().block_on(async {
            let flush = Flush::default();
            let drains = Arc::new(AtomicU64::new(0));
            answering(
                flush.reader(),
                Duration::from_millis(10),
                Arc::clone(&drains),
            );
            answering(
                flush.reader(),
                Duration::from_millis(60),
                Arc::clone(&drains),
            );
            let started = tokio::time::Instant::now();
            assert!(flush.now().await);
            assert_eq!(drains.load(Ordering::Relaxed), 2);
            assert!(started.elapsed() >= Duration::from_millis(60));
            // A second request is answered afresh, not by the first answers.
            assert!(flush.now().await);
            assert_eq!(drains.load(Ordering::Relaxed), 4);
        });
    }

    #[test]
    fn a_reader_that_never_answers_costs_the_patience_then_is_passed() {
        rt().block_on(async {
            let flush = Flush::default();
            let drains = Arc::new(AtomicU64::new(0));
            answering(
                flush.reader(),
                Duration::from_millis(1),
                Arc::clone(&drains),
            );
            let _silent = flush.reader();
            let patience = Duration::from_millis(80);
            let started = tokio::time::Instant::now();
            assert!(!flush.within(patience).await);
            assert!(started.elapsed() >= patience);
            assert_eq!(drains.load(Ordering::Relaxed), 1);
        });
    }

    #[test]
    fn a_reader_sees_a_request_made_before_it_looked() {
        rt().block_on(async {
            let flush = Flush::default();
            let r = flush.reader();
            assert!(!r.pending());
            let waiting = tokio::spawn(async move {
                let mut r = r;
                r.asked().await;
                assert!(r.pending());
                r.answer(r.latest());
                assert!(!r.pending());
            });
            assert!(flush.now().await);
            waiting.await.expect("reader");
        });
    }
}

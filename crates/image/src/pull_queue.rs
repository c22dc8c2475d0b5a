//! The node's image pull queue (upstream's serial and parallel pullers, spec §2.5): by default
//! one pull at a time, in arrival order (`serializeImagePulls: true`); else parallel, with an
//! optional limit (`maxParallelImagePulls`). Two requests for the same image never run at
//! once: the second waits for the first and then runs its own pull, which finds the content
//! present (it still resolves the reference with its own credentials, so a private image is
//! not handed to a pod that cannot read it). Each pull reports how long it ran and how long
//! it took since it entered the queue (the Pulled event's "including waiting" part).

use std::collections::HashMap;
use std::future::Future;
use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::{Duration, Instant};

use tokio::sync::{Mutex as AsyncMutex, Semaphore};

/// How many pulls may run at once on the node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PullConcurrency {
    /// One at a time, in arrival order (the kubelet's default).
    #[default]
    Serial,
    /// Up to `limit` at once; `None`: no limit.
    Parallel { limit: Option<NonZeroUsize> },
}

/// A pull configuration the kubelet refuses to start with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PullConcurrencyError {
    #[error("invalid configuration: max_parallel_image_pulls {0} must be a positive number")]
    NotPositive(i64),
    #[error(
        "invalid configuration: max_parallel_image_pulls cannot be larger than 1 unless serialize_image_pulls is set to false"
    )]
    ParallelWhileSerialized,
}

impl PullConcurrency {
    /// From the kubelet's two settings, checked as its configuration validation does:
    /// the limit must be positive, and above 1 only without serialized pulls.
    pub fn from_settings(
        serialize_image_pulls: bool,
        max_parallel_image_pulls: Option<i64>,
    ) -> Result<PullConcurrency, PullConcurrencyError> {
        let limit = match max_parallel_image_pulls {
            None => None,
            Some(n) => Some(
                usize::try_from(n)
                    .ok()
                    .and_then(NonZeroUsize::new)
                    .ok_or(PullConcurrencyError::NotPositive(n))?,
            ),
        };
        if serialize_image_pulls {
            if limit.is_some_and(|l| l.get() > 1) {
                return Err(PullConcurrencyError::ParallelWhileSerialized);
            }
            return Ok(PullConcurrency::Serial);
        }
        Ok(PullConcurrency::Parallel { limit })
    }
}

/// How long a queued pull took.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PullTimes {
    /// From the pull starting to it ending.
    pub pull: Duration,
    /// From the request entering the queue to the pull ending (never less than `pull`).
    pub total: Duration,
}

/// The queue. Shared by every pod worker of the node.
#[derive(Debug)]
pub struct PullQueue {
    /// `None`: no limit. Tokio's semaphore is fair, so waiting pulls start in arrival order.
    slots: Option<Semaphore>,
    /// One lock per image being pulled or waited for; dead entries are swept on insert.
    images: Mutex<HashMap<String, Weak<AsyncMutex<()>>>>,
}

impl Default for PullQueue {
    fn default() -> PullQueue {
        PullQueue::new(PullConcurrency::default())
    }
}

impl PullQueue {
    pub fn new(concurrency: PullConcurrency) -> PullQueue {
        let slots = match concurrency {
            PullConcurrency::Serial => Some(1),
            PullConcurrency::Parallel { limit } => limit.map(NonZeroUsize::get),
        };
        PullQueue {
            slots: slots.map(Semaphore::new),
            images: Mutex::new(HashMap::new()),
        }
    }

    /// Runs `pull` (of `image`, its normalised name) when its turn comes.
    pub async fn run<T>(&self, image: &str, pull: impl Future<Output = T>) -> (T, PullTimes) {
        let queued = Instant::now();
        let same_image = self.image_lock(image);
        // The image first, then a slot: a pull waiting for the same image holds no slot.
        let _one_per_image = same_image.lock().await;
        let _slot = match &self.slots {
            // Acquiring fails only on a closed semaphore, and this one is never closed.
            Some(slots) => slots.acquire().await.ok(),
            None => None,
        };
        let started = Instant::now();
        let output = pull.await;
        let times = PullTimes {
            pull: started.elapsed(),
            total: queued.elapsed(),
        };
        (output, times)
    }

    fn image_lock(&self, image: &str) -> Arc<AsyncMutex<()>> {
        let mut images = self.images.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(lock) = images.get(image).and_then(Weak::upgrade) {
            return lock;
        }
        images.retain(|_, lock| lock.strong_count() > 0);
        let lock = Arc::new(AsyncMutex::new(()));
        images.insert(image.to_owned(), Arc::downgrade(&lock));
        lock
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use futures_util::future::join_all;
    use tokio::sync::Barrier;

    use super::*;

    /// What the fake pulls saw: how many ran at once at most, and the start/end order.
    #[derive(Default)]
    struct Log {
        running: AtomicUsize,
        most: AtomicUsize,
        steps: Mutex<Vec<String>>,
    }

    impl Log {
        async fn pull(&self, name: &str, meet: Option<&Barrier>) -> String {
            let now = self.running.fetch_add(1, Ordering::SeqCst) + 1;
            self.most.fetch_max(now, Ordering::SeqCst);
            self.steps.lock().unwrap().push(format!("start {name}"));
            if let Some(barrier) = meet {
                barrier.wait().await;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
            self.steps.lock().unwrap().push(format!("end {name}"));
            self.running.fetch_sub(1, Ordering::SeqCst);
            name.to_owned()
        }

        fn most(&self) -> usize {
            self.most.load(Ordering::SeqCst)
        }

        fn steps(&self) -> Vec<String> {
            self.steps.lock().unwrap().clone()
        }
    }

    /// `work`, or a panic instead of a hang when the queue deadlocks the barrier pulls.
    async fn without_deadlock<T>(work: impl Future<Output = T>) -> T {
        tokio::time::timeout(Duration::from_secs(60), work)
            .await
            .expect("the pulls never met: the queue ran fewer at once than it should")
    }

    fn limit(n: usize) -> PullConcurrency {
        PullConcurrency::Parallel {
            limit: NonZeroUsize::new(n),
        }
    }

    #[tokio::test]
    async fn serial_pulls_run_one_at_a_time_in_arrival_order_and_count_their_wait() {
        let queue = PullQueue::new(PullConcurrency::Serial);
        let log = Log::default();
        let done =
            join_all(["a", "b", "c"].map(|image| queue.run(image, log.pull(image, None)))).await;
        assert_eq!(log.most(), 1);
        assert_eq!(
            log.steps(),
            ["start a", "end a", "start b", "end b", "start c", "end c"]
        );
        for (_, times) in &done {
            assert!(times.total >= times.pull, "{times:?}");
        }
        // b and c waited for whole pulls before theirs.
        assert!(done[1].1.total > done[1].1.pull, "{:?}", done[1].1);
        assert!(done[2].1.total > done[2].1.pull, "{:?}", done[2].1);
    }

    #[tokio::test]
    async fn parallel_pulls_run_together_up_to_the_limit() {
        // Each pull waits at a barrier for another: this only finishes if two run at once.
        let queue = PullQueue::new(limit(2));
        let log = Log::default();
        let barrier = Barrier::new(2);
        without_deadlock(join_all(
            ["a", "b", "c", "d"].map(|image| queue.run(image, log.pull(image, Some(&barrier)))),
        ))
        .await;
        assert_eq!(log.most(), 2);

        let queue = PullQueue::new(PullConcurrency::Parallel { limit: None });
        let log = Log::default();
        let barrier = Barrier::new(4);
        without_deadlock(join_all(
            ["a", "b", "c", "d"].map(|image| queue.run(image, log.pull(image, Some(&barrier)))),
        ))
        .await;
        assert_eq!(log.most(), 4);
    }

    #[tokio::test]
    async fn the_same_image_is_pulled_by_one_request_at_a_time() {
        let queue = PullQueue::new(PullConcurrency::Parallel { limit: None });
        let log = Log::default();
        let done = join_all([
            queue.run("x", log.pull("x1", None)),
            queue.run("x", log.pull("x2", None)),
        ])
        .await;
        assert_eq!(log.steps(), ["start x1", "end x1", "start x2", "end x2"]);
        assert!(done[1].1.total > done[1].1.pull, "{:?}", done[1].1);
        // Nothing is left behind for images no one is pulling.
        drop(done);
        queue.image_lock("y");
        assert_eq!(queue.images.lock().unwrap().len(), 1);
    }

    #[tokio::test]
    async fn a_pull_waiting_for_its_image_does_not_hold_a_slot() {
        // x2 waits for x1; y must not wait behind x2.
        let queue = PullQueue::new(limit(2));
        let log = Log::default();
        let barrier = Barrier::new(2);
        without_deadlock(join_all([
            queue.run("x", log.pull("x1", Some(&barrier))),
            queue.run("x", log.pull("x2", None)),
            queue.run("y", log.pull("y", Some(&barrier))),
        ]))
        .await;
        let steps = log.steps();
        assert_eq!(&steps[..2], ["start x1", "start y"], "{steps:?}");
    }

    #[test]
    fn settings_are_checked_as_the_kubelet_checks_them() {
        let from = PullConcurrency::from_settings;
        assert_eq!(from(true, None), Ok(PullConcurrency::Serial));
        assert_eq!(from(true, Some(1)), Ok(PullConcurrency::Serial));
        assert_eq!(
            from(false, None),
            Ok(PullConcurrency::Parallel { limit: None })
        );
        assert_eq!(from(false, Some(3)), Ok(limit(3)));
        assert_eq!(
            from(false, Some(0)),
            Err(PullConcurrencyError::NotPositive(0))
        );
        assert_eq!(
            from(true, Some(-1)),
            Err(PullConcurrencyError::NotPositive(-1))
        );
        let err = from(true, Some(2)).unwrap_err();
        assert_eq!(err, PullConcurrencyError::ParallelWhileSerialized);
        assert_eq!(
            err.to_string(),
            "invalid configuration: max_parallel_image_pulls cannot be larger than 1 unless serialize_image_pulls is set to false"
        );
        assert_eq!(
            PullConcurrencyError::NotPositive(0).to_string(),
            "invalid configuration: max_parallel_image_pulls 0 must be a positive number"
        );
    }
}

//! The pod's termination deadline, shared between the worker (which terminates) and its
//! [`super::StopHandle`] (through which later deletions arrive while it does).
//!
//! Upstream's pod worker (`calculateEffectiveGracePeriod`, `UpdatePod`) lets the grace period
//! of a terminating pod only shrink: a second deletion with a smaller
//! `deletionGracePeriodSeconds` (or a forced one) cancels the kill in progress and kills
//! again with the new value. Here the PreStop and stop waits in progress re-read the shared
//! deadline instead: once shortened, each ends by the new deadline (a stop signal still gets
//! [`hooks::MINIMUM_GRACE_PERIOD_SECONDS`]) and the containers are killed then. The deadline
//! never moves later.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::hooks;

/// How often a wait re-reads the shared deadline (it may have been shortened meanwhile).
const RECHECK: Duration = Duration::from_millis(100);

#[derive(Debug, Default)]
pub(super) struct TerminationGrace {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// The smallest deletion grace requested so far, in seconds.
    requested: Option<i64>,
    /// Set once termination begins.
    running: Option<Running>,
}

#[derive(Debug, Clone, Copy)]
struct Running {
    /// The grace period in force (only shrinks; at least 1 s).
    grace: i64,
    deadline: Instant,
    /// Whether a later, smaller grace replaced the one termination began with.
    shortened: bool,
}

impl TerminationGrace {
    /// A deletion with `deletion_grace` seconds (0 for a forced one) was requested. Shortens
    /// a termination in progress when it is smaller than the grace in force (from now);
    /// returns whether it did.
    pub(super) fn request(&self, deletion_grace: i64) -> bool {
        let mut state = self.lock();
        state.requested = Some(
            state
                .requested
                .map_or(deletion_grace, |r| r.min(deletion_grace)),
        );
        let Some(running) = state.running.as_mut() else {
            return false;
        };
        let grace = hooks::effective_pod_grace_period(
            Some(running.grace),
            Some(deletion_grace),
            None,
            None,
        );
        if grace >= running.grace {
            return false;
        }
        running.grace = grace;
        running.deadline = running.deadline.min(Instant::now() + seconds(grace));
        running.shortened = true;
        true
    }

    /// Termination begins with `grace` seconds (already lowered by the deletion the worker
    /// knew of), lowered further by any deletion requested since; returns the grace in force.
    pub(super) fn begin(&self, grace: i64) -> i64 {
        let mut state = self.lock();
        let grace = hooks::effective_pod_grace_period(Some(grace), state.requested, None, None);
        state.running = Some(Running {
            grace,
            deadline: Instant::now() + seconds(grace),
            shortened: false,
        });
        grace
    }

    /// The deadline once a smaller grace replaced the first one (else the waits keep their
    /// own plan, which charges PreStop only whole seconds as upstream does).
    fn shortened_deadline(&self) -> Option<Instant> {
        self.lock()
            .running
            .filter(|r| r.shortened)
            .map(|r| r.deadline)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// When one wait of a container stop ends: its own plan, or the pod's shortened deadline.
#[derive(Debug, Clone, Copy)]
pub(super) struct WaitLimit<'a> {
    planned: Instant,
    /// The earliest it may end whatever the deadline (the stop signal's minimum).
    floor: Option<Instant>,
    shared: Option<&'a TerminationGrace>,
}

impl<'a> WaitLimit<'a> {
    /// The PreStop wait: `planned` from now, or the pod's deadline once shortened.
    pub(super) fn pre_stop(planned: Duration, shared: Option<&'a TerminationGrace>) -> Self {
        WaitLimit {
            planned: Instant::now() + planned,
            floor: None,
            shared,
        }
    }

    /// The wait after the stop signal: `timeout_seconds` from now, or the pod's deadline once
    /// shortened but never less than the minimum stop timeout.
    pub(super) fn stop(timeout_seconds: i64, shared: Option<&'a TerminationGrace>) -> Self {
        let now = Instant::now();
        WaitLimit {
            planned: now + seconds(timeout_seconds),
            floor: Some(now + seconds(hooks::MINIMUM_GRACE_PERIOD_SECONDS)),
            shared,
        }
    }

    fn end(&self) -> Instant {
        match self.shared.and_then(TerminationGrace::shortened_deadline) {
            Some(deadline) => self
                .planned
                .min(self.floor.map_or(deadline, |f| deadline.max(f))),
            None => self.planned,
        }
    }

    /// Calls `attempt` with how long it may block until it yields a value or the limit
    /// passes (`None`).
    pub(super) fn wait<T>(&self, mut attempt: impl FnMut(Duration) -> Option<T>) -> Option<T> {
        loop {
            let left = self.end().saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            let slice = if self.shared.is_some() {
                left.min(RECHECK)
            } else {
                left
            };
            if let Some(value) = attempt(slice) {
                return Some(value);
            }
        }
    }
}

fn seconds(s: i64) -> Duration {
    Duration::from_secs(s.max(0).unsigned_abs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_smaller_grace_shortens_and_a_larger_one_does_not() {
        let grace = TerminationGrace::default();
        assert!(!grace.request(30), "nothing to shorten before termination");
        assert_eq!(grace.begin(60), 30, "a deletion requested before counts");
        assert!(grace.shortened_deadline().is_none());
        assert!(!grace.request(45));
        assert!(grace.request(0), "forced: the minimum");
        let deadline = grace.shortened_deadline().unwrap();
        assert!(deadline <= Instant::now() + Duration::from_secs(1));
        assert!(!grace.request(1));
        assert_eq!(grace.shortened_deadline(), Some(deadline));
    }

    #[test]
    fn waits_end_by_the_shortened_deadline_but_stops_keep_their_minimum() {
        let grace = TerminationGrace::default();
        grace.begin(60);
        let pre_stop = WaitLimit::pre_stop(Duration::from_secs(60), Some(&grace));
        let stop = WaitLimit::stop(60, Some(&grace));
        let unshared = WaitLimit::stop(60, None);
        assert!(pre_stop.end() > Instant::now() + Duration::from_secs(50));
        grace.request(1);
        let soon = Instant::now() + Duration::from_millis(1500);
        assert!(pre_stop.end() <= soon);
        assert!(stop.end() > soon && stop.end() <= soon + Duration::from_secs(1));
        assert!(unshared.end() > Instant::now() + Duration::from_secs(50));
        let mut calls = 0;
        let out: Option<()> = pre_stop.wait(|slice| {
            calls += 1;
            assert!(slice <= RECHECK);
            std::thread::sleep(slice);
            None
        });
        assert!(out.is_none() && calls > 1);
    }
}

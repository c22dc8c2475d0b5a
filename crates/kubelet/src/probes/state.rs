//! One probe of one container as a pure state machine (upstream `prober/worker.go`), driven
//! with the clock passed in.
//!
//! Schedule: ticks every `periodSeconds` from the container's start (the first tick at the
//! start itself); a tick runs the probe unless the container is younger than
//! `initialDelaySeconds` or the startup gate is closed. Liveness and readiness wait until the
//! container has started (its startup probe succeeded, or it has none); the startup probe stops
//! once it has. When the gate opens, readiness runs at once (upstream triggers it manually),
//! liveness at its next tick.
//!
//! Results: readiness starts at `Failure` (not ready until the first success), liveness at
//! `Success`, startup at `Unknown`. A run of `successThreshold` successes or
//! `failureThreshold` failures in a row publishes that result. Every failed run records an
//! `Unhealthy` event. A published liveness or startup failure kills the container, and the
//! probe holds until the container is replaced ([`ProbeState::reset`]).

use std::time::{Duration, Instant};

use super::{Outcome, ProbeKind, ProbeResult, ProbeSettings, probe_errored, probe_warning};
use crate::events::{Event, KillReason, unhealthy};

/// What the driver should do next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Poll {
    /// Run the probe now, then [`ProbeState::record`] its outcome.
    Run,
    /// Nothing to do before this instant (poll again then, or when the gate changes).
    Wait(Instant),
    /// Waiting for a new container (after a kill); poll again after [`ProbeState::reset`].
    Hold,
    /// This probe has nothing more to do for this container.
    Done,
}

/// What recording one outcome did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// The published result after this run.
    pub result: ProbeResult,
    /// Whether the published result changed.
    pub changed: bool,
    /// `Unhealthy` for a failure or an error, `ProbeWarning` for a warning.
    pub event: Option<Event>,
    /// The container must be killed (liveness or startup failure threshold reached).
    pub kill: bool,
}

/// One probe kind of one container.
#[derive(Debug, Clone)]
pub struct ProbeState {
    kind: ProbeKind,
    settings: ProbeSettings,
    started_at: Instant,
    result: ProbeResult,
    last_observed: Option<ProbeResult>,
    run_length: u32,
    next_tick: Instant,
    on_hold: bool,
    done: bool,
    gated: bool,
}

/// The result a probe publishes before its first decisive run.
pub fn initial_result(kind: ProbeKind) -> ProbeResult {
    match kind {
        ProbeKind::Readiness => ProbeResult::Failure,
        ProbeKind::Liveness => ProbeResult::Success,
        ProbeKind::Startup => ProbeResult::Unknown,
    }
}

impl ProbeState {
    /// A probe for a container running since `started_at`.
    pub fn new(kind: ProbeKind, settings: ProbeSettings, started_at: Instant) -> ProbeState {
        ProbeState {
            kind,
            settings,
            started_at,
            result: initial_result(kind),
            last_observed: None,
            run_length: 0,
            next_tick: started_at,
            on_hold: false,
            done: false,
            gated: false,
        }
    }

    pub fn kind(&self) -> ProbeKind {
        self.kind
    }

    pub fn settings(&self) -> &ProbeSettings {
        &self.settings
    }

    /// The published result.
    pub fn result(&self) -> ProbeResult {
        self.result
    }

    /// A new container (a new ID) replaced the old one: start over.
    pub fn reset(&mut self, started_at: Instant) {
        *self = ProbeState::new(self.kind, self.settings, started_at);
    }

    /// `started`: the container's startup probe has succeeded, or it has none.
    pub fn poll(&mut self, now: Instant, started: bool) -> Poll {
        if self.done {
            return Poll::Done;
        }
        if self.on_hold {
            return Poll::Hold;
        }
        let open = match self.kind {
            ProbeKind::Startup if started => {
                self.done = true;
                return Poll::Done;
            }
            ProbeKind::Startup => true,
            ProbeKind::Liveness | ProbeKind::Readiness => started,
        };
        let delay_over =
            now.saturating_duration_since(self.started_at) >= self.settings.initial_delay;
        if open && self.gated && self.kind == ProbeKind::Readiness && delay_over {
            self.gated = false;
            return Poll::Run;
        }
        if now < self.next_tick {
            return Poll::Wait(self.next_tick);
        }
        self.next_tick = self.tick_after(now);
        if !open {
            self.gated = true;
            return Poll::Wait(self.next_tick);
        }
        self.gated = false;
        if !delay_over {
            return Poll::Wait(self.next_tick);
        }
        Poll::Run
    }

    /// The first tick strictly after `now` (ticks missed while a probe ran are dropped, as a
    /// Go ticker drops them).
    fn tick_after(&self, now: Instant) -> Instant {
        let period = self.settings.period.max(Duration::from_millis(1));
        let since_start = now.saturating_duration_since(self.started_at);
        let ticks = since_start.as_nanos() / period.as_nanos() + 1;
        let ticks = u32::try_from(ticks).unwrap_or(u32::MAX);
        self.started_at + period.saturating_mul(ticks)
    }

    /// Records the outcome of a run that [`ProbeState::poll`] asked for.
    pub fn record(&mut self, outcome: Outcome) -> Record {
        let (observed, event) = match outcome {
            Outcome::Success(_) => (ProbeResult::Success, None),
            Outcome::Warning(output) => (
                ProbeResult::Success,
                Some(probe_warning(self.kind, &output)),
            ),
            Outcome::Failure(output) => (ProbeResult::Failure, Some(unhealthy(self.kind, &output))),
            Outcome::Error(error) => {
                return Record {
                    result: self.result,
                    changed: false,
                    event: Some(probe_errored(self.kind, &error)),
                    kill: false,
                };
            }
        };
        if self.last_observed == Some(observed) {
            self.run_length = self.run_length.saturating_add(1);
        } else {
            self.last_observed = Some(observed);
            self.run_length = 1;
        }
        let threshold = match observed {
            ProbeResult::Failure => self.settings.failure_threshold,
            _ => self.settings.success_threshold,
        };
        let mut record = Record {
            result: self.result,
            changed: false,
            event,
            kill: false,
        };
        if self.run_length < threshold {
            return record;
        }
        record.changed = self.result != observed;
        self.result = observed;
        record.result = observed;
        if observed == ProbeResult::Failure && self.kind != ProbeKind::Readiness {
            self.on_hold = true;
            self.run_length = 0;
            record.kill = true;
        }
        record
    }

    /// The pod is being deleted: liveness and startup report success and stop, so the
    /// shutdown is not disturbed by a kill; readiness goes on. Returns whether the result
    /// changed.
    pub fn pod_terminating(&mut self) -> bool {
        if self.kind == ProbeKind::Readiness {
            return false;
        }
        self.done = true;
        let changed = self.result != ProbeResult::Success;
        self.result = ProbeResult::Success;
        changed
    }

    /// The container is no longer running: the result is `Failure` and probing stops.
    pub fn container_exited(&mut self) -> bool {
        self.done = true;
        let changed = self.result != ProbeResult::Failure;
        self.result = ProbeResult::Failure;
        changed
    }

    /// Why a kill this probe asked for happens (the `Killing` message and which
    /// `terminationGracePeriodSeconds` applies).
    pub fn kill_reason(&self) -> Option<KillReason> {
        kill_reason(self.kind)
    }
}

/// The kill reason of a liveness or startup probe.
pub fn kill_reason(kind: ProbeKind) -> Option<KillReason> {
    match kind {
        ProbeKind::Liveness => Some(KillReason::LivenessProbe),
        ProbeKind::Startup => Some(KillReason::StartupProbe),
        ProbeKind::Readiness => None,
    }
}

/// Whether the container counts as started (`ContainerStatus.started`): running, and its
/// startup probe (if any) has succeeded.
pub fn started(running: bool, startup: Option<ProbeResult>) -> bool {
    running && startup.is_none_or(|r| r == ProbeResult::Success)
}

/// Whether the container counts as ready (`ContainerStatus.ready`): running, and its readiness
/// probe (if any) has succeeded.
pub fn ready(running: bool, readiness: Option<ProbeResult>) -> bool {
    running && readiness.is_none_or(|r| r == ProbeResult::Success)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(delay: u64, period: u64, success: u32, failure: u32) -> ProbeSettings {
        ProbeSettings {
            initial_delay: Duration::from_secs(delay),
            period: Duration::from_secs(period),
            timeout: Duration::from_secs(1),
            success_threshold: success,
            failure_threshold: failure,
        }
    }

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    fn fail() -> Outcome {
        Outcome::Failure("HTTP probe failed with statuscode: 500".into())
    }

    fn ok() -> Outcome {
        Outcome::Success(String::new())
    }

    /// Polls every second from the start for `until` seconds (gate open), returning the
    /// seconds at which the probe ran; each run records `outcome(n)` for the n-th run.
    fn run_times(state: &mut ProbeState, t0: Instant, until: u64) -> Vec<u64> {
        let mut times = Vec::new();
        for s in 0..=until {
            if state.poll(t0 + secs(s), true) == Poll::Run {
                times.push(s);
                state.record(ok());
            }
        }
        times
    }

    #[test]
    fn schedule_follows_period_and_initial_delay() {
        let t0 = Instant::now();
        let cases: &[(u64, u64, &[u64])] = &[
            // (initialDelaySeconds, periodSeconds, run times within 30 s)
            (0, 10, &[0, 10, 20, 30]),
            (15, 10, &[20, 30]),
            (10, 10, &[10, 20, 30]),
            (5, 3, &[6, 9, 12, 15, 18, 21, 24, 27, 30]),
            (0, 1, &(0..=30).collect::<Vec<_>>()),
        ];
        for &(delay, period, want) in cases {
            let mut state = ProbeState::new(ProbeKind::Liveness, settings(delay, period, 1, 3), t0);
            assert_eq!(
                run_times(&mut state, t0, 30),
                want,
                "delay {delay} period {period}"
            );
        }
    }

    #[test]
    fn wait_names_the_next_tick() {
        let t0 = Instant::now();
        let mut state = ProbeState::new(ProbeKind::Liveness, settings(0, 10, 1, 3), t0);
        assert_eq!(state.poll(t0, true), Poll::Run);
        state.record(ok());
        assert_eq!(state.poll(t0 + secs(3), true), Poll::Wait(t0 + secs(10)));
        // A slow run past several ticks: the missed ones are dropped.
        assert_eq!(state.poll(t0 + secs(10), true), Poll::Run);
        assert_eq!(state.poll(t0 + secs(35), true), Poll::Run);
        assert_eq!(state.poll(t0 + secs(36), true), Poll::Wait(t0 + secs(40)));
    }

    #[test]
    fn initial_results() {
        assert_eq!(initial_result(ProbeKind::Readiness), ProbeResult::Failure);
        assert_eq!(initial_result(ProbeKind::Liveness), ProbeResult::Success);
        assert_eq!(initial_result(ProbeKind::Startup), ProbeResult::Unknown);
    }

    /// Feeds `outcomes` (true = success) and returns, per run, (published result, kill).
    fn feed(kind: ProbeKind, s: ProbeSettings, outcomes: &[bool]) -> Vec<(ProbeResult, bool)> {
        let mut state = ProbeState::new(kind, s, Instant::now());
        outcomes
            .iter()
            .map(|&pass| {
                let r = state.record(if pass { ok() } else { fail() });
                (r.result, r.kill)
            })
            .collect()
    }

    /// (name, kind, settings, outcomes as pass/fail, per run: published result and kill)
    type ThresholdCase = (
        &'static str,
        ProbeKind,
        ProbeSettings,
        Vec<bool>,
        Vec<(ProbeResult, bool)>,
    );

    #[test]
    fn thresholds() {
        use ProbeResult::{Failure as F, Success as S, Unknown as U};
        let cases: Vec<ThresholdCase> = vec![
            (
                "liveness kills on the third failure in a row",
                ProbeKind::Liveness,
                settings(0, 10, 1, 3),
                vec![false, false, false],
                vec![(S, false), (S, false), (F, true)],
            ),
            (
                "a success in between restarts the count",
                ProbeKind::Liveness,
                settings(0, 10, 1, 3),
                vec![false, false, true, false, false, false],
                vec![
                    (S, false),
                    (S, false),
                    (S, false),
                    (S, false),
                    (S, false),
                    (F, true),
                ],
            ),
            (
                "failureThreshold 1 kills at once",
                ProbeKind::Liveness,
                settings(0, 10, 1, 1),
                vec![false],
                vec![(F, true)],
            ),
            (
                "readiness is not ready until the first success",
                ProbeKind::Readiness,
                settings(0, 10, 1, 3),
                vec![true, false, false, false, true],
                vec![(S, false), (S, false), (S, false), (F, false), (S, false)],
            ),
            (
                "readiness successThreshold 2",
                ProbeKind::Readiness,
                settings(0, 10, 2, 1),
                vec![true, false, true, true, false],
                vec![(F, false), (F, false), (F, false), (S, false), (F, false)],
            ),
            (
                "startup stays Unknown below the threshold, then kills",
                ProbeKind::Startup,
                settings(0, 10, 1, 2),
                vec![false, false],
                vec![(U, false), (F, true)],
            ),
            (
                "startup succeeds at once",
                ProbeKind::Startup,
                settings(0, 10, 1, 2),
                vec![false, true],
                vec![(U, false), (S, false)],
            ),
        ];
        for (name, kind, s, outcomes, want) in cases {
            assert_eq!(feed(kind, s, &outcomes), want, "{name}");
        }
    }

    #[test]
    fn every_failure_records_unhealthy() {
        let mut state = ProbeState::new(ProbeKind::Liveness, settings(0, 10, 1, 3), Instant::now());
        for _ in 0..2 {
            let r = state.record(fail());
            let event = r.event.expect("an Unhealthy event");
            assert_eq!(event.reason, "Unhealthy");
            assert_eq!(
                event.message,
                "Liveness probe failed: HTTP probe failed with statuscode: 500"
            );
        }
        assert_eq!(state.record(ok()).event, None);
        let warned = state.record(Outcome::Warning(
            "Probe terminated redirects, Response body: ".into(),
        ));
        assert_eq!(warned.result, ProbeResult::Success);
        assert_eq!(warned.event.expect("warning").reason, "ProbeWarning");
        let errored = state.record(Outcome::Error("invalid port number: 0".into()));
        assert_eq!(
            errored,
            Record {
                result: ProbeResult::Success,
                changed: false,
                event: Some(probe_errored(ProbeKind::Liveness, "invalid port number: 0")),
                kill: false,
            }
        );
    }

    #[test]
    fn errors_do_not_count_towards_thresholds() {
        let mut state = ProbeState::new(ProbeKind::Liveness, settings(0, 10, 1, 2), Instant::now());
        assert!(!state.record(fail()).kill);
        assert!(!state.record(Outcome::Error("x".into())).kill);
        assert!(state.record(fail()).kill);
    }

    #[test]
    fn kill_holds_until_a_new_container() {
        let t0 = Instant::now();
        let mut state = ProbeState::new(ProbeKind::Liveness, settings(0, 1, 1, 1), t0);
        assert_eq!(state.poll(t0, true), Poll::Run);
        let r = state.record(fail());
        assert!(r.kill && r.changed);
        assert_eq!(state.kill_reason(), Some(KillReason::LivenessProbe));
        assert_eq!(state.poll(t0 + secs(5), true), Poll::Hold);
        let t1 = t0 + secs(6);
        state.reset(t1);
        assert_eq!(state.result(), ProbeResult::Success);
        assert_eq!(state.poll(t1, true), Poll::Run);
    }

    #[test]
    fn startup_gates_liveness_and_readiness() {
        let t0 = Instant::now();
        let mut startup = ProbeState::new(ProbeKind::Startup, settings(0, 10, 1, 3), t0);
        let mut liveness = ProbeState::new(ProbeKind::Liveness, settings(0, 10, 1, 3), t0);
        let mut readiness = ProbeState::new(ProbeKind::Readiness, settings(0, 10, 1, 3), t0);
        let is_started = |s: &ProbeState| started(true, Some(s.result()));

        assert_eq!(startup.poll(t0, is_started(&startup)), Poll::Run);
        startup.record(fail());
        assert!(!is_started(&startup));
        assert_eq!(liveness.poll(t0, false), Poll::Wait(t0 + secs(10)));
        assert_eq!(readiness.poll(t0, false), Poll::Wait(t0 + secs(10)));

        assert_eq!(startup.poll(t0 + secs(10), false), Poll::Run);
        assert_eq!(
            liveness.poll(t0 + secs(10), false),
            Poll::Wait(t0 + secs(20))
        );
        assert_eq!(
            readiness.poll(t0 + secs(10), false),
            Poll::Wait(t0 + secs(20))
        );
        startup.record(ok());
        assert!(is_started(&startup));
        assert_eq!(startup.poll(t0 + secs(11), true), Poll::Done);
        // Readiness runs as soon as the gate opens, liveness at its next tick.
        assert_eq!(readiness.poll(t0 + secs(11), true), Poll::Run);
        readiness.record(ok());
        assert_eq!(
            readiness.poll(t0 + secs(12), true),
            Poll::Wait(t0 + secs(20))
        );
        assert_eq!(
            liveness.poll(t0 + secs(11), true),
            Poll::Wait(t0 + secs(20))
        );
        assert_eq!(liveness.poll(t0 + secs(20), true), Poll::Run);
    }

    #[test]
    fn readiness_trigger_respects_initial_delay() {
        let t0 = Instant::now();
        let mut readiness = ProbeState::new(ProbeKind::Readiness, settings(30, 10, 1, 3), t0);
        assert_eq!(readiness.poll(t0, false), Poll::Wait(t0 + secs(10)));
        assert_eq!(
            readiness.poll(t0 + secs(5), true),
            Poll::Wait(t0 + secs(10))
        );
        assert_eq!(
            readiness.poll(t0 + secs(10), true),
            Poll::Wait(t0 + secs(20))
        );
        assert_eq!(readiness.poll(t0 + secs(30), true), Poll::Run);
    }

    #[test]
    fn pod_deletion_quiets_liveness_and_startup() {
        let t0 = Instant::now();
        let mut liveness = ProbeState::new(ProbeKind::Liveness, settings(0, 1, 1, 3), t0);
        liveness.record(fail());
        assert!(!liveness.pod_terminating());
        assert_eq!(liveness.poll(t0 + secs(1), true), Poll::Done);
        let mut startup = ProbeState::new(ProbeKind::Startup, settings(0, 1, 1, 3), t0);
        assert!(startup.pod_terminating());
        assert_eq!(startup.result(), ProbeResult::Success);
        let mut readiness = ProbeState::new(ProbeKind::Readiness, settings(0, 1, 1, 3), t0);
        assert!(!readiness.pod_terminating());
        assert_eq!(readiness.poll(t0, true), Poll::Run);
    }

    #[test]
    fn exited_container_fails_and_stops() {
        let mut liveness =
            ProbeState::new(ProbeKind::Liveness, settings(0, 1, 1, 3), Instant::now());
        assert!(liveness.container_exited());
        assert_eq!(liveness.result(), ProbeResult::Failure);
        assert_eq!(liveness.poll(Instant::now(), true), Poll::Done);
    }

    #[test]
    fn started_and_ready() {
        use ProbeResult::*;
        assert!(started(true, None));
        assert!(!started(false, None));
        assert!(!started(true, Some(Unknown)));
        assert!(started(true, Some(Success)));
        assert!(ready(true, None));
        assert!(!ready(true, Some(Failure)));
        assert!(ready(true, Some(Success)));
        assert!(!ready(false, Some(Success)));
    }
}

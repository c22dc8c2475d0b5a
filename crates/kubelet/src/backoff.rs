//! CrashLoopBackOff (spec §8.8) and the restart policy (§8.7).
//!
//! The kubelet keeps one back-off entry per container *spec* (pod name, namespace, uid,
//! container name and a hash of the container), so a changed image or command starts afresh.
//! The reference time is the exited container's `finishedAt`: the first exit restarts at once
//! and opens a 10 s window; each later exit inside the window doubles it, up to 300 s. An entry
//! whose last update is more than 600 s (twice the cap) before the exit counts as forgotten,
//! which is the "10 minutes of running without problems" reset. Delays seen by users: 0, 10,
//! 20, 40, 80, 160, 300, 300 … s.
//!
//! Time is always passed in (`now`, `finished_at`); nothing here reads a clock.

use std::collections::HashMap;
use std::time::Duration;

use nodelet_api::k8s::api::core::v1::{Container, Pod};
use nodelet_api::k8s::jiff::Timestamp;
use nodelet_image::pull_policy::go_duration;

use crate::events::{Event, format_pod, reason};

/// The waiting reason while a restart is held back.
pub const CRASH_LOOP_BACK_OFF: &str = "CrashLoopBackOff";

/// The per-container-spec restart back-off.
#[derive(Debug, Clone)]
pub struct CrashLoopBackOff {
    initial: Duration,
    max: Duration,
    entries: HashMap<String, Entry>,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    delay: Duration,
    last_update: Timestamp,
}

/// What to do with an exited container that should be restarted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestartDecision {
    /// Start it now (the back-off has been advanced for the next exit).
    Restart,
    /// Keep it waiting with `CrashLoopBackOff`; `delay` is the current window, `remaining`
    /// how long until it ends.
    Wait {
        delay: Duration,
        remaining: Duration,
    },
}

impl Default for CrashLoopBackOff {
    fn default() -> Self {
        CrashLoopBackOff::new()
    }
}

/// `later - earlier`, zero when `later` is not later.
fn since(earlier: Timestamp, later: Timestamp) -> Duration {
    let d = later.duration_since(earlier);
    if d.is_negative() {
        Duration::ZERO
    } else {
        d.unsigned_abs()
    }
}

impl CrashLoopBackOff {
    /// The kubelet's initial restart delay.
    pub const INITIAL_DELAY: Duration = Duration::from_secs(10);
    /// `MaxContainerBackOff`.
    pub const MAX_DELAY: Duration = Duration::from_secs(300);

    pub fn new() -> CrashLoopBackOff {
        CrashLoopBackOff::with_limits(CrashLoopBackOff::INITIAL_DELAY, CrashLoopBackOff::MAX_DELAY)
    }

    /// Other limits: `crashLoopBackOff.maxContainerRestartPeriod` lowers the cap (and the
    /// initial delay when it is smaller still).
    pub fn with_limits(initial: Duration, max: Duration) -> CrashLoopBackOff {
        CrashLoopBackOff {
            initial: initial.min(max),
            max,
            entries: HashMap::new(),
        }
    }

    /// `<pod>_<namespace>_<uid>_<container>_<spec hash>`.
    pub fn key(pod: &Pod, container: &Container) -> String {
        let m = &pod.metadata;
        format!(
            "{}_{}_{}_{}_{}",
            m.name.as_deref().unwrap_or(""),
            m.namespace.as_deref().unwrap_or(""),
            m.uid.as_deref().unwrap_or(""),
            container.name,
            container_hash(container)
        )
    }

    fn expired(&self, entry: &Entry, event_time: Timestamp) -> bool {
        since(entry.last_update, event_time) > self.max * 2
    }

    /// Whether a restart of the container that finished at `finished_at` must wait at `now`
    /// (client-go `IsInBackOffSince`).
    pub fn is_in_back_off(&self, key: &str, finished_at: Timestamp, now: Timestamp) -> bool {
        self.entries
            .get(key)
            .is_some_and(|e| !self.expired(e, finished_at) && since(finished_at, now) < e.delay)
    }

    /// Records a restart at `now` of the container that finished at `finished_at`: a new or
    /// forgotten entry starts at the initial delay, otherwise the delay doubles up to the cap
    /// (client-go `Next`, without jitter: the kubelet uses none).
    pub fn next(&mut self, key: &str, finished_at: Timestamp, now: Timestamp) {
        let delay = match self.entries.get(key) {
            Some(e) if !self.expired(e, finished_at) => (e.delay * 2).min(self.max),
            _ => self.initial,
        };
        self.entries.insert(
            key.to_owned(),
            Entry {
                delay,
                last_update: now,
            },
        );
    }

    /// The kubelet's `doBackOff` for an exited container that the restart policy wants back:
    /// wait while inside the window, otherwise advance the back-off and restart.
    pub fn decide(&mut self, key: &str, finished_at: Timestamp, now: Timestamp) -> RestartDecision {
        if self.is_in_back_off(key, finished_at, now) {
            let delay = self.delay(key);
            return RestartDecision::Wait {
                delay,
                remaining: delay.saturating_sub(since(finished_at, now)),
            };
        }
        self.next(key, finished_at, now);
        RestartDecision::Restart
    }

    /// The current window for `key` (zero without an entry).
    pub fn delay(&self, key: &str) -> Duration {
        self.entries.get(key).map_or(Duration::ZERO, |e| e.delay)
    }

    /// Forgets `key`.
    pub fn reset(&mut self, key: &str) {
        self.entries.remove(key);
    }

    /// Drops entries not updated for more than twice the cap (run from housekeeping).
    pub fn gc(&mut self, now: Timestamp) {
        let limit = self.max * 2;
        self.entries
            .retain(|_, e| since(e.last_update, now) <= limit);
    }
}

/// The waiting message: `back-off 20s restarting failed container=<c> pod=<name>_<ns>(<uid>)`.
pub fn crash_loop_message(delay: Duration, container_name: &str, pod: &Pod) -> String {
    format!(
        "back-off {} restarting failed container={container_name} pod={}",
        go_duration(delay),
        format_pod(pod)
    )
}

/// The Warning `BackOff` event on the container while it waits.
pub fn back_off_event(container_name: &str, pod: &Pod) -> Event {
    Event::warning(
        reason::BACK_OFF,
        format!(
            "Back-off restarting failed container {container_name} in pod {}",
            format_pod(pod)
        ),
    )
}

/// A stable hash of the container spec, for the back-off key: FNV-1a (64-bit) of its JSON.
/// Upstream hashes differently; only stability and "changes when the spec changes" matter.
pub fn container_hash(container: &Container) -> String {
    let json = serde_json::to_vec(container).unwrap_or_default();
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in json {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{hash:x}")
}

/// `restartPolicy` of a pod (or a container-level `Always` for sidecars).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestartPolicy {
    Always,
    OnFailure,
    Never,
}

impl RestartPolicy {
    /// The pod's policy; `Always` when unset (the API default).
    pub fn of(pod: &Pod) -> RestartPolicy {
        match pod.spec.as_ref().and_then(|s| s.restart_policy.as_deref()) {
            Some("Never") => RestartPolicy::Never,
            Some("OnFailure") => RestartPolicy::OnFailure,
            _ => RestartPolicy::Always,
        }
    }
}

/// What the kubelet last saw of a container, for the restart decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LastSeen {
    /// Never created (first start, or image pull retries): always start.
    NotStarted,
    Running,
    /// Created but never ran, or a state the runtime could not report: restart.
    CreatedOrUnknown,
    Exited {
        exit_code: i32,
    },
}

/// §8.7 (`ShouldContainerBeRestarted`, M): never while the pod is being deleted; start a
/// container that never ran; leave a running one; after an exit, `Always` restarts, `OnFailure`
/// restarts a non-zero exit, `Never` does not.
pub fn should_restart(policy: RestartPolicy, last: LastSeen, pod_deleting: bool) -> bool {
    if pod_deleting {
        return false;
    }
    match last {
        LastSeen::NotStarted | LastSeen::CreatedOrUnknown => true,
        LastSeen::Running => false,
        LastSeen::Exited { exit_code } => match policy {
            RestartPolicy::Always => true,
            RestartPolicy::OnFailure => exit_code != 0,
            RestartPolicy::Never => false,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nodelet_api::k8s::apimachinery::pkg::apis::meta::v1::ObjectMeta;
    use nodelet_api::k8s::jiff::SignedDuration;

    fn at(secs: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + secs).unwrap()
    }

    fn plus(t: Timestamp, secs: i64) -> Timestamp {
        t.checked_add(SignedDuration::from_secs(secs)).unwrap()
    }

    /// A container that runs `run` seconds and exits, restarted as soon as the back-off
    /// allows (polled every second): the delays between each exit and the next start.
    fn simulate(runs: &[i64]) -> Vec<u64> {
        let mut b = CrashLoopBackOff::new();
        let mut now = at(0);
        let mut delays = Vec::new();
        for &run in runs {
            let finished = plus(now, run);
            now = finished;
            let mut waited = 0;
            while let RestartDecision::Wait { remaining, .. } = b.decide("k", finished, now) {
                assert!(remaining > Duration::ZERO);
                now = plus(now, 1);
                waited += 1;
            }
            delays.push(waited);
        }
        delays
    }

    #[test]
    fn delays_double_to_the_cap() {
        assert_eq!(
            simulate(&[1; 9]),
            vec![0, 10, 20, 40, 80, 160, 300, 300, 300]
        );
    }

    #[test]
    fn ten_minutes_of_running_resets() {
        // crash a few times, then run 601 s: back to an immediate restart and 10 s next
        assert_eq!(simulate(&[1, 1, 1, 601, 1, 1]), vec![0, 10, 20, 0, 10, 20]);
        // 600 s is not enough
        assert_eq!(simulate(&[1, 1, 1, 600, 1]), vec![0, 10, 20, 40, 80]);
    }

    #[test]
    fn decide_reports_the_window() {
        let mut b = CrashLoopBackOff::new();
        assert_eq!(b.decide("k", at(0), at(0)), RestartDecision::Restart);
        assert_eq!(b.delay("k"), Duration::from_secs(10));
        assert_eq!(
            b.decide("k", at(5), at(8)),
            RestartDecision::Wait {
                delay: Duration::from_secs(10),
                remaining: Duration::from_secs(7)
            }
        );
        assert_eq!(b.decide("k", at(5), at(15)), RestartDecision::Restart);
        assert_eq!(b.delay("k"), Duration::from_secs(20));
        b.reset("k");
        assert_eq!(b.delay("k"), Duration::ZERO);
    }

    #[test]
    fn limits_and_gc() {
        let mut b = CrashLoopBackOff::with_limits(Duration::from_secs(10), Duration::from_secs(5));
        b.next("k", at(0), at(0));
        assert_eq!(b.delay("k"), Duration::from_secs(5));
        b.next("other", at(0), at(100));
        b.gc(at(11));
        assert_eq!(b.delay("k"), Duration::ZERO);
        assert_eq!(b.delay("other"), Duration::from_secs(5));
    }

    fn pod() -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some("lifecycle-crashloop".into()),
                namespace: Some("default".into()),
                uid: Some("f3d9379b-aaaa".into()),
                ..ObjectMeta::default()
            },
            ..Pod::default()
        }
    }

    #[test]
    fn messages() {
        let cases = [
            (
                10,
                "back-off 10s restarting failed container=main pod=lifecycle-crashloop_default(f3d9379b-aaaa)",
            ),
            (
                20,
                "back-off 20s restarting failed container=main pod=lifecycle-crashloop_default(f3d9379b-aaaa)",
            ),
            (
                80,
                "back-off 1m20s restarting failed container=main pod=lifecycle-crashloop_default(f3d9379b-aaaa)",
            ),
            (
                300,
                "back-off 5m0s restarting failed container=main pod=lifecycle-crashloop_default(f3d9379b-aaaa)",
            ),
        ];
        for (secs, want) in cases {
            assert_eq!(
                crash_loop_message(Duration::from_secs(secs), "main", &pod()),
                want
            );
        }
        let e = back_off_event("main", &pod());
        assert_eq!(e.reason, "BackOff");
        assert_eq!(
            e.message,
            "Back-off restarting failed container main in pod lifecycle-crashloop_default(f3d9379b-aaaa)"
        );
    }

    #[test]
    fn key_changes_with_the_spec() {
        let mut c = Container {
            name: "main".into(),
            image: Some("busybox".into()),
            ..Container::default()
        };
        let k1 = CrashLoopBackOff::key(&pod(), &c);
        assert!(k1.starts_with("lifecycle-crashloop_default_f3d9379b-aaaa_main_"));
        assert_eq!(k1, CrashLoopBackOff::key(&pod(), &c.clone()));
        c.image = Some("nginx".into());
        assert_ne!(k1, CrashLoopBackOff::key(&pod(), &c));
    }

    #[test]
    fn restart_policy() {
        use LastSeen::*;
        use RestartPolicy::*;
        let cases = [
            (Always, NotStarted, false, true),
            (Never, NotStarted, false, true),
            (Never, CreatedOrUnknown, false, true),
            (Always, Running, false, false),
            (Always, Exited { exit_code: 0 }, false, true),
            (Always, Exited { exit_code: 1 }, false, true),
            (OnFailure, Exited { exit_code: 0 }, false, false),
            (OnFailure, Exited { exit_code: 2 }, false, true),
            (Never, Exited { exit_code: 1 }, false, false),
            (Always, Exited { exit_code: 1 }, true, false),
            (Always, NotStarted, true, false),
        ];
        for (policy, last, deleting, want) in cases {
            assert_eq!(
                should_restart(policy, last, deleting),
                want,
                "{policy:?} {last:?} {deleting}"
            );
        }
        let mut p = pod();
        assert_eq!(RestartPolicy::of(&p), Always);
        p.spec = Some(nodelet_api::k8s::api::core::v1::PodSpec {
            restart_policy: Some("OnFailure".into()),
            ..Default::default()
        });
        assert_eq!(RestartPolicy::of(&p), OnFailure);
    }
}

//! The probes of one running container on threads (one per configured probe kind), reporting
//! to the pod worker through a callback. The worker starts a [`Prober`] when a container
//! starts and drops it when the container stops or is replaced; a new container gets a new
//! `Prober` (the upstream worker's reset on a new container ID).

use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nodelet_api::k8s::api::core::v1::{Container, Probe};

use super::exec::{ExecInContainer, run as run_exec};
use super::state::{Poll, ProbeState, kill_reason};
use super::{Outcome, ProbeKind, ProbeResult, ProbeSettings, grpc, http, tcp};
use crate::events::{Event, KillReason};

/// A probe run that errored is retried this many times in all before its error counts.
const MAX_PROBE_RETRIES: usize = 3;

/// What a probe run changed, for the pod worker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeEvent {
    /// The container's name.
    pub container: String,
    /// The runtime's ID of the container instance probed (events of a replaced instance can
    /// be told apart).
    pub container_id: String,
    pub kind: ProbeKind,
    /// The published result after this run.
    pub result: ProbeResult,
    /// Record this on the container (`Unhealthy`, `ProbeWarning`).
    pub event: Option<Event>,
    /// Kill the container (liveness or startup failed): with a `Killing` event from
    /// [`ProbeEvent::killing`] and the grace period of [`ProbeEvent::kill_reason`].
    pub kill: bool,
}

impl ProbeEvent {
    /// Why the container is killed, when it is.
    pub fn kill_reason(&self) -> Option<KillReason> {
        kill_reason(self.kind).filter(|_| self.kill)
    }

    /// The `Killing` event of the kill (`Container <c> failed liveness probe, will be
    /// restarted`; `restart`: the restart policy brings the container back).
    pub fn killing(&self, restart: bool) -> Option<Event> {
        self.kill_reason()
            .map(|why| crate::events::killing(&self.container, why, restart))
    }
}

/// What the probes need of a running container.
#[derive(Clone)]
pub struct ProbeTarget {
    /// The container's spec (probes, named ports).
    pub container: Container,
    pub container_id: String,
    /// When the container started running (`state.running.startedAt`).
    pub started_at: Instant,
    /// The pod's IPs; the first is the default host of `httpGet` and `tcpSocket`.
    pub pod_ips: Vec<String>,
    /// The runtime's exec in this container.
    pub exec: Arc<dyn ExecInContainer>,
}

impl std::fmt::Debug for ProbeTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProbeTarget")
            .field("container", &self.container.name)
            .field("container_id", &self.container_id)
            .field("started_at", &self.started_at)
            .field("pod_ips", &self.pod_ips)
            .finish_non_exhaustive()
    }
}

/// Receives every [`ProbeEvent`]; called from the probe threads, never with a lock held.
pub type Report = Arc<dyn Fn(ProbeEvent) + Send + Sync>;

#[derive(Debug, Default)]
struct Flags {
    stopped: bool,
    terminating: bool,
    started: bool,
    liveness: Option<ProbeResult>,
    readiness: Option<ProbeResult>,
    startup: Option<ProbeResult>,
}

impl Flags {
    fn slot(&mut self, kind: ProbeKind) -> &mut Option<ProbeResult> {
        match kind {
            ProbeKind::Liveness => &mut self.liveness,
            ProbeKind::Readiness => &mut self.readiness,
            ProbeKind::Startup => &mut self.startup,
        }
    }
}

#[derive(Debug, Default)]
struct Shared {
    flags: Mutex<Flags>,
    changed: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Flags> {
        self.flags.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The running probes of one container; dropping it stops them (a probe run in flight
/// finishes first, and its result is not reported).
#[derive(Debug)]
pub struct Prober {
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
}

impl Prober {
    /// Starts a thread for each probe `target.container` has.
    pub fn start(target: ProbeTarget, report: Report) -> Prober {
        let target = Arc::new(target);
        let probes: Vec<(ProbeKind, Probe)> = [
            (ProbeKind::Startup, &target.container.startup_probe),
            (ProbeKind::Liveness, &target.container.liveness_probe),
            (ProbeKind::Readiness, &target.container.readiness_probe),
        ]
        .into_iter()
        .filter_map(|(kind, probe)| probe.clone().map(|p| (kind, p)))
        .collect();
        let shared = Arc::new(Shared::default());
        {
            let mut flags = shared.lock();
            flags.started = target.container.startup_probe.is_none();
            for (kind, _) in &probes {
                *flags.slot(*kind) = Some(super::state::initial_result(*kind));
            }
        }
        let threads = probes
            .into_iter()
            .filter_map(|(kind, probe)| {
                let (shared, target, report) = (shared.clone(), target.clone(), report.clone());
                std::thread::Builder::new()
                    .name(format!("probe-{}", target.container.name))
                    .spawn(move || probe_loop(kind, &probe, &target, &shared, &*report))
                    .ok()
            })
            .collect();
        Prober { shared, threads }
    }

    /// `ContainerStatus.started`: the startup probe succeeded, or there is none.
    pub fn started(&self) -> bool {
        self.shared.lock().started
    }

    /// `ContainerStatus.ready`: the readiness probe's result is `Success`, or there is none.
    pub fn ready(&self) -> bool {
        self.shared
            .lock()
            .readiness
            .is_none_or(|r| r == ProbeResult::Success)
    }

    /// The published result of a probe the container has.
    pub fn result(&self, kind: ProbeKind) -> Option<ProbeResult> {
        *self.shared.lock().slot(kind)
    }

    /// The pod is being deleted: liveness and startup stop (reporting success), so the
    /// shutdown is not interrupted by a probe kill; readiness goes on.
    pub fn pod_terminating(&self) {
        self.shared.lock().terminating = true;
        self.shared.changed.notify_all();
    }

    /// Stops the probes and waits for runs in flight (at most a probe timeout).
    pub fn stop(mut self) {
        self.signal_stop();
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }

    fn signal_stop(&self) {
        self.shared.lock().stopped = true;
        self.shared.changed.notify_all();
    }
}

impl Drop for Prober {
    fn drop(&mut self) {
        self.signal_stop();
    }
}

fn probe_loop(
    kind: ProbeKind,
    probe: &Probe,
    target: &ProbeTarget,
    shared: &Shared,
    report: &(dyn Fn(ProbeEvent) + Send + Sync),
) {
    let settings = ProbeSettings::new(kind, probe);
    let mut state = ProbeState::new(kind, settings, target.started_at);
    let event = |result, event, kill| ProbeEvent {
        container: target.container.name.clone(),
        container_id: target.container_id.clone(),
        kind,
        result,
        event,
        kill,
    };
    let mut flags = shared.lock();
    loop {
        if flags.stopped {
            return;
        }
        if flags.terminating && state.pod_terminating() {
            *flags.slot(kind) = Some(state.result());
            if kind == ProbeKind::Startup {
                flags.started = true;
                shared.changed.notify_all();
            }
            drop(flags);
            report(event(state.result(), None, false));
            flags = shared.lock();
            continue;
        }
        let now = Instant::now();
        match state.poll(now, flags.started) {
            Poll::Done => return,
            Poll::Hold => {
                flags = shared
                    .changed
                    .wait(flags)
                    .unwrap_or_else(|e| e.into_inner());
            }
            Poll::Wait(until) => {
                let wait = until.saturating_duration_since(now);
                flags = shared
                    .changed
                    .wait_timeout(flags, wait)
                    .unwrap_or_else(|e| e.into_inner())
                    .0;
            }
            Poll::Run => {
                drop(flags);
                let outcome = run_with_retries(probe, target, settings.timeout);
                flags = shared.lock();
                if flags.stopped {
                    return;
                }
                let record = state.record(outcome);
                *flags.slot(kind) = Some(record.result);
                if kind == ProbeKind::Startup {
                    flags.started = record.result == ProbeResult::Success;
                }
                if record.changed {
                    shared.changed.notify_all();
                }
                if record.changed || record.event.is_some() || record.kill {
                    drop(flags);
                    report(event(record.result, record.event, record.kill));
                    flags = shared.lock();
                }
            }
        }
    }
}

/// Runs the probe's handler; an errored run is retried (upstream `runProbeWithRetries`).
fn run_with_retries(probe: &Probe, target: &ProbeTarget, timeout: Duration) -> Outcome {
    let mut outcome = run_once(probe, target, timeout);
    for _ in 1..MAX_PROBE_RETRIES {
        if !matches!(outcome, Outcome::Error(_)) {
            break;
        }
        outcome = run_once(probe, target, timeout);
    }
    outcome
}

/// One run of whichever handler the probe has.
pub fn run_once(probe: &Probe, target: &ProbeTarget, timeout: Duration) -> Outcome {
    if let Some(action) = &probe.exec {
        return run_exec(action, timeout, &*target.exec);
    }
    if let Some(action) = &probe.http_get {
        return http::run(action, &target.container, &target.pod_ips, timeout);
    }
    if let Some(action) = &probe.tcp_socket {
        return tcp::run(action, &target.container, &target.pod_ips, timeout);
    }
    if let Some(action) = &probe.grpc {
        return grpc::run(action, &target.pod_ips, timeout);
    }
    Outcome::Error(format!(
        "missing probe handler for {}",
        target.container.name
    ))
}

#[cfg(test)]
mod tests;

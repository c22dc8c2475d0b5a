//! The worker's side of container probes ([`crate::probes`]): a [`Prober`] per running
//! container, started once the container counts as running (after PostStart, or when adopted
//! from disk), whose reports come back to the worker as [`Msg::Probe`]. Results feed the
//! container's `ready` and `started`; a liveness or startup failure kills the container
//! (`Killing`, PreStop, the stop within the probe's grace period, on a thread of its own:
//! [`super::background_stop`]) and the restart policy and back-off take it from there, as for any
//! other exit.

use std::sync::Arc;
use std::time::{Duration, Instant};

use nodelet_api::k8s::jiff::Timestamp;

use super::background_stop::{OwnedTarget, StopInProgress};
use super::{Msg, PodWorker, ProbeEvent, ProbeTarget, Prober, Report, RuntimeExec};

impl PodWorker {
    /// Starts the probes of container `i`, running since `running_since`.
    pub(super) fn start_probes(&mut self, i: usize, running_since: Instant) {
        let pod_ips = self.pod_ips();
        let slot = &mut self.slots[i];
        let Some(running) = slot.running.as_mut() else {
            return;
        };
        let spec = &slot.spec;
        if spec.liveness_probe.is_none()
            && spec.readiness_probe.is_none()
            && spec.startup_probe.is_none()
        {
            return;
        }
        if running.exit.get().is_some() {
            // Killed by a failed PostStart, or already ended: nothing to probe.
            return;
        }
        let tx = self.tx.clone();
        let report: Report = Arc::new(move |e| {
            let _ = tx.send(Msg::Probe(e));
        });
        let target = ProbeTarget {
            container: spec.clone(),
            container_id: running.container.id().to_owned(),
            started_at: running_since,
            pod_ips,
            exec: Arc::new(RuntimeExec(running.container.clone())),
        };
        running.prober = Some(Prober::start(target, report));
    }

    /// A probe's report. Reports of a container instance that is gone (replaced, or its
    /// prober already dropped) are ignored.
    pub(super) fn on_probe(&mut self, e: ProbeEvent) {
        let Some(i) = self.slots.iter().position(|s| {
            s.spec.name == e.container
                && s.running
                    .as_ref()
                    .is_some_and(|r| r.container.id() == e.container_id)
        }) else {
            return;
        };
        if let Some(event) = e.event.clone() {
            self.emit_for(i, event);
        }
        let Some(why) = e.kill_reason() else {
            return;
        };
        let pod_ips = self.pod_ips();
        let slot = &mut self.slots[i];
        let Some(running) = slot.running.as_mut() else {
            return;
        };
        if running.stop_in_progress.is_some() {
            // Being stopped already: one stop, one PreStop run.
            return;
        }
        self.reporter.log(&format!(
            "container {} failed its {} probe: stopping it",
            slot.spec.name,
            crate::probes::kind_name(e.kind).to_lowercase()
        ));
        // The grace period is the probe's `terminationGracePeriodSeconds` when it has one.
        // PreStop and the stop run beside the worker, which meanwhile goes on taking in
        // deletions, exits and reports (`background_stop`).
        let target = OwnedTarget {
            pod: self.pod.clone(),
            spec: slot.spec.clone(),
            list: slot.list,
            container: Arc::clone(&running.container),
            exit: Arc::clone(&running.exit),
            pod_ips,
        };
        running.stop_in_progress = Some(StopInProgress::spawn(
            target,
            why,
            Arc::clone(&self.reporter),
            self.tx.clone(),
        ));
    }
}

/// The monotonic instant of a wall-clock time in the past (an adopted container's start), so
/// its probes keep their schedule and initial delay.
pub(super) fn instant_of(at: Timestamp) -> Instant {
    let ago = Timestamp::now().duration_since(at);
    let ago = Duration::try_from(ago).unwrap_or(Duration::ZERO);
    Instant::now().checked_sub(ago).unwrap_or_else(Instant::now)
}

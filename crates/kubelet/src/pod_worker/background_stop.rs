//! A container stop that runs beside the worker: a failed liveness or startup probe's kill
//! (`Killing`, PreStop, the stop within the grace period) can take as long as its grace
//! period, and meanwhile the worker keeps taking in deletions, other containers' exits and
//! probe reports (upstream's sync loop kills asynchronously too). The stop's thread wakes the
//! worker when it is done ([`Msg::Exited`]); the container's end is collected as any other
//! exit, so the restart policy and back-off take it from there.
//!
//! A pod termination that begins meanwhile joins the stop instead of starting a second one
//! (no second `Killing`, no second PreStop run): it only sees that the container ends by the
//! pod's deadline, shortened by later deletions as for the other containers.

use std::sync::Arc;
use std::sync::mpsc::Sender;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nodelet_api::k8s::api::core::v1::{Container, Pod};
use nodelet_runtime::container::Container as RuntimeContainer;

use super::{ExitSlot, Msg, PodReporter, StopTarget, grace, stop_running_until};
use crate::events::{ContainerList, KillReason};
use crate::hooks::StopPlan;

/// A stop's thread; it holds the container, so it is joined before the container is deleted.
#[derive(Debug)]
pub(super) struct StopInProgress {
    thread: JoinHandle<()>,
}

/// What a stop's thread owns of the worker's pod and container.
#[derive(Debug)]
pub(super) struct OwnedTarget {
    pub pod: Pod,
    pub spec: Container,
    pub list: ContainerList,
    pub container: Arc<RuntimeContainer>,
    pub exit: Arc<ExitSlot>,
    pub pod_ips: Vec<String>,
}

impl StopInProgress {
    /// Stops the container for `why` (with the reason's own grace period) on a thread of its
    /// own; `tx` is woken when it is done.
    pub(super) fn spawn(
        target: OwnedTarget,
        why: KillReason,
        reporter: Arc<dyn PodReporter>,
        tx: Sender<Msg>,
    ) -> StopInProgress {
        let thread = std::thread::spawn(move || {
            let borrowed = StopTarget {
                spec: &target.spec,
                list: target.list,
                container: &target.container,
                exit: &target.exit,
            };
            super::stop_with_pre_stop_until(
                &target.pod,
                borrowed,
                (why, None),
                &target.pod_ips,
                &*reporter,
                None,
            );
            let _ = tx.send(Msg::Exited);
        });
        StopInProgress { thread }
    }

    /// Waits for the stop's end (it follows the container's shortly: a PreStop `sleep` or
    /// `exec` ends with the container).
    pub(super) fn join(self) {
        let _ = self.thread.join();
    }
}

/// Pod termination's part for a container already being stopped: its stop in progress
/// counts as its PreStop, so it gets until the pod's deadline (`grace` seconds, or sooner
/// once a later deletion shortens `shared`) to end, then the stop signal with the usual
/// minimum, then SIGKILL.
pub(super) fn join_for_termination(
    pod: &Pod,
    target: StopTarget<'_>,
    grace: i64,
    shared: &grace::TerminationGrace,
) {
    let plan = StopPlan::new(pod, target.spec, KillReason::Stop, Some(grace));
    let started = Instant::now();
    let planned = Duration::from_secs(grace.max(0).unsigned_abs());
    let limit = grace::WaitLimit::pre_stop(planned, Some(shared));
    if limit.wait(|slice| target.exit.wait(slice)).is_some() {
        return;
    }
    // As after a PreStop that overran: the rest of the grace, at least the minimum.
    let mut stop = plan;
    stop.run_pre_stop = true;
    let timeout = stop.stop_timeout(Some(started.elapsed()), None);
    let limit = grace::WaitLimit::stop(timeout, Some(shared));
    stop_running_until(target.container, target.exit, limit);
}

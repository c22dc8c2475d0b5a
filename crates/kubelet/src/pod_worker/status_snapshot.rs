//! The pod's status as the worker observes it (spec §8.3–§8.6): one [`ContainerObservation`]
//! per slot, then phase and conditions from `crate::status`'s pure rules, addresses, start
//! time and QoS class. [`PodWorker::report_status`] hands it to the reporter each time it
//! differs from the last one handed over.

use nodelet_api::k8s::api::core::v1::{HostIP, PodIP, PodStatus};
use nodelet_api::k8s::apimachinery::pkg::apis::meta::v1::Time;
use nodelet_api::k8s::jiff::Timestamp;
use nodelet_image::images::ImageRecord;

use super::{PodWorker, Slot};
use crate::events::ContainerList;
use crate::status::{self, ContainerObservation, Phase, State, Terminated};

/// What was last reported, so unchanged statuses are not reported again and conditions keep
/// their transition times.
#[derive(Debug, Default)]
pub(super) struct StatusSnapshot {
    start_time: Option<Timestamp>,
    last: Option<PodStatus>,
}

impl PodWorker {
    /// Reports the pod's status when it changed. `finished`: the worker has ended the pod (its
    /// containers are gone for good), so the phase becomes terminal.
    pub(super) fn report_status(&mut self, finished: bool) {
        let status = self.pod_status(finished, Timestamp::now());
        if self.status_snapshot.last.as_ref() != Some(&status) {
            self.reporter.status(&status);
            self.status_snapshot.last = Some(status);
        }
    }

    fn pod_status(&mut self, finished: bool, now: Timestamp) -> PodStatus {
        let start_time = *self.status_snapshot.start_time.get_or_insert_with(|| {
            self.pod
                .status
                .as_ref()
                .and_then(|s| s.start_time.as_ref())
                .map_or(now, |t| t.0)
        });
        let has_init = self.slots.iter().any(|s| s.list == ContainerList::Init);
        let mut init = Vec::new();
        let mut init_statuses = Vec::new();
        let mut containers = Vec::new();
        let mut container_statuses = Vec::new();
        for slot in &self.slots {
            let observation = observe_slot(slot, has_init, finished);
            let api = observation.to_api(
                slot.spec.image.as_deref().unwrap_or_default(),
                slot.image_id.as_deref().unwrap_or_default(),
                slot.container_id.as_deref(),
            );
            match slot.list {
                ContainerList::Init => {
                    init.push(observation);
                    init_statuses.push(api);
                }
                _ => {
                    containers.push(observation);
                    container_statuses.push(api);
                }
            }
        }
        let spec = self.pod.spec.clone().unwrap_or_default();
        let pod_is_terminal = finished && (self.stopping || self.failure.is_some());
        let phase = if self.failure.is_some() {
            Phase::Failed
        } else {
            status::pod_phase(&spec, &init, &containers, pod_is_terminal, false)
        };
        let sandbox_ready = self.handler.is_some() && !finished;
        let generated = status::pod_conditions(&self.pod, &init, &containers, phase, sandbox_ready);
        let old = match &self.status_snapshot.last {
            Some(last) => last.conditions.clone().unwrap_or_default(),
            None => self
                .pod
                .status
                .as_ref()
                .and_then(|s| s.conditions.clone())
                .unwrap_or_default(),
        };
        let ip = self.node.host_ip.clone();
        let pod_ips = self.pod_ips();
        PodStatus {
            phase: Some(phase.as_str().to_owned()),
            message: self.failure.clone(),
            conditions: Some(status::merge_conditions(&old, generated, now)),
            host_ip: Some(ip.clone()),
            host_ips: Some(vec![HostIP { ip: ip.clone() }]),
            pod_ip: pod_ips.first().cloned(),
            pod_ips: Some(pod_ips.into_iter().map(|ip| PodIP { ip }).collect()),
            start_time: Some(Time(start_time)),
            qos_class: Some(nodelet_api::defaults::qos_class(&spec).to_owned()),
            init_container_statuses: has_init.then_some(init_statuses),
            container_statuses: Some(container_statuses),
            ..PodStatus::default()
        }
    }
}

/// One container's state: running, waiting (a start failure or back-off, with the exit before
/// it as `lastState`), terminated, or not started yet.
fn observe_slot(slot: &Slot, pod_has_init: bool, finished: bool) -> ContainerObservation {
    // The shim's record (reason incl. OOMKilled, termination message, start) when it has
    // one; the slot's start times otherwise.
    let terminated = |started_at: Option<Timestamp>| {
        slot.last_exit.as_ref().map(|e| Terminated {
            exit_code: e.code,
            reason: if e.reason.is_empty() {
                status::runtime_terminated_reason(e.code, false, false).to_owned()
            } else {
                e.reason.clone()
            },
            message: e.message.clone(),
            started_at: e.started_at.or(started_at),
            finished_at: Some(e.finished_at),
            container_id: slot.container_id.clone(),
            ..Terminated::default()
        })
    };
    let (state, last_termination) = if slot.running.is_some() {
        let started_at = slot.started_at.unwrap_or_else(Timestamp::now);
        (
            State::Running { started_at },
            terminated(slot.previous_started_at),
        )
    } else if let (Some(waiting), false) = (&slot.waiting, finished) {
        (
            State::Waiting {
                reason: waiting.reason.clone(),
                message: waiting.message.clone(),
            },
            terminated(slot.started_at),
        )
    } else if let Some(t) = terminated(slot.started_at) {
        (State::Terminated(t), None)
    } else if finished {
        // A pod that ended (e.g. its RuntimeClass could not be run) with a container that
        // never ran: upstream reports every waiting container of a terminal pod terminated.
        (State::Terminated(Terminated::status_unknown(false)), None)
    } else {
        let reason = match &slot.waiting {
            Some(w) => w.reason.clone(),
            None => status::default_waiting_reason(pod_has_init).to_owned(),
        };
        let message = slot.waiting.as_ref().map(|w| w.message.clone());
        (
            State::Waiting {
                reason,
                message: message.unwrap_or_default(),
            },
            None,
        )
    };
    let running = matches!(state, State::Running { .. });
    // A running container's probes decide (no readiness or startup probe: ready, started).
    let prober = slot.running.as_ref().and_then(|r| r.prober.as_ref());
    let (probed_ready, probed_started) = prober.map_or((true, true), |p| (p.ready(), p.started()));
    let ready = match (slot.list, &state) {
        (ContainerList::Init, State::Terminated(t)) if !status::is_sidecar(&slot.spec) => {
            t.exit_code == 0
        }
        _ => running && probed_ready,
    };
    ContainerObservation {
        name: slot.spec.name.clone(),
        state,
        last_termination,
        restart_count: i32::try_from(slot.starts.saturating_sub(1)).unwrap_or(i32::MAX),
        ready,
        started: (slot.starts > 0).then_some(running && probed_started),
    }
}

/// `status.containerStatuses[].imageID`: the repository digest, `repo@sha256:…`, as the CRI
/// reports it.
pub(super) fn image_id(record: &ImageRecord) -> String {
    let name = record.name.split('@').next().unwrap_or(&record.name);
    let last_slash = name.rfind('/').map_or(0, |i| i + 1);
    let repository = match name[last_slash..].rfind(':') {
        Some(colon) => &name[..last_slash + colon],
        None => name,
    };
    format!("{repository}@{}", record.digest)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(name: &str) -> ImageRecord {
        serde_json::from_value(serde_json::json!({
            "name": name, "digest": "sha256:ab", "media_type": "", "manifest_digest": "",
            "config_digest": "", "platform": "", "layers": [], "size": 0,
            "config": {}, "pulled_at": 0, "pulled_with": []
        }))
        .unwrap()
    }

    fn slot(list: ContainerList) -> Slot {
        let spec = nodelet_api::k8s::api::core::v1::Container {
            name: "main".into(),
            ..Default::default()
        };
        Slot::new(spec, list)
    }

    fn at(seconds: i64) -> Timestamp {
        Timestamp::from_second(seconds).unwrap()
    }

    #[test]
    fn a_container_not_started_waits_for_creation_or_init() {
        let o = observe_slot(&slot(ContainerList::Regular), false, false);
        assert_eq!(
            o.state,
            State::Waiting {
                reason: "ContainerCreating".into(),
                message: String::new()
            }
        );
        assert_eq!((o.restart_count, o.ready, o.started), (0, false, None));
        let o = observe_slot(&slot(ContainerList::Regular), true, false);
        assert!(matches!(o.state, State::Waiting { reason, .. } if reason == "PodInitializing"));
    }

    #[test]
    fn a_container_in_back_off_waits_with_its_last_exit() {
        let mut s = slot(ContainerList::Regular);
        s.starts = 3;
        s.started_at = Some(at(100));
        s.last_exit = Some(super::super::LastExit {
            code: 3,
            reason: String::new(),
            message: String::new(),
            started_at: None,
            finished_at: at(101),
        });
        s.waiting = Some(super::super::StartFailure::new(
            "CrashLoopBackOff",
            "back-off 20s restarting failed container=main pod=p_ns(u)",
        ));
        let o = observe_slot(&s, false, false);
        assert!(matches!(&o.state, State::Waiting { reason, .. } if reason == "CrashLoopBackOff"));
        let last = o.last_termination.unwrap();
        assert_eq!((last.exit_code, last.reason.as_str()), (3, "Error"));
        assert_eq!(last.started_at, Some(at(100)));
        assert_eq!(last.finished_at, Some(at(101)));
        assert_eq!(
            (o.restart_count, o.ready, o.started),
            (2, false, Some(false))
        );

        // Once the worker has ended the pod, the exit is the state.
        let o = observe_slot(&s, false, true);
        assert!(matches!(&o.state, State::Terminated(t) if t.exit_code == 3));
        assert!(o.last_termination.is_none());
    }

    #[test]
    fn an_init_container_that_succeeded_is_ready() {
        let mut s = slot(ContainerList::Init);
        s.starts = 1;
        s.started_at = Some(at(5));
        s.last_exit = Some(super::super::LastExit {
            code: 0,
            reason: "Completed".into(),
            message: String::new(),
            started_at: Some(at(5)),
            finished_at: at(6),
        });
        let o = observe_slot(&s, true, false);
        assert!(matches!(&o.state, State::Terminated(t) if t.reason == "Completed"));
        assert!(o.ready);
        assert_eq!(o.started, Some(false));
    }

    #[test]
    fn the_shims_reason_and_the_termination_message_are_reported() {
        let mut s = slot(ContainerList::Regular);
        s.starts = 1;
        s.started_at = Some(at(7));
        s.last_exit = Some(super::super::LastExit {
            code: 137,
            reason: "OOMKilled".into(),
            message: "out of memory".into(),
            started_at: Some(at(5)),
            finished_at: at(9),
        });
        let o = observe_slot(&s, false, true);
        let State::Terminated(t) = &o.state else {
            panic!("{:?}", o.state)
        };
        assert_eq!(
            (t.exit_code, t.reason.as_str(), t.message.as_str()),
            (137, "OOMKilled", "out of memory")
        );
        assert_eq!(t.started_at, Some(at(5)));
    }

    #[test]
    fn a_container_that_never_ran_in_an_ended_pod_is_terminated_unknown() {
        let o = observe_slot(&slot(ContainerList::Regular), false, true);
        let State::Terminated(t) = &o.state else {
            panic!("{:?}", o.state)
        };
        assert_eq!(
            (t.exit_code, t.reason.as_str()),
            (137, "ContainerStatusUnknown")
        );
    }

    #[test]
    fn image_id_is_the_repository_digest() {
        assert_eq!(
            image_id(&record("docker.io/library/busybox:1.36")),
            "docker.io/library/busybox@sha256:ab"
        );
        assert_eq!(
            image_id(&record("localhost:5000/app@sha256:ab")),
            "localhost:5000/app@sha256:ab"
        );
        assert_eq!(
            image_id(&record("localhost:5000/app")),
            "localhost:5000/app@sha256:ab"
        );
    }
}

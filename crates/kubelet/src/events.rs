//! Event reasons and messages the kubelet records for containers and pods (spec §8.1, §8.2).
//!
//! Image events (`Pulling`, `Pulled`, `Failed` to pull, `BackOff` pulling, `InspectFailed`,
//! `ErrImageNeverPull`) are built by `nodelet_image::pull_policy::ImageEvent`; they convert into
//! [`Event`] with `From`. Hook messages live in [`crate::hooks`], the back-off ones in
//! [`crate::backoff`], RuntimeClass ones in [`crate::runtime_class`].

use nodelet_api::k8s::api::core::v1::Pod;
pub use nodelet_image::pull_policy::EventKind;
use nodelet_image::pull_policy::ImageEvent;

/// Every reason the kubelet records, `Event.reason`.
pub mod reason {
    pub use nodelet_image::pull_policy::event_reason::{
        BACK_OFF, ERR_IMAGE_NEVER_PULL, FAILED, INSPECT_FAILED, PULLED, PULLING,
    };
    pub const CREATED: &str = "Created";
    pub const STARTED: &str = "Started";
    pub const KILLING: &str = "Killing";
    pub const PREEMPTING: &str = "Preempting";
    pub const EXCEEDED_GRACE_PERIOD: &str = "ExceededGracePeriod";
    pub const FAILED_POST_START_HOOK: &str = "FailedPostStartHook";
    pub const FAILED_PRE_STOP_HOOK: &str = "FailedPreStopHook";
    pub const UNHEALTHY: &str = "Unhealthy";
    pub const PROBE_WARNING: &str = "ProbeWarning";
    pub const FAILED_CREATE_POD_SANDBOX: &str = "FailedCreatePodSandBox";
    pub const FAILED_POD_SANDBOX_STATUS: &str = "FailedPodSandBoxStatus";
    pub const SANDBOX_CHANGED: &str = "SandboxChanged";
    pub const FAILED_CREATE_POD_CONTAINER: &str = "FailedCreatePodContainer";
    pub const FAILED_TO_RETRIEVE_IMAGE_PULL_SECRET: &str = "FailedToRetrieveImagePullSecret";
    pub const LIFECYCLE_HTTP_FALLBACK: &str = "LifecycleHTTPFallback";
    pub const FAILED_KILL_POD: &str = "FailedKillPod";
    pub const FAILED_SYNC: &str = "FailedSync";
    pub const FAILED_VALIDATION: &str = "FailedValidation";
    pub const NETWORK_NOT_READY: &str = "NetworkNotReady";
    pub const EVICTED: &str = "Evicted";
    pub const INVALID_ENVIRONMENT_VARIABLE_NAMES: &str = "InvalidEnvironmentVariableNames";
    pub const NODE_NOT_SCHEDULABLE: &str = "NodeNotSchedulable";
    pub const NODE_SCHEDULABLE: &str = "NodeSchedulable";
}

/// What the kubelet records: an Event's type, reason and message. The involved object is the
/// pod, with [`field_path`] for container events.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Event {
    pub kind: EventKind,
    pub reason: &'static str,
    pub message: String,
}

impl Event {
    pub fn normal(reason: &'static str, message: impl Into<String>) -> Event {
        Event {
            kind: EventKind::Normal,
            reason,
            message: message.into(),
        }
    }

    pub fn warning(reason: &'static str, message: impl Into<String>) -> Event {
        Event {
            kind: EventKind::Warning,
            reason,
            message: message.into(),
        }
    }
}

impl From<ImageEvent> for Event {
    fn from(e: ImageEvent) -> Event {
        Event {
            kind: e.kind,
            reason: e.reason,
            message: e.message,
        }
    }
}

/// `format.Pod`: `<name>_<namespace>(<uid>)`, how kubelet messages name a pod.
pub fn format_pod(pod: &Pod) -> String {
    let m = &pod.metadata;
    format!(
        "{}_{}({})",
        m.name.as_deref().unwrap_or(""),
        m.namespace.as_deref().unwrap_or(""),
        m.uid.as_deref().unwrap_or("")
    )
}

/// `recordNodeStatusEvent`: a Normal event on the Node, `Node <node> status is now: <reason>`.
pub fn node_status(node: &str, reason: &'static str) -> Event {
    Event::normal(reason, format!("Node {node} status is now: {reason}"))
}

/// `recordNodeSchedulableEvent`: the event for a change of the Node's `spec.unschedulable`,
/// judged against the last value seen (initially schedulable, so a node found cordoned at
/// start reports `NodeNotSchedulable` once).
#[derive(Debug, Default)]
pub struct NodeSchedulableTracker {
    last_unschedulable: bool,
}

impl NodeSchedulableTracker {
    pub fn observe(&mut self, node: &str, unschedulable: bool) -> Option<Event> {
        if unschedulable == self.last_unschedulable {
            return None;
        }
        self.last_unschedulable = unschedulable;
        let reason = if unschedulable {
            reason::NODE_NOT_SCHEDULABLE
        } else {
            reason::NODE_SCHEDULABLE
        };
        Some(node_status(node, reason))
    }
}

/// Which list of the pod spec a container is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ContainerList {
    Init,
    Regular,
    Ephemeral,
}

/// The `involvedObject.fieldPath` of a container event: `spec.containers{<name>}`,
/// `spec.initContainers{<name>}` or `spec.ephemeralContainers{<name>}`.
pub fn field_path(list: ContainerList, container_name: &str) -> String {
    let list = match list {
        ContainerList::Init => "initContainers",
        ContainerList::Regular => "containers",
        ContainerList::Ephemeral => "ephemeralContainers",
    };
    format!("spec.{list}{{{container_name}}}")
}

/// The served Kubernetes minor version (from `nodelet_api::kubernetes_version()`), which picks
/// the `Created`/`Started` wording.
pub fn served_minor() -> u32 {
    nodelet_api::kubernetes_version()
        .strip_prefix("v1.")
        .and_then(|rest| rest.split('.').next())
        .and_then(|minor| minor.parse().ok())
        .unwrap_or(35)
}

/// `Created`: `Container created` from 1.35, `Created container: <c>` in 1.33–1.34, `Created
/// container <c>` before.
pub fn created(container_name: &str, minor: u32) -> Event {
    let message = match minor {
        35.. => "Container created".to_owned(),
        33 | 34 => format!("Created container: {container_name}"),
        _ => format!("Created container {container_name}"),
    };
    Event::normal(reason::CREATED, message)
}

/// `Started`: `Container started` from 1.35, `Started container <c>` before.
pub fn started(container_name: &str, minor: u32) -> Event {
    let message = match minor {
        35.. => "Container started".to_owned(),
        _ => format!("Started container {container_name}"),
    };
    Event::normal(reason::STARTED, message)
}

/// Why the kubelet stops a container; it sets the `Killing` message and, for probes, which
/// `terminationGracePeriodSeconds` applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KillReason {
    /// Pod deletion, eviction, a container no longer wanted: `Stopping container <c>`.
    Stop,
    LivenessProbe,
    StartupProbe,
    /// The container's spec changed (hash mismatch).
    DefinitionChanged,
    /// The PostStart hook failed: the message is just `FailedPostStartHook`.
    PostStartHookFailed,
}

/// The `Killing` event. `restart` adds `, will be restarted` to the probe and spec-change
/// messages (only when the restart policy brings the container back).
pub fn killing(container_name: &str, why: KillReason, restart: bool) -> Event {
    let base = match why {
        KillReason::Stop => {
            return Event::normal(
                reason::KILLING,
                format!("Stopping container {container_name}"),
            );
        }
        KillReason::PostStartHookFailed => {
            return Event::normal(reason::KILLING, reason::FAILED_POST_START_HOOK);
        }
        KillReason::LivenessProbe => format!("Container {container_name} failed liveness probe"),
        KillReason::StartupProbe => format!("Container {container_name} failed startup probe"),
        KillReason::DefinitionChanged => format!("Container {container_name} definition changed"),
    };
    let message = if restart {
        format!("{base}, will be restarted")
    } else {
        base
    };
    Event::normal(reason::KILLING, message)
}

/// Warning `Failed` `Error: <reason or message>` for every failed container start (the waiting
/// reason such as `ErrImagePull`, or the error text such as `secret "s" not found`).
pub fn failed(error: &str) -> Event {
    Event::warning(reason::FAILED, format!("Error: {error}"))
}

/// Which probe a message is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProbeKind {
    Liveness,
    Readiness,
    Startup,
}

/// Warning `Unhealthy` `<Kind> probe failed: <output>`.
pub fn unhealthy(probe: ProbeKind, output: &str) -> Event {
    let kind = match probe {
        ProbeKind::Liveness => "Liveness",
        ProbeKind::Readiness => "Readiness",
        ProbeKind::Startup => "Startup",
    };
    Event::warning(reason::UNHEALTHY, format!("{kind} probe failed: {output}"))
}

/// Warning on the pod: `Failed to create pod sandbox: <err>`.
pub fn failed_create_pod_sandbox(error: &str) -> Event {
    Event::warning(
        reason::FAILED_CREATE_POD_SANDBOX,
        format!("Failed to create pod sandbox: {error}"),
    )
}

/// Normal on the pod when the sandbox has to be replaced.
pub fn sandbox_changed() -> Event {
    Event::normal(
        reason::SANDBOX_CHANGED,
        "Pod sandbox changed, it will be killed and re-created.",
    )
}

/// Warning on the pod: some `imagePullSecrets` could not be read (names in spec order).
pub fn failed_to_retrieve_image_pull_secret(missing: &[&str]) -> Event {
    Event::warning(
        reason::FAILED_TO_RETRIEVE_IMAGE_PULL_SECRET,
        format!(
            "Unable to retrieve some image pull secrets ({}); attempting to pull the image may not succeed.",
            missing.join(", ")
        ),
    )
}

/// Warning on the pod when the runtime did not stop it in time (eviction and preemption).
pub fn exceeded_grace_period() -> Event {
    Event::warning(
        reason::EXCEEDED_GRACE_PERIOD,
        "Container runtime did not kill the pod within specified grace period.",
    )
}

/// Replaces every occurrence of the runtime's container ID in `message` with the container's
/// name, as the kubelet does before recording (IDs mean nothing to users).
pub fn redact_container_id(message: &str, container_id: &str, container_name: &str) -> String {
    if container_id.is_empty() {
        return message.to_owned();
    }
    message.replace(container_id, container_name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use nodelet_api::k8s::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    #[test]
    fn container_event_messages() {
        let cases: Vec<(Event, EventKind, &str, &str)> = vec![
            (
                created("web", 35),
                EventKind::Normal,
                "Created",
                "Container created",
            ),
            (
                created("web", 34),
                EventKind::Normal,
                "Created",
                "Created container: web",
            ),
            (
                created("web", 33),
                EventKind::Normal,
                "Created",
                "Created container: web",
            ),
            (
                created("web", 32),
                EventKind::Normal,
                "Created",
                "Created container web",
            ),
            (
                started("web", 36),
                EventKind::Normal,
                "Started",
                "Container started",
            ),
            (
                started("web", 34),
                EventKind::Normal,
                "Started",
                "Started container web",
            ),
            (
                killing("web", KillReason::Stop, false),
                EventKind::Normal,
                "Killing",
                "Stopping container web",
            ),
            (
                killing("web", KillReason::LivenessProbe, true),
                EventKind::Normal,
                "Killing",
                "Container web failed liveness probe, will be restarted",
            ),
            (
                killing("web", KillReason::LivenessProbe, false),
                EventKind::Normal,
                "Killing",
                "Container web failed liveness probe",
            ),
            (
                killing("web", KillReason::StartupProbe, true),
                EventKind::Normal,
                "Killing",
                "Container web failed startup probe, will be restarted",
            ),
            (
                killing("web", KillReason::DefinitionChanged, true),
                EventKind::Normal,
                "Killing",
                "Container web definition changed, will be restarted",
            ),
            (
                killing("web", KillReason::PostStartHookFailed, true),
                EventKind::Normal,
                "Killing",
                "FailedPostStartHook",
            ),
            (
                failed("ErrImagePull"),
                EventKind::Warning,
                "Failed",
                "Error: ErrImagePull",
            ),
            (
                failed("secret \"s\" not found"),
                EventKind::Warning,
                "Failed",
                "Error: secret \"s\" not found",
            ),
            (
                unhealthy(
                    ProbeKind::Liveness,
                    "HTTP probe failed with statuscode: 500",
                ),
                EventKind::Warning,
                "Unhealthy",
                "Liveness probe failed: HTTP probe failed with statuscode: 500",
            ),
            (
                unhealthy(ProbeKind::Readiness, "x"),
                EventKind::Warning,
                "Unhealthy",
                "Readiness probe failed: x",
            ),
            (
                failed_create_pod_sandbox("boom"),
                EventKind::Warning,
                "FailedCreatePodSandBox",
                "Failed to create pod sandbox: boom",
            ),
            (
                sandbox_changed(),
                EventKind::Normal,
                "SandboxChanged",
                "Pod sandbox changed, it will be killed and re-created.",
            ),
            (
                failed_to_retrieve_image_pull_secret(&["a", "b"]),
                EventKind::Warning,
                "FailedToRetrieveImagePullSecret",
                "Unable to retrieve some image pull secrets (a, b); attempting to pull the image may not succeed.",
            ),
            (
                exceeded_grace_period(),
                EventKind::Warning,
                "ExceededGracePeriod",
                "Container runtime did not kill the pod within specified grace period.",
            ),
            (
                ImageEvent::pulling("busybox").into(),
                EventKind::Normal,
                "Pulling",
                "Pulling image \"busybox\"",
            ),
        ];
        for (event, kind, reason, message) in cases {
            assert_eq!(
                (event.kind, event.reason, event.message.as_str()),
                (kind, reason, message)
            );
        }
    }

    #[test]
    fn names_and_paths() {
        let pod = Pod {
            metadata: ObjectMeta {
                name: Some("lifecycle-crashloop".into()),
                namespace: Some("default".into()),
                uid: Some("f3d9379b-1".into()),
                ..ObjectMeta::default()
            },
            ..Pod::default()
        };
        assert_eq!(format_pod(&pod), "lifecycle-crashloop_default(f3d9379b-1)");
        assert_eq!(
            field_path(ContainerList::Regular, "c"),
            "spec.containers{c}"
        );
        assert_eq!(
            field_path(ContainerList::Init, "i"),
            "spec.initContainers{i}"
        );
        assert_eq!(
            field_path(ContainerList::Ephemeral, "e"),
            "spec.ephemeralContainers{e}"
        );
        assert!(served_minor() >= 33);
        assert_eq!(
            redact_container_id("failed to start abc123: oops abc123", "abc123", "web"),
            "failed to start web: oops web"
        );
        assert_eq!(redact_container_id("x", "", "web"), "x");
    }

    #[test]
    fn schedulable_changes_give_node_status_events() {
        let mut tracker = NodeSchedulableTracker::default();
        assert_eq!(tracker.observe("n1", false), None);
        let cordoned = tracker.observe("n1", true).unwrap();
        assert_eq!(
            (cordoned.kind, cordoned.reason, cordoned.message.as_str()),
            (
                EventKind::Normal,
                "NodeNotSchedulable",
                "Node n1 status is now: NodeNotSchedulable"
            )
        );
        assert_eq!(tracker.observe("n1", true), None);
        let uncordoned = tracker.observe("n1", false).unwrap();
        assert_eq!(
            (
                uncordoned.kind,
                uncordoned.reason,
                uncordoned.message.as_str()
            ),
            (
                EventKind::Normal,
                "NodeSchedulable",
                "Node n1 status is now: NodeSchedulable"
            )
        );
    }
}

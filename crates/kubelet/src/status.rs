//! Container states, pod phase and pod conditions as the kubelet reports them (spec §8.3–§8.6),
//! and what `kubectl get pods` shows for them (§8.10).
//!
//! The stateful kubelet observes its containers (through the shims and the runtime), fills one
//! [`ContainerObservation`] per container, and asks [`pod_phase`] and [`pod_conditions`] for the
//! status it writes. Timestamps are passed in; nothing reads a clock.

use nodelet_api::k8s::api::core::v1::{
    Container, ContainerState, ContainerStateRunning, ContainerStateTerminated,
    ContainerStateWaiting, ContainerStatus, Pod, PodCondition, PodSpec,
};
use nodelet_api::k8s::apimachinery::pkg::apis::meta::v1::Time;
use nodelet_api::k8s::jiff::Timestamp;

/// `state.waiting.reason` values (§8.3). The image ones are `nodelet_image`'s, re-exported.
pub mod waiting_reason {
    pub use crate::backoff::CRASH_LOOP_BACK_OFF;
    pub use crate::hooks::POST_START_HOOK_ERROR;
    pub use nodelet_image::pull_policy::waiting_reason::{
        ERR_IMAGE_NEVER_PULL, ERR_IMAGE_PULL, IMAGE_INSPECT_ERROR, IMAGE_PULL_BACK_OFF,
        INVALID_IMAGE_NAME, REGISTRY_UNAVAILABLE, SIGNATURE_VALIDATION_FAILED,
    };
    /// Not started yet, in a pod without init containers.
    pub const CONTAINER_CREATING: &str = "ContainerCreating";
    /// Not started yet, in a pod with init containers (also the init containers themselves).
    pub const POD_INITIALIZING: &str = "PodInitializing";
    /// The kubelet could not build the container's configuration: a missing ConfigMap, Secret
    /// or key, `runAsNonRoot` violated, a bad `subPathExpr`, Services not synced.
    pub const CREATE_CONTAINER_CONFIG_ERROR: &str = "CreateContainerConfigError";
    /// The runtime refused to create it (`no command specified`, …).
    pub const CREATE_CONTAINER_ERROR: &str = "CreateContainerError";
    pub const PRE_CREATE_HOOK_ERROR: &str = "PreCreateHookError";
    pub const PRE_START_HOOK_ERROR: &str = "PreStartHookError";
    /// The runtime failed to start it (`exec: "foo": executable file not found in $PATH`).
    pub const RUN_CONTAINER_ERROR: &str = "RunContainerError";
}

/// `state.terminated.reason` values (§8.4).
pub mod terminated_reason {
    pub const COMPLETED: &str = "Completed";
    pub const ERROR: &str = "Error";
    pub const OOM_KILLED: &str = "OOMKilled";
    /// The task could not start; exit code [`super::START_ERROR_EXIT_CODE`].
    pub const START_ERROR: &str = "StartError";
    /// Docker's word for a start failure; still special-cased (no log fallback).
    pub const CONTAINER_CANNOT_RUN: &str = "ContainerCannotRun";
    /// Synthesised by the kubelet for a container that vanished.
    pub const CONTAINER_STATUS_UNKNOWN: &str = "ContainerStatusUnknown";
}

/// Exit code of a container whose process never started.
pub const START_ERROR_EXIT_CODE: i32 = 128;
/// Exit code reported with `ContainerStatusUnknown`.
pub const CONTAINER_STATUS_UNKNOWN_EXIT_CODE: i32 = 137;

/// The runtime's terminated reason, as containerd picks it: a start failure, else an OOM kill,
/// else by exit code.
pub fn runtime_terminated_reason(
    exit_code: i32,
    oom_killed: bool,
    start_failed: bool,
) -> &'static str {
    if start_failed {
        terminated_reason::START_ERROR
    } else if oom_killed {
        terminated_reason::OOM_KILLED
    } else if exit_code == 0 {
        terminated_reason::COMPLETED
    } else {
        terminated_reason::ERROR
    }
}

/// The waiting reason of a container that has not started: `PodInitializing` when the pod has
/// init containers, else `ContainerCreating`.
pub fn default_waiting_reason(pod_has_init_containers: bool) -> &'static str {
    if pod_has_init_containers {
        waiting_reason::POD_INITIALIZING
    } else {
        waiting_reason::CONTAINER_CREATING
    }
}

/// A finished container run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Terminated {
    pub exit_code: i32,
    pub signal: Option<i32>,
    pub reason: String,
    /// Runtime message, then the termination message (see [`crate::termination_message`]).
    pub message: String,
    pub started_at: Option<Timestamp>,
    pub finished_at: Option<Timestamp>,
    pub container_id: Option<String>,
}

impl Terminated {
    /// The kubelet's stand-in for a container it can no longer find: exit code 137, reason
    /// `ContainerStatusUnknown`, and the upstream message for `state` (`as_last_state` false)
    /// or `lastState` (true; note the two spaces).
    pub fn status_unknown(as_last_state: bool) -> Terminated {
        let message = if as_last_state {
            "The container could not be located when the pod was deleted.  The container used to be Running"
        } else {
            "The container could not be located when the pod was terminated"
        };
        Terminated {
            exit_code: CONTAINER_STATUS_UNKNOWN_EXIT_CODE,
            reason: terminated_reason::CONTAINER_STATUS_UNKNOWN.to_owned(),
            message: message.to_owned(),
            ..Terminated::default()
        }
    }

    fn to_api(&self) -> ContainerStateTerminated {
        ContainerStateTerminated {
            exit_code: self.exit_code,
            signal: self.signal,
            reason: non_empty(&self.reason),
            message: non_empty(&self.message),
            started_at: self.started_at.map(Time),
            finished_at: self.finished_at.map(Time),
            container_id: self.container_id.clone(),
        }
    }
}

/// A container's current state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State {
    Waiting { reason: String, message: String },
    Running { started_at: Timestamp },
    Terminated(Terminated),
}

/// What the kubelet knows of one container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerObservation {
    pub name: String,
    pub state: State,
    pub last_termination: Option<Terminated>,
    pub restart_count: i32,
    /// Regular containers: running and passing readiness. Init containers: terminated with 0.
    /// Sidecars: running and ready.
    pub ready: bool,
    /// Running and past its startup probe (`None` before the first start).
    pub started: Option<bool>,
}

impl ContainerObservation {
    /// A container that has not run yet, waiting with `reason`.
    pub fn waiting(name: &str, reason: &str) -> ContainerObservation {
        ContainerObservation {
            name: name.to_owned(),
            state: State::Waiting {
                reason: reason.to_owned(),
                message: String::new(),
            },
            last_termination: None,
            restart_count: 0,
            ready: false,
            started: None,
        }
    }

    /// The API form (`status.containerStatuses[]` / `initContainerStatuses[]`).
    pub fn to_api(
        &self,
        image: &str,
        image_id: &str,
        container_id: Option<&str>,
    ) -> ContainerStatus {
        let state = match &self.state {
            State::Waiting { reason, message } => ContainerState {
                waiting: Some(ContainerStateWaiting {
                    reason: non_empty(reason),
                    message: non_empty(message),
                }),
                ..ContainerState::default()
            },
            State::Running { started_at } => ContainerState {
                running: Some(ContainerStateRunning {
                    started_at: Some(Time(*started_at)),
                }),
                ..ContainerState::default()
            },
            State::Terminated(t) => ContainerState {
                terminated: Some(t.to_api()),
                ..ContainerState::default()
            },
        };
        ContainerStatus {
            name: self.name.clone(),
            state: Some(state),
            last_state: Some(ContainerState {
                terminated: self.last_termination.as_ref().map(Terminated::to_api),
                ..ContainerState::default()
            }),
            ready: self.ready,
            restart_count: self.restart_count,
            started: self.started,
            image: image.to_owned(),
            image_id: image_id.to_owned(),
            container_id: container_id.map(str::to_owned),
            ..ContainerStatus::default()
        }
    }
}

fn non_empty(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_owned())
}

/// `status.phase`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Phase {
    Pending,
    Running,
    Succeeded,
    Failed,
    Unknown,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Pending => "Pending",
            Phase::Running => "Running",
            Phase::Succeeded => "Succeeded",
            Phase::Failed => "Failed",
            Phase::Unknown => "Unknown",
        }
    }

    pub fn is_terminal(self) -> bool {
        matches!(self, Phase::Succeeded | Phase::Failed)
    }

    pub fn parse(s: &str) -> Option<Phase> {
        Some(match s {
            "Pending" => Phase::Pending,
            "Running" => Phase::Running,
            "Succeeded" => Phase::Succeeded,
            "Failed" => Phase::Failed,
            "Unknown" => Phase::Unknown,
            _ => return None,
        })
    }
}

/// An init container with `restartPolicy: Always` is a sidecar.
pub fn is_sidecar(container: &Container) -> bool {
    container.restart_policy.as_deref() == Some("Always")
}

fn find<'o>(obs: &'o [ContainerObservation], name: &str) -> Option<&'o ContainerObservation> {
    obs.iter().find(|o| o.name == name)
}

/// Whether any regular container is running (the pod has been initialized).
pub fn any_regular_container_running(spec: &PodSpec, containers: &[ContainerObservation]) -> bool {
    spec.containers
        .iter()
        .filter_map(|c| find(containers, &c.name))
        .any(|o| matches!(o.state, State::Running { .. }))
}

fn any_regular_container_started(spec: &PodSpec, containers: &[ContainerObservation]) -> bool {
    spec.containers
        .iter()
        .filter_map(|c| find(containers, &c.name))
        .any(|o| matches!(o.state, State::Running { .. } | State::Terminated(_)))
}

/// The pod phase (§8.5, upstream `getPhase` with the restart-rules gates off).
///
/// `pod_is_terminal`: the kubelet is terminating the pod for good (deleted, evicted, past its
/// deadline), so stopped containers will not come back whatever the policy. Static pods never
/// get a terminal phase from that.
pub fn pod_phase(
    spec: &PodSpec,
    init: &[ContainerObservation],
    containers: &[ContainerObservation],
    pod_is_terminal: bool,
    is_static: bool,
) -> Phase {
    let never = spec.restart_policy.as_deref() == Some("Never");
    let always = !matches!(spec.restart_policy.as_deref(), Some("Never" | "OnFailure"));
    let mut pending_init = 0;
    let mut pending_sidecars = 0;
    let mut failed_init = 0;
    let (mut unknown, mut running, mut waiting, mut stopped, mut succeeded) = (0, 0, 0, 0, 0);

    for c in spec.init_containers.iter().flatten() {
        let Some(o) = find(init, &c.name) else {
            if is_sidecar(c) {
                unknown += 1;
            } else {
                pending_init += 1;
            }
            continue;
        };
        if is_sidecar(c) {
            match &o.state {
                State::Running { .. } => {
                    if o.started != Some(true) {
                        pending_sidecars += 1;
                    }
                    running += 1;
                }
                State::Terminated(_) => {}
                State::Waiting { .. } if o.last_termination.is_some() => {}
                State::Waiting { .. } => {
                    pending_sidecars += 1;
                    waiting += 1;
                }
            }
            continue;
        }
        match &o.state {
            State::Running { .. } => pending_init += 1,
            State::Terminated(t) if t.exit_code != 0 => failed_init += 1,
            State::Terminated(_) => {}
            State::Waiting { .. } => match &o.last_termination {
                Some(t) if t.exit_code != 0 => failed_init += 1,
                Some(_) => {}
                None => pending_init += 1,
            },
        }
    }

    for c in &spec.containers {
        let Some(o) = find(containers, &c.name) else {
            unknown += 1;
            continue;
        };
        match &o.state {
            State::Running { .. } => running += 1,
            State::Terminated(t) => {
                stopped += 1;
                if t.exit_code == 0 {
                    succeeded += 1;
                }
            }
            State::Waiting { .. } if o.last_termination.is_some() => stopped += 1,
            State::Waiting { .. } => waiting += 1,
        }
    }

    if failed_init > 0 && never {
        return Phase::Failed;
    }
    let initialized = any_regular_container_running(spec, containers);
    if pending_init > 0 || (pending_sidecars > 0 && !initialized) || waiting > 0 {
        return Phase::Pending;
    }
    if running > 0 && unknown == 0 {
        return Phase::Running;
    }
    if running == 0 && stopped > 0 && unknown == 0 {
        if pod_is_terminal && !is_static {
            return if stopped == succeeded {
                Phase::Succeeded
            } else {
                Phase::Failed
            };
        }
        if always {
            return Phase::Running;
        }
        if stopped == succeeded {
            return Phase::Succeeded;
        }
        if never {
            return Phase::Failed;
        }
        return Phase::Running;
    }
    Phase::Pending
}

/// Pod condition types the kubelet owns, and their reasons (§8.6).
pub mod condition {
    pub const POD_SCHEDULED: &str = "PodScheduled";
    pub const POD_READY_TO_START_CONTAINERS: &str = "PodReadyToStartContainers";
    pub const INITIALIZED: &str = "Initialized";
    pub const CONTAINERS_READY: &str = "ContainersReady";
    pub const READY: &str = "Ready";
    /// The types the kubelet writes (anything else in `status.conditions` is kept as is).
    pub const KUBELET_OWNED: [&str; 5] = [
        POD_SCHEDULED,
        POD_READY_TO_START_CONTAINERS,
        INITIALIZED,
        CONTAINERS_READY,
        READY,
    ];

    pub const UNKNOWN_CONTAINER_STATUSES: &str = "UnknownContainerStatuses";
    pub const POD_COMPLETED: &str = "PodCompleted";
    pub const POD_FAILED: &str = "PodFailed";
    pub const CONTAINERS_NOT_READY: &str = "ContainersNotReady";
    pub const CONTAINERS_NOT_INITIALIZED: &str = "ContainersNotInitialized";
    pub const READINESS_GATES_NOT_READY: &str = "ReadinessGatesNotReady";
}

fn cond(type_: &str, ok: bool, reason: Option<&str>, message: Option<String>) -> PodCondition {
    PodCondition {
        type_: type_.to_owned(),
        status: if ok { "True" } else { "False" }.to_owned(),
        reason: reason.map(str::to_owned),
        message,
        ..PodCondition::default()
    }
}

/// Go's `%s` of a `[]string`: `[a b]`.
fn go_list(names: &[&str]) -> String {
    format!("[{}]", names.join(" "))
}

fn containers_ready(
    pod: &Pod,
    init: &[ContainerObservation],
    containers: &[ContainerObservation],
    phase: Phase,
) -> PodCondition {
    use condition::*;
    if init.is_empty() && containers.is_empty() {
        return cond(
            CONTAINERS_READY,
            false,
            Some(UNKNOWN_CONTAINER_STATUSES),
            None,
        );
    }
    let spec = pod.spec.as_ref();
    let mut unknown = Vec::new();
    let mut unready = Vec::new();
    let sidecars = spec
        .into_iter()
        .flat_map(|s| s.init_containers.iter().flatten())
        .filter(|c| is_sidecar(c))
        .map(|c| (c, find(init, &c.name)));
    let regular = spec
        .into_iter()
        .flat_map(|s| s.containers.iter())
        .map(|c| (c, find(containers, &c.name)));
    for (c, o) in sidecars.chain(regular) {
        match o {
            None => unknown.push(c.name.as_str()),
            Some(o) if !o.ready => unready.push(c.name.as_str()),
            Some(_) => {}
        }
    }
    if phase == Phase::Failed || (phase == Phase::Succeeded && unknown.is_empty()) {
        let reason = if phase == Phase::Failed {
            POD_FAILED
        } else {
            POD_COMPLETED
        };
        return cond(CONTAINERS_READY, false, Some(reason), None);
    }
    let mut messages = Vec::new();
    if !unknown.is_empty() {
        messages.push(format!(
            "containers with unknown status: {}",
            go_list(&unknown)
        ));
    }
    if !unready.is_empty() {
        messages.push(format!(
            "containers with unready status: {}",
            go_list(&unready)
        ));
    }
    if messages.is_empty() {
        return cond(CONTAINERS_READY, true, None, None);
    }
    cond(
        CONTAINERS_READY,
        false,
        Some(CONTAINERS_NOT_READY),
        Some(messages.join(", ")),
    )
}

fn pod_ready(pod: &Pod, containers_ready: &PodCondition) -> PodCondition {
    use condition::*;
    if containers_ready.status != "True" {
        return PodCondition {
            type_: READY.to_owned(),
            ..containers_ready.clone()
        };
    }
    let existing = pod
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_deref())
        .unwrap_or(&[]);
    let mut messages = Vec::new();
    let gates = pod
        .spec
        .as_ref()
        .and_then(|s| s.readiness_gates.as_deref())
        .unwrap_or(&[]);
    for gate in gates {
        let t = &gate.condition_type;
        match existing.iter().find(|c| &c.type_ == t) {
            None => messages.push(format!(
                "corresponding condition of pod readiness gate {} does not exist.",
                nodelet_api::field_errors::go_quote(t)
            )),
            Some(c) if c.status != "True" => messages.push(format!(
                "the status of pod readiness gate {} is not \"True\", but {}",
                nodelet_api::field_errors::go_quote(t),
                c.status
            )),
            Some(_) => {}
        }
    }
    if messages.is_empty() {
        return cond(READY, true, None, None);
    }
    cond(
        READY,
        false,
        Some(READINESS_GATES_NOT_READY),
        Some(messages.join(", ")),
    )
}

fn initialized(
    pod: &Pod,
    init: &[ContainerObservation],
    containers: &[ContainerObservation],
    phase: Phase,
) -> PodCondition {
    use condition::*;
    let spec = pod.spec.as_ref();
    let init_specs: Vec<&Container> = spec
        .into_iter()
        .flat_map(|s| s.init_containers.iter().flatten())
        .collect();
    if init.is_empty() && containers.is_empty() && !init_specs.is_empty() {
        return cond(INITIALIZED, false, Some(UNKNOWN_CONTAINER_STATUSES), None);
    }
    let mut unknown = Vec::new();
    let mut incomplete = Vec::new();
    for c in &init_specs {
        match find(init, &c.name) {
            None => unknown.push(c.name.as_str()),
            Some(o) => {
                let done = if is_sidecar(c) {
                    o.started == Some(true)
                } else {
                    o.ready
                };
                if !done {
                    incomplete.push(c.name.as_str());
                }
            }
        }
    }
    if phase == Phase::Succeeded && unknown.is_empty() {
        return cond(INITIALIZED, true, Some(POD_COMPLETED), None);
    }
    if spec.is_some_and(|s| any_regular_container_started(s, containers)) {
        return cond(INITIALIZED, true, None, None);
    }
    let mut messages = Vec::new();
    if !unknown.is_empty() {
        messages.push(format!(
            "containers with unknown status: {}",
            go_list(&unknown)
        ));
    }
    if !incomplete.is_empty() {
        messages.push(format!(
            "containers with incomplete status: {}",
            go_list(&incomplete)
        ));
    }
    if messages.is_empty() {
        return cond(INITIALIZED, true, None, None);
    }
    cond(
        INITIALIZED,
        false,
        Some(CONTAINERS_NOT_INITIALIZED),
        Some(messages.join(", ")),
    )
}

/// The kubelet-owned conditions, in the order upstream appends them: PodReadyToStartContainers
/// (`sandbox_ready`: sandbox up with networking), Initialized, Ready (ContainersReady plus the
/// readiness gates, read from `pod.status.conditions`), ContainersReady, PodScheduled (always
/// True on a node). Transition times are left empty; see [`merge_conditions`].
pub fn pod_conditions(
    pod: &Pod,
    init: &[ContainerObservation],
    containers: &[ContainerObservation],
    phase: Phase,
    sandbox_ready: bool,
) -> Vec<PodCondition> {
    use condition::*;
    let ready_containers = containers_ready(pod, init, containers, phase);
    vec![
        cond(POD_READY_TO_START_CONTAINERS, sandbox_ready, None, None),
        initialized(pod, init, containers, phase),
        pod_ready(pod, &ready_containers),
        ready_containers,
        cond(POD_SCHEDULED, true, None, None),
    ]
}

/// The conditions to write: the old ones the kubelet does not own (readiness gates,
/// `DisruptionTarget`, …) first, then `generated`, each keeping the old `lastTransitionTime`
/// when its status did not change and getting `now` when it did.
pub fn merge_conditions(
    old: &[PodCondition],
    generated: Vec<PodCondition>,
    now: Timestamp,
) -> Vec<PodCondition> {
    let mut out: Vec<PodCondition> = old
        .iter()
        .filter(|c| !condition::KUBELET_OWNED.contains(&c.type_.as_str()))
        .cloned()
        .collect();
    for mut c in generated {
        let previous = old.iter().find(|o| o.type_ == c.type_);
        c.last_transition_time = match previous {
            Some(p) if p.status == c.status && p.last_transition_time.is_some() => {
                p.last_transition_time.clone()
            }
            _ => Some(Time(now)),
        };
        out.push(c);
    }
    out
}

/// The reason `kubectl` shows for a pod whose node stopped reporting.
pub const NODE_LOST_REASON: &str = "NodeLost";

/// One row of `kubectl get pods` (without NAME and AGE).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodRow {
    /// `<ready>/<total>`; sidecars count as containers.
    pub ready: String,
    pub status: String,
    pub restarts: i32,
}

/// What `kubectl get pods` prints for `pod` (printers.go `printPod`, M): the pod's `reason`
/// or phase, overridden by the first unfinished init container (`Init:<reason>`,
/// `Init:ExitCode:<n>`, `Init:Signal:<n>`, `Init:<done>/<total>`), then — once initialized —
/// by the last regular container with a waiting or terminated reason (`ExitCode:<n>`,
/// `Signal:<n>` without one); `Completed` with a container still running shows `Running` or
/// `NotReady`; a pod being deleted shows `Terminating` (or `Unknown` when its node is lost).
pub fn kubectl_row(pod: &Pod) -> PodRow {
    let spec = pod.spec.as_ref();
    let status = pod.status.as_ref();
    let init_specs: Vec<&Container> = spec
        .into_iter()
        .flat_map(|s| s.init_containers.iter().flatten())
        .collect();
    let total = spec.map_or(0, |s| s.containers.len())
        + init_specs.iter().filter(|c| is_sidecar(c)).count();
    let phase = status.and_then(|s| s.phase.clone()).unwrap_or_default();
    let mut reason = status
        .and_then(|s| s.reason.clone())
        .filter(|r| !r.is_empty())
        .unwrap_or_else(|| phase.clone());
    let conditions = status.and_then(|s| s.conditions.as_deref()).unwrap_or(&[]);
    if conditions.iter().any(|c| {
        c.type_ == condition::POD_SCHEDULED && c.reason.as_deref() == Some("SchedulingGated")
    }) {
        reason = "SchedulingGated".to_owned();
    }

    let mut restarts = 0;
    let mut sidecar_restarts = 0;
    let mut ready = 0;
    let mut initializing = false;
    let init_statuses = status
        .and_then(|s| s.init_container_statuses.as_deref())
        .unwrap_or(&[]);
    for (i, cs) in init_statuses.iter().enumerate() {
        restarts += cs.restart_count;
        let sidecar = init_specs
            .iter()
            .any(|c| c.name == cs.name && is_sidecar(c));
        if sidecar {
            sidecar_restarts += cs.restart_count;
        }
        let state = cs.state.clone().unwrap_or_default();
        if let Some(t) = &state.terminated
            && t.exit_code == 0
        {
            continue;
        }
        if sidecar && cs.started == Some(true) {
            if cs.ready {
                ready += 1;
            }
            continue;
        }
        initializing = true;
        reason = if let Some(t) = &state.terminated {
            match t.reason.as_deref().filter(|r| !r.is_empty()) {
                Some(r) => format!("Init:{r}"),
                None => match t.signal.filter(|&s| s != 0) {
                    Some(s) => format!("Init:Signal:{s}"),
                    None => format!("Init:ExitCode:{}", t.exit_code),
                },
            }
        } else if let Some(r) = state
            .waiting
            .as_ref()
            .and_then(|w| w.reason.as_deref())
            .filter(|r| !r.is_empty() && *r != waiting_reason::POD_INITIALIZING)
        {
            format!("Init:{r}")
        } else {
            format!("Init:{i}/{}", init_specs.len())
        };
        break;
    }

    let initialized_true = conditions
        .iter()
        .any(|c| c.type_ == condition::INITIALIZED && c.status == "True");
    if !initializing || initialized_true {
        restarts = sidecar_restarts;
        let mut has_running = false;
        let statuses = status
            .and_then(|s| s.container_statuses.as_deref())
            .unwrap_or(&[]);
        for cs in statuses.iter().rev() {
            restarts += cs.restart_count;
            let state = cs.state.clone().unwrap_or_default();
            let waiting = state
                .waiting
                .as_ref()
                .and_then(|w| w.reason.clone())
                .filter(|r| !r.is_empty());
            if let Some(r) = waiting {
                reason = r;
            } else if let Some(t) = &state.terminated {
                reason = match t.reason.as_deref().filter(|r| !r.is_empty()) {
                    Some(r) => r.to_owned(),
                    None => match t.signal.filter(|&s| s != 0) {
                        Some(s) => format!("Signal:{s}"),
                        None => format!("ExitCode:{}", t.exit_code),
                    },
                };
            } else if cs.ready && state.running.is_some() {
                has_running = true;
                ready += 1;
            }
        }
        if reason == terminated_reason::COMPLETED && has_running {
            let pod_ready = conditions
                .iter()
                .any(|c| c.type_ == condition::READY && c.status == "True");
            reason = if pod_ready { "Running" } else { "NotReady" }.to_owned();
        }
    }

    if pod.metadata.deletion_timestamp.is_some() {
        if status.and_then(|s| s.reason.as_deref()) == Some(NODE_LOST_REASON) {
            reason = "Unknown".to_owned();
        } else if !Phase::parse(&phase).is_some_and(Phase::is_terminal) {
            reason = "Terminating".to_owned();
        }
    }
    PodRow {
        ready: format!("{ready}/{total}"),
        status: reason,
        restarts,
    }
}

#[cfg(test)]
mod tests;

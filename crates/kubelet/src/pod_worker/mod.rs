//! The per-pod worker: it runs one pod from start to end on top of the image service and the
//! OCI runtime, emitting the kubelet's events and passing on the containers' output.
//!
//! The design is level-triggered: [`PodWorker::sync_pod`] compares what the pod asks for
//! with what it observes (which containers run, how the others ended) and does the next step
//! (resolve the RuntimeClass, start the next init container, start or restart app containers
//! under the restart policy and CrashLoopBackOff); it may run any number of times. Between
//! syncs the worker waits for a container to end, a back-off to expire or a stop request.
//!
//! Per container start (spec §2.3, §5, §7.5): image (pull policy, pod then ServiceAccount then
//! node credentials), environment (image `ENV` < `envFrom` < `env`, `$(VAR)`, downward API),
//! argv from `command`/`args` and the image, working dir and user from the image, hostname =
//! the pod's, a generated `/etc/hosts` and `/etc/hostname` bind-mounted, an empty file at
//! `terminationMessagePath`, create and start through the container's shim (`Created`,
//! `Started` once it runs), then PostStart, synchronously: the
//! next container starts only after it; a failure emits `FailedPostStartHook`, kills the
//! container and leaves the rest to the restart policy. Then its probes start
//! ([`probing`]): they set the container's `ready` and `started`, and a failed liveness or
//! startup probe kills it (PreStop, then the stop) for the restart policy to bring back.
//! Termination (a stop request) runs
//! PreStop then the stop signal within `terminationGracePeriodSeconds`, KILL at the deadline,
//! with at least 2 s after a slow PreStop (§7.6).
//!
//! Every container runs under its own shim (`nodelet shim`, [`nodelet_runtime::shim`]): the
//! shim writes the container's output to its CRI log file
//! (`{log_dir}/<namespace>_<pod>_<uid>/<container>/<restartCount>.log`), which a follower
//! thread passes on to the [`PodReporter`], and records how it ended (`exit.json`: code,
//! signal, OOM kill, start and finish times). Its state lives in the container's directory
//! `{pods_dir}/<uid>/containers/<name>_<attempt>_<uid>/` (the bundle), so the worker's start
//! is "observe what is on disk, then act": containers still running under their shims
//! (nodelet was killed and restarted) are adopted, restart counts come from the container
//! directories and log files, and ended ones are collected as usual.
//!
//! Not yet here (no sandbox): containers use the node's network namespace, so `status.podIP`
//! is the node's IP (as for a host-network pod), and they do not share IPC or pid
//! namespaces.

mod background_stop;
mod container_io;
mod grace;
mod host_ports;
mod image_update;
mod images;
mod lifecycle;
mod live_objects;
mod on_disk;
mod probing;
mod refresh;
mod status_snapshot;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, channel};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nodelet_api::k8s::api::core::v1::{Container, Pod};
use nodelet_api::k8s::apimachinery::pkg::api::resource::Quantity;
use nodelet_api::k8s::jiff::Timestamp;
use nodelet_image::keyring::{Keyring, NodeCredentials};
use nodelet_image::oci::Platform;
use nodelet_image::pull::ImageService;
use nodelet_image::pull_policy::PullBackOff;
use nodelet_runtime::bundle::Bundle;
use nodelet_runtime::container::{Container as RuntimeContainer, Exit};
use nodelet_runtime::handlers::{Handler, HandlerTable};
use nodelet_runtime::logs::{self, ContainerLogs};
use nodelet_runtime::pod_cgroup::{self, PodCgroup};
use nodelet_runtime::sandbox::{Sandbox, SandboxConfig, SandboxError};
use nodelet_runtime::shim::{ShimConfig, ShimExit, ShimHandle, ShimLauncher};
use nodelet_runtime::signal::Signal;
use nodelet_runtime::spec::{self, BindMount, ContainerSpec};

use container_io::FollowFrom;
pub use container_io::Stream;
pub use image_update::ContainerImages;
pub use lifecycle::ExitSlot;
pub use live_objects::LiveObjects;
pub use refresh::{PodRefresh, ReferencedObjects, RefreshHandle};

use crate::backoff::{self, CrashLoopBackOff, LastSeen, RestartDecision, RestartPolicy};
use crate::env::{self, StaticSources};
use crate::events::{self, ContainerList, Event, KillReason};
use crate::hooks::{self, StopPlan};
use crate::hostname;
use crate::probes::exec::RuntimeExec;
use crate::probes::prober::{ProbeEvent, ProbeTarget, Prober, Report};
use crate::runtime_class;
use crate::sources::file::PodObjects;
use crate::status::Phase;
use lifecycle::HookTarget;

/// How long a PostStart `exec` or `httpGet` may take (upstream sets none; every runtime
/// command of ours has a deadline).
const POST_START_TIMEOUT: Duration = Duration::from_secs(600);
/// How long a SIGKILLed container may take to be gone.
const KILL_WAIT: Duration = Duration::from_secs(10);
/// The cluster domain for hostnames with a subdomain (no cluster DNS yet).
pub const DEFAULT_CLUSTER_DOMAIN: &str = "cluster.local";
/// Exit code reported for a container whose end could not be observed.
const UNKNOWN_EXIT_CODE: i32 = crate::status::CONTAINER_STATUS_UNKNOWN_EXIT_CODE;

/// What the worker needs of the node.
#[derive(Debug, Clone)]
pub struct NodeContext {
    pub node_name: String,
    /// The node's IP; also the pod's for now (no sandbox networking yet).
    pub host_ip: String,
    /// `status.allocatable`, the default of unset limits in `resourceFieldRef`.
    pub allocatable: BTreeMap<String, Quantity>,
    /// `{root-dir}/pods`: one directory per pod uid (bundles, `/etc/hosts`, `/etc/hostname`).
    pub pods_dir: PathBuf,
    /// Containers' CRI log files: `{log_dir}/<namespace>_<pod>_<uid>/<container>/<n>.log`
    /// (`/var/log/pods` by default, [`logs::DEFAULT_LOG_DIR`]). Absolute.
    pub log_dir: PathBuf,
    pub cluster_domain: String,
    /// Where pod cgroups go in each hierarchy ([`pod_cgroup::DEFAULT_PARENT`]).
    pub cgroup_parent: String,
    /// When the containers' shims rotate their logs (`containerLogMaxSize`/`MaxFiles`).
    pub log_rotation: logs::LogRotation,
}

/// The node's services the worker drives; made once per node and cloned for each pod.
#[derive(Debug, Clone)]
pub struct NodeServices {
    pub images: Arc<ImageService>,
    pub handlers: HandlerTable,
    /// Node credentials; each worker searches again with its own cache
    /// (`NodeCredentials::fresh`).
    pub node_credentials: Arc<NodeCredentials>,
    pub platform: Platform,
    /// Where the (async) image pulls run; the worker itself blocks.
    pub runtime: tokio::runtime::Handle,
    /// How to start a container's shim: the `nodelet` binary (`ShimLauncher::this_binary()`
    /// in nodelet; tests that run a worker in-process point it at the built binary).
    pub shim: ShimLauncher,
    /// The pod network (CNI) sandboxes attach to; `None` when the node has none, and then
    /// only `hostNetwork` pods can run.
    pub network: Option<Arc<nodelet_runtime::cni::Network>>,
    /// What runs as PID 1 of a pod with `shareProcessNamespace` (`nodelet pause`).
    pub pause: Option<nodelet_runtime::pause::PauseLauncher>,
    /// The node's `/etc/resolv.conf` contents, for pods with host DNS (`None`: none).
    pub node_resolv_conf: Option<String>,
}

/// Where events, container output and log messages go (the terminal under `nodelet run`).
pub trait PodReporter: Send + Sync + std::fmt::Debug {
    /// An event on the pod; `field_path` names a container (`spec.containers{main}`).
    fn event(&self, field_path: Option<&str>, event: &Event);
    /// One line a container wrote, without its newline.
    fn output(&self, container: &str, stream: Stream, line: &[u8]);
    /// A message for the log (details that are kept out of events, progress).
    fn log(&self, message: &str);
    /// Whether [`output`](Self::output) is wanted: without it, nobody follows the
    /// containers' log files (they are still written, for `kubectl logs`).
    fn wants_output(&self) -> bool {
        true
    }
    /// The pod's status as the worker now observes it (phase, conditions, container
    /// statuses), each time it changes. Ignored where nobody keeps it (`nodelet run`).
    fn status(&self, _status: &nodelet_api::k8s::api::core::v1::PodStatus) {}
}

/// How the worker reacts to a container that cannot be started.
#[derive(Debug, Clone, Copy, Default)]
pub struct WorkerOptions {
    /// `nodelet run`: a container that cannot be started (image, configuration, runtime
    /// errors) ends the pod at once (exit 1) instead of being retried with back-off.
    pub give_up_on_start_failure: bool,
    /// Under an API server: a pod that finished keeps its logs for `kubectl logs` until the
    /// pod is deleted (the pod source removes them then); a terminated pod's go with it.
    pub keep_logs_when_finished: bool,
}

/// How the pod ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodOutcome {
    pub phase: Phase,
    /// 0 when the pod succeeded; else the failing container's exit code; 1 when the pod
    /// could not start.
    pub exit_code: i32,
    pub message: String,
    /// How each container that ran last ended, by name (init containers too).
    pub last_exits: BTreeMap<String, LastExit>,
}

/// Asks a running worker to terminate its pod gracefully.
#[derive(Debug, Clone)]
pub struct StopHandle(Sender<Msg>, Arc<grace::TerminationGrace>);

impl StopHandle {
    pub fn stop(&self) {
        let _ = self.0.send(Msg::Stop(None));
    }

    /// Terminates for an API deletion with its `deletionGracePeriodSeconds` (0 for a forced
    /// one), which replaces the pod's own grace as upstream's kubelet takes it (spec §7.7).
    /// Called again while the pod terminates, a smaller grace shortens the termination in
    /// progress (never lengthens it).
    pub fn stop_for_deletion(&self, deletion_grace_seconds: i64) {
        self.1.request(deletion_grace_seconds);
        let _ = self.0.send(Msg::Stop(Some(deletion_grace_seconds)));
    }
}

#[derive(Debug)]
enum Msg {
    /// With the deletion's grace period when the API server deleted the pod.
    Stop(Option<i64>),
    Exited,
    /// A probe of a running container reported (see [`PodWorker::on_probe`]).
    Probe(ProbeEvent),
    /// The current state of the pod's volume sources ([`refresh`]).
    Refresh(Box<PodRefresh>),
    /// The pod's container images ([`image_update`]).
    Images(ContainerImages),
}

/// What a sync decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncResult {
    /// The pod is finished (or could not start).
    Done,
    /// Sync again when something changes, or at the instant given.
    WaitUntil(Option<Instant>),
}

/// A container of the pod, as the worker sees it.
#[derive(Debug)]
struct Slot {
    spec: Container,
    list: ContainerList,
    /// Starts so far (restart count + 1 once started).
    starts: u32,
    running: Option<Running>,
    last_exit: Option<LastExit>,
    /// The back-off window a `BackOff` event was already emitted for.
    back_off_reported: Option<Timestamp>,
    /// Why it is not running now (a start failure or CrashLoopBackOff); cleared on a start.
    waiting: Option<StartFailure>,
    /// When the current (or, once ended, the last) run started, and the run before it.
    started_at: Option<Timestamp>,
    previous_started_at: Option<Timestamp>,
    /// The last run's image (repository digest) and container ID, for the status.
    image_id: Option<String>,
    container_id: Option<String>,
    /// Its spec changed while it ran: kill it and start it again ([`image_update`]).
    definition_changed: bool,
}

impl Slot {
    /// A container of the spec that has not started yet.
    fn new(spec: Container, list: ContainerList) -> Slot {
        Slot {
            spec,
            list,
            starts: 0,
            running: None,
            last_exit: None,
            back_off_reported: None,
            waiting: None,
            started_at: None,
            previous_started_at: None,
            image_id: None,
            container_id: None,
            definition_changed: false,
        }
    }
}

/// How a container's last run ended (from its shim's `exit.json`), for restarts, the pod's
/// outcome and its status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LastExit {
    pub code: i32,
    /// `Completed`, `Error`, `OOMKilled` (or `ContainerStatusUnknown` when the shim was lost).
    pub reason: String,
    /// The termination message (spec §5.8): the file at `terminationMessagePath`, or the log's
    /// tail under `FallbackToLogsOnError`.
    pub message: String,
    /// `None` when the shim was lost before recording its start.
    pub started_at: Option<Timestamp>,
    pub finished_at: Timestamp,
}

#[derive(Debug)]
struct Running {
    container: Arc<RuntimeContainer>,
    bundle: Bundle,
    exit: Arc<ExitSlot>,
    waiter: JoinHandle<()>,
    output: container_io::ContainerOutput,
    /// When its first process started (the shim's `started.json`).
    started_at: Timestamp,
    /// Its CRI log file (`<restartCount>.log`).
    log_path: PathBuf,
    /// The host file bind-mounted at `terminationMessagePath`, if any.
    termination_message_file: Option<PathBuf>,
    /// Its probes, once it has started (after PostStart); stopped with it.
    prober: Option<Prober>,
    /// A stop running beside the worker (a failed probe's kill), joined before deletion.
    stop_in_progress: Option<background_stop::StopInProgress>,
}

/// What the worker keeps of a container it watches, besides the container itself.
#[derive(Debug)]
struct WatchInfo {
    started_at: Timestamp,
    log_path: PathBuf,
    termination_message_file: Option<PathBuf>,
    follow_from: FollowFrom,
}

/// Why a shim could not start its container.
#[derive(Debug)]
enum SpawnFailure {
    /// The pod's network could not be attached (the event is out).
    Network(String),
    Shim(nodelet_runtime::shim::ShimError),
}

/// Whether the container's environment needs the pod's IP (`status.podIP(s)`), known only
/// once its network is attached.
fn uses_pod_ip(container: &Container) -> bool {
    container.env.iter().flatten().any(|var| {
        var.value_from
            .as_ref()
            .and_then(|from| from.field_ref.as_ref())
            .is_some_and(|field| field.field_path.starts_with("status.podIP"))
    })
}

/// Why a container could not be started: the waiting reason and message.
#[derive(Debug, Clone)]
struct StartFailure {
    reason: String,
    message: String,
}

impl StartFailure {
    fn new(reason: &str, message: impl Into<String>) -> StartFailure {
        StartFailure {
            reason: reason.to_owned(),
            message: message.into(),
        }
    }
}

/// One pod's worker.
#[derive(Debug)]
pub struct PodWorker {
    pod: Pod,
    objects: PodObjects,
    /// Under an API server: where `objects` is read again before each pull and creation.
    live_objects: Option<Arc<dyn LiveObjects>>,
    services: NodeServices,
    node: NodeContext,
    reporter: Arc<dyn PodReporter>,
    options: WorkerOptions,
    slots: Vec<Slot>,
    handler: Option<Handler>,
    /// The pod's sandbox (shared namespaces, network, resolv.conf) once made.
    sandbox: Option<Sandbox>,
    /// The sandbox's IPs, kept for the status after it is removed.
    sandbox_ips: Vec<String>,
    /// The pod network's ADD, running beside the first container's `create` (which waits
    /// for it before `start`): see `await_network`.
    network_attach: Option<JoinHandle<Result<Sandbox, SandboxError>>>,
    /// Whether the pod cgroup was made (or found again) by this worker.
    pod_cgroup_ready: bool,
    keyring: Option<Keyring>,
    pull_back_off: PullBackOff,
    crash_back_off: CrashLoopBackOff,
    /// Set when the pod could not start (it ends Failed, exit 1).
    failure: Option<String>,
    stopping: bool,
    /// Removals of ended containers (runtime delete, rootfs, bundle) running beside the
    /// worker; `cleanup` waits for them before the pod's cgroup and directory go.
    removals: Vec<JoinHandle<()>>,
    status_snapshot: status_snapshot::StatusSnapshot,
    /// The termination deadline, shortened through the stop handles while it runs.
    termination_grace: Arc<grace::TerminationGrace>,
    tx: Sender<Msg>,
    rx: Receiver<Msg>,
}

impl PodWorker {
    /// A worker for `pod` (defaulted and validated) with the objects it may refer to.
    pub fn new(
        pod: Pod,
        objects: PodObjects,
        services: NodeServices,
        node: NodeContext,
        reporter: Arc<dyn PodReporter>,
        options: WorkerOptions,
    ) -> PodWorker {
        let mut services = services;
        services.node_credentials = Arc::new(services.node_credentials.fresh());
        let spec = pod.spec.clone().unwrap_or_default();
        let mut slots = Vec::new();
        for (list, containers) in [
            (
                ContainerList::Init,
                spec.init_containers.unwrap_or_default(),
            ),
            (ContainerList::Regular, spec.containers),
        ] {
            for c in containers {
                slots.push(Slot::new(c, list));
            }
        }
        let (tx, rx) = channel();
        PodWorker {
            pod,
            objects,
            live_objects: None,
            services,
            node,
            reporter,
            options,
            slots,
            handler: None,
            sandbox: None,
            sandbox_ips: Vec::new(),
            pod_cgroup_ready: false,
            keyring: None,
            pull_back_off: PullBackOff::new(),
            crash_back_off: CrashLoopBackOff::new(),
            failure: None,
            stopping: false,
            network_attach: None,
            removals: Vec::new(),
            status_snapshot: Default::default(),
            termination_grace: Default::default(),
            tx,
            rx,
        }
    }

    pub fn stop_handle(&self) -> StopHandle {
        StopHandle(self.tx.clone(), Arc::clone(&self.termination_grace))
    }

    /// Runs the pod until it ends or a stop request has terminated it, then removes every
    /// container, mount and directory it made.
    pub fn run(mut self) -> PodOutcome {
        // Exit codes of containers reach only a child subreaper (their runtime's `create`
        // exits at once).
        if let Err(e) = nodelet_sys::process::become_child_subreaper() {
            self.reporter
                .log(&format!("becoming a child subreaper: {e}"));
        }
        let _ = std::fs::create_dir_all(self.pod_dir());
        self.adopt_from_disk();
        loop {
            self.observe();
            self.report_status(false);
            if self.stopping {
                self.terminate();
                break;
            }
            match self.sync_pod() {
                SyncResult::Done => break,
                SyncResult::WaitUntil(deadline) => {
                    self.report_status(false);
                    self.wait(deadline);
                }
            }
        }
        self.cleanup();
        self.report_status(true);
        self.outcome()
    }

    fn wait(&mut self, deadline: Option<Instant>) {
        let msg = match deadline {
            None => self.rx.recv().ok(),
            Some(d) => match self
                .rx
                .recv_timeout(d.saturating_duration_since(Instant::now()))
            {
                Ok(m) => Some(m),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => None,
            },
        };
        if let Some(msg) = msg {
            self.take_in(msg);
        }
    }

    /// Takes in pending messages and collects the containers that have ended.
    fn observe(&mut self) {
        while let Ok(msg) = self.rx.try_recv() {
            self.take_in(msg);
        }
        for i in 0..self.slots.len() {
            let ended = self.slots[i].running.as_ref().and_then(|r| r.exit.get());
            if let Some(exit) = ended {
                self.collect(i, exit);
            }
        }
    }

    fn take_in(&mut self, msg: Msg) {
        match msg {
            Msg::Stop(deletion_grace) => {
                if deletion_grace.is_some() {
                    self.pod.metadata.deletion_grace_period_seconds = deletion_grace;
                }
                self.stopping = true;
            }
            Msg::Exited => {}
            Msg::Probe(event) => self.on_probe(event),
            Msg::Refresh(update) => self.take_refresh(*update),
            Msg::Images(images) => self.take_images(images),
        }
    }

    /// Deletes an ended container and its bundle, and records how it ended.
    fn collect(&mut self, i: usize, exit: Exit) {
        let Some(mut running) = self.slots[i].running.take() else {
            return;
        };
        let last = self.last_exit_of(i, &running, exit);
        // Its last lines first, then the exit.
        running.output.finish();
        let name = self.slots[i].spec.name.clone();
        // `nodelet serve`'s reporter reads the code from this line.
        self.reporter
            .log(&format!("container {name} exited with code {}", last.code));
        self.reporter.log(&format!(
            "container {name} terminated: reason {}",
            last.reason
        ));
        if let Err(e) = on_disk::save_last_exit(&self.pod_dir(), &name, &last) {
            self.reporter
                .log(&format!("recording the exit of container {name}: {e}"));
        }
        let reporter = Arc::clone(&self.reporter);
        self.removals.push(std::thread::spawn(move || {
            remove_container(running, &*reporter);
        }));
        self.slots[i].last_exit = Some(last);
    }

    /// How container `i` ended: the shim's record (or `exit` when it left none) and the
    /// termination message, read before its directory goes.
    fn last_exit_of(&self, i: usize, running: &Running, exit: Exit) -> LastExit {
        let recorded: Option<ShimExit> = running
            .container
            .shim()
            .and_then(|shim| shim.exit().ok().flatten());
        let (code, reason, started_at, finished_at) = match recorded {
            Some(e) => (
                e.exit_code,
                e.reason().to_owned(),
                Some(e.started_at),
                e.finished_at,
            ),
            None => match exit.code() {
                Some(code) => (
                    code,
                    exit_reason(code).to_owned(),
                    Some(running.started_at),
                    Timestamp::now(),
                ),
                None => (
                    UNKNOWN_EXIT_CODE,
                    crate::status::terminated_reason::CONTAINER_STATUS_UNKNOWN.to_owned(),
                    Some(running.started_at),
                    Timestamp::now(),
                ),
            },
        };
        let message = on_disk::termination_message(
            &self.slots[i].spec,
            running.termination_message_file.as_deref(),
            &running.log_path,
            code,
            &reason,
        );
        LastExit {
            code,
            reason,
            message,
            started_at,
            finished_at,
        }
    }

    /// One level-triggered step: see the module docs.
    pub fn sync_pod(&mut self) -> SyncResult {
        if self.failure.is_some() || self.stopping {
            return SyncResult::Done;
        }
        if self.handler.is_none() {
            match self.resolve_handler() {
                Ok(h) => {
                    self.reporter.log(&format!(
                        "runtime handler {:?} ({})",
                        h.name,
                        h.binary.display()
                    ));
                    self.handler = Some(h);
                }
                Err(message) => {
                    self.failure = Some(message);
                    return SyncResult::Done;
                }
            }
        }
        if self.sandbox.is_none()
            && let Err(message) = self.create_sandbox()
        {
            return self
                .start_failed(message)
                .map_or(SyncResult::Done, |retry| SyncResult::WaitUntil(Some(retry)));
        }
        if !self.pod_cgroup_ready
            && let Err(message) = self.create_pod_cgroup()
        {
            return self
                .start_failed(message)
                .map_or(SyncResult::Done, |retry| SyncResult::WaitUntil(Some(retry)));
        }
        let policy = RestartPolicy::of(&self.pod);
        let mut wake: Option<Instant> = None;
        // Init containers, in order: each must succeed before the next starts.
        let init: Vec<usize> = (0..self.slots.len())
            .filter(|&i| self.slots[i].list == ContainerList::Init)
            .collect();
        for i in init {
            if self.slots[i].running.is_some() {
                return SyncResult::WaitUntil(None);
            }
            match self.slots[i].last_exit.as_ref().map(|e| e.code) {
                Some(0) => continue,
                Some(_) if policy == RestartPolicy::Never => return SyncResult::Done,
                _ => {
                    return match self.start_or_back_off(i) {
                        Ok(w) => SyncResult::WaitUntil(w),
                        Err(()) => SyncResult::Done,
                    };
                }
            }
        }
        let mut active = false;
        for i in 0..self.slots.len() {
            if self.slots[i].list != ContainerList::Regular {
                continue;
            }
            if self.slots[i].running.is_some() && !self.kill_if_definition_changed(i) {
                active = true;
                continue;
            }
            let last = match &self.slots[i].last_exit {
                None => LastSeen::NotStarted,
                Some(e) => LastSeen::Exited { exit_code: e.code },
            };
            if !backoff::should_restart(policy, last, false) && !self.slots[i].definition_changed {
                continue;
            }
            active = true;
            match self.start_or_back_off(i) {
                Ok(Some(at)) => wake = Some(wake.map_or(at, |w| w.min(at))),
                Ok(None) => {}
                Err(()) => return SyncResult::Done,
            }
            if self.stopping {
                return SyncResult::Done;
            }
        }
        if active {
            SyncResult::WaitUntil(wake)
        } else {
            SyncResult::Done
        }
    }

    /// Starts container `i` now, or reports the back-off instant to come back at.
    /// `Err(())`: it could not start and the worker gives up (`nodelet run`).
    fn start_or_back_off(&mut self, i: usize) -> Result<Option<Instant>, ()> {
        if let Some(finished_at) = self.slots[i].last_exit.as_ref().map(|e| e.finished_at) {
            let key = CrashLoopBackOff::key(&self.pod, &self.slots[i].spec);
            let now = Timestamp::now();
            match self.crash_back_off.decide(&key, finished_at, now) {
                RestartDecision::Restart => {}
                RestartDecision::Wait { delay, remaining } => {
                    self.slots[i].waiting = Some(StartFailure::new(
                        backoff::CRASH_LOOP_BACK_OFF,
                        backoff::crash_loop_message(delay, &self.slots[i].spec.name, &self.pod),
                    ));
                    if self.slots[i].back_off_reported != Some(finished_at) {
                        self.slots[i].back_off_reported = Some(finished_at);
                        let name = self.slots[i].spec.name.clone();
                        self.emit_for(i, backoff::back_off_event(&name, &self.pod));
                        self.reporter
                            .log(&backoff::crash_loop_message(delay, &name, &self.pod));
                    }
                    return Ok(Some(Instant::now() + remaining));
                }
            }
        }
        match self.start_container(i) {
            Ok(()) => {
                self.slots[i].definition_changed = false;
                self.report_status(false);
                Ok(None)
            }
            Err(failure) => {
                self.slots[i].waiting = Some(failure.clone());
                let name = &self.slots[i].spec.name;
                let message = format!(
                    "container {name} could not start: {}: {}",
                    failure.reason, failure.message
                );
                self.start_failed(message).map(Some).ok_or(())
            }
        }
    }

    /// A step of starting the pod failed: with `give_up_on_start_failure` the pod ends with
    /// `message` (`None`); otherwise it is logged and the step is retried at the instant
    /// returned.
    fn start_failed(&mut self, message: String) -> Option<Instant> {
        if self.options.give_up_on_start_failure {
            self.failure = Some(message);
            None
        } else {
            self.reporter.log(&message);
            Some(Instant::now() + CrashLoopBackOff::INITIAL_DELAY)
        }
    }

    /// `runtimeClassName` → RuntimeClass (from the file) → handler; the seed's Failed phase
    /// when either is missing, with the `FailedCreatePodSandBox` Warning naming both.
    fn resolve_handler(&mut self) -> Result<Handler, String> {
        let class_name = self
            .pod
            .spec
            .as_ref()
            .and_then(|s| s.runtime_class_name.clone());
        let table = &self.services.handlers;
        let resolved = runtime_class::resolve_handler(
            class_name.as_deref(),
            table.default_name(),
            |name| self.objects.runtime_class(name),
            |handler| table.get(handler).is_ok(),
        );
        match resolved {
            Ok(name) => table.get(&name).cloned().map_err(|e| e.to_string()),
            Err(error) => {
                let event = runtime_class::failure_event(&error);
                let message = event.message.clone();
                self.emit(None, event);
                Err(message)
            }
        }
    }

    /// Level-triggered start: takes in what earlier runs of this pod left (a nodelet that
    /// was killed and restarted): running containers are adopted, ended ones collected, and
    /// each container's restart count continues from its directories and log files.
    fn adopt_from_disk(&mut self) {
        let uid = self.pod.metadata.uid.clone().unwrap_or_default();
        let pod_dir = self.pod_dir();
        let dirs = on_disk::container_dirs(&pod_dir, &uid);
        for i in 0..self.slots.len() {
            let name = self.slots[i].spec.name.clone();
            if let Some(last) = on_disk::load_last_exit(&pod_dir, &name) {
                self.slots[i].last_exit = Some(last);
            }
            let logged = on_disk::last_logged_attempt(&self.container_logs(&name));
            let dir_attempt = dirs
                .iter()
                .filter(|d| d.name == name)
                .map(|d| d.attempt)
                .max();
            self.slots[i].starts = logged.max(dir_attempt).map_or(0, |a| a + 1);
            for dir in dirs.iter().filter(|d| d.name == name) {
                self.adopt_dir(i, dir);
            }
        }
        for dir in &dirs {
            if !self.slots.iter().any(|s| s.spec.name == dir.name) {
                remove_leftover(dir, &*self.reporter);
            }
        }
    }

    /// Takes in one container directory of container `i` (oldest first).
    fn adopt_dir(&mut self, i: usize, dir: &on_disk::ContainerDir) {
        let Ok(shim) = ShimHandle::attach(&dir.path) else {
            // A start that ended before its shim ran.
            remove_leftover(dir, &*self.reporter);
            return;
        };
        let alive = shim.is_running();
        let started_at = shim.started().map_or_else(Timestamp::now, |s| s.started_at);
        let log_path = shim.config().log_path.clone();
        let container = match shim.into_container() {
            Ok(c) => c,
            Err(e) => {
                self.reporter.log(&format!(
                    "container {} (attempt {}) left {}: {e}",
                    dir.name,
                    dir.attempt,
                    dir.path.display()
                ));
                remove_leftover(dir, &*self.reporter);
                return;
            }
        };
        let info = WatchInfo {
            started_at,
            log_path,
            termination_message_file: on_disk::termination_message_file(&dir.path),
            follow_from: FollowFrom::End,
        };
        if let Some(older) = self.slots[i].running.as_ref() {
            // Only the newest run of a container may go on.
            stop_running(older, 0);
            let exit = older.exit.get().unwrap_or(Exit::Unknown);
            self.collect(i, exit);
        }
        let container_id = Some(format!("{}://{}", container.handler(), container.id()));
        let running = self.watch(&dir.name, container, Bundle::open(&dir.path), info);
        let slot = &mut self.slots[i];
        slot.previous_started_at = slot.last_exit.as_ref().and_then(|e| e.started_at);
        slot.started_at = Some(started_at);
        slot.container_id = container_id;
        slot.running = Some(running);
        self.adopted_image(i, &dir.path, alive);
        if alive {
            self.reporter.log(&format!(
                "container {} is running (adopted from its shim, restart count {})",
                dir.name, dir.attempt
            ));
            self.start_probes(i, probing::instant_of(started_at));
        } else {
            let running = self.slots[i].running.as_ref().expect("just watched");
            let exit = running.exit.wait(KILL_WAIT).unwrap_or(Exit::Unknown);
            self.collect(i, exit);
        }
    }

    /// Starts watching `container`: its exit (a waiter on its shim) and its log.
    fn watch(
        &self,
        name: &str,
        container: RuntimeContainer,
        bundle: Bundle,
        info: WatchInfo,
    ) -> Running {
        let container = Arc::new(container);
        let exit = Arc::new(ExitSlot::default());
        let waiter = spawn_waiter(&container, &exit, self.tx.clone());
        let output = container_io::follow(
            name,
            &info.log_path,
            info.follow_from,
            exit.clone(),
            &self.reporter,
        );
        Running {
            container,
            bundle,
            exit,
            waiter,
            output,
            started_at: info.started_at,
            log_path: info.log_path,
            termination_message_file: info.termination_message_file,
            prober: None,
            stop_in_progress: None,
        }
    }

    fn container_logs(&self, container: &str) -> ContainerLogs {
        let meta = &self.pod.metadata;
        ContainerLogs::new(
            &self.node.log_dir,
            meta.namespace.as_deref().unwrap_or("default"),
            meta.name.as_deref().unwrap_or_default(),
            meta.uid.as_deref().unwrap_or("no-uid"),
            container,
        )
    }

    fn pod_dir(&self) -> PathBuf {
        self.node
            .pods_dir
            .join(self.pod.metadata.uid.as_deref().unwrap_or("no-uid"))
    }

    fn emit(&self, field_path: Option<&str>, event: Event) {
        self.reporter.event(field_path, &event);
    }

    fn emit_for(&self, i: usize, event: Event) {
        let path = events::field_path(self.slots[i].list, &self.slots[i].spec.name);
        self.emit(Some(&path), event);
    }

    /// The sandbox's IPs (also once it is removed); the node's for a host-network pod, or
    /// before the sandbox exists.
    fn pod_ips(&self) -> Vec<String> {
        if self.sandbox_ips.is_empty() {
            vec![self.node.host_ip.clone()]
        } else {
            self.sandbox_ips.clone()
        }
    }

    fn sandbox_dir(&self) -> PathBuf {
        self.pod_dir().join("sandbox")
    }

    /// Makes (or finds again, after a restart) the pod's sandbox: its namespaces, network
    /// and `resolv.conf`. A failure is upstream's `FailedCreatePodSandBox` Warning.
    fn create_sandbox(&mut self) -> Result<(), String> {
        let failed = |worker: &PodWorker, error: String| {
            let event = events::failed_create_pod_sandbox(&error);
            let message = event.message.clone();
            worker.emit(None, event);
            message
        };
        let spec = self.pod.spec.clone().unwrap_or_default();
        let meta = &self.pod.metadata;
        let namespace = meta.namespace.clone().unwrap_or_else(|| "default".into());
        let name = meta.name.clone().unwrap_or_default();
        let uid = meta.uid.clone().unwrap_or_default();
        let hostname = hostname::sandbox_hostname(&self.pod, &self.node.cluster_domain)
            .map_err(|e| failed(self, e.to_string()))?;
        let dns = crate::dns::pod_dns(
            &spec,
            &format!("{namespace}/{name}"),
            self.services.node_resolv_conf.as_deref(),
        )
        .map_err(|e| failed(self, e.to_string()))?;
        for warning in &dns.warnings {
            self.emit(
                None,
                Event::warning(warning.reason, warning.message.clone()),
            );
        }
        let config = SandboxConfig {
            id: uid.clone(),
            hostname: hostname.unwrap_or_default(),
            host_network: spec.host_network.unwrap_or(false),
            host_ipc: spec.host_ipc.unwrap_or(false),
            host_pid: spec.host_pid.unwrap_or(false),
            share_process_namespace: spec.share_process_namespace.unwrap_or(false),
            pause: self.services.pause.clone(),
            resolv_conf: dns.settings.to_resolv_conf(),
            port_mappings: host_ports::host_ports(&spec),
            cni_args: vec![
                ("IgnoreUnknown".into(), "1".into()),
                ("K8S_POD_NAMESPACE".into(), namespace),
                ("K8S_POD_NAME".into(), name),
                ("K8S_POD_INFRA_CONTAINER_ID".into(), uid.clone()),
                ("K8S_POD_UID".into(), uid),
            ],
        };
        let sandbox = Sandbox::create_unattached(
            &self.sandbox_dir(),
            &config,
            self.services.network.as_deref(),
        )
        .map_err(|e| failed(self, e.to_string()))?;
        if let Some(network) = self.services.network.clone()
            && sandbox.needs_network()
        {
            // The network's plugins run while the first container is created.
            let mut attaching = sandbox.clone();
            self.network_attach = Some(std::thread::spawn(move || {
                attaching.attach_network(&network).map(|()| attaching)
            }));
            self.sandbox = Some(sandbox);
            return Ok(());
        }
        self.sandbox_ready(sandbox);
        Ok(())
    }

    fn sandbox_ready(&mut self, sandbox: Sandbox) {
        self.reporter.log(&format!(
            "pod sandbox ready: IPs {:?}",
            sandbox
                .ips()
                .iter()
                .map(|ip| ip.to_string())
                .collect::<Vec<_>>()
        ));
        self.sandbox_ips = sandbox.ips().iter().map(|ip| ip.to_string()).collect();
        self.sandbox = Some(sandbox);
    }

    /// Waits for the network's ADD started by `create_sandbox`, if one runs. On failure the
    /// sandbox is removed (the next sync makes it again) and `FailedCreatePodSandBox` said.
    fn await_network(&mut self) -> Result<(), String> {
        let Some(attach) = self.network_attach.take() else {
            return Ok(());
        };
        let attached = attach
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        match attached {
            Ok(sandbox) => {
                self.sandbox_ready(sandbox);
                Ok(())
            }
            Err(e) => {
                self.sandbox = None;
                let _ = Sandbox::remove(&self.sandbox_dir());
                let event = events::failed_create_pod_sandbox(&e.to_string());
                let message = event.message.clone();
                self.emit(None, event);
                Err(message)
            }
        }
    }

    /// The pod's cgroup: derived from its uid and QoS class, so a restarted worker finds the
    /// same one.
    fn pod_cgroup(&self) -> PodCgroup {
        let spec = self.pod.spec.clone().unwrap_or_default();
        PodCgroup::new(
            &self.node.cgroup_parent,
            crate::pod_resources::qos_class(&spec),
            self.pod.metadata.uid.as_deref().unwrap_or_default(),
        )
    }

    /// Makes the pod cgroup with the pod-level limits (overhead included) and moves the
    /// sandbox's pause into it; upstream's `FailedCreatePodContainer` Warning on failure.
    fn create_pod_cgroup(&mut self) -> Result<(), String> {
        let cgroup = self.pod_cgroup();
        let limits =
            crate::pod_resources::pod_resources(&self.pod.spec.clone().unwrap_or_default());
        let pause = self.sandbox.as_ref().and_then(Sandbox::pause_pid);
        let made = pod_cgroup::Hierarchies::host().and_then(|hierarchies| {
            cgroup.create(&hierarchies, &limits)?;
            pause.map_or(Ok(()), |pid| cgroup.add_process(&hierarchies, pid))
        });
        if let Err(e) = made {
            let message = format!("unable to ensure pod container exists: {e}");
            self.emit(
                None,
                Event::warning("FailedCreatePodContainer", message.clone()),
            );
            return Err(message);
        }
        self.reporter
            .log(&format!("pod cgroup {}: {limits:?}", cgroup.path()));
        self.pod_cgroup_ready = true;
        Ok(())
    }

    /// Everything from image to PostStart for container `i`.
    fn start_container(&mut self, i: usize) -> Result<(), StartFailure> {
        let spec = self.slots[i].spec.clone();
        let field_path = events::field_path(self.slots[i].list, &spec.name);
        let reporter = Arc::clone(&self.reporter);
        let emit = move |event: Event| reporter.event(Some(&field_path), &event);
        let network_failure = |message: String| {
            StartFailure::new(crate::status::waiting_reason::CONTAINER_CREATING, message)
        };

        self.take_live_objects();
        if self.keyring.is_none() {
            let keyring = images::pod_keyring(&self.pod, &self.objects, &|e| self.emit(None, e))
                .map_err(|f| StartFailure::new(f.reason, f.message))?;
            self.keyring = Some(keyring);
        }
        let keyring = self.keyring.clone().unwrap_or_default();
        let record = images::ensure_image(
            &self.services,
            &self.pod,
            &spec,
            &keyring,
            &mut self.pull_back_off,
            &emit,
        )
        .map_err(|f| StartFailure::new(f.reason, f.message))?;
        self.slots[i].image_id = Some(status_snapshot::image_id(&record));

        let config_error = |message: String| {
            emit(events::failed(&message));
            StartFailure::new(
                crate::status::waiting_reason::CREATE_CONTAINER_CONFIG_ERROR,
                message,
            )
        };
        if uses_pod_ip(&spec) {
            self.await_network().map_err(network_failure)?;
        }
        let sources = self.env_sources();
        let image_env = record.config.env.clone().unwrap_or_default();
        let environment = env::make_environment(&self.pod, &spec, &image_env, &sources)
            .map_err(|e| config_error(e.to_string()))?;
        for warning in &environment.warnings {
            self.emit(
                None,
                Event::warning(warning.reason, warning.message.clone()),
            );
        }
        let process = crate::command::container_process(
            &self.pod,
            &spec,
            &record.config,
            &environment.kubelet,
        )
        .map_err(|e| config_error(e.to_string()))?;
        crate::command::verify_run_as_non_root(&self.pod, &spec, &record.config)
            .map_err(config_error)?;
        let root_dir = self.node.pods_dir.parent().unwrap_or(&self.node.pods_dir);
        let names = hostname::pod_hostname(&self.pod, &self.node.cluster_domain)
            .map_err(|e| config_error(e.to_string()))?;
        let uts_hostname = hostname::sandbox_hostname(&self.pod, &self.node.cluster_domain)
            .map_err(|e| config_error(e.to_string()))?;

        let create_error = |message: String| {
            emit(events::failed(&message));
            StartFailure::new(
                crate::status::waiting_reason::CREATE_CONTAINER_ERROR,
                message,
            )
        };
        // The profile file is the runtime's to read upstream (containerd), so a missing or bad
        // one is a CreateContainerError there.
        let seccomp =
            crate::seccomp::container_seccomp(&self.pod, &spec, root_dir).map_err(create_error)?;
        let mut mounts = self
            .pod_files(&names, &spec)
            .map_err(|e| create_error(format!("writing the pod's /etc/hosts: {e}")))?;
        // The pod's volumes (idempotent: a re-sync with unchanged content changes nothing),
        // then this container's mounts of them.
        let volume_ctx = crate::volumes::VolumeContext {
            pod: &self.pod,
            objects: &self.objects,
            allocatable: &self.node.allocatable,
        };
        let volumes =
            crate::volumes::set_up_pod_volumes(volume_ctx, &self.pod_dir()).map_err(|failure| {
                self.emit(None, failure.event());
                StartFailure::new(
                    crate::status::waiting_reason::CONTAINER_CREATING,
                    failure.to_string(),
                )
            })?;
        mounts.extend(
            crate::volumes::mounts::container_mounts(
                &spec,
                &volumes,
                &environment.kubelet,
                &crate::volumes::mounts::HostSubPaths,
            )
            .map_err(|e| config_error(e.to_string()))?,
        );
        for mount in &mounts {
            nodelet_runtime::propagation::prepare_source(
                &mount.source,
                mount.propagation,
                &self.node.pods_dir,
            )
            .map_err(|e| create_error(e.to_string()))?;
        }

        let attempt = self.slots[i].starts;
        let uid = self.pod.metadata.uid.clone().unwrap_or_default();
        let id = format!("{}_{attempt}_{uid}", spec.name);
        let dir = self.pod_dir().join("containers").join(&id);
        let layers: Vec<PathBuf> = record
            .layers
            .iter()
            .filter_map(|l| nodelet_image::digest::Digest::parse(&l.diff_id).ok())
            .map(|d| self.services.images.store().snapshot_path(&d))
            .collect();
        let bundle = Bundle::create(&dir, &layers).map_err(|e| create_error(e.to_string()))?;
        let image = spec.image.as_deref().unwrap_or_default();
        let image_id = status_snapshot::image_id(&record);
        if let Err(e) = image_update::save_started_image(&dir, image, &image_id) {
            self.reporter
                .log(&format!("recording the image of {id}: {e}"));
        }
        let undo_bundle = |e: String| {
            let _ = bundle.remove();
            create_error(e)
        };
        let user = nodelet_runtime::user::resolve(&bundle.rootfs(), &process.user)
            .map_err(|e| undo_bundle(e.to_string()))?;
        let mut cspec = ContainerSpec::new(process.args, user);
        let hostname_env = uts_hostname
            .clone()
            .unwrap_or_else(|| names.hostname.clone());
        cspec.env = env::with_hostname(&hostname_env, environment.process)
            .into_iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        cspec.cwd = process.cwd;
        cspec.hostname = uts_hostname;
        cspec.mounts = mounts;
        let termination_message_file = on_disk::termination_message_mount(&spec, bundle.dir())
            .map_err(|e| undo_bundle(format!("the termination message file: {e}")))?
            .map(|mount| {
                let file = mount.source.clone();
                cspec.mounts.push(mount);
                file
            });
        match &self.sandbox {
            Some(sandbox) => sandbox.join(&mut cspec),
            None => return Err(undo_bundle("the pod has no sandbox".into())),
        }
        if let Some(signal) = record
            .config
            .stop_signal
            .as_deref()
            .filter(|s| !s.is_empty())
        {
            cspec.stop_signal = Signal::parse(signal).map_err(undo_bundle)?;
        }
        apply_security_context(&mut cspec, &spec);
        cspec.seccomp = seccomp;
        cspec.cgroup_path = Some(self.pod_cgroup().container_path(&id));
        cspec.resources = crate::pod_resources::container_resources(&spec);
        let generated = spec::generate(&cspec).map_err(|e| undo_bundle(e.to_string()))?;
        bundle
            .write_spec(&generated)
            .map_err(|e| undo_bundle(e.to_string()))?;

        let handler = self
            .handler
            .clone()
            .ok_or_else(|| undo_bundle("no runtime handler".into()))?;
        let filtered = generated
            .spec
            .linux()
            .as_ref()
            .and_then(|l| l.seccomp().as_ref());
        if filtered.is_some() && !handler.runtime().supports_seccomp() {
            return Err(undo_bundle(format!(
                "runtime handler {:?} cannot enforce the container's seccomp profile (built without seccomp)",
                handler.name
            )));
        }
        let log_path = self.container_logs(&spec.name).file(attempt);
        let mut config = ShimConfig::new(&handler, &id, bundle.dir(), &log_path);
        config.log_rotation = self.node.log_rotation;
        // The shim's state (shim.json, shim.pid, started.json, exit.json) lives in the
        // container's directory, next to the bundle's files.
        let shim = match self.spawn_shim(bundle.dir(), &config, &names) {
            Ok(shim) => shim,
            Err(SpawnFailure::Network(message)) => {
                let _ = bundle.remove();
                return Err(network_failure(message));
            }
            Err(SpawnFailure::Shim(e)) => {
                let message = e.to_string();
                let _ = bundle.remove();
                emit(events::failed(&message));
                return Err(StartFailure::new(
                    crate::status::waiting_reason::RUN_CONTAINER_ERROR,
                    message,
                ));
            }
        };
        let started_at = shim.started().map_or_else(Timestamp::now, |s| s.started_at);
        let container = match shim.into_container() {
            Ok(c) => c,
            Err(e) => {
                let message = e.to_string();
                let _ = nodelet_runtime::container::delete_if_present(&handler.runtime(), &id);
                let _ = bundle.remove();
                emit(events::failed(&message));
                return Err(StartFailure::new(
                    crate::status::waiting_reason::RUN_CONTAINER_ERROR,
                    message,
                ));
            }
        };
        let running_since = Instant::now();
        emit(events::created(&spec.name, events::served_minor()));
        emit(events::started(&spec.name, events::served_minor()));
        let container_id = format!("{}://{}", handler.name, container.id());
        let slot = &mut self.slots[i];
        slot.starts = attempt + 1;
        slot.waiting = None;
        slot.previous_started_at = slot.started_at.replace(started_at);
        slot.container_id = Some(container_id);
        self.slots[i].running = Some(self.watch(
            &spec.name,
            container,
            bundle,
            WatchInfo {
                started_at,
                log_path,
                termination_message_file,
                follow_from: FollowFrom::Start,
            },
        ));
        self.post_start(i);
        self.start_probes(i, running_since);
        Ok(())
    }

    /// PostStart, synchronously (spec §7.5): on failure `FailedPostStartHook`, then the
    /// container is killed (`Killing` with `FailedPostStartHook`) and the restart policy
    /// decides what follows.
    fn post_start(&mut self, i: usize) {
        let Some(handler) = self.slots[i]
            .spec
            .lifecycle
            .as_ref()
            .and_then(|l| l.post_start.clone())
        else {
            return;
        };
        let Some(running) = self.slots[i].running.as_ref() else {
            return;
        };
        let pod_ips = self.pod_ips();
        let target = HookTarget {
            pod: &self.pod,
            spec: &self.slots[i].spec,
            container: &running.container,
            exit: &running.exit,
            pod_ips: &pod_ips,
        };
        let message = match lifecycle::run_handler(&handler, target, POST_START_TIMEOUT, true) {
            Ok(warning) => {
                if let Some(event) = warning {
                    self.emit(None, event);
                }
                return;
            }
            Err(message) => message,
        };
        self.emit_for(i, hooks::failed_post_start_hook());
        self.reporter.log(&message);
        let name = self.slots[i].spec.name.clone();
        self.emit_for(
            i,
            events::killing(&name, KillReason::PostStartHookFailed, false),
        );
        let plan = StopPlan::new(
            &self.pod,
            &self.slots[i].spec,
            KillReason::PostStartHookFailed,
            None,
        );
        stop_running(running, plan.stop_timeout(None, None));
    }

    /// The objects and addresses the environment is made from.
    fn env_sources(&self) -> StaticSources {
        let mut sources = StaticSources::new();
        for cm in &self.objects.config_maps {
            sources = sources.with_config_map(cm.clone());
        }
        for secret in &self.objects.secrets {
            sources = sources.with_secret(secret.clone());
        }
        for service in &self.objects.services {
            sources = sources.with_service(service.clone());
        }
        sources.allocatable = self.node.allocatable.clone();
        sources.pod_ips = self.pod_ips();
        sources.host_ips = vec![self.node.host_ip.clone()];
        sources
    }

    /// The pod's `/etc/hosts` and `/etc/hostname`, written once into its directory, as the
    /// container's bind mounts (read-write, as upstream mounts them).
    /// Starts the container's shim. While the pod's network is still being attached, the
    /// shim creates the container meanwhile and starts it once the network is there (and
    /// `/etc/hosts` has the pod's addresses); if the network fails, the container is
    /// deleted unstarted.
    fn spawn_shim(
        &mut self,
        state_dir: &std::path::Path,
        config: &ShimConfig,
        names: &hostname::PodHostname,
    ) -> Result<ShimHandle, SpawnFailure> {
        if self.network_attach.is_none() {
            return ShimHandle::spawn(&self.services.shim, state_dir, config)
                .map_err(SpawnFailure::Shim);
        }
        let gated = ShimHandle::spawn_gated(&self.services.shim, state_dir, config)
            .map_err(SpawnFailure::Shim)?;
        let ready = self.await_network().and_then(|()| {
            self.write_hosts_file(names)
                .map_err(|e| format!("writing the pod's /etc/hosts: {e}"))
        });
        match ready {
            Ok(()) => gated.start().map_err(SpawnFailure::Shim),
            Err(message) => {
                gated.cancel();
                Err(SpawnFailure::Network(message))
            }
        }
    }

    /// The pod's `/etc/hosts`, rewritten in place (a container may bind it already).
    fn write_hosts_file(&self, names: &hostname::PodHostname) -> std::io::Result<()> {
        let aliases = self
            .pod
            .spec
            .as_ref()
            .and_then(|s| s.host_aliases.clone())
            .unwrap_or_default();
        std::fs::write(
            self.pod_dir().join("etc-hosts"),
            hostname::managed_hosts_file(&self.pod_ips(), names, &aliases),
        )
    }

    fn pod_files(
        &self,
        names: &hostname::PodHostname,
        spec: &Container,
    ) -> std::io::Result<Vec<BindMount>> {
        let dir = self.pod_dir();
        std::fs::create_dir_all(&dir)?;
        let hosts = dir.join("etc-hosts");
        let hostname_file = dir.join("etc-hostname");
        let pod_ips = self.pod_ips();
        if self.network_attach.is_some() {
            // Its addresses come with the network: `spawn_shim` writes it before `start`.
            std::fs::File::create(&hosts)?;
        } else if std::fs::metadata(&hosts).map_or(true, |m| m.len() == 0) {
            // Missing, or left empty by a start that waited for the network and failed.
            self.write_hosts_file(names)?;
        }
        if !hostname_file.exists() {
            std::fs::write(&hostname_file, format!("{}\n", names.hostname))?;
        }
        let mut mounts = Vec::new();
        let ips_coming = self.network_attach.is_some();
        if (ips_coming || hostname::should_mount_hosts_file(&self.pod, &pod_ips))
            && !hostname::mounts_own_etc_hosts(spec)
        {
            mounts.push(BindMount {
                source: hosts,
                destination: "/etc/hosts".into(),
                read_only: false,
                propagation: spec::MountPropagation::Private,
            });
        }
        mounts.push(BindMount {
            source: hostname_file,
            destination: "/etc/hostname".into(),
            read_only: false,
            propagation: spec::MountPropagation::Private,
        });
        Ok(mounts)
    }

    /// Pod termination (spec §7.6, §7.7): every running container at once, each with PreStop
    /// then its stop signal within the pod's grace period.
    fn terminate(&mut self) {
        let spec_grace = self
            .pod
            .spec
            .as_ref()
            .and_then(|s| s.termination_grace_period_seconds);
        let grace = hooks::effective_pod_grace_period(
            None,
            self.pod.metadata.deletion_grace_period_seconds,
            None,
            spec_grace,
        );
        let grace = self.termination_grace.begin(grace);
        for running in self.slots.iter().filter_map(|s| s.running.as_ref()) {
            if let Some(prober) = &running.prober {
                prober.pod_terminating();
            }
        }
        let pod_ips = self.pod_ips();
        let pod = &self.pod;
        let reporter = &self.reporter;
        let shared_deadline = &*self.termination_grace;
        std::thread::scope(|scope| {
            for slot in &self.slots {
                let Some(running) = slot.running.as_ref() else {
                    continue;
                };
                let pod_ips = &pod_ips;
                let target = StopTarget::of(slot, running);
                if running.stop_in_progress.is_some() {
                    // Already being stopped (PreStop and all): it only has to end in time.
                    scope.spawn(move || {
                        background_stop::join_for_termination(pod, target, grace, shared_deadline)
                    });
                    continue;
                }
                scope.spawn(move || {
                    stop_with_pre_stop_until(
                        pod,
                        target,
                        (KillReason::Stop, Some(grace)),
                        pod_ips,
                        &**reporter,
                        Some(shared_deadline),
                    );
                });
            }
        });
        self.observe();
    }

    /// Deletes whatever is left, the pod's directory and its logs.
    fn cleanup(&mut self) {
        for i in 0..self.slots.len() {
            let Some(mut running) = self.slots[i].running.take() else {
                continue;
            };
            let _ = running.container.signal(Signal::KILL, true);
            let exit = running.exit.wait(KILL_WAIT);
            if self.slots[i].last_exit.is_none() || exit.is_some() {
                let last = self.last_exit_of(i, &running, exit.unwrap_or(Exit::Unknown));
                self.slots[i].last_exit = Some(last);
            }
            if exit.is_none() {
                // Unkillable: let its log's follower end anyway.
                running.exit.set(Exit::Unknown);
            }
            running.output.finish();
            remove_container(running, &*self.reporter);
        }
        if let Some(attach) = self.network_attach.take() {
            let _ = attach.join();
        }
        // Every container has ended: the network's DEL runs while the last removals finish.
        let sandbox_dir = self.sandbox_dir();
        let removals = std::mem::take(&mut self.removals);
        let sandbox_removed = std::thread::scope(|scope| {
            let sandbox = scope.spawn(|| Sandbox::remove(&sandbox_dir));
            for removal in removals {
                let _ = removal.join();
            }
            sandbox.join()
        })
        .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        let pod_logs = {
            let meta = &self.pod.metadata;
            logs::pod_log_dir(
                &self.node.log_dir,
                meta.namespace.as_deref().unwrap_or("default"),
                meta.name.as_deref().unwrap_or_default(),
                meta.uid.as_deref().unwrap_or("no-uid"),
            )
        };
        if let Err(e) = sandbox_removed {
            // Its network namespace and mounts are still there: keep the directory.
            self.reporter.log(&format!("removing the pod sandbox: {e}"));
            return;
        }
        self.sandbox = None;
        // Every process of the pod is gone now.
        let removed = pod_cgroup::Hierarchies::host()
            .and_then(|hierarchies| self.pod_cgroup().remove(&hierarchies));
        if let Err(e) = removed {
            self.reporter.log(&format!("removing the pod cgroup: {e}"));
        }
        self.pod_cgroup_ready = false;
        if let Err(e) = crate::volumes::tear_down_pod_volumes(&self.pod_dir()) {
            // Removing the directory would fail on (and could descend into) its mounts.
            self.reporter.log(&format!("tearing down volumes: {e}"));
            return;
        }
        let mut dirs = vec![self.pod_dir()];
        if self.stopping || !self.options.keep_logs_when_finished {
            dirs.push(pod_logs);
        }
        for dir in dirs {
            if let Err(e) = std::fs::remove_dir_all(&dir)
                && e.kind() != std::io::ErrorKind::NotFound
            {
                self.reporter
                    .log(&format!("removing {}: {e}", dir.display()));
            }
        }
    }

    fn outcome(&self) -> PodOutcome {
        let last_exits: BTreeMap<String, LastExit> = self
            .slots
            .iter()
            .filter_map(|s| Some((s.spec.name.clone(), s.last_exit.clone()?)))
            .collect();
        if let Some(message) = &self.failure {
            return PodOutcome {
                phase: Phase::Failed,
                exit_code: 1,
                message: message.clone(),
                last_exits,
            };
        }
        let failed = self
            .slots
            .iter()
            .filter_map(|s| s.last_exit.as_ref().map(|e| (s, e.code)))
            .find(|(_, code)| *code != 0);
        match failed {
            Some((slot, code)) => PodOutcome {
                phase: Phase::Failed,
                exit_code: code,
                message: format!("container {} exited with code {code}", slot.spec.name),
                last_exits,
            },
            None => PodOutcome {
                phase: Phase::Succeeded,
                exit_code: 0,
                message: "all containers exited with code 0".into(),
                last_exits,
            },
        }
    }
}
/// A thread that waits for the container's end (its shim's `exit.json`, or the shim's end
/// without one), records it and wakes the worker. Stops and hooks wait on the [`ExitSlot`].
fn spawn_waiter(
    container: &Arc<RuntimeContainer>,
    exit: &Arc<ExitSlot>,
    tx: Sender<Msg>,
) -> JoinHandle<()> {
    let container = container.clone();
    let exit = exit.clone();
    std::thread::spawn(move || {
        let ended = match container.shim() {
            Some(shim) => match shim.wait_exit(None) {
                Ok(Some(recorded)) => Exit::Status(recorded.status()),
                Ok(None) | Err(_) => Exit::Unknown,
            },
            None => container.wait(None).ok().flatten().unwrap_or(Exit::Unknown),
        };
        exit.set(ended);
        let _ = tx.send(Msg::Exited);
    })
}

/// `Completed` or `Error`, for an exit the shim did not record.
fn exit_reason(code: i32) -> &'static str {
    if code == 0 {
        crate::status::terminated_reason::COMPLETED
    } else {
        crate::status::terminated_reason::ERROR
    }
}

/// Removes a container directory nobody watches: the runtime's container (if its shim
/// config names it) and the bundle.
fn remove_leftover(dir: &on_disk::ContainerDir, reporter: &dyn PodReporter) {
    if let Ok(shim) = ShimHandle::attach(&dir.path) {
        let runtime = shim.config().runtime.handler().runtime();
        if let Err(e) = nodelet_runtime::container::delete_if_present(&runtime, &shim.config().id) {
            reporter.log(&format!("deleting container {}: {e}", shim.config().id));
        }
    }
    if let Err(e) = Bundle::open(&dir.path).remove() {
        reporter.log(&format!("removing {}: {e}", dir.path.display()));
    }
}

/// The stop signal, up to `timeout_seconds` for the end, then SIGKILL.
fn stop_running(running: &Running, timeout_seconds: i64) {
    let limit = grace::WaitLimit::stop(timeout_seconds, None);
    stop_running_until(&running.container, &running.exit, limit);
}

/// What a stop needs of a container: borrowed from the worker's slot, or owned by the
/// thread of a stop that runs beside the worker ([`background_stop`]).
#[derive(Debug, Clone, Copy)]
struct StopTarget<'a> {
    spec: &'a Container,
    list: ContainerList,
    container: &'a RuntimeContainer,
    exit: &'a ExitSlot,
}

impl<'a> StopTarget<'a> {
    fn of(slot: &'a Slot, running: &'a Running) -> Self {
        StopTarget {
            spec: &slot.spec,
            list: slot.list,
            container: &running.container,
            exit: &running.exit,
        }
    }
}

/// The stop signal, then SIGKILL once `limit` passes.
fn stop_running_until(container: &RuntimeContainer, exit: &ExitSlot, limit: grace::WaitLimit<'_>) {
    if exit.get().is_some() {
        return;
    }
    let signal = container.metadata().stop_signal;
    let _ = container.signal(signal, false);
    if limit.wait(|slice| exit.wait(slice)).is_some() {
        return;
    }
    let _ = container.signal(Signal::KILL, container.metadata().kill_all);
    exit.wait(KILL_WAIT);
}

/// `killContainer`: `Killing`, PreStop within the grace period, then the stop. `kill`: why,
/// and the grace period when it is not the container's own for that reason.
fn stop_with_pre_stop(
    pod: &Pod,
    slot: &Slot,
    running: &Running,
    kill: (KillReason, Option<i64>),
    pod_ips: &[String],
    reporter: &dyn PodReporter,
) {
    let target = StopTarget::of(slot, running);
    stop_with_pre_stop_until(pod, target, kill, pod_ips, reporter, None);
}

/// [`stop_with_pre_stop`] whose waits also end by the pod's termination deadline once a
/// later deletion shortened it.
fn stop_with_pre_stop_until(
    pod: &Pod,
    running: StopTarget<'_>,
    kill: (KillReason, Option<i64>),
    pod_ips: &[String],
    reporter: &dyn PodReporter,
    shared_deadline: Option<&grace::TerminationGrace>,
) {
    let (why, grace_override) = kill;
    let path = events::field_path(running.list, &running.spec.name);
    if running.exit.get().is_some() {
        return;
    }
    // A changed definition restarts whatever the policy (upstream's computePodActions).
    let restart =
        why == KillReason::DefinitionChanged || RestartPolicy::of(pod) != RestartPolicy::Never;
    reporter.event(
        Some(&path),
        &events::killing(&running.spec.name, why, restart),
    );
    let plan = StopPlan::new(pod, running.spec, why, grace_override);
    let grace = plan.grace;
    let mut pre_stop_elapsed = None;
    let pre_stop = running
        .spec
        .lifecycle
        .as_ref()
        .and_then(|l| l.pre_stop.as_ref());
    if let (Some(handler), Some(deadline)) = (pre_stop, plan.pre_stop_deadline()) {
        let started = Instant::now();
        let (tx, rx) = channel();
        std::thread::scope(|scope| {
            scope.spawn(|| {
                let target = HookTarget {
                    pod,
                    spec: running.spec,
                    container: running.container,
                    exit: running.exit,
                    pod_ips,
                };
                let _ = tx.send(lifecycle::run_handler(handler, target, deadline, true));
            });
            let limit = grace::WaitLimit::pre_stop(deadline, shared_deadline);
            let outcome = limit.wait(|slice| match rx.recv_timeout(slice) {
                Ok(outcome) => Some(Some(outcome)),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => Some(None),
            });
            match outcome.flatten() {
                Some(Ok(warning)) => {
                    if let Some(event) = warning {
                        reporter.event(None, &event);
                    }
                }
                Some(Err(message)) => {
                    reporter.event(Some(&path), &hooks::failed_pre_stop_hook());
                    reporter.log(&message);
                }
                None => reporter.log(&format!(
                    "PreStop hook of container {} not completed in grace period ({grace}s)",
                    running.spec.name
                )),
            }
            pre_stop_elapsed = Some(started.elapsed());
            // Leave the scope without waiting for a hook that overran: stop the container,
            // which ends an exec in it too.
            let timeout = plan.stop_timeout(pre_stop_elapsed, None);
            let limit = grace::WaitLimit::stop(timeout, shared_deadline);
            stop_running_until(running.container, running.exit, limit);
        });
        return;
    }
    let timeout = plan.stop_timeout(pre_stop_elapsed, None);
    let limit = grace::WaitLimit::stop(timeout, shared_deadline);
    stop_running_until(running.container, running.exit, limit);
}

/// Deletes an ended container from the runtime, its bundle (rootfs unmounted) and waits for
/// its last output.
fn remove_container(running: Running, reporter: &dyn PodReporter) {
    let Running {
        container,
        bundle,
        waiter,
        mut output,
        prober,
        stop_in_progress,
        ..
    } = running;
    // Its threads hold the container (exec probes, a stop): it is deleted once they are gone.
    if let Some(prober) = prober {
        prober.stop();
    }
    if let Some(stop) = stop_in_progress {
        stop.join();
    }
    let _ = waiter.join();
    match Arc::try_unwrap(container) {
        Ok(container) => {
            let id = container.id().to_owned();
            if let Err(e) = container.delete() {
                reporter.log(&format!("deleting container {id}: {e}"));
            }
        }
        Err(_) => reporter.log("a container is still referenced; not deleted"),
    }
    if let Err(e) = bundle.remove() {
        reporter.log(&format!("removing {}: {e}", bundle.dir().display()));
    }
    output.finish();
}

/// The parts of `securityContext` the runtime spec has fields for.
fn apply_security_context(cspec: &mut ContainerSpec, container: &Container) {
    let Some(sc) = container.security_context.as_ref() else {
        return;
    };
    cspec.privileged = sc.privileged.unwrap_or(false);
    cspec.read_only_rootfs = sc.read_only_root_filesystem.unwrap_or(false);
    cspec.no_new_privileges = sc.allow_privilege_escalation == Some(false);
    if let Some(caps) = &sc.capabilities {
        cspec.capabilities.add = caps.add.clone().unwrap_or_default();
        cspec.capabilities.drop = caps.drop.clone().unwrap_or_default();
    }
}

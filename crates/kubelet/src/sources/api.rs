//! The API pod source: the pods bound to this node (`spec.nodeName`), watched through
//! `kube::Client` so the kubelet can join any API server. Each pod runs under its own
//! [`PodWorker`]; its status goes to `pods/{name}/status` (merge patch of the kubelet-owned
//! fields) and its events to core/v1 Events ([`events`]).
//!
//! Graceful deletion as the kubelet does it: a pod with `deletionTimestamp` is stopped within
//! its grace period, then its object is deleted with `gracePeriodSeconds=0` and a uid
//! precondition (what the API server's graceful deletion waits for). A later deletion with a
//! shorter grace reaches the worker too and shortens the termination in progress. Pods that
//! finished (Succeeded or Failed) keep their final status and are not started again.
//!
//! An update of a running pod's container images (`kubectl set image`) goes to its worker,
//! which restarts the containers concerned with their new image.

pub mod events;
pub mod object_cache;
pub mod objects;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures_util::StreamExt;
use kube::api::{Api, DeleteParams, Patch, PatchParams, Preconditions};
use kube::runtime::watcher::{self, Event as WatchEvent};
use kube::runtime::{WatchStreamExt, reflector};
use nodelet_api::k8s::api::core::v1::{ObjectReference, Pod, PodStatus};
use tokio::sync::watch;

use crate::events::Event;
use crate::pod_worker::{
    ContainerImages, NodeContext, NodeServices, PodRefresh, PodReporter, PodWorker, RefreshHandle,
    StopHandle, Stream, WorkerOptions,
};
use events::EventRecorder;
use object_cache::{ObjectCache, REFRESH_PERIOD};

/// How often the worker table is reconciled even without a watch event (deleted pods whose
/// worker ended, vanished pods).
const RESYNC: Duration = Duration::from_secs(5);
/// Extra time past the grace period before a stuck worker's pod object is deleted anyway.
const STUCK_EXTRA: Duration = Duration::from_secs(5);
/// How long a deleted pod with no running container waits for its worker to finish (a worker
/// busy pulling sees the stop only once the pull ends; it has nothing to terminate).
const IDLE_WAIT: Duration = Duration::from_secs(2);
/// The grace period of a pod that names none.
const DEFAULT_GRACE_SECONDS: i64 = 30;

/// The kubelet's pod source on the API.
#[derive(Clone)]
pub struct ApiSource {
    pub client: kube::Client,
    /// The node (its name selects the pods).
    pub node: NodeContext,
    /// What every pod's worker drives (cloned per pod).
    pub services: NodeServices,
}

impl std::fmt::Debug for ApiSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiSource")
            .field("node", &self.node.node_name)
            .finish_non_exhaustive()
    }
}

/// One pod the source has seen, by uid.
#[derive(Debug)]
struct Entry {
    stop: Option<StopHandle>,
    done: Arc<AtomicBool>,
    deleting: bool,
    /// The `deletionGracePeriodSeconds` last passed to the worker.
    deletion_grace: Option<i64>,
    reporter: Option<Arc<ApiReporter>>,
    /// How to hand the worker its volume sources, and what it was last handed.
    refresh: Option<RefreshHandle>,
    last_refresh: Option<PodRefresh>,
    /// The container images the worker was last handed (`kubectl set image`).
    images: ContainerImages,
}

impl Entry {
    fn finished() -> Entry {
        Entry {
            stop: None,
            done: Arc::new(AtomicBool::new(true)),
            deleting: true,
            deletion_grace: None,
            reporter: None,
            refresh: None,
            last_refresh: None,
            images: ContainerImages::default(),
        }
    }
}

impl ApiSource {
    /// Watches the node's pods and runs them; returns only if the watch stream ends.
    pub async fn run(self) {
        let pods: Api<Pod> = Api::all(self.client.clone());
        let selector = format!("spec.nodeName={}", self.node.node_name);
        let (store, writer) = reflector::store();
        let stream = reflector(
            writer,
            watcher::watcher(pods, watcher::Config::default().fields(&selector)),
        )
        .default_backoff();
        let mut stream = std::pin::pin!(stream);
        let recorder = EventRecorder::start(self.client.clone(), self.node.node_name.clone());
        let mut workers: HashMap<String, Entry> = HashMap::new();
        let mut listed = false;
        let mut resync = tokio::time::interval(RESYNC);
        let cache = ObjectCache::start(&self.client);
        let mut refresh = tokio::time::interval(REFRESH_PERIOD);
        refresh.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let mut refresh_due = false;
            tokio::select! {
                event = stream.next() => match event {
                    Some(Ok(WatchEvent::InitDone)) => listed = true,
                    Some(Ok(_)) => {}
                    Some(Err(err)) => {
                        eprintln!("nodelet: watching the pods of node {}: {err}", self.node.node_name);
                        continue;
                    }
                    None => return,
                },
                _ = resync.tick() => {}
                _ = refresh.tick() => refresh_due = true,
            }
            // Until the first list is complete the store would say every pod is gone.
            if listed {
                let pods: Vec<Arc<Pod>> = store.state();
                self.sync(&pods, &mut workers, &recorder, &cache).await;
                if refresh_due {
                    refresh_volume_sources(&pods, &mut workers, &cache);
                }
            }
        }
    }

    /// Brings the workers in line with the pods: start new ones, stop deleted ones, forget
    /// the ones whose pod is gone.
    async fn sync(
        &self,
        pods: &[Arc<Pod>],
        workers: &mut HashMap<String, Entry>,
        recorder: &EventRecorder,
        cache: &ObjectCache,
    ) {
        let mut seen = Vec::new();
        for pod in pods {
            let Some(uid) = pod.metadata.uid.clone() else {
                continue;
            };
            seen.push(uid.clone());
            let deleting = pod.metadata.deletion_timestamp.is_some();
            match workers.get_mut(&uid) {
                None => {
                    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
                    let left_on_disk = self.node.pods_dir.join(&uid).exists();
                    if deleting && left_on_disk {
                        // Deleted while nodelet was down: a worker adopts what still runs,
                        // and the next round terminates it as for any deletion.
                        let entry = self.start_worker(pod, recorder, cache).await;
                        workers.insert(uid, entry);
                    } else if deleting {
                        // Never started here (or finished before): nothing to stop; a
                        // finished pod's logs go with it.
                        remove_pod_logs(&self.node.log_dir, pod);
                        tokio::spawn(delete_now(self.client.clone(), pod.clone()));
                        workers.insert(uid, Entry::finished());
                    } else if matches!(phase, Some("Succeeded" | "Failed")) {
                        workers.insert(uid, Entry::finished());
                    } else {
                        let entry = self.start_worker(pod, recorder, cache).await;
                        workers.insert(uid, entry);
                    }
                }
                Some(entry) if deleting && !entry.deleting => {
                    entry.deleting = true;
                    entry.deletion_grace = pod.metadata.deletion_grace_period_seconds;
                    if entry.done.load(Ordering::SeqCst) {
                        // Finished before: its worker kept the logs for `kubectl logs`.
                        remove_pod_logs(&self.node.log_dir, pod);
                    }
                    if let Some(stop) = &entry.stop {
                        match pod.metadata.deletion_grace_period_seconds {
                            Some(grace) => stop.stop_for_deletion(grace),
                            None => stop.stop(),
                        }
                    }
                    tokio::spawn(finish_deletion(
                        self.client.clone(),
                        pod.clone(),
                        entry.done.clone(),
                        entry.reporter.clone(),
                    ));
                }
                Some(entry)
                    if deleting
                        && pod.metadata.deletion_grace_period_seconds != entry.deletion_grace =>
                {
                    // Deleted again with a shorter grace (the API server keeps only a
                    // shorter one): the worker shortens the termination in progress.
                    entry.deletion_grace = pod.metadata.deletion_grace_period_seconds;
                    if let (Some(stop), Some(grace)) = (&entry.stop, entry.deletion_grace) {
                        stop.stop_for_deletion(grace);
                    }
                }
                Some(entry) if !deleting => forward_image_change(pod, entry),
                Some(_) => {}
            }
        }
        workers.retain(|uid, entry| {
            let present = seen.contains(uid);
            let done = entry.done.load(Ordering::SeqCst);
            if !present
                && !done
                && let Some(stop) = &entry.stop
            {
                // Gone from the API without our deleting it: a forced deletion (grace 0).
                stop.stop_for_deletion(0);
            }
            present || !done
        });
    }

    async fn start_worker(
        &self,
        pod: &Pod,
        recorder: &EventRecorder,
        cache: &ObjectCache,
    ) -> Entry {
        let namespace = pod.metadata.namespace.clone().unwrap_or_default();
        let objects = objects::fetch(&self.client, &namespace).await;
        let (status_tx, status_rx) = watch::channel(None);
        let reporter = Arc::new(ApiReporter {
            pod: object_reference(pod, None),
            events: recorder.clone(),
            status: status_tx,
        });
        tokio::spawn(write_statuses(
            Api::namespaced(self.client.clone(), &namespace),
            pod.metadata.name.clone().unwrap_or_default(),
            status_rx,
        ));
        let services = self.services.clone();
        let worker = PodWorker::new(
            pod.clone(),
            objects,
            services,
            self.node.clone(),
            reporter.clone(),
            WorkerOptions {
                keep_logs_when_finished: true,
                ..WorkerOptions::default()
            },
        )
        .with_live_objects(Arc::new(cache.clone()));
        let stop = worker.stop_handle();
        let refresh = worker.refresh_handle();
        let done = Arc::new(AtomicBool::new(false));
        let worker_done = done.clone();
        tokio::task::spawn_blocking(move || {
            worker.run();
            worker_done.store(true, Ordering::SeqCst);
        });
        Entry {
            stop: Some(stop),
            done,
            deleting: false,
            deletion_grace: None,
            reporter: Some(reporter),
            refresh: Some(refresh),
            last_refresh: None,
            images: ContainerImages::of(pod),
        }
    }
}

/// Hands each running worker the current state of its pod's volume sources when it changed
/// since the last time (the first time: always; the worker finds nothing to rewrite then).
fn refresh_volume_sources(
    pods: &[Arc<Pod>],
    workers: &mut HashMap<String, Entry>,
    cache: &ObjectCache,
) {
    for pod in pods {
        let Some(entry) = pod
            .metadata
            .uid
            .as_ref()
            .and_then(|uid| workers.get_mut(uid))
        else {
            continue;
        };
        let Some(handle) = &entry.refresh else {
            continue;
        };
        if entry.deleting || entry.done.load(Ordering::SeqCst) {
            continue;
        }
        let Some(current) = cache.pod_refresh(pod) else {
            return;
        };
        if entry.last_refresh.as_ref() != Some(&current) {
            handle.refresh(current.clone());
            entry.last_refresh = Some(current);
        }
    }
}

/// Hands a running worker its pod's container images when an update changed them (the only
/// container fields an update may change); the worker restarts the containers concerned.
fn forward_image_change(pod: &Pod, entry: &mut Entry) {
    let current = ContainerImages::of(pod);
    if current == entry.images || entry.done.load(Ordering::SeqCst) {
        return;
    }
    if let Some(handle) = &entry.refresh {
        handle.images(current.clone());
    }
    entry.images = current;
}

/// Waits for the stopped worker (at most the grace period and a little), then deletes the pod.
async fn finish_deletion(
    client: kube::Client,
    pod: Arc<Pod>,
    done: Arc<AtomicBool>,
    reporter: Option<Arc<ApiReporter>>,
) {
    let grace = pod
        .metadata
        .deletion_grace_period_seconds
        .unwrap_or(DEFAULT_GRACE_SECONDS);
    let start = tokio::time::Instant::now();
    let deadline = start + Duration::from_secs(grace.max(0).unsigned_abs()) + STUCK_EXTRA;
    let idle_deadline = start + IDLE_WAIT;
    loop {
        let now = tokio::time::Instant::now();
        // A worker that never made a container (e.g. still pulling) has nothing to clean
        // up; otherwise the object goes once the worker is done (or stuck past the grace).
        let made = reporter.as_ref().is_some_and(|r| r.has_containers());
        if done.load(Ordering::SeqCst) || now >= deadline || (!made && now >= idle_deadline) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    delete_now(client, pod).await;
}

/// Removes the CRI logs a finished pod kept for `kubectl logs`.
fn remove_pod_logs(log_dir: &std::path::Path, pod: &Pod) {
    let meta = &pod.metadata;
    let dir = nodelet_runtime::logs::pod_log_dir(
        log_dir,
        meta.namespace.as_deref().unwrap_or("default"),
        meta.name.as_deref().unwrap_or_default(),
        meta.uid.as_deref().unwrap_or("no-uid"),
    );
    if let Err(err) = std::fs::remove_dir_all(&dir)
        && err.kind() != std::io::ErrorKind::NotFound
    {
        eprintln!("nodelet: removing {}: {err}", dir.display());
    }
}

/// `DELETE` with `gracePeriodSeconds=0` and the pod's uid as precondition (a pod recreated
/// under the same name is left alone).
async fn delete_now(client: kube::Client, pod: Arc<Pod>) {
    let namespace = pod.metadata.namespace.clone().unwrap_or_default();
    let name = pod.metadata.name.clone().unwrap_or_default();
    let api: Api<Pod> = Api::namespaced(client, &namespace);
    let params = DeleteParams {
        grace_period_seconds: Some(0),
        preconditions: Some(Preconditions {
            uid: pod.metadata.uid.clone(),
            resource_version: None,
        }),
        ..DeleteParams::default()
    };
    match api.delete(&name, &params).await {
        Ok(_) => {}
        Err(kube::Error::Api(status)) if status.code == 404 || status.code == 409 => {}
        Err(err) => eprintln!("nodelet: deleting pod {namespace}/{name}: {err}"),
    }
}

/// Writes the latest status of one pod, in order, skipping the ones overtaken while a write
/// was in flight. Ends when the worker's reporter is gone and the last status is written.
async fn write_statuses(api: Api<Pod>, name: String, mut rx: watch::Receiver<Option<PodStatus>>) {
    while rx.changed().await.is_ok() {
        let Some(status) = rx.borrow_and_update().clone() else {
            continue;
        };
        let patch = serde_json::json!({ "status": status });
        match api
            .patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => {}
            Err(kube::Error::Api(status)) if status.code == 404 => {}
            Err(err) => eprintln!("nodelet: pod {name} status: {err}"),
        }
    }
}

/// `involvedObject` for an event on `pod` (and one of its containers).
fn object_reference(pod: &Pod, field_path: Option<&str>) -> ObjectReference {
    ObjectReference {
        api_version: Some("v1".into()),
        kind: Some("Pod".into()),
        namespace: pod.metadata.namespace.clone(),
        name: pod.metadata.name.clone(),
        uid: pod.metadata.uid.clone(),
        resource_version: pod.metadata.resource_version.clone(),
        field_path: field_path.map(str::to_owned),
    }
}

/// A worker's events and statuses, to the API.
#[derive(Debug)]
struct ApiReporter {
    /// The pod, as events refer to it.
    pod: ObjectReference,
    events: EventRecorder,
    status: watch::Sender<Option<PodStatus>>,
}

impl ApiReporter {
    /// Whether any container of the pod was made (it has an ID): then the worker has a
    /// sandbox, volumes and cgroups to remove before the pod object may go.
    fn has_containers(&self) -> bool {
        self.status.borrow().as_ref().is_some_and(|s| {
            s.container_statuses
                .iter()
                .chain(s.init_container_statuses.iter())
                .flatten()
                .any(|c| c.container_id.is_some())
        })
    }
}

impl PodReporter for ApiReporter {
    fn event(&self, field_path: Option<&str>, event: &Event) {
        let mut involved = self.pod.clone();
        involved.field_path = field_path.map(str::to_owned);
        self.events.record(involved, event);
    }

    fn output(&self, _container: &str, _stream: Stream, _line: &[u8]) {}

    fn wants_output(&self) -> bool {
        // Logs are read from their files on request (`kubectl logs`).
        false
    }

    fn log(&self, message: &str) {
        let namespace = self.pod.namespace.as_deref().unwrap_or_default();
        let name = self.pod.name.as_deref().unwrap_or_default();
        eprintln!("nodelet: pod {namespace}/{name}: {message}");
    }

    fn status(&self, status: &PodStatus) {
        self.status.send_replace(Some(status.clone()));
    }
}

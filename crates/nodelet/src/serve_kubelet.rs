//! The kubelet inside `nodelet serve`: it polls the pods bound to this node through the
//! in-process API client and runs each under a `nodelet_kubelet` pod worker (as `nodelet run`
//! does), writing the pod's status through `pods/{name}/status` and the worker's events as
//! core/v1 Events. A pod being deleted is terminated gracefully, then its object is deleted
//! with `gracePeriodSeconds=0` (what the API server's graceful deletion waits for).
//!
//! Container states come from the worker's events (`Started`, `Failed`, `BackOff`) and its
//! log lines (`container X exited with code N`): the worker has no status snapshot yet.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nodelet_api::k8s::api::core::v1::Pod;
use nodelet_apiserver::LocalClient;
use nodelet_image::keyring::{NodeCredentialFiles, NodeCredentials};
use nodelet_image::oci::Platform;
use nodelet_image::pull::ImageService;
use nodelet_kubelet::events::Event;
use nodelet_kubelet::pod_worker::{
    DEFAULT_CLUSTER_DOMAIN, NodeContext, NodeServices, PodReporter, PodWorker, StopHandle, Stream,
    WorkerOptions,
};
use nodelet_kubelet::sources::file::PodObjects;
use nodelet_runtime::handlers::HandlerTable;
use nodelet_runtime::shim::ShimLauncher;
use serde_json::{Value, json};

/// How often the pods bound to the node are listed.
const POLL: Duration = Duration::from_secs(1);
/// Extra time past the grace period before a stuck worker's pod object is deleted anyway.
const STUCK_EXTRA: Duration = Duration::from_secs(5);

/// How long a deleted pod with no running container waits for its worker to finish.
const IDLE_WAIT: Duration = Duration::from_secs(2);

/// What every pod worker of the node shares.
#[derive(Debug, Clone)]
pub struct Kubelet {
    pub client: LocalClient,
    pub node_name: String,
    pub images: Arc<ImageService>,
    pub handlers: HandlerTable,
    pub root_dir: PathBuf,
    /// Containers' CRI log files (`log_dir` of the config).
    pub log_dir: PathBuf,
    /// This binary, run as each container's shim.
    pub shim: ShimLauncher,
    pub host_ip: String,
}

impl Kubelet {
    pub fn new(
        client: LocalClient,
        node_name: &str,
        config: &crate::config::Config,
        root_dir: &std::path::Path,
    ) -> anyhow::Result<Kubelet> {
        Ok(Kubelet {
            client,
            node_name: node_name.to_owned(),
            images: Arc::new(crate::images::open_service(config, root_dir)?),
            handlers: config.runtime_handlers()?,
            root_dir: root_dir.to_owned(),
            log_dir: config.log_dir()?,
            shim: ShimLauncher::this_binary()?,
            host_ip: crate::run::host_ip(),
        })
    }
}

struct Entry {
    stop: Option<StopHandle>,
    done: Arc<AtomicBool>,
    deleting: bool,
    reporter: Option<Arc<ApiReporter>>,
}

/// The pod loop; runs until aborted.
pub async fn run(kubelet: Kubelet) {
    let mut workers: HashMap<String, Entry> = HashMap::new();
    let path = format!(
        "/api/v1/pods?fieldSelector=spec.nodeName%3D{}",
        kubelet.node_name
    );
    loop {
        tokio::time::sleep(POLL).await;
        let list = match kubelet.client.get(&path).await {
            Ok(l) => l,
            Err(err) => {
                eprintln!("nodelet: listing pods: {err}");
                continue;
            }
        };
        let items = list["items"].as_array().cloned().unwrap_or_default();
        let mut seen = Vec::new();
        for pod in items {
            let uid = pod["metadata"]["uid"].as_str().unwrap_or("").to_owned();
            seen.push(uid.clone());
            let deleting = pod["metadata"]["deletionTimestamp"].is_string();
            match workers.get_mut(&uid) {
                None => {
                    let phase = pod["status"]["phase"].as_str().unwrap_or("");
                    let left_on_disk = kubelet.root_dir.join("pods").join(&uid).exists();
                    if deleting && left_on_disk {
                        // Deleted while nodelet was down: a worker adopts what still runs,
                        // and the next round terminates it as for any deletion.
                        let entry = start_worker(&kubelet, pod.clone()).await;
                        workers.insert(uid, entry);
                    } else if deleting {
                        // Never started here (or already finished): nothing to stop.
                        tokio::spawn(delete_now(kubelet.client.clone(), pod.clone()));
                        workers.insert(uid, finished_entry());
                    } else if phase == "Succeeded" || phase == "Failed" {
                        workers.insert(uid, finished_entry());
                    } else {
                        let entry = start_worker(&kubelet, pod.clone()).await;
                        workers.insert(uid, entry);
                    }
                }
                Some(entry) if deleting && !entry.deleting => {
                    entry.deleting = true;
                    if let Some(stop) = &entry.stop {
                        stop.stop();
                    }
                    let grace = pod["metadata"]["deletionGracePeriodSeconds"]
                        .as_u64()
                        .unwrap_or(30);
                    let done = entry.done.clone();
                    let reporter = entry.reporter.clone();
                    let client = kubelet.client.clone();
                    tokio::spawn(async move {
                        let start = tokio::time::Instant::now();
                        let deadline = start + Duration::from_secs(grace) + STUCK_EXTRA;
                        // A worker still pulling (or backing off) has nothing to terminate:
                        // it sees the stop request once its pull ends.
                        let idle_deadline = start + IDLE_WAIT;
                        loop {
                            let now = tokio::time::Instant::now();
                            let running = reporter.as_ref().is_some_and(|r| r.has_running());
                            if done.load(Ordering::SeqCst)
                                || now >= deadline
                                || (!running && now >= idle_deadline)
                            {
                                break;
                            }
                            tokio::time::sleep(Duration::from_millis(200)).await;
                        }
                        delete_now(client, pod).await;
                    });
                }
                Some(_) => {}
            }
        }
        // Forget pods that are gone; stop workers whose pod vanished.
        workers.retain(|uid, entry| {
            let keep = seen.contains(uid);
            if !keep
                && !entry.done.load(Ordering::SeqCst)
                && let Some(stop) = &entry.stop
            {
                stop.stop();
            }
            keep || !entry.done.load(Ordering::SeqCst)
        });
    }
}

fn finished_entry() -> Entry {
    Entry {
        stop: None,
        done: Arc::new(AtomicBool::new(true)),
        deleting: true,
        reporter: None,
    }
}

async fn delete_now(client: LocalClient, pod: Value) {
    let (ns, name) = ns_name(&pod);
    let path = format!("/api/v1/namespaces/{ns}/pods/{name}");
    let body = json!({"gracePeriodSeconds": 0, "preconditions": {"uid": pod["metadata"]["uid"]}});
    match client
        .delete(&format!("{path}?gracePeriodSeconds=0"), Some(&body))
        .await
    {
        Ok(_) => {}
        Err(err) if err.reason() == "NotFound" || err.reason() == "Conflict" => {}
        Err(err) => eprintln!("nodelet: deleting pod {ns}/{name}: {err}"),
    }
}

fn ns_name(pod: &Value) -> (String, String) {
    (
        pod["metadata"]["namespace"]
            .as_str()
            .unwrap_or("default")
            .to_owned(),
        pod["metadata"]["name"].as_str().unwrap_or("").to_owned(),
    )
}

/// Lists what a pod may refer to in its namespace (and the RuntimeClasses).
async fn objects(client: &LocalClient, ns: &str) -> PodObjects {
    async fn items<T: serde::de::DeserializeOwned + nodelet_api::k8s::Resource>(
        client: &LocalClient,
        path: &str,
    ) -> Vec<T> {
        match client.get(path).await {
            Ok(list) => list["items"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|v| {
                    let mut v = v.clone();
                    // Items of a list may carry no kind.
                    v["kind"] = json!(T::KIND);
                    v["apiVersion"] = json!(T::API_VERSION);
                    serde_json::from_value(v).ok()
                })
                .collect(),
            Err(_) => Vec::new(),
        }
    }
    PodObjects {
        secrets: items(client, &format!("/api/v1/namespaces/{ns}/secrets")).await,
        config_maps: items(client, &format!("/api/v1/namespaces/{ns}/configmaps")).await,
        service_accounts: items(client, &format!("/api/v1/namespaces/{ns}/serviceaccounts")).await,
        services: items(client, &format!("/api/v1/namespaces/{ns}/services")).await,
        runtime_classes: items(client, "/apis/node.k8s.io/v1/runtimeclasses").await,
    }
}

async fn start_worker(kubelet: &Kubelet, pod_json: Value) -> Entry {
    let (ns, name) = ns_name(&pod_json);
    let done = Arc::new(AtomicBool::new(false));
    let mut typed = pod_json.clone();
    typed["kind"] = json!("Pod");
    typed["apiVersion"] = json!("v1");
    let pod: Pod = match serde_json::from_value(typed) {
        Ok(p) => p,
        Err(err) => {
            eprintln!("nodelet: pod {ns}/{name}: {err}");
            done.store(true, Ordering::SeqCst);
            return Entry {
                stop: None,
                done,
                deleting: false,
                reporter: None,
            };
        }
    };
    let objects = objects(&kubelet.client, &ns).await;
    let reporter = Arc::new(ApiReporter {
        client: kubelet.client.clone(),
        runtime: tokio::runtime::Handle::current(),
        pod: pod_json.clone(),
        host_ip: kubelet.host_ip.clone(),
        start_time: crate::serve::now(),
        state: Mutex::new(BTreeMap::new()),
    });
    let services = NodeServices {
        images: kubelet.images.clone(),
        handlers: kubelet.handlers.clone(),
        node_credentials: NodeCredentials::new(NodeCredentialFiles::from_process(
            &kubelet.root_dir,
        )),
        platform: Platform::host(),
        runtime: tokio::runtime::Handle::current(),
        shim: kubelet.shim.clone(),
    };
    let node = NodeContext {
        node_name: kubelet.node_name.clone(),
        host_ip: kubelet.host_ip.clone(),
        allocatable: crate::run::allocatable(),
        pods_dir: std::path::absolute(kubelet.root_dir.join("pods"))
            .unwrap_or_else(|_| kubelet.root_dir.join("pods")),
        log_dir: kubelet.log_dir.clone(),
        cluster_domain: DEFAULT_CLUSTER_DOMAIN.into(),
    };
    let worker = PodWorker::new(
        pod,
        objects,
        services,
        node,
        reporter.clone(),
        WorkerOptions {
            give_up_on_start_failure: false,
        },
    );
    let stop = worker.stop_handle();
    reporter.post_status(None).await;
    let done2 = done.clone();
    let entry_reporter = reporter.clone();
    tokio::spawn(async move {
        let outcome = tokio::task::spawn_blocking(move || worker.run()).await;
        if let Ok(outcome) = outcome {
            reporter.post_status(Some(outcome.phase.as_str())).await;
        }
        done2.store(true, Ordering::SeqCst);
    });
    Entry {
        stop: Some(stop),
        done,
        deleting: false,
        reporter: Some(entry_reporter),
    }
}

#[derive(Debug, Default, Clone)]
struct ContainerState {
    running: bool,
    starts: i32,
    waiting: Option<(String, String)>,
    exit_code: Option<i32>,
    image_id: String,
}

/// Events to the API, container states into the pod's status.
#[derive(Debug)]
struct ApiReporter {
    client: LocalClient,
    runtime: tokio::runtime::Handle,
    pod: Value,
    host_ip: String,
    start_time: String,
    state: Mutex<BTreeMap<String, ContainerState>>,
}

impl ApiReporter {
    fn has_running(&self) -> bool {
        self.state.lock().unwrap().values().any(|s| s.running)
    }

    fn status(&self, final_phase: Option<&str>) -> Value {
        let state = self.state.lock().unwrap().clone();
        let containers = self.pod["spec"]["containers"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let mut statuses = Vec::new();
        let mut all_ready = !containers.is_empty();
        let mut any_running = false;
        for c in &containers {
            let name = c["name"].as_str().unwrap_or("");
            let s = state.get(name).cloned().unwrap_or_default();
            let running = s.running && final_phase.is_none();
            any_running |= running;
            all_ready &= running;
            let st = if running {
                json!({"running": {"startedAt": self.start_time}})
            } else if let Some(code) = s.exit_code {
                json!({"terminated": {
                    "exitCode": code,
                    "reason": if code == 0 { "Completed" } else { "Error" },
                    "startedAt": self.start_time,
                    "finishedAt": crate::serve::now(),
                }})
            } else if let Some((reason, message)) = &s.waiting {
                json!({"waiting": {"reason": reason, "message": message}})
            } else {
                json!({"waiting": {"reason": "ContainerCreating"}})
            };
            statuses.push(json!({
                "name": name,
                "state": st,
                "ready": running,
                "restartCount": (s.starts - 1).max(0),
                "image": c["image"],
                "imageID": s.image_id,
                "started": running,
            }));
        }
        let phase = match final_phase {
            Some(p) => p,
            None if any_running => "Running",
            None => "Pending",
        };
        let t = crate::serve::now();
        let cond = |ty: &str, ok: bool| {
            json!({"type": ty, "status": if ok { "True" } else { "False" },
                   "lastProbeTime": null, "lastTransitionTime": t})
        };
        let ready = all_ready && phase == "Running";
        json!({
            "phase": phase,
            "hostIP": self.host_ip,
            "hostIPs": [{"ip": self.host_ip}],
            "podIP": self.host_ip,
            "podIPs": [{"ip": self.host_ip}],
            "startTime": self.start_time,
            "conditions": [
                cond("PodReadyToStartContainers", true),
                cond("Initialized", true),
                cond("Ready", ready),
                cond("ContainersReady", ready),
                cond("PodScheduled", true),
            ],
            "containerStatuses": statuses,
        })
    }

    async fn post_status(&self, final_phase: Option<&str>) {
        let (ns, name) = ns_name(&self.pod);
        let patch = json!({"status": self.status(final_phase)});
        if let Err(err) = self
            .client
            .merge_patch(
                &format!("/api/v1/namespaces/{ns}/pods/{name}/status"),
                &patch,
            )
            .await
            && err.reason() != "NotFound"
        {
            eprintln!("nodelet: pod {ns}/{name} status: {err}");
        }
    }

    fn post_status_soon(&self) {
        let (ns, name) = ns_name(&self.pod);
        let patch = json!({"status": self.status(None)});
        let client = self.client.clone();
        self.runtime.spawn(async move {
            let _ = client
                .merge_patch(
                    &format!("/api/v1/namespaces/{ns}/pods/{name}/status"),
                    &patch,
                )
                .await;
        });
    }
}

/// `{pod}.{hex}` from the clock and a counter, as the kubelet names its events.
fn event_name(pod: &str) -> String {
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{pod}.{:x}", nanos.wrapping_add(n))
}

/// `spec.containers{main}` → `main`.
fn container_of(field_path: Option<&str>) -> Option<String> {
    let p = field_path?;
    let start = p.find('{')?;
    Some(p[start + 1..p.len().saturating_sub(1)].to_owned())
}

impl PodReporter for ApiReporter {
    fn event(&self, field_path: Option<&str>, event: &Event) {
        let container = container_of(field_path);
        if let Some(c) = &container {
            let mut state = self.state.lock().unwrap();
            let s = state.entry(c.clone()).or_default();
            let changed = match event.reason {
                "Started" => {
                    s.running = true;
                    s.starts += 1;
                    s.waiting = None;
                    s.exit_code = None;
                    true
                }
                "Failed" => {
                    let reason = if event.message.to_lowercase().contains("pull") {
                        "ErrImagePull"
                    } else {
                        "CreateContainerError"
                    };
                    s.waiting = Some((reason.into(), event.message.clone()));
                    true
                }
                "BackOff" => {
                    let reason = if event.message.contains("image") {
                        "ImagePullBackOff"
                    } else {
                        "CrashLoopBackOff"
                    };
                    s.waiting = Some((reason.into(), event.message.clone()));
                    true
                }
                "Pulled" => {
                    s.image_id = self.pod["spec"]["containers"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .find(|x| x["name"] == c.as_str())
                        .and_then(|x| x["image"].as_str())
                        .unwrap_or("")
                        .to_owned();
                    false
                }
                _ => false,
            };
            drop(state);
            if changed {
                self.post_status_soon();
            }
        }
        let (ns, name) = ns_name(&self.pod);
        let t = crate::serve::now();
        let mut involved = json!({
            "apiVersion": "v1", "kind": "Pod", "namespace": ns, "name": name,
            "uid": self.pod["metadata"]["uid"],
        });
        if let Some(fp) = field_path {
            involved["fieldPath"] = json!(fp);
        }
        let body = json!({
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": event_name(&name), "namespace": ns},
            "involvedObject": involved,
            "reason": event.reason,
            "message": event.message,
            "type": event.kind.as_str(),
            "source": {"component": "kubelet"},
            "reportingComponent": "kubelet",
            "firstTimestamp": t,
            "lastTimestamp": t,
            "count": 1,
        });
        let client = self.client.clone();
        self.runtime.spawn(async move {
            if let Err(err) = client
                .create(&format!("/api/v1/namespaces/{ns}/events"), &body)
                .await
            {
                eprintln!("nodelet: posting event: {err}");
            }
        });
    }

    fn output(&self, _container: &str, _stream: Stream, _line: &[u8]) {}

    fn log(&self, message: &str) {
        // `container X exited with code N`: the one way the worker reports an exit.
        if let Some(rest) = message.strip_prefix("container ")
            && let Some((name, code)) = rest.split_once(" exited with code ")
            && let Ok(code) = code.trim().parse::<i32>()
        {
            let mut state = self.state.lock().unwrap();
            let s = state.entry(name.to_owned()).or_default();
            s.running = false;
            s.exit_code = Some(code);
            drop(state);
            self.post_status_soon();
        }
        // `container X is running (adopted from its shim, restart count N)`: after a restart.
        if let Some(rest) = message.strip_prefix("container ")
            && let Some((name, count)) =
                rest.split_once(" is running (adopted from its shim, restart count ")
            && let Ok(count) = count.trim_end_matches(')').parse::<i32>()
        {
            let mut state = self.state.lock().unwrap();
            let s = state.entry(name.to_owned()).or_default();
            s.running = true;
            s.starts = count + 1;
            s.waiting = None;
            s.exit_code = None;
            drop(state);
            self.post_status_soon();
        }
    }
}

//! The static manifest directory (`--pod-manifest-path`, the kubelet's standalone mode):
//! every file in the directory not starting with `.` holds one Pod (YAML or JSON). The
//! directory is read again on inotify events and every [`FILE_CHECK_FREQUENCY`].
//!
//! A static pod is what upstream's file source makes of the manifest: name `<name>-<node>`,
//! namespace `default` when none, `spec.nodeName` the node, a uid hashed from the decoded pod,
//! the node and the file (so an edited file is a new pod: the old one is stopped gracefully and
//! the new one starts once it is gone), annotations `kubernetes.io/config.source: file`,
//! `kubernetes.io/config.hash` (the uid) and `kubernetes.io/config.seen`, and a toleration of
//! every `NoExecute` taint. It is defaulted and
//! validated as a create is, and may not reference ServiceAccounts, Secrets or ConfigMaps
//! (upstream's admission would refuse its mirror pod). A bad file is reported with its name
//! and runs nothing; the other files' pods are not affected. A removed file stops its pod.
//!
//! Each pod runs under its own [`PodWorker`] on its own thread.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nodelet_api::k8s::api::core::v1::{Pod, Toleration};
use nodelet_sys::watch::{DirWatch, Wake, Waker};
use serde_json::Value;

use super::file::{self, FileSourceOptions, ManifestError, PodObjects};
use crate::pod_worker::{
    NodeContext, NodeServices, PodReporter, PodWorker, StopHandle, WorkerOptions,
};

/// How often the directory is read even without an inotify event (upstream's
/// `fileCheckFrequency` default).
pub const FILE_CHECK_FREQUENCY: Duration = Duration::from_secs(20);
/// After an inotify event, how long the directory must stay quiet before it is read (an
/// editor's truncate-then-write is one change, not two).
const SETTLE: Duration = Duration::from_millis(100);
/// The longest a stream of events delays a read.
const SETTLE_LIMIT: Duration = Duration::from_secs(1);
/// How soon a pod waiting for its predecessor (same name) to stop is looked at again.
const PENDING_RECHECK: Duration = Duration::from_millis(200);

pub const CONFIG_HASH_ANNOTATION: &str = "kubernetes.io/config.hash";
pub const CONFIG_SEEN_ANNOTATION: &str = "kubernetes.io/config.seen";

/// Why a file gives no pod; shown as `<file>: <message>`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}: {message}")]
pub struct StaticPodError {
    pub file: String,
    pub message: String,
}

/// Where the source's pods report, and where it says what it does with the directory.
pub trait StaticPodSink: Send + Sync + std::fmt::Debug {
    /// The reporter of one pod's worker.
    fn pod_reporter(&self, pod: &Pod) -> Arc<dyn PodReporter>;
    /// A pod added, changed, removed or ended; a bad file.
    fn notice(&self, message: &str);
}

/// Reads one manifest file's text into the static pod it defines (without the
/// `config.seen` annotation, which is the source's).
pub fn read_static_pod(file: &str, text: &str, node_name: &str) -> Result<Pod, StaticPodError> {
    let bad = |message: String| StaticPodError {
        file: file.to_owned(),
        message,
    };
    let mut documents = file::parse_documents(file, text).map_err(|e| match e {
        ManifestError::Yaml { message, .. } => bad(message),
        other => bad(other.to_string()),
    })?;
    if documents.len() != 1 {
        return Err(bad(format!(
            "a static pod file holds exactly one Pod, found {} objects",
            documents.len()
        )));
    }
    let document = documents.pop().unwrap_or(Value::Null);
    let kind = document.get("kind").and_then(Value::as_str).unwrap_or("");
    if kind != "Pod" {
        return Err(bad(format!(
            "a static pod file holds a Pod, found kind {:?}",
            kind
        )));
    }
    let mut pod: Pod =
        serde_json::from_value(document).map_err(|e| bad(format!("decoding Pod: {e}")))?;
    let uid = match pod.metadata.uid.clone().filter(|u| !u.is_empty()) {
        Some(uid) => uid,
        None => static_pod_uid(&pod, node_name, file),
    };
    if let Some(name) = pod.metadata.name.as_mut().filter(|n| !n.is_empty()) {
        name.push('-');
        name.push_str(node_name);
    }
    let spec = pod.spec.get_or_insert_with(Default::default);
    spec.node_name = Some(node_name.to_owned());
    // Upstream's file source: a static pod tolerates every NoExecute taint (not evicted for
    // node problems).
    let tolerations = spec.tolerations.get_or_insert_with(Vec::new);
    let tolerate_no_execute = Toleration {
        operator: Some("Exists".into()),
        effect: Some("NoExecute".into()),
        ..Toleration::default()
    };
    if !tolerations.contains(&tolerate_no_execute) {
        tolerations.push(tolerate_no_execute);
    }
    pod.metadata
        .annotations
        .get_or_insert_with(BTreeMap::new)
        .insert(CONFIG_HASH_ANNOTATION.into(), uid.clone());
    let options = FileSourceOptions {
        node_name: node_name.to_owned(),
        uid,
        name_suffix: String::new(),
    };
    let pod = file::prepare_pod(pod, &options).map_err(|e| bad(e.to_string()))?;
    let name = pod.metadata.name.as_deref().unwrap_or_default();
    let forbidden = |why: &str| bad(format!("pods {name:?} is forbidden: {why}"));
    if let Err(rejection) = nodelet_api::admission::service_account::validate_mirror_pod(&pod) {
        return Err(forbidden(&rejection.0));
    }
    if references_config_maps(&pod) {
        return Err(forbidden(&format!(
            "node {node_name:?} can not create pods that reference configmaps"
        )));
    }
    Ok(pod)
}

/// 32 hex digits from the decoded pod, the node and the file: the same manifest on the same
/// node keeps its uid across reads and restarts; any change to the pod makes a new one.
fn static_pod_uid(pod: &Pod, node_name: &str, file: &str) -> String {
    let mut bytes = serde_json::to_vec(pod).unwrap_or_default();
    bytes.extend_from_slice(format!("host:{node_name}file:{file}").as_bytes());
    let digest = nodelet_image::digest::Digest::sha256_of(&bytes);
    digest.hex()[..32].to_owned()
}

fn references_config_maps(pod: &Pod) -> bool {
    let Some(spec) = &pod.spec else { return false };
    let volumes = spec.volumes.iter().flatten().any(|v| {
        v.config_map.is_some()
            || v.projected
                .as_ref()
                .is_some_and(|p| p.sources.iter().flatten().any(|s| s.config_map.is_some()))
    });
    let containers = spec
        .init_containers
        .iter()
        .flatten()
        .chain(spec.containers.iter())
        .any(|c| {
            c.env_from
                .iter()
                .flatten()
                .any(|e| e.config_map_ref.is_some())
                || c.env.iter().flatten().any(|e| {
                    e.value_from
                        .as_ref()
                        .is_some_and(|v| v.config_map_key_ref.is_some())
                })
        });
    volumes || containers
}

/// `namespace/name`.
fn full_name(pod: &Pod) -> String {
    format!(
        "{}/{}",
        pod.metadata.namespace.as_deref().unwrap_or("default"),
        pod.metadata.name.as_deref().unwrap_or("")
    )
}

/// The source's settings.
#[derive(Clone)]
pub struct StaticDirSource {
    pub dir: PathBuf,
    pub node: NodeContext,
    /// What every pod's worker drives (cloned per pod).
    pub services: NodeServices,
    pub sink: Arc<dyn StaticPodSink>,
    /// How often the directory is read without an event ([`FILE_CHECK_FREQUENCY`]).
    pub check_frequency: Duration,
}

impl std::fmt::Debug for StaticDirSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StaticDirSource")
            .field("dir", &self.dir)
            .field("node", &self.node.node_name)
            .finish_non_exhaustive()
    }
}

/// Ends [`StaticDir::run`]: every pod is stopped gracefully first.
#[derive(Debug, Clone)]
pub struct SourceStop {
    stopping: Arc<AtomicBool>,
    waker: Waker,
}

impl SourceStop {
    pub fn stop(&self) {
        self.stopping.store(true, Ordering::SeqCst);
        self.waker.wake();
    }
}

/// One pod's worker thread.
#[derive(Debug)]
struct Entry {
    full_name: String,
    file: String,
    stop: StopHandle,
    done: Arc<AtomicBool>,
    stopping: bool,
    thread: Option<JoinHandle<()>>,
}

/// The watched directory and its pods.
#[derive(Debug)]
pub struct StaticDir {
    source: StaticDirSource,
    watch: DirWatch,
    stopping: Arc<AtomicBool>,
    /// By uid.
    workers: HashMap<String, Entry>,
    /// The last error reported for each file, so a bad file is reported once per change.
    reported: HashMap<String, String>,
    /// `config.seen` of each uid.
    seen: HashMap<String, String>,
}

impl StaticDirSource {
    /// Starts watching the directory (it must exist).
    pub fn watch(self) -> Result<StaticDir, StaticPodError> {
        let watch = DirWatch::new(&self.dir).map_err(|e| StaticPodError {
            file: self.dir.display().to_string(),
            message: format!("watching the pod manifest directory: {e}"),
        })?;
        Ok(StaticDir {
            source: self,
            watch,
            stopping: Arc::new(AtomicBool::new(false)),
            workers: HashMap::new(),
            reported: HashMap::new(),
            seen: HashMap::new(),
        })
    }
}

impl StaticDir {
    pub fn stop_handle(&self) -> SourceStop {
        SourceStop {
            stopping: self.stopping.clone(),
            waker: self.watch.waker(),
        }
    }

    /// Runs the directory's pods until [`SourceStop::stop`], then stops them all (each within
    /// its grace period, all at once) and waits for them.
    pub fn run(mut self) {
        while !self.stopping.load(Ordering::SeqCst) {
            // A directory that cannot be read says nothing about its pods: they keep running.
            let pending = match self.read_dir() {
                Some(pods) => self.sync(pods),
                None => false,
            };
            let timeout = if pending {
                PENDING_RECHECK
            } else {
                self.source.check_frequency
            };
            match self.watch.wait(timeout) {
                Ok(Wake::Changed) => self.settle(),
                Ok(Wake::Woken | Wake::Timeout) => {}
                Err(e) => {
                    self.source
                        .sink
                        .notice(&format!("watching {}: {e}", self.source.dir.display()));
                    std::thread::sleep(timeout);
                }
            }
        }
        for entry in self.workers.values_mut() {
            entry.stop.stop();
        }
        for entry in self.workers.values_mut() {
            if let Some(thread) = entry.thread.take() {
                let _ = thread.join();
            }
        }
    }

    /// Waits until the directory has been quiet for [`SETTLE`] (at most [`SETTLE_LIMIT`]).
    fn settle(&self) {
        let limit = Instant::now() + SETTLE_LIMIT;
        while Instant::now() < limit && !self.stopping.load(Ordering::SeqCst) {
            match self.watch.wait(SETTLE) {
                Ok(Wake::Changed) => continue,
                _ => break,
            }
        }
    }

    /// The directory's valid pods by file name (sorted); bad files are reported once. `None`
    /// when the directory cannot be read.
    fn read_dir(&mut self) -> Option<Vec<(String, Pod)>> {
        let dir = &self.source.dir;
        let mut names: Vec<String> = match std::fs::read_dir(dir) {
            Ok(entries) => entries
                .flatten()
                .filter(|e| e.file_type().is_ok_and(|t| t.is_file() || t.is_symlink()))
                .filter_map(|e| e.file_name().into_string().ok())
                .filter(|name| !name.starts_with('.'))
                .collect(),
            Err(e) => {
                let message = format!("reading the pod manifest directory: {e}");
                self.report(&dir.display().to_string(), &message);
                return None;
            }
        };
        names.sort();
        let mut pods: Vec<(String, Pod)> = Vec::new();
        let mut errors = Vec::new();
        for name in names {
            let path = dir.join(&name);
            let label = path.display().to_string();
            let result = std::fs::read_to_string(&path)
                .map_err(|e| StaticPodError {
                    file: label.clone(),
                    message: format!("reading: {e}"),
                })
                .and_then(|text| read_static_pod(&label, &text, &self.source.node.node_name));
            let pod = match result {
                Ok(pod) => pod,
                Err(e) => {
                    errors.push((name, e.message));
                    continue;
                }
            };
            let full = full_name(&pod);
            if let Some((other, _)) = pods.iter().find(|(_, p)| full_name(p) == full) {
                errors.push((
                    name,
                    format!(
                        "pod {full} is already defined in {}",
                        dir.join(other).display()
                    ),
                ));
                continue;
            }
            pods.push((name, pod));
        }
        let bad: Vec<String> = errors.iter().map(|(n, _)| n.clone()).collect();
        self.reported.retain(|file, _| bad.contains(file));
        for (name, message) in errors {
            self.report(&name, &message);
        }
        Some(pods)
    }

    fn report(&mut self, file: &str, message: &str) {
        if self.reported.get(file).map(String::as_str) == Some(message) {
            return;
        }
        self.reported.insert(file.to_owned(), message.to_owned());
        let path = if Path::new(file).is_absolute() {
            PathBuf::from(file)
        } else {
            self.source.dir.join(file)
        };
        self.source
            .sink
            .notice(&format!("{}: {message}", path.display()));
    }

    /// Starts the new pods, stops the ones whose file changed or went away, forgets the
    /// stopped ones. True when a pod waits for its predecessor to stop.
    fn sync(&mut self, pods: Vec<(String, Pod)>) -> bool {
        let wanted: HashMap<String, &(String, Pod)> = pods
            .iter()
            .filter_map(|p| p.1.metadata.uid.clone().map(|uid| (uid, p)))
            .collect();
        for (uid, entry) in &mut self.workers {
            if !wanted.contains_key(uid) && !entry.stopping {
                entry.stopping = true;
                let still_there = pods.iter().any(|(file, _)| file == &entry.file);
                let why = if still_there { "changed" } else { "removed" };
                self.source.sink.notice(&format!(
                    "static pod {} ({}): file {why}, stopping the pod",
                    entry.full_name, entry.file
                ));
                entry.stop.stop();
            }
        }
        let mut gone = Vec::new();
        for (uid, entry) in &mut self.workers {
            if entry.done.load(Ordering::SeqCst) && !wanted.contains_key(uid) {
                if let Some(thread) = entry.thread.take() {
                    let _ = thread.join();
                }
                gone.push(uid.clone());
            }
        }
        for uid in gone {
            self.workers.remove(&uid);
            self.seen.remove(&uid);
        }
        let mut pending = false;
        for (uid, (file, pod)) in wanted {
            if self.workers.contains_key(&uid) {
                continue;
            }
            let full = full_name(pod);
            // Upstream starts a static pod only once the one it replaces has terminated.
            if self.workers.values().any(|e| e.full_name == full) {
                pending = true;
                continue;
            }
            let entry = self.start(&uid, file, pod.clone());
            self.workers.insert(uid, entry);
        }
        pending
    }

    fn start(&mut self, uid: &str, file: &str, mut pod: Pod) -> Entry {
        let seen = self
            .seen
            .entry(uid.to_owned())
            .or_insert_with(|| nodelet_api::k8s::jiff::Timestamp::now().to_string())
            .clone();
        pod.metadata
            .annotations
            .get_or_insert_with(BTreeMap::new)
            .insert(CONFIG_SEEN_ANNOTATION.into(), seen);
        let full = full_name(&pod);
        let source = &self.source;
        source
            .sink
            .notice(&format!("static pod {full} ({file}): starting"));
        let services = source.services.clone();
        let reporter = source.sink.pod_reporter(&pod);
        let worker = PodWorker::new(
            pod,
            PodObjects::default(),
            services,
            source.node.clone(),
            reporter,
            WorkerOptions::default(),
        );
        let stop = worker.stop_handle();
        let done = Arc::new(AtomicBool::new(false));
        let thread_done = done.clone();
        let waker = self.watch.waker();
        let sink = source.sink.clone();
        let thread_name = full.clone();
        let thread = std::thread::Builder::new()
            .name(format!("static-pod-{uid}"))
            .spawn(move || {
                let outcome = worker.run();
                sink.notice(&format!(
                    "static pod {thread_name}: {} ({})",
                    outcome.phase.as_str(),
                    outcome.message
                ));
                thread_done.store(true, Ordering::SeqCst);
                waker.wake();
            });
        let thread = match thread {
            Ok(thread) => Some(thread),
            Err(e) => {
                source
                    .sink
                    .notice(&format!("static pod {full}: starting its thread: {e}"));
                done.store(true, Ordering::SeqCst);
                None
            }
        };
        Entry {
            full_name: full,
            file: file.to_owned(),
            stop,
            done,
            stopping: false,
            thread,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const POD: &str = "apiVersion: v1\nkind: Pod\nmetadata: {name: web}\nspec:\n  containers:\n  - name: main\n    image: busybox\n";

    #[test]
    fn a_static_pod_gets_the_node_name_uid_and_annotations() {
        let pod = read_static_pod("/m/web.yaml", POD, "node-1").unwrap();
        assert_eq!(pod.metadata.name.as_deref(), Some("web-node-1"));
        assert_eq!(pod.metadata.namespace.as_deref(), Some("default"));
        let spec = pod.spec.as_ref().unwrap();
        assert_eq!(spec.node_name.as_deref(), Some("node-1"));
        let toleration = &spec.tolerations.as_ref().unwrap()[0];
        assert_eq!(toleration.operator.as_deref(), Some("Exists"));
        assert_eq!(toleration.effect.as_deref(), Some("NoExecute"));
        let uid = pod.metadata.uid.clone().unwrap();
        assert_eq!(uid.len(), 32);
        let annotations = pod.metadata.annotations.as_ref().unwrap();
        assert_eq!(annotations[CONFIG_HASH_ANNOTATION], uid);
        assert_eq!(annotations[file::CONFIG_SOURCE_ANNOTATION], "file");
        // Same manifest, same uid; JSON reads the same; any change is a new pod.
        let again = read_static_pod("/m/web.yaml", POD, "node-1").unwrap();
        assert_eq!(again.metadata.uid.as_deref(), Some(uid.as_str()));
        let json = r#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"web"},"spec":{"containers":[{"name":"main","image":"busybox"}]}}"#;
        let from_json = read_static_pod("/m/web.yaml", json, "node-1").unwrap();
        assert_eq!(from_json.metadata.uid.as_deref(), Some(uid.as_str()));
        let changed =
            read_static_pod("/m/web.yaml", &POD.replace("busybox", "alpine"), "node-1").unwrap();
        assert_ne!(changed.metadata.uid.as_deref(), Some(uid.as_str()));
        let other_node = read_static_pod("/m/web.yaml", POD, "node-2").unwrap();
        assert_ne!(other_node.metadata.uid.as_deref(), Some(uid.as_str()));
    }

    #[test]
    fn bad_files_are_reported_with_their_name() {
        let err = read_static_pod("/m/a.yaml", "kind: Pod\nmetadata: [", "n").unwrap_err();
        assert_eq!(err.file, "/m/a.yaml");
        assert!(err.to_string().starts_with("/m/a.yaml: "), "{err}");
        let err = read_static_pod("/m/a.yaml", &format!("{POD}---\n{POD}"), "n").unwrap_err();
        assert!(err.message.contains("exactly one Pod"), "{err}");
        let err =
            read_static_pod("/m/a.yaml", "kind: Service\nmetadata: {name: s}\n", "n").unwrap_err();
        assert!(err.message.contains("kind \"Service\""), "{err}");
        let err = read_static_pod("/m/a.yaml", &POD.replace("name: web", "name: Web_1"), "n")
            .unwrap_err();
        assert!(
            err.message
                .starts_with("Pod \"Web_1-n\" is invalid: metadata.name: Invalid value"),
            "{err}"
        );
    }

    #[test]
    fn static_pods_may_not_reference_api_objects() {
        let cases = [
            (
                "  serviceAccountName: robot\n",
                "pods \"web-n\" is forbidden: a mirror pod may not reference service accounts",
            ),
            (
                "  volumes:\n  - name: s\n    secret: {secretName: creds}\n",
                "pods \"web-n\" is forbidden: a mirror pod may not reference secrets",
            ),
            (
                "  volumes:\n  - name: c\n    configMap: {name: settings}\n",
                "pods \"web-n\" is forbidden: node \"n\" can not create pods that reference configmaps",
            ),
        ];
        for (extra, message) in cases {
            let text = format!("{POD}{extra}");
            let err = read_static_pod("/m/a.yaml", &text, "n").unwrap_err();
            assert_eq!(err.message, message);
        }
        let env_secret = POD.replace(
            "    image: busybox\n",
            "    image: busybox\n    env:\n    - name: T\n      valueFrom: {secretKeyRef: {name: s, key: k}}\n",
        );
        let err = read_static_pod("/m/a.yaml", &env_secret, "n").unwrap_err();
        assert!(err.message.ends_with("may not reference secrets"), "{err}");
    }
}

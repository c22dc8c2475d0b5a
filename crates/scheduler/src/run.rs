//! The binding loop: a cache of nodes and pods kept by list and watch through the in-process
//! API client, and a pass over the pods waiting for a node after every change and every
//! second.
//!
//! - A pod is tried when it appears, when its spec or labels change, when the cluster changes
//!   in a way that could make room (any node change, a pod deleted or finished), and at least
//!   every [`Config::resync`] while it waits.
//! - A fitting pod is bound with `POST pods/<name>/binding` and gets a `Scheduled` event; the
//!   cache assumes the binding at once, so the next pod of the same pass sees the node's
//!   resources taken.
//! - A pod that fits nowhere gets a `FailedScheduling` Warning (repeats of the same message
//!   count up on one Event, as upstream's event correlation does) and a `PodScheduled=False`
//!   condition with reason `Unschedulable`.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Method, Request, header};
use http_body_util::BodyExt as _;
use nodelet_api::k8s::api::core::v1::{Node, Pod};
use nodelet_apiserver::LocalClient;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tower::ServiceExt as _;

use crate::fit;

/// How the loop runs.
#[derive(Clone, Debug)]
pub struct Config {
    /// How often a pod that fits nowhere is tried again when nothing changed.
    pub resync: Duration,
    /// `reportingInstance` of the events (upstream: `default-scheduler-<hostname>`).
    pub instance: String,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            resync: Duration::from_secs(10),
            instance: fit::DEFAULT_SCHEDULER.to_owned(),
        }
    }
}

/// The scheduler: binds pods through `client` until dropped or aborted.
#[derive(Debug)]
pub struct Scheduler {
    client: LocalClient,
    config: Config,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Pods,
    Nodes,
}

impl Kind {
    fn path(self) -> &'static str {
        match self {
            Kind::Pods => "/api/v1/pods",
            Kind::Nodes => "/api/v1/nodes",
        }
    }
}

/// What the watch tasks tell the loop.
#[derive(Debug)]
enum Update {
    /// A fresh list: replaces everything of that kind.
    Listed(Kind, Vec<Value>),
    /// One watch event.
    Event(Kind, String, Value),
}

/// One failed attempt for a pod.
#[derive(Debug)]
struct Attempt {
    at: Instant,
    generation: u64,
    message: String,
}

/// An event already posted, to count repeats on.
#[derive(Debug)]
struct Posted {
    name: String,
    namespace: String,
    count: u64,
}

type PodKey = (String, String);

fn pod_key(pod: &Pod) -> PodKey {
    (
        pod.metadata.namespace.clone().unwrap_or_default(),
        pod.metadata.name.clone().unwrap_or_default(),
    )
}

/// The cache and the bookkeeping of attempts.
#[derive(Debug, Default)]
struct State {
    pods: BTreeMap<PodKey, Pod>,
    nodes: BTreeMap<String, Node>,
    /// Bumped by changes that could let a waiting pod fit.
    generation: u64,
    attempts: HashMap<PodKey, Attempt>,
    events: HashMap<(String, &'static str, String), Posted>,
}

impl State {
    fn apply(&mut self, update: Update) {
        match update {
            Update::Listed(Kind::Nodes, items) => {
                self.nodes = items
                    .into_iter()
                    .filter_map(|v| serde_json::from_value::<Node>(v).ok())
                    .map(|n| (n.metadata.name.clone().unwrap_or_default(), n))
                    .collect();
                self.generation += 1;
            }
            Update::Listed(Kind::Pods, items) => {
                self.pods = items
                    .into_iter()
                    .filter_map(|v| serde_json::from_value::<Pod>(v).ok())
                    .map(|p| (pod_key(&p), p))
                    .collect();
                self.attempts.retain(|k, _| self.pods.contains_key(k));
                self.generation += 1;
            }
            Update::Event(Kind::Nodes, ty, obj) => {
                let Ok(node) = serde_json::from_value::<Node>(obj) else {
                    return;
                };
                let name = node.metadata.name.clone().unwrap_or_default();
                if ty == "DELETED" {
                    self.nodes.remove(&name);
                } else if ty == "ADDED" || ty == "MODIFIED" {
                    self.nodes.insert(name, node);
                } else {
                    return;
                }
                self.generation += 1;
            }
            Update::Event(Kind::Pods, ty, obj) => {
                let Ok(pod) = serde_json::from_value::<Pod>(obj) else {
                    return;
                };
                let key = pod_key(&pod);
                match ty.as_str() {
                    "DELETED" => {
                        self.attempts.remove(&key);
                        self.events
                            .retain(|(uid, _, _), _| Some(uid) != pod.metadata.uid.as_ref());
                        if self
                            .pods
                            .remove(&key)
                            .is_some_and(|p| fit::assigned_node(&p).is_some())
                        {
                            self.generation += 1;
                        }
                    }
                    "ADDED" | "MODIFIED" => {
                        let old = self.pods.insert(key.clone(), pod.clone());
                        if let Some(old) = old {
                            if fit::assigned_node(&pod).is_some()
                                && fit::is_finished(&pod)
                                && !fit::is_finished(&old)
                            {
                                self.generation += 1;
                            }
                            if old.spec != pod.spec || old.metadata.labels != pod.metadata.labels {
                                self.attempts.remove(&key);
                            }
                        }
                    }
                    _ => {}
                }
            }
        }
    }

    /// The pods to try now, in queue order (higher priority first, then older first).
    fn due(&self, resync: Duration) -> Vec<PodKey> {
        let mut due: Vec<&Pod> =
            self.pods
                .iter()
                .filter(|(key, pod)| {
                    fit::needs_scheduling(pod)
                        && self.attempts.get(*key).is_none_or(|a| {
                            a.generation < self.generation || a.at.elapsed() >= resync
                        })
                })
                .map(|(_, pod)| pod)
                .collect();
        due.sort_by(|a, b| {
            let priority = |p: &Pod| p.spec.as_ref().and_then(|s| s.priority).unwrap_or(0);
            priority(b)
                .cmp(&priority(a))
                .then_with(|| {
                    a.metadata
                        .creation_timestamp
                        .as_ref()
                        .map(|t| t.0)
                        .cmp(&b.metadata.creation_timestamp.as_ref().map(|t| t.0))
                })
                .then_with(|| pod_key(a).cmp(&pod_key(b)))
        });
        due.into_iter().map(pod_key).collect()
    }
}

fn now() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

/// The `Scheduled` event message.
pub fn scheduled_message(namespace: &str, pod: &str, node: &str) -> String {
    format!("Successfully assigned {namespace}/{pod} to {node}")
}

impl Scheduler {
    /// A scheduler acting through `client` (its user needs to read pods and nodes, create
    /// bindings and events, and patch pod status).
    pub fn new(client: LocalClient, config: Config) -> Scheduler {
        Scheduler { client, config }
    }

    /// Runs until the task is aborted.
    pub async fn run(self) {
        let (tx, mut rx) = mpsc::channel(256);
        let watchers = [Kind::Nodes, Kind::Pods].map(|kind| {
            let client = self.client.clone();
            let tx = tx.clone();
            AbortOnDrop(tokio::spawn(list_and_watch(client, kind, tx)))
        });
        drop(tx);
        let mut state = State::default();
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                update = rx.recv() => {
                    let Some(update) = update else { break };
                    state.apply(update);
                    while let Ok(more) = rx.try_recv() {
                        state.apply(more);
                    }
                }
                _ = tick.tick() => {}
            }
            self.pass(&mut state).await;
        }
        drop(watchers);
    }

    /// Tries every pod that is due.
    async fn pass(&self, state: &mut State) {
        for key in state.due(self.config.resync) {
            let Some(pod) = state.pods.get(&key).cloned() else {
                continue;
            };
            let nodes: Vec<Node> = state.nodes.values().cloned().collect();
            let infos = fit::node_infos(&nodes, state.pods.values());
            match fit::schedule(&pod, &infos) {
                Ok(node) => self.bind(state, &key, &pod, &node).await,
                Err(error) => {
                    self.unschedulable(state, &key, &pod, &error.to_string())
                        .await
                }
            }
        }
    }

    async fn bind(&self, state: &mut State, key: &PodKey, pod: &Pod, node: &str) {
        let (ns, name) = key;
        let binding = json!({
            "apiVersion": "v1",
            "kind": "Binding",
            "metadata": {"name": name, "namespace": ns, "uid": pod.metadata.uid},
            "target": {"apiVersion": "v1", "kind": "Node", "name": node},
        });
        let path = format!("/api/v1/namespaces/{ns}/pods/{name}/binding");
        match self.client.create(&path, &binding).await {
            Ok(_) => {
                state.attempts.remove(key);
                if let Some(cached) = state.pods.get_mut(key)
                    && let Some(spec) = cached.spec.as_mut()
                {
                    spec.node_name = Some(node.to_owned());
                }
                let message = scheduled_message(ns, name, node);
                self.record(state, pod, "Normal", "Scheduled", "Binding", &message)
                    .await;
            }
            Err(err) => {
                // Deleted, or bound by someone else meanwhile: the watch brings the news.
                if err.reason() != "Conflict" && err.reason() != "NotFound" {
                    eprintln!("nodelet scheduler: binding {ns}/{name} to {node}: {err}");
                }
                state.attempts.insert(
                    key.clone(),
                    Attempt {
                        at: Instant::now(),
                        generation: state.generation,
                        message: String::new(),
                    },
                );
            }
        }
    }

    async fn unschedulable(&self, state: &mut State, key: &PodKey, pod: &Pod, message: &str) {
        let changed = state.attempts.get(key).is_none_or(|a| a.message != message);
        state.attempts.insert(
            key.clone(),
            Attempt {
                at: Instant::now(),
                generation: state.generation,
                message: message.to_owned(),
            },
        );
        // The condition first: whoever sees the event (kubectl describe) sees the condition.
        if changed {
            let (ns, name) = key;
            let patch = json!({"status": {"conditions": [{
                "type": "PodScheduled",
                "status": "False",
                "reason": "Unschedulable",
                "message": message,
                "lastProbeTime": null,
                "lastTransitionTime": now(),
            }]}});
            let path = format!("/api/v1/namespaces/{ns}/pods/{name}/status");
            if let Err(err) = self
                .client
                .request(
                    Method::PATCH,
                    &path,
                    Some(&patch),
                    "application/strategic-merge-patch+json",
                )
                .await
                && err.reason() != "NotFound"
            {
                eprintln!("nodelet scheduler: updating the status of {ns}/{name}: {err}");
            }
        }
        self.record(
            state,
            pod,
            "Warning",
            "FailedScheduling",
            "Scheduling",
            message,
        )
        .await;
    }

    /// Posts an event about `pod`, or counts a repeat on the one posted before.
    async fn record(
        &self,
        state: &mut State,
        pod: &Pod,
        ty: &str,
        reason: &'static str,
        action: &str,
        message: &str,
    ) {
        let ns = pod.metadata.namespace.clone().unwrap_or_default();
        let name = pod.metadata.name.clone().unwrap_or_default();
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let t = now();
        let key = (uid.clone(), reason, message.to_owned());
        if let Some(posted) = state.events.get_mut(&key) {
            posted.count += 1;
            let path = format!(
                "/api/v1/namespaces/{}/events/{}",
                posted.namespace, posted.name
            );
            let patch = json!({"count": posted.count, "lastTimestamp": t});
            match self.client.merge_patch(&path, &patch).await {
                Ok(_) => return,
                Err(err) if err.reason() == "NotFound" => {
                    state.events.remove(&key);
                }
                Err(err) => {
                    eprintln!("nodelet scheduler: updating event {}: {err}", posted.name);
                    return;
                }
            }
        }
        let nanos = jiff::Timestamp::now().as_nanosecond();
        let event_name = format!("{name}.{nanos:x}");
        let body = json!({
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": event_name, "namespace": ns},
            "involvedObject": {
                "apiVersion": "v1",
                "kind": "Pod",
                "namespace": ns,
                "name": name,
                "uid": uid,
                "resourceVersion": pod.metadata.resource_version,
            },
            "reason": reason,
            "message": message,
            "type": ty,
            "action": action,
            "source": {"component": fit::DEFAULT_SCHEDULER},
            "reportingComponent": fit::DEFAULT_SCHEDULER,
            "reportingInstance": self.config.instance,
            "firstTimestamp": t,
            "lastTimestamp": t,
            "count": 1,
        });
        match self
            .client
            .create(&format!("/api/v1/namespaces/{ns}/events"), &body)
            .await
        {
            Ok(_) => {
                state.events.insert(
                    key,
                    Posted {
                        name: event_name,
                        namespace: ns,
                        count: 1,
                    },
                );
            }
            Err(err) => eprintln!("nodelet scheduler: recording {reason} for {ns}/{name}: {err}"),
        }
    }
}

/// Aborts a spawned task when dropped.
#[derive(Debug)]
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Lists `kind`, then watches from the list's revision, forwarding everything; lists again
/// when the watch ends or expires.
async fn list_and_watch(client: LocalClient, kind: Kind, tx: mpsc::Sender<Update>) {
    loop {
        match client.get(kind.path()).await {
            Ok(list) => {
                let rv = list["metadata"]["resourceVersion"]
                    .as_str()
                    .unwrap_or("")
                    .to_owned();
                let items = list["items"].as_array().cloned().unwrap_or_default();
                if tx.send(Update::Listed(kind, items)).await.is_err() {
                    return;
                }
                if let Err(err) = watch(&client, kind, &rv, &tx).await {
                    eprintln!("nodelet scheduler: watching {}: {err}", kind.path());
                }
                if tx.is_closed() {
                    return;
                }
            }
            Err(err) => eprintln!("nodelet scheduler: listing {}: {err}", kind.path()),
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Streams one watch; returns when it ends (or reports an error event, e.g. 410 Expired).
async fn watch(
    client: &LocalClient,
    kind: Kind,
    rv: &str,
    tx: &mpsc::Sender<Update>,
) -> Result<(), String> {
    let uri = format!(
        "{}?watch=true&allowWatchBookmarks=true&resourceVersion={rv}",
        kind.path()
    );
    let req = Request::builder()
        .method(Method::GET)
        .uri(uri)
        .header(header::ACCEPT, "application/json")
        .body(Body::empty())
        .map_err(|e| e.to_string())?;
    let Ok(resp) = client.service().oneshot(req).await;
    if !resp.status().is_success() {
        return Err(format!("HTTP {}", resp.status()));
    }
    let mut body = resp.into_body();
    let mut buf: Vec<u8> = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| e.to_string())?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        buf.extend_from_slice(&data);
        while let Some(end) = buf.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = buf.drain(..=end).collect();
            let Ok(event) = serde_json::from_slice::<Value>(&line) else {
                continue;
            };
            let ty = event["type"].as_str().unwrap_or("").to_owned();
            match ty.as_str() {
                "ADDED" | "MODIFIED" | "DELETED" => {
                    let object = event["object"].clone();
                    if tx.send(Update::Event(kind, ty, object)).await.is_err() {
                        return Ok(());
                    }
                }
                "ERROR" => {
                    return Err(event["object"]["message"]
                        .as_str()
                        .unwrap_or("watch error")
                        .to_owned());
                }
                _ => {}
            }
        }
    }
    Ok(())
}

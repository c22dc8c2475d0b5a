//! core/v1 Events from the kubelet, with upstream's de-duplication: an event equal to one
//! already written (same object, field path, type, reason, message and source) becomes a
//! PATCH of that Event's `count` and `lastTimestamp` instead of a new object.
//!
//! One task writes all events of the node in order; reporters only queue them.

use std::collections::HashMap;

use kube::api::{Api, Patch, PatchParams, PostParams};
use nodelet_api::k8s::api::core::v1::{Event as ApiEvent, EventSource, ObjectReference};
use nodelet_api::k8s::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use nodelet_api::k8s::jiff::Timestamp;
use tokio::sync::mpsc;

use crate::events::Event;

/// The `source.component` and `reportingComponent` of the kubelet's events.
pub const COMPONENT: &str = "kubelet";
/// How many distinct events are remembered for de-duplication (upstream's cache size).
const MAX_REMEMBERED: usize = 4096;

/// Queues events for the node's event writer; cheap to clone.
#[derive(Debug, Clone)]
pub struct EventRecorder {
    tx: mpsc::UnboundedSender<Queued>,
}

#[derive(Debug)]
struct Queued {
    involved: ObjectReference,
    event: Event,
    at: Timestamp,
}

/// What makes two events the same one.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    uid: String,
    namespace: String,
    name: String,
    field_path: String,
    kind: &'static str,
    reason: &'static str,
    message: String,
}

#[derive(Debug)]
struct Written {
    name: String,
    count: i32,
}

impl EventRecorder {
    /// Starts the writer on the current tokio runtime; `host` is the node's name.
    pub fn start(client: kube::Client, host: String) -> EventRecorder {
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(write_events(client, host, rx));
        EventRecorder { tx }
    }

    /// Queues `event` about `involved`; never blocks.
    pub fn record(&self, involved: ObjectReference, event: &Event) {
        let _ = self.tx.send(Queued {
            involved,
            event: event.clone(),
            at: Timestamp::now(),
        });
    }
}

async fn write_events(client: kube::Client, host: String, mut rx: mpsc::UnboundedReceiver<Queued>) {
    let mut written: HashMap<Key, Written> = HashMap::new();
    while let Some(queued) = rx.recv().await {
        let namespace = queued
            .involved
            .namespace
            .clone()
            .unwrap_or_else(|| "default".into());
        let api: Api<ApiEvent> = Api::namespaced(client.clone(), &namespace);
        let key = Key {
            uid: queued.involved.uid.clone().unwrap_or_default(),
            namespace: namespace.clone(),
            name: queued.involved.name.clone().unwrap_or_default(),
            field_path: queued.involved.field_path.clone().unwrap_or_default(),
            kind: queued.event.kind.as_str(),
            reason: queued.event.reason,
            message: queued.event.message.clone(),
        };
        if let Some(seen) = written.get_mut(&key) {
            let count = seen.count + 1;
            let patch = serde_json::json!({
                "count": count,
                "lastTimestamp": Time(queued.at),
            });
            match api
                .patch(&seen.name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
            {
                Ok(_) => {
                    seen.count = count;
                    continue;
                }
                // Gone (expired or deleted): write it anew below.
                Err(kube::Error::Api(status)) if status.code == 404 => {
                    written.remove(&key);
                }
                Err(err) => {
                    eprintln!("nodelet: updating event {}: {err}", seen.name);
                    continue;
                }
            }
        }
        let object_name = key.name.clone();
        let event = ApiEvent {
            metadata: ObjectMeta {
                name: Some(event_name(&object_name, queued.at)),
                namespace: Some(namespace),
                ..ObjectMeta::default()
            },
            involved_object: queued.involved,
            reason: Some(queued.event.reason.to_owned()),
            message: Some(queued.event.message.clone()),
            type_: Some(queued.event.kind.as_str().to_owned()),
            source: Some(EventSource {
                component: Some(COMPONENT.into()),
                host: Some(host.clone()),
            }),
            reporting_component: Some(COMPONENT.into()),
            reporting_instance: Some(host.clone()),
            first_timestamp: Some(Time(queued.at)),
            last_timestamp: Some(Time(queued.at)),
            count: Some(1),
            ..ApiEvent::default()
        };
        match api.create(&PostParams::default(), &event).await {
            Ok(created) => {
                if written.len() >= MAX_REMEMBERED {
                    written.clear();
                }
                let name = created.metadata.name.unwrap_or_default();
                written.insert(key, Written { name, count: 1 });
            }
            Err(err) => eprintln!("nodelet: posting event {}: {err}", queued.event.reason),
        }
    }
}

/// `{object}.{hex}` from the clock, as the kubelet names its events.
fn event_name(object: &str, at: Timestamp) -> String {
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let nanos = u64::try_from(at.as_nanosecond()).unwrap_or(0);
    format!("{object}.{:x}", nanos.wrapping_add(n))
}

//! core/v1 Events from the kubelet, with upstream's de-duplication: an event equal to one
//! already written (same object, field path, type, reason, message and source) becomes a
//! PATCH of that Event's `count` and `lastTimestamp` instead of a new object
//! ([`EventCorrelator`]; `nodelet serve` writes the Node's events through it too).
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

#[derive(Debug, Clone)]
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
    let mut correlator = EventCorrelator::default();
    while let Some(queued) = rx.recv().await {
        let correlated = correlator.correlate(queued.involved, &queued.event, &host, queued.at);
        let api: Api<ApiEvent> = Api::namespaced(client.clone(), correlated.namespace());
        if let Some((name, patch)) = correlated.repeat() {
            match api
                .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
            {
                Ok(_) => {
                    correlator.repeated(&correlated);
                    continue;
                }
                // Gone (expired or deleted): write it anew below.
                Err(kube::Error::Api(status)) if status.code == 404 => {
                    correlator.forget(&correlated);
                }
                Err(err) => {
                    eprintln!("nodelet: updating event {name}: {err}");
                    continue;
                }
            }
        }
        match api.create(&PostParams::default(), correlated.event()).await {
            Ok(created) => {
                let name = created.metadata.name.unwrap_or_default();
                correlator.created(&correlated, name);
            }
            Err(err) => eprintln!("nodelet: posting event {}: {err}", queued.event.reason),
        }
    }
}

/// Upstream's `EventCorrelator` (its de-duplication; no aggregation of similar messages):
/// it remembers the Events written, so an event equal to one of them (same object, field
/// path, type, reason and message) is written as a PATCH of that Event's `count` and
/// `lastTimestamp`. The writer talks to the API server; this only decides.
#[derive(Debug, Default)]
pub struct EventCorrelator {
    written: HashMap<Key, Written>,
}

/// An event as the correlator sees it: the new Event object, and the Event it repeats if any.
#[derive(Debug)]
pub struct Correlated {
    key: Key,
    event: ApiEvent,
    repeats: Option<Written>,
}

impl Correlated {
    /// The namespace the Event goes to (its object's; `default` for cluster-scoped ones).
    pub fn namespace(&self) -> &str {
        &self.key.namespace
    }

    /// The Event to create when it repeats none (or the one it repeats is gone).
    pub fn event(&self) -> &ApiEvent {
        &self.event
    }

    /// The Event it repeats and the merge patch that counts it.
    pub fn repeat(&self) -> Option<(&str, serde_json::Value)> {
        let seen = self.repeats.as_ref()?;
        let patch = serde_json::json!({
            "count": seen.count + 1,
            "lastTimestamp": self.event.last_timestamp,
        });
        Some((&seen.name, patch))
    }
}

impl EventCorrelator {
    /// `event` about `involved`, from the kubelet on `host`, at `at`.
    pub fn correlate(
        &self,
        involved: ObjectReference,
        event: &Event,
        host: &str,
        at: Timestamp,
    ) -> Correlated {
        let namespace = involved
            .namespace
            .clone()
            .unwrap_or_else(|| "default".into());
        let key = Key {
            uid: involved.uid.clone().unwrap_or_default(),
            namespace: namespace.clone(),
            name: involved.name.clone().unwrap_or_default(),
            field_path: involved.field_path.clone().unwrap_or_default(),
            kind: event.kind.as_str(),
            reason: event.reason,
            message: event.message.clone(),
        };
        let repeats = self.written.get(&key).cloned();
        let event = ApiEvent {
            metadata: ObjectMeta {
                name: Some(event_name(&key.name, at)),
                namespace: Some(namespace),
                ..ObjectMeta::default()
            },
            involved_object: involved,
            reason: Some(event.reason.to_owned()),
            message: Some(event.message.clone()),
            type_: Some(event.kind.as_str().to_owned()),
            source: Some(EventSource {
                component: Some(COMPONENT.into()),
                host: Some(host.to_owned()),
            }),
            reporting_component: Some(COMPONENT.into()),
            reporting_instance: Some(host.to_owned()),
            first_timestamp: Some(Time(at)),
            last_timestamp: Some(Time(at)),
            count: Some(1),
            ..ApiEvent::default()
        };
        Correlated {
            key,
            event,
            repeats,
        }
    }

    /// Its [`Correlated::event`] was created under `name`.
    pub fn created(&mut self, correlated: &Correlated, name: String) {
        if self.written.len() >= MAX_REMEMBERED {
            self.written.clear();
        }
        self.written
            .insert(correlated.key.clone(), Written { name, count: 1 });
    }

    /// Its [`Correlated::repeat`] patch was applied.
    pub fn repeated(&mut self, correlated: &Correlated) {
        if let Some(seen) = self.written.get_mut(&correlated.key) {
            seen.count += 1;
        }
    }

    /// The Event it repeats is gone: the next one like it is created anew.
    pub fn forget(&mut self, correlated: &Correlated) {
        self.written.remove(&correlated.key);
    }
}

/// `{object}.{hex}` from the clock, as the kubelet names its events.
fn event_name(object: &str, at: Timestamp) -> String {
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let nanos = u64::try_from(at.as_nanosecond()).unwrap_or(0);
    format!("{object}.{:x}", nanos.wrapping_add(n))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str) -> ObjectReference {
        ObjectReference {
            kind: Some("Node".into()),
            name: Some(name.into()),
            uid: Some(name.into()),
            ..ObjectReference::default()
        }
    }

    #[test]
    fn a_repeat_counts_on_the_event_written_and_another_message_does_not() {
        let mut correlator = EventCorrelator::default();
        let cordoned = crate::events::node_status("n1", "NodeNotSchedulable");
        let first = correlator.correlate(node("n1"), &cordoned, "n1", Timestamp::now());
        assert!(first.repeat().is_none());
        assert_eq!(first.namespace(), "default");
        assert_eq!(first.event().count, Some(1));
        correlator.created(&first, "n1.abc".into());

        let uncordoned = crate::events::node_status("n1", "NodeSchedulable");
        let other = correlator.correlate(node("n1"), &uncordoned, "n1", Timestamp::now());
        assert!(other.repeat().is_none(), "another reason and message");
        let elsewhere = correlator.correlate(node("n2"), &cordoned, "n2", Timestamp::now());
        assert!(elsewhere.repeat().is_none(), "another object");

        let at = Timestamp::now();
        let again = correlator.correlate(node("n1"), &cordoned, "n1", at);
        let (name, patch) = again.repeat().expect("a repeat");
        assert_eq!(name, "n1.abc");
        assert_eq!(patch["count"], 2);
        assert_eq!(
            patch["lastTimestamp"],
            serde_json::to_value(Time(at)).unwrap()
        );
        correlator.repeated(&again);
        let third = correlator.correlate(node("n1"), &cordoned, "n1", Timestamp::now());
        assert_eq!(third.repeat().unwrap().1["count"], 3);

        correlator.forget(&third);
        let anew = correlator.correlate(node("n1"), &cordoned, "n1", Timestamp::now());
        assert!(anew.repeat().is_none(), "its Event was gone");
    }
}

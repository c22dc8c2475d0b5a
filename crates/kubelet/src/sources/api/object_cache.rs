//! The node's shared view of ConfigMaps and Secrets: one watch of each kind (kube-runtime
//! reflectors), from which every running pod's volume sources are read each
//! [`REFRESH_PERIOD`]. Only what changed since the last look is sent to a worker
//! ([`PodRefresh`] compared with the one sent before), so an idle node costs a comparison per
//! pod per period and no API request.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures_util::StreamExt;
use kube::api::Api;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::watcher::{self, Event as WatchEvent};
use kube::runtime::{WatchStreamExt, reflector as reflect};
use nodelet_api::k8s::api::core::v1::{ConfigMap, Pod, Secret};

use crate::pod_worker::PodRefresh;

/// How often running pods' configMap, secret, downwardAPI and projected volumes are compared
/// with their sources (upstream: the sync period, 1 min, plus its cache's TTL; "within about
/// a minute" is the promise, 10 s keeps well inside it).
pub const REFRESH_PERIOD: Duration = Duration::from_secs(10);

/// Watched ConfigMaps and Secrets of every namespace.
#[derive(Clone)]
pub struct ObjectCache {
    config_maps: Cached<ConfigMap>,
    secrets: Cached<Secret>,
}

impl std::fmt::Debug for ObjectCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the objects: Secrets' data stays out of logs.
        f.debug_struct("ObjectCache")
            .field("ready", &self.ready())
            .finish_non_exhaustive()
    }
}

#[derive(Clone)]
struct Cached<K: kube::Resource + 'static>
where
    K::DynamicType: std::hash::Hash + Eq + Clone,
{
    store: Store<K>,
    /// Set once the first list is in: before, a missing object only means "not yet seen".
    listed: Arc<AtomicBool>,
}

impl ObjectCache {
    /// Starts both watches on the current tokio runtime; they run as long as the process.
    pub fn start(client: &kube::Client) -> ObjectCache {
        ObjectCache {
            config_maps: watch_all(Api::all(client.clone())),
            secrets: watch_all(Api::all(client.clone())),
        }
    }

    /// Whether both kinds have been listed once (refreshes wait for it).
    pub fn ready(&self) -> bool {
        self.config_maps.listed.load(Ordering::SeqCst) && self.secrets.listed.load(Ordering::SeqCst)
    }

    /// `pod`'s current [`PodRefresh`]; `None` until the cache is ready.
    pub fn pod_refresh(&self, pod: &Pod) -> Option<PodRefresh> {
        if !self.ready() {
            return None;
        }
        let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
        Some(PodRefresh::of(
            pod,
            |name| {
                self.config_maps
                    .store
                    .get(&ObjectRef::new(name).within(namespace))
                    .map(|o| ConfigMap::clone(&o))
            },
            |name| {
                self.secrets
                    .store
                    .get(&ObjectRef::new(name).within(namespace))
                    .map(|o| Secret::clone(&o))
            },
        ))
    }
}

fn watch_all<K>(api: Api<K>) -> Cached<K>
where
    K: kube::Resource<DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    let (store, writer) = reflector::store();
    let listed = Arc::new(AtomicBool::new(false));
    let seen = listed.clone();
    let url = api.resource_url().to_owned();
    tokio::spawn(async move {
        let stream =
            reflect(writer, watcher::watcher(api, watcher::Config::default())).default_backoff();
        let mut stream = std::pin::pin!(stream);
        while let Some(event) = stream.next().await {
            match event {
                Ok(WatchEvent::InitDone) => seen.store(true, Ordering::SeqCst),
                Ok(_) => {}
                Err(err) => eprintln!("nodelet: watching {url}: {err}"),
            }
        }
    });
    Cached { store, listed }
}

//! The node's shared view of the objects pods refer to: one watch of each kind (kube-runtime
//! reflectors) of ConfigMaps, Secrets, ServiceAccounts, Services and RuntimeClasses.
//!
//! Two readers: every running pod's volume sources are read each [`REFRESH_PERIOD`], and
//! only what changed since the last look is sent to a worker ([`PodRefresh`] compared with
//! the one sent before), so an idle node costs a comparison per pod per period and no API
//! request; and a worker reads its namespace's objects ([`LiveObjects`]) each time it is
//! about to pull an image or create a container.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures_util::StreamExt;
use kube::api::Api;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::watcher::{self, Event as WatchEvent};
use kube::runtime::{WatchStreamExt, reflector as reflect};
use nodelet_api::k8s::api::core::v1::{ConfigMap, Pod, Secret, Service, ServiceAccount};
use nodelet_api::k8s::api::node::v1::RuntimeClass;

use crate::pod_worker::{LiveObjects, PodRefresh};
use crate::service_env::MASTER_SERVICE_NAMESPACE;
use crate::sources::file::PodObjects;

/// How often running pods' configMap, secret, downwardAPI and projected volumes are compared
/// with their sources (upstream: the sync period, 1 min, plus its cache's TTL; "within about
/// a minute" is the promise, 10 s keeps well inside it).
pub const REFRESH_PERIOD: Duration = Duration::from_secs(10);

/// Watched objects of every namespace.
#[derive(Clone)]
pub struct ObjectCache {
    config_maps: Cached<ConfigMap>,
    secrets: Cached<Secret>,
    service_accounts: Cached<ServiceAccount>,
    services: Cached<Service>,
    runtime_classes: Cached<RuntimeClass>,
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
    /// Starts the watches on the current tokio runtime; they run as long as the process.
    pub fn start(client: &kube::Client) -> ObjectCache {
        ObjectCache {
            config_maps: watch_all(Api::all(client.clone())),
            secrets: watch_all(Api::all(client.clone())),
            service_accounts: watch_all(Api::all(client.clone())),
            services: watch_all(Api::all(client.clone())),
            runtime_classes: watch_all(Api::all(client.clone())),
        }
    }

    /// Whether ConfigMaps and Secrets have been listed once (refreshes wait for it).
    pub fn ready(&self) -> bool {
        self.config_maps.is_listed() && self.secrets.is_listed()
    }

    /// Whether every kind has been listed once (live reads wait for it).
    fn all_listed(&self) -> bool {
        self.ready()
            && self.service_accounts.is_listed()
            && self.services.is_listed()
            && self.runtime_classes.is_listed()
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

impl LiveObjects for ObjectCache {
    fn namespace_objects(&self, namespace: &str) -> Option<PodObjects> {
        if !self.all_listed() {
            return None;
        }
        let services = self.services.matching(|s| {
            let ns = s.metadata.namespace.as_deref();
            ns == Some(namespace) || ns == Some(MASTER_SERVICE_NAMESPACE)
        });
        Some(PodObjects {
            secrets: self.secrets.in_namespace(namespace),
            config_maps: self.config_maps.in_namespace(namespace),
            service_accounts: self.service_accounts.in_namespace(namespace),
            services,
            runtime_classes: self.runtime_classes.matching(|_| true),
        })
    }
}

impl<K> Cached<K>
where
    K: kube::Resource + Clone + 'static,
    K::DynamicType: std::hash::Hash + Eq + Clone,
{
    fn is_listed(&self) -> bool {
        self.listed.load(Ordering::SeqCst)
    }

    /// The objects `keep` selects, in name order (a stable order: equal contents compare
    /// equal).
    fn matching(&self, keep: impl Fn(&K) -> bool) -> Vec<K> {
        let mut found: Vec<K> = self
            .store
            .state()
            .iter()
            .filter(|o| keep(o))
            .map(|o| K::clone(o))
            .collect();
        found.sort_by(|a, b| {
            let (a, b) = (a.meta(), b.meta());
            (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name))
        });
        found
    }

    fn in_namespace(&self, namespace: &str) -> Vec<K> {
        self.matching(|o| o.meta().namespace.as_deref() == Some(namespace))
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

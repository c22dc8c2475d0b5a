//! The objects a pod refers to, read on demand when its worker starts: the Secrets,
//! ConfigMaps, Services and ServiceAccounts of its namespace, the master Services of
//! `default`, and the RuntimeClasses. A consistent read: the node's watches
//! ([`super::object_cache`]) may not have seen an object created just before the pod. From
//! then on the worker reads them from those watches ([`crate::pod_worker::LiveObjects`]).

use kube::api::{Api, ListParams};
use nodelet_api::k8s::api::core::v1::{ConfigMap, Secret, Service, ServiceAccount};
use nodelet_api::k8s::api::node::v1::RuntimeClass;

use crate::service_env::{MASTER_SERVICE_NAMESPACE, MASTER_SERVICES};
use crate::sources::file::PodObjects;

/// Everything `namespace` holds that a pod may refer to. A list that fails is logged and left
/// empty: the worker then reports the missing object as a missing reference would be.
pub async fn fetch(client: &kube::Client, namespace: &str) -> PodObjects {
    let master_services = async {
        if namespace == MASTER_SERVICE_NAMESPACE {
            return Vec::new();
        }
        let mut found =
            list::<Service>(Api::namespaced(client.clone(), MASTER_SERVICE_NAMESPACE)).await;
        found.retain(|s| MASTER_SERVICES.contains(&s.metadata.name.as_deref().unwrap_or("")));
        found
    };
    let (secrets, config_maps, service_accounts, mut services, master_services, runtime_classes) = tokio::join!(
        list::<Secret>(Api::namespaced(client.clone(), namespace)),
        list::<ConfigMap>(Api::namespaced(client.clone(), namespace)),
        list::<ServiceAccount>(Api::namespaced(client.clone(), namespace)),
        list::<Service>(Api::namespaced(client.clone(), namespace)),
        master_services,
        list::<RuntimeClass>(Api::all(client.clone())),
    );
    services.extend(master_services);
    PodObjects {
        secrets,
        config_maps,
        service_accounts,
        services,
        runtime_classes,
    }
}

async fn list<K>(api: Api<K>) -> Vec<K>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    match api.list(&ListParams::default()).await {
        Ok(list) => list.items,
        Err(err) => {
            eprintln!("nodelet: listing {}: {err}", api.resource_url());
            Vec::new()
        }
    }
}

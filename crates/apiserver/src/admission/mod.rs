//! The admission chain, run on every create and update before the store write, in upstream's
//! order: NamespaceLifecycle, defaulting, ServiceAccount, RuntimeClass, AlwaysPullImages
//! (when enabled), ClusterIP allocation, then validation (and, for events.k8s.io/v1 creates,
//! [`validate_v1_event_create`]).
//!
//! The rules themselves are pure functions in `nodelet_api` where they exist; what needs the
//! store (does the namespace exist, which pull secrets has the ServiceAccount, what does the
//! RuntimeClass say) is looked up here.

mod clusterip;
mod defaults;
mod events;
mod runtimeclass;
mod serviceaccount;
mod validate;

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

pub use clusterip::{ClusterIpAllocator, KUBERNETES_SERVICE_IP, SERVICE_CIDR};
pub use serviceaccount::ensure_default as ensure_default_service_account;

use crate::errors::{ApiError, ApiResult};
use crate::resources::generic::Resources;
use crate::resources::{Kind, ResourceType, meta};

/// Which write is admitted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operation {
    /// POST.
    Create,
    /// PUT or PATCH (of the object or its status).
    Update,
}

/// Admission settings (`--enable-admission-plugins`).
#[derive(Debug, Default)]
pub struct Config {
    /// AlwaysPullImages: every container's pull policy forced to `Always`.
    pub always_pull_images: bool,
    /// Service ClusterIPs.
    pub cluster_ips: ClusterIpAllocator,
}

/// JSON → typed object (for the pure rules in `nodelet_api`).
pub(crate) fn typed<T: DeserializeOwned>(obj: &Value) -> ApiResult<T> {
    serde_json::from_value(obj.clone()).map_err(ApiError::internal)
}

/// Typed object → JSON, keeping the type metadata of `like`.
pub(crate) fn untyped<T: Serialize>(t: &T) -> ApiResult<Value> {
    serde_json::to_value(t).map_err(ApiError::internal)
}

/// The strict rules of an Event created through events.k8s.io/v1 (`rt`), checked on its
/// admitted storage form; core/v1 creates keep the legacy rules.
pub fn validate_v1_event_create(rt: &'static ResourceType, event: &Value) -> ApiResult<()> {
    let errs = events::validate_v1_event_create(event);
    if errs.is_empty() {
        return Ok(());
    }
    let status = nodelet_api::status::invalid(rt.group, rt.kind, meta::name(event), &errs);
    Err(ApiError {
        status: Box::new(status),
    })
}

/// Runs the chain on `obj` (storage form, mutated in place). `old` is the stored object of an
/// update.
pub async fn admit(
    res: &Resources,
    op: Operation,
    rt: &'static ResourceType,
    obj: &mut Value,
    old: Option<&Value>,
) -> ApiResult<()> {
    if op == Operation::Create && rt.namespaced {
        namespace_lifecycle(res, rt, obj).await?;
    }
    defaults::apply(op, rt, obj)?;
    if rt.id == Kind::Pod && op == Operation::Create {
        serviceaccount::admit(res, rt, obj).await?;
        runtimeclass::admit(res, rt, obj).await?;
    }
    if rt.id == Kind::Pod && res.admission().always_pull_images {
        always_pull_images(obj, old);
    }
    if rt.id == Kind::Service {
        res.admission()
            .cluster_ips
            .admit(res, rt, op, obj, old)
            .await?;
    }
    validate::validate(rt, op, obj, old)
}

/// NamespaceLifecycle: no new objects in a namespace that does not exist (404) or is being
/// deleted (403).
async fn namespace_lifecycle(
    res: &Resources,
    rt: &'static ResourceType,
    obj: &Value,
) -> ApiResult<()> {
    let ns = meta::namespace(obj).unwrap_or("").to_owned();
    let namespaces = crate::resources::of(Kind::Namespace);
    match res.get_stored(namespaces, None, &ns).await? {
        None => Err(ApiError::not_found(namespaces, &ns)),
        Some(found) if found.object["status"]["phase"] == "Terminating" => {
            // Events about the namespace's contents may still be written while it drains.
            if rt.id == Kind::Event || rt.id == Kind::EventV1 {
                return Ok(());
            }
            Err(ApiError::forbidden(
                rt,
                meta::name(obj),
                &format!(
                    "unable to create new content in namespace {ns} because it is being terminated"
                ),
            ))
        }
        Some(_) => Ok(()),
    }
}

/// AlwaysPullImages (mutating half): every container pulls with `Always`, on create and on
/// updates that bring a new image.
fn always_pull_images(obj: &mut Value, old: Option<&Value>) {
    let images = |pod: &Value| -> Vec<String> {
        ["initContainers", "containers", "ephemeralContainers"]
            .iter()
            .flat_map(|list| pod["spec"][list].as_array().cloned().unwrap_or_default())
            .filter_map(|c| c["image"].as_str().map(str::to_owned))
            .collect()
    };
    if let Some(old) = old {
        let before = images(old);
        if images(obj).iter().all(|i| before.contains(i)) {
            return;
        }
    }
    for list in ["initContainers", "containers", "ephemeralContainers"] {
        if let Some(containers) = obj["spec"][list].as_array_mut() {
            for c in containers {
                c["imagePullPolicy"] = Value::String("Always".into());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn always_pull_images_only_for_new_images() {
        let mut pod = json!({"spec": {"containers": [{"name": "a", "image": "x:1", "imagePullPolicy": "IfNotPresent"}]}});
        always_pull_images(&mut pod, None);
        assert_eq!(pod["spec"]["containers"][0]["imagePullPolicy"], "Always");
        let old = json!({"spec": {"containers": [{"name": "a", "image": "x:1"}]}});
        let mut same = json!({"spec": {"containers": [{"name": "a", "image": "x:1", "imagePullPolicy": "IfNotPresent"}]}});
        always_pull_images(&mut same, Some(&old));
        assert_eq!(
            same["spec"]["containers"][0]["imagePullPolicy"],
            "IfNotPresent"
        );
    }
}

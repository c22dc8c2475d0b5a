//! RuntimeClass admission for pods (create only), as upstream's plugin: the class must exist;
//! its overhead is set on the pod (a different overhead, or one without a class overhead, is
//! refused); its `scheduling.nodeSelector` is merged into the pod's (a conflicting value is
//! refused); its tolerations are added to the pod's.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{PodSpec, Toleration};
use k8s_openapi::api::node::v1::RuntimeClass;
use nodelet_api::quantity::resource_lists_equal;
use serde_json::Value;

use super::{typed, untyped};
use crate::errors::{ApiError, ApiResult};
use crate::resources::generic::Resources;
use crate::resources::{Kind, ResourceType, meta, of};

const OVERHEAD_MISMATCH: &str =
    "pod rejected: Pod's Overhead doesn't match RuntimeClass's defined Overhead";

pub async fn admit(res: &Resources, rt: &'static ResourceType, pod: &mut Value) -> ApiResult<()> {
    let pod_name = meta::name(pod).to_owned();
    let forbidden = |why: &str| ApiError::forbidden(rt, &pod_name, why);
    let mut spec: PodSpec = typed(&pod["spec"])?;
    let class_name = spec.runtime_class_name.clone().filter(|n| !n.is_empty());
    let pod_overhead = spec.overhead.clone().filter(|o| !o.is_empty());
    let Some(class_name) = class_name else {
        if pod_overhead.is_some() {
            return Err(forbidden(
                "pod rejected: Pod Overhead set without corresponding RuntimeClass defined Overhead",
            ));
        }
        return Ok(());
    };
    let Some(stored) = res
        .get_stored(of(Kind::RuntimeClass), None, &class_name)
        .await?
    else {
        return Err(forbidden(&format!(
            "pod rejected: RuntimeClass {} not found",
            crate::errors::quote(&class_name)
        )));
    };
    let class: RuntimeClass = typed(&stored.object)?;
    let class_overhead = class
        .overhead
        .and_then(|o| o.pod_fixed)
        .filter(|o| !o.is_empty());
    match (&class_overhead, &pod_overhead) {
        (Some(c), Some(p)) if !resource_lists_equal(c, p) => {
            return Err(forbidden(OVERHEAD_MISMATCH));
        }
        (Some(c), _) => spec.overhead = Some(c.clone()),
        (None, Some(_)) => {
            return Err(forbidden(
                "pod rejected: Pod Overhead set without corresponding RuntimeClass defined Overhead",
            ));
        }
        (None, None) => {}
    }
    if let Some(scheduling) = class.scheduling {
        if let Some(selector) = scheduling.node_selector.filter(|s| !s.is_empty()) {
            merge_node_selector(
                spec.node_selector.get_or_insert_with(BTreeMap::new),
                &selector,
            )
            .map_err(|why| forbidden(&why))?;
        }
        if let Some(tolerations) = scheduling.tolerations.filter(|t| !t.is_empty()) {
            merge_tolerations(spec.tolerations.get_or_insert_with(Vec::new), tolerations);
        }
    }
    pod["spec"] = untyped(&spec)?;
    Ok(())
}

fn merge_node_selector(
    pod: &mut BTreeMap<String, String>,
    class: &BTreeMap<String, String>,
) -> Result<(), String> {
    for (key, value) in class {
        match pod.get(key) {
            Some(have) if have != value => {
                return Err(format!(
                    "conflict: runtimeClass.scheduling.nodeSelector[{key}] = {value}; pod.spec.nodeSelector[{key}] = {have}"
                ));
            }
            _ => {
                pod.insert(key.clone(), value.clone());
            }
        }
    }
    Ok(())
}

/// Whether toleration `a` tolerates everything `b` does.
fn covers(a: &Toleration, b: &Toleration) -> bool {
    let effect_ok = a.effect.as_deref().is_none_or(str::is_empty) || a.effect == b.effect;
    let a_exists = a.operator.as_deref() == Some("Exists");
    let key_ok = (a.key.as_deref().is_none_or(str::is_empty) && a_exists) || a.key == b.key;
    let value_ok = a_exists || (b.operator.as_deref() != Some("Exists") && a.value == b.value);
    let seconds_ok = a.toleration_seconds.is_none()
        || (b.toleration_seconds.is_some() && a.toleration_seconds >= b.toleration_seconds);
    effect_ok && key_ok && value_ok && seconds_ok
}

/// Adds the class's tolerations, skipping any that one already present covers, and dropping
/// present ones that a new one covers (upstream's `MergeTolerations`).
fn merge_tolerations(pod: &mut Vec<Toleration>, class: Vec<Toleration>) {
    for t in class {
        if pod.iter().any(|p| covers(p, &t)) {
            continue;
        }
        pod.retain(|p| !covers(&t, p));
        pod.push(t);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_selector_conflicts_use_the_upstream_message() {
        let mut pod = BTreeMap::from([("a".to_owned(), "1".to_owned())]);
        let class = BTreeMap::from([("a".to_owned(), "2".to_owned())]);
        assert_eq!(
            merge_node_selector(&mut pod, &class).unwrap_err(),
            "conflict: runtimeClass.scheduling.nodeSelector[a] = 2; pod.spec.nodeSelector[a] = 1"
        );
        let class = BTreeMap::from([("b".to_owned(), "2".to_owned())]);
        merge_node_selector(&mut pod, &class).unwrap();
        assert_eq!(pod.len(), 2);
    }

    #[test]
    fn tolerations_merge_without_duplicates() {
        let t = |key: &str| Toleration {
            key: Some(key.into()),
            operator: Some("Exists".into()),
            ..Default::default()
        };
        let mut pod = vec![t("a")];
        merge_tolerations(&mut pod, vec![t("a"), t("b")]);
        assert_eq!(pod.len(), 2);
    }
}

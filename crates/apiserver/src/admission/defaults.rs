//! Defaulting, through `nodelet_api::defaults` on the typed objects, plus the two defaulting
//! admission plugins upstream enables by default for pods: Priority (priority 0 without a
//! class) and DefaultTolerationSeconds (tolerate `not-ready`/`unreachable` for 300 s).

use k8s_openapi::api::core::v1::{Namespace, Node, Pod, Secret, Service, Toleration};
use k8s_openapi::api::node::v1::RuntimeClass;
use nodelet_api::defaults as rules;
use serde_json::Value;

use super::{Operation, typed, untyped};
use crate::errors::ApiResult;
use crate::resources::{Kind, ResourceType};

/// Applies the defaults of `rt`'s kind to `obj`.
pub fn apply(op: Operation, rt: &ResourceType, obj: &mut Value) -> ApiResult<()> {
    let creating = op == Operation::Create;
    match rt.id {
        Kind::Pod => {
            let mut pod: Pod = typed(obj)?;
            rules::default_pod(&mut pod);
            if creating {
                rules::prepare_pod_for_create(&mut pod);
                let spec = pod.spec.get_or_insert_with(Default::default);
                if spec
                    .priority_class_name
                    .as_deref()
                    .is_none_or(str::is_empty)
                {
                    spec.priority.get_or_insert(0);
                    spec.preemption_policy
                        .get_or_insert_with(|| "PreemptLowerPriority".into());
                }
                default_toleration_seconds(spec.tolerations.get_or_insert_with(Vec::new));
            }
            *obj = untyped(&pod)?;
        }
        Kind::Secret => {
            let mut secret: Secret = typed(obj)?;
            rules::default_secret(&mut secret);
            *obj = untyped(&secret)?;
        }
        Kind::Namespace => {
            let mut ns: Namespace = typed(obj)?;
            rules::default_namespace(&mut ns, creating);
            *obj = untyped(&ns)?;
        }
        Kind::Service => {
            let mut svc: Service = typed(obj)?;
            rules::default_service(&mut svc);
            *obj = untyped(&svc)?;
        }
        Kind::RuntimeClass => {
            let mut rc: RuntimeClass = typed(obj)?;
            rules::default_runtime_class(&mut rc);
            *obj = untyped(&rc)?;
        }
        Kind::Node => {
            let mut node: Node = typed(obj)?;
            rules::default_node(&mut node);
            *obj = untyped(&node)?;
        }
        _ => {}
    }
    Ok(())
}

/// DefaultTolerationSeconds: pods tolerate a not-ready or unreachable node for 300 s unless
/// they say otherwise.
fn default_toleration_seconds(tolerations: &mut Vec<Toleration>) {
    for key in [
        "node.kubernetes.io/not-ready",
        "node.kubernetes.io/unreachable",
    ] {
        let covered = tolerations.iter().any(|t| {
            (t.key.as_deref() == Some(key)
                || (t.key.is_none() && t.operator.as_deref() == Some("Exists")))
                && t.effect
                    .as_deref()
                    .is_none_or(|e| e.is_empty() || e == "NoExecute")
        });
        if !covered {
            tolerations.push(Toleration {
                key: Some(key.into()),
                operator: Some("Exists".into()),
                effect: Some("NoExecute".into()),
                toleration_seconds: Some(300),
                ..Default::default()
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources;
    use serde_json::json;

    #[test]
    fn pods_get_upstream_defaults() {
        let mut pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "a", "namespace": "default"},
            "spec": {"containers": [{"name": "c", "image": "busybox"}]}});
        apply(Operation::Create, resources::of(Kind::Pod), &mut pod).unwrap();
        assert_eq!(pod["spec"]["restartPolicy"], "Always");
        assert_eq!(pod["spec"]["terminationGracePeriodSeconds"], 30);
        assert_eq!(pod["spec"]["containers"][0]["imagePullPolicy"], "Always");
        assert_eq!(pod["status"]["phase"], "Pending");
        assert_eq!(pod["spec"]["priority"], 0);
        assert_eq!(pod["spec"]["tolerations"].as_array().unwrap().len(), 2);
    }

    #[test]
    fn secrets_default_to_opaque() {
        let mut s = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "a"}});
        apply(Operation::Create, resources::of(Kind::Secret), &mut s).unwrap();
        assert_eq!(s["type"], "Opaque");
    }
}

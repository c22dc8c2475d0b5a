//! Admission plugins that fill in pod fields users see in `kubectl describe` and
//! `-o yaml`: `DefaultTolerationSeconds` (tolerate `not-ready` and `unreachable` for 300 s)
//! and `Priority` (`priority` and `preemptionPolicy` from the PriorityClass, or 0).

use super::Rejection;
use crate::k8s::api::core::v1::{Pod, Toleration};
use crate::k8s::api::scheduling::v1::PriorityClass;

pub const NOT_READY_TAINT: &str = "node.kubernetes.io/not-ready";
pub const UNREACHABLE_TAINT: &str = "node.kubernetes.io/unreachable";
pub const DEFAULT_TOLERATION_SECONDS: i64 = 300;

/// Adds `<taint>:NoExecute op=Exists for 300s` tolerations for the not-ready and unreachable
/// taints unless the pod already tolerates them.
pub fn default_toleration_seconds(pod: &mut Pod) {
    let spec = pod.spec.get_or_insert_with(Default::default);
    let tolerations = spec.tolerations.get_or_insert_with(Vec::new);
    let tolerates = |taint: &str| {
        tolerations.iter().any(|t| {
            let key = t.key.as_deref().unwrap_or("");
            let effect = t.effect.as_deref().unwrap_or("");
            (key == taint || key.is_empty()) && (effect == "NoExecute" || effect.is_empty())
        })
    };
    let missing: Vec<&str> = [NOT_READY_TAINT, UNREACHABLE_TAINT]
        .into_iter()
        .filter(|t| !tolerates(t))
        .collect();
    for taint in missing {
        tolerations.push(Toleration {
            key: Some(taint.into()),
            operator: Some("Exists".into()),
            effect: Some("NoExecute".into()),
            toleration_seconds: Some(DEFAULT_TOLERATION_SECONDS),
            value: None,
        });
    }
}

/// A PriorityClass's value (optional in the API from 1.36 on; absent means 0).
pub fn class_value(c: &PriorityClass) -> i32 {
    k8s_openapi::k8s_if_le_1_35! { let value = c.value; }
    k8s_openapi::k8s_if_ge_1_36! { let value = c.value.unwrap_or(0); }
    value
}

/// The two classes every cluster has.
pub fn system_priority_class(name: &str) -> Option<PriorityClass> {
    let value: i32 = match name {
        "system-node-critical" => 2_000_001_000,
        "system-cluster-critical" => 2_000_000_000,
        _ => return None,
    };
    let mut class = PriorityClass {
        metadata: crate::k8s::apimachinery::pkg::apis::meta::v1::ObjectMeta {
            name: Some(name.into()),
            ..Default::default()
        },
        preemption_policy: Some("PreemptLowerPriority".into()),
        ..Default::default()
    };
    k8s_openapi::k8s_if_le_1_35! { class.value = value; }
    k8s_openapi::k8s_if_ge_1_36! { class.value = Some(value); }
    Some(class)
}

/// Sets `priority` and `preemptionPolicy` from `class` (the looked-up
/// `spec.priorityClassName`; with no name, the global default class if any, else 0 and
/// `PreemptLowerPriority`). A pod naming a missing class, or carrying its own different
/// values, is refused.
pub fn admit_priority(pod: &mut Pod, class: Option<&PriorityClass>) -> Result<(), Rejection> {
    let spec = pod.spec.get_or_insert_with(Default::default);
    let named = spec.priority_class_name.clone().filter(|n| !n.is_empty());
    let (priority, policy) = match (&named, class) {
        (Some(name), None) => {
            return Err(Rejection(format!(
                "no PriorityClass with name {name} was found"
            )));
        }
        (_, Some(c)) => {
            if named.is_none() {
                spec.priority_class_name = c.metadata.name.clone();
            }
            (
                class_value(c),
                c.preemption_policy
                    .clone()
                    .unwrap_or_else(|| "PreemptLowerPriority".into()),
            )
        }
        (None, None) => (0, "PreemptLowerPriority".to_owned()),
    };
    if let Some(p) = spec.priority.filter(|p| *p != priority) {
        return Err(Rejection(format!(
            "the integer value of priority ({p}) must not be provided in pod spec; priority admission controller computed {priority} from the given PriorityClass name"
        )));
    }
    if let Some(p) = spec.preemption_policy.as_ref().filter(|p| **p != policy) {
        return Err(Rejection(format!(
            "the string value of PreemptionPolicy ({p}) must not be provided in pod spec; priority admission controller computed {policy} from the given PriorityClass name"
        )));
    }
    spec.priority = Some(priority);
    spec.preemption_policy = Some(policy);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(spec: serde_json::Value) -> Pod {
        serde_json::from_value(json!({"metadata":{"name":"p"},"spec":spec})).unwrap()
    }

    #[test]
    fn default_tolerations() {
        let cases = [
            (
                json!({"containers":[]}),
                json!([{"key":"node.kubernetes.io/not-ready","operator":"Exists","effect":"NoExecute","tolerationSeconds":300},
                       {"key":"node.kubernetes.io/unreachable","operator":"Exists","effect":"NoExecute","tolerationSeconds":300}]),
            ),
            (
                json!({"containers":[],"tolerations":[{"operator":"Exists"}]}),
                json!([{"operator":"Exists"}]),
            ),
            (
                json!({"containers":[],"tolerations":[{"key":"node.kubernetes.io/not-ready","operator":"Exists","effect":"NoExecute"}]}),
                json!([{"key":"node.kubernetes.io/not-ready","operator":"Exists","effect":"NoExecute"},
                       {"key":"node.kubernetes.io/unreachable","operator":"Exists","effect":"NoExecute","tolerationSeconds":300}]),
            ),
        ];
        for (spec, want) in cases {
            let mut p = pod(spec);
            default_toleration_seconds(&mut p);
            assert_eq!(
                serde_json::to_value(p.spec.unwrap().tolerations.unwrap()).unwrap(),
                want
            );
        }
    }

    #[test]
    fn priority() {
        let mut p = pod(json!({"containers":[]}));
        admit_priority(&mut p, None).unwrap();
        let spec = p.spec.as_ref().unwrap();
        assert_eq!(
            (spec.priority, spec.preemption_policy.as_deref()),
            (Some(0), Some("PreemptLowerPriority"))
        );

        let mut p = pod(json!({"containers":[],"priorityClassName":"system-node-critical"}));
        admit_priority(
            &mut p,
            system_priority_class("system-node-critical").as_ref(),
        )
        .unwrap();
        assert_eq!(p.spec.as_ref().unwrap().priority, Some(2_000_001_000));

        let mut p = pod(json!({"containers":[],"priorityClassName":"high"}));
        assert_eq!(
            admit_priority(&mut p, None).unwrap_err().0,
            "no PriorityClass with name high was found"
        );

        let mut p = pod(json!({"containers":[],"priority":5}));
        assert_eq!(
            admit_priority(&mut p, None).unwrap_err().0,
            "the integer value of priority (5) must not be provided in pod spec; priority admission controller computed 0 from the given PriorityClass name"
        );
    }
}

//! The `RuntimeClass` admission plugin (pods, create only): copies the class's pod overhead
//! into `spec.overhead`, merges its `scheduling.nodeSelector` into the pod's (a conflicting
//! value is refused) and its `scheduling.tolerations` into the pod's.
//!
//! **A class that does not exist.** Upstream refuses such a pod
//! (`pod rejected: RuntimeClass "x" not found`, see [`not_found`]). nodelet follows its seed
//! document instead: the pod is accepted (the caller passes `class: None`), nothing is merged,
//! and the kubelet fails the pod (phase `Failed`, a `FailedCreatePodSandBox` event naming
//! the class). [`not_found`] exists for a server configured to behave as upstream.

use std::collections::BTreeMap;

use super::Rejection;
use super::tolerations::merge_tolerations;
use crate::k8s::api::core::v1::Pod;
use crate::k8s::api::node::v1::RuntimeClass;
use crate::quantity::resource_lists_equal;

pub const OVERHEAD_MISMATCH: &str =
    "pod rejected: Pod's Overhead doesn't match RuntimeClass's defined Overhead";
pub const OVERHEAD_WITHOUT_CLASS: &str =
    "pod rejected: Pod Overhead set without corresponding RuntimeClass defined Overhead";

/// Upstream's refusal of a pod naming a missing class.
pub fn not_found(class_name: &str) -> Rejection {
    Rejection(format!(
        "pod rejected: RuntimeClass {} not found",
        crate::field_errors::go_quote(class_name)
    ))
}

/// The mutating half. `class` is the RuntimeClass the pod names, if it names one that exists.
pub fn admit(pod: &mut Pod, class: Option<&RuntimeClass>) -> Result<(), Rejection> {
    let Some(class) = class else { return Ok(()) };
    let spec = pod.spec.get_or_insert_with(Default::default);
    if let Some(overhead) = &class.overhead {
        let fixed = overhead.pod_fixed.clone().unwrap_or_default();
        let current = spec.overhead.clone().unwrap_or_default();
        if !current.is_empty() && !resource_lists_equal(&current, &fixed) {
            return Err(Rejection(OVERHEAD_MISMATCH.into()));
        }
        spec.overhead = overhead.pod_fixed.clone();
    }
    let Some(scheduling) = &class.scheduling else {
        return Ok(());
    };
    let mut selector = spec.node_selector.clone();
    if let Some(rc_selector) = &scheduling.node_selector {
        match selector.as_mut() {
            None => selector = Some(rc_selector.clone()),
            Some(pod_selector) => {
                for (k, rc_value) in rc_selector {
                    if let Some(pod_value) = pod_selector.get(k)
                        && pod_value != rc_value
                    {
                        return Err(Rejection(format!(
                            "conflict: runtimeClass.scheduling.nodeSelector[{k}] = {rc_value}; pod.spec.nodeSelector[{k}] = {pod_value}"
                        )));
                    }
                    pod_selector.insert(k.clone(), rc_value.clone());
                }
            }
        }
    }
    let merged = merge_tolerations(
        spec.tolerations.as_deref().unwrap_or_default(),
        scheduling.tolerations.as_deref().unwrap_or_default(),
    );
    spec.node_selector = selector;
    spec.tolerations = (!merged.is_empty()).then_some(merged);
    Ok(())
}

/// The validating half: a pod's overhead must be exactly its class's, and a pod without a
/// class with overhead may not carry one.
pub fn validate(pod: &Pod, class: Option<&RuntimeClass>) -> Result<(), Rejection> {
    let overhead: BTreeMap<_, _> = pod
        .spec
        .as_ref()
        .and_then(|s| s.overhead.clone())
        .unwrap_or_default();
    match class.and_then(|c| c.overhead.as_ref()) {
        Some(o) => {
            if !resource_lists_equal(&o.pod_fixed.clone().unwrap_or_default(), &overhead) {
                return Err(Rejection(OVERHEAD_MISMATCH.into()));
            }
        }
        None => {
            if pod.spec.as_ref().is_some_and(|s| s.overhead.is_some()) {
                return Err(Rejection(OVERHEAD_WITHOUT_CLASS.into()));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(spec: serde_json::Value) -> Pod {
        serde_json::from_value(json!({"metadata":{"name":"p"},"spec":spec})).unwrap()
    }
    fn rc(v: serde_json::Value) -> RuntimeClass {
        serde_json::from_value(v).unwrap()
    }

    /// (name, pod spec, class, spec after admission or the rejection)
    type Case<'a> = (
        &'a str,
        serde_json::Value,
        Option<&'a RuntimeClass>,
        Result<serde_json::Value, &'a str>,
    );

    #[test]
    fn admission_cases() {
        let overhead_rc = rc(
            json!({"metadata":{"name":"k"},"handler":"kata","overhead":{"podFixed":{"cpu":"10m","memory":"1Mi"}}}),
        );
        let sched_rc = rc(
            json!({"metadata":{"name":"s"},"handler":"runc","scheduling":{
            "nodeSelector":{"foo":"bar","fizz":"buzz"},
            "tolerations":[{"key":"foo","operator":"Equal","value":"bar","effect":"NoSchedule"}]}}),
        );
        let conflict_rc = rc(
            json!({"metadata":{"name":"c"},"handler":"runc","scheduling":{"nodeSelector":{"foo-x":"conflict"}}}),
        );
        let plain_rc = rc(json!({"metadata":{"name":"myclass"},"handler":"myconfiguration"}));
        let cases: Vec<Case<'_>> = vec![
            (
                "no class",
                json!({"containers":[]}),
                None,
                Ok(json!({"containers":[]})),
            ),
            (
                "class without extras",
                json!({"containers":[],"runtimeClassName":"myclass"}),
                Some(&plain_rc),
                Ok(json!({"containers":[],"runtimeClassName":"myclass"})),
            ),
            (
                "overhead is set",
                json!({"containers":[]}),
                Some(&overhead_rc),
                Ok(json!({"containers":[],"overhead":{"cpu":"10m","memory":"1Mi"}})),
            ),
            (
                "equal overhead is fine",
                json!({"containers":[],"overhead":{"cpu":"0.01","memory":"1024Ki"}}),
                Some(&overhead_rc),
                Ok(json!({"containers":[],"overhead":{"cpu":"10m","memory":"1Mi"}})),
            ),
            (
                "different overhead",
                json!({"containers":[],"overhead":{"cpu":"20m"}}),
                Some(&overhead_rc),
                Err(OVERHEAD_MISMATCH),
            ),
            (
                "selector and tolerations merged",
                json!({"containers":[],"nodeSelector":{"foo":"bar"}}),
                Some(&sched_rc),
                Ok(
                    json!({"containers":[],"nodeSelector":{"foo":"bar","fizz":"buzz"},
                          "tolerations":[{"key":"foo","operator":"Equal","value":"bar","effect":"NoSchedule"}]}),
                ),
            ),
            (
                "pod without selector takes the class's",
                json!({"containers":[],"tolerations":[{"operator":"Exists"}]}),
                Some(&sched_rc),
                Ok(
                    json!({"containers":[],"nodeSelector":{"foo":"bar","fizz":"buzz"},"tolerations":[{"operator":"Exists"}]}),
                ),
            ),
            (
                "conflicting selector",
                json!({"containers":[],"nodeSelector":{"foo-x":"bar"}}),
                Some(&conflict_rc),
                Err(
                    "conflict: runtimeClass.scheduling.nodeSelector[foo-x] = conflict; pod.spec.nodeSelector[foo-x] = bar",
                ),
            ),
        ];
        for (name, spec, class, want) in cases {
            let mut p = pod(spec);
            let got = admit(&mut p, class)
                .map(|()| serde_json::to_value(p.spec.as_ref().unwrap()).unwrap());
            match want {
                Ok(v) => assert_eq!(got.unwrap(), v, "{name}"),
                Err(msg) => assert_eq!(got.unwrap_err().0, msg, "{name}"),
            }
        }
    }

    #[test]
    fn validation_and_messages() {
        let overhead_rc = rc(
            json!({"metadata":{"name":"k"},"handler":"kata","overhead":{"podFixed":{"cpu":"10m"}}}),
        );
        assert!(
            validate(
                &pod(json!({"containers":[],"overhead":{"cpu":"10m"}})),
                Some(&overhead_rc)
            )
            .is_ok()
        );
        assert_eq!(
            validate(
                &pod(json!({"containers":[],"overhead":{"cpu":"1"}})),
                Some(&overhead_rc)
            )
            .unwrap_err()
            .0,
            OVERHEAD_MISMATCH
        );
        assert_eq!(
            validate(&pod(json!({"containers":[],"overhead":{"cpu":"1"}})), None)
                .unwrap_err()
                .0,
            OVERHEAD_WITHOUT_CLASS
        );
        assert!(validate(&pod(json!({"containers":[]})), None).is_ok());
        let status = not_found("nosuch").to_status("", "pods", "test-pod");
        assert_eq!(
            status.message.as_deref(),
            Some("pods \"test-pod\" is forbidden: pod rejected: RuntimeClass \"nosuch\" not found")
        );
        assert_eq!(status.code, Some(403));
    }
}

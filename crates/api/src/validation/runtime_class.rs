//! RuntimeClass validation (`node.k8s.io/v1`): name, handler, overhead, scheduling.

use std::collections::BTreeSet;

use super::meta::{validate_labels, validate_object_meta, validate_object_meta_update};
use super::resources::validate_overhead;
use super::tolerations::{go_toleration, validate_tolerations};
use crate::field_errors::{BadValue, FieldError, FieldErrors, Path};
use crate::k8s::api::node::v1::RuntimeClass;
use crate::names;

/// Create: the name is a DNS subdomain, `handler` a DNS label (an empty handler fails the
/// label rule: upstream has no separate "Required"), `overhead.podFixed` valid quantities,
/// `scheduling.nodeSelector` valid labels and `scheduling.tolerations` valid and unique by
/// (key, operator, value, effect).
pub fn validate_runtime_class(rc: &RuntimeClass) -> FieldErrors {
    let mut errs = validate_object_meta(
        &rc.metadata,
        false,
        names::name_is_dns_subdomain,
        &Path::new("metadata"),
    );
    for m in names::name_is_dns_label(&rc.handler, false) {
        errs.push(FieldError::invalid(
            &Path::new("handler"),
            rc.handler.as_str(),
            m,
        ));
    }
    if let Some(fixed) = rc.overhead.as_ref().and_then(|o| o.pod_fixed.as_ref()) {
        errs.extend(validate_overhead(fixed, &Path::new("overhead")));
    }
    if let Some(s) = &rc.scheduling {
        let sp = Path::new("scheduling");
        errs.extend(validate_labels(
            s.node_selector.as_ref(),
            &sp.child("nodeSelector"),
        ));
        let tolerations = s.tolerations.as_deref().unwrap_or_default();
        let tp = sp.child("tolerations");
        errs.extend(validate_tolerations(tolerations, &tp));
        let mut seen = BTreeSet::new();
        for (i, t) in tolerations.iter().enumerate() {
            let key = (
                t.key.clone(),
                t.operator.clone(),
                t.value.clone(),
                t.effect.clone(),
            );
            if !seen.insert(key) {
                errs.push(FieldError::duplicate(
                    &tp.index(i),
                    BadValue::Raw(go_toleration(t)),
                ));
            }
        }
    }
    errs
}

/// Update: metadata rules, and `handler` is immutable.
pub fn validate_runtime_class_update(new: &RuntimeClass, old: &RuntimeClass) -> FieldErrors {
    let mut errs =
        validate_object_meta_update(&new.metadata, &old.metadata, &Path::new("metadata"));
    if new.handler != old.handler {
        errs.push(FieldError::invalid(
            &Path::new("handler"),
            new.handler.as_str(),
            super::meta::FIELD_IMMUTABLE_MSG,
        ));
    }
    errs.extend(validate_runtime_class(new));
    errs
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const LABEL_ERR: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";

    fn rc(v: serde_json::Value) -> RuntimeClass {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn runtime_class_rules() {
        let cases = [
            (json!({"metadata":{"name":"myclass"},"handler":"myconfiguration"}), vec![]),
            (
                json!({"metadata":{"name":"k"},"handler":"kata","overhead":{"podFixed":{"cpu":"250m","memory":"120Mi"}},
                       "scheduling":{"nodeSelector":{"runtime":"kata"},"tolerations":[{"key":"k","operator":"Exists","effect":"NoSchedule"}]}}),
                vec![],
            ),
            (json!({"metadata":{"name":"x"},"handler":""}), vec![format!("handler: Invalid value: \"\": {LABEL_ERR}")]),
            (json!({"metadata":{"name":"x"},"handler":"My_Handler"}), vec![format!("handler: Invalid value: \"My_Handler\": {LABEL_ERR}")]),
            (json!({"metadata":{"name":"x"},"handler":"a.b"}), vec!["handler: Invalid value: \"a.b\": must not contain dots".to_owned()]),
            (
                json!({"metadata":{"name":"x"},"handler":"h","overhead":{"podFixed":{"cpu":"-1"}}}),
                vec!["overhead.limits[cpu]: Invalid value: \"-1\": must be greater than or equal to 0".to_owned()],
            ),
            (
                json!({"metadata":{"name":"x"},"handler":"h","scheduling":{"nodeSelector":{"a b":"c"}}}),
                vec!["scheduling.nodeSelector: Invalid value: \"a b\": name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')".to_owned()],
            ),
            (
                json!({"metadata":{"name":"x"},"handler":"h","scheduling":{"tolerations":[{"key":"a","operator":"Exists"},{"key":"a","operator":"Exists"}]}}),
                vec!["scheduling.tolerations[1]: Duplicate value: core.Toleration{Key:\"a\", Operator:\"Exists\", Value:\"\", Effect:\"\", TolerationSeconds:(*int64)(nil)}".to_owned()],
            ),
            (json!({"metadata":{"name":"x","namespace":"default"},"handler":"h"}), vec!["metadata.namespace: Forbidden: not allowed on this type".to_owned()]),
        ];
        for (input, want) in cases {
            let got: Vec<String> = validate_runtime_class(&rc(input.clone())).messages();
            assert_eq!(got, want, "{input}");
        }
    }

    #[test]
    fn handler_is_immutable() {
        let old = rc(json!({"metadata":{"name":"x","resourceVersion":"1"},"handler":"runc"}));
        let mut new = old.clone();
        assert!(validate_runtime_class_update(&new, &old).is_empty());
        new.handler = "crun".into();
        let errs = validate_runtime_class_update(&new, &old);
        assert_eq!(
            errs.invalid_message("RuntimeClass.node.k8s.io", "x"),
            "RuntimeClass.node.k8s.io \"x\" is invalid: handler: Invalid value: \"crun\": field is immutable"
        );
    }
}

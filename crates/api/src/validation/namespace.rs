//! Namespace validation: a DNS-label name, cluster-scoped, valid `spec.finalizers`.

use super::meta::{validate_finalizer_name, validate_object_meta, validate_object_meta_update};
use crate::field_errors::{FieldErrors, Path};
use crate::k8s::api::core::v1::Namespace;
use crate::names;

pub fn validate_namespace(ns: &Namespace) -> FieldErrors {
    let mut errs = validate_object_meta(
        &ns.metadata,
        false,
        names::name_is_dns_label,
        &Path::new("metadata"),
    );
    let fp = Path::new("spec").child("finalizers");
    for f in ns.spec.iter().flat_map(|s| s.finalizers.iter().flatten()) {
        errs.extend(validate_finalizer_name(f, &fp));
    }
    errs
}

/// Update: metadata rules (the registry keeps the stored spec and status on a plain update).
pub fn validate_namespace_update(new: &Namespace, old: &Namespace) -> FieldErrors {
    let mut errs =
        validate_object_meta_update(&new.metadata, &old.metadata, &Path::new("metadata"));
    errs.extend(validate_namespace(new));
    errs
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn namespace_rules() {
        let cases = [
            (
                json!({"metadata":{"name":"awesomeapps"},"spec":{"finalizers":["kubernetes"]}}),
                vec![],
            ),
            (
                json!({"metadata":{"name":"a.b"}}),
                vec!["metadata.name: Invalid value: \"a.b\": must not contain dots"],
            ),
            (
                json!({"metadata":{"name":"x"},"spec":{"finalizers":["custom"]}}),
                vec![
                    "spec.finalizers: Invalid value: \"custom\": name is neither a standard finalizer name nor is it fully qualified",
                ],
            ),
        ];
        for (input, want) in cases {
            let ns: Namespace = serde_json::from_value(input.clone()).unwrap();
            let got: Vec<String> = validate_namespace(&ns).messages();
            assert_eq!(got, want, "{input}");
        }
    }
}

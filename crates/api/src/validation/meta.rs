//! `metadata` validation shared by every kind (apimachinery's `ValidateObjectMeta` and
//! `ValidateObjectMetaUpdate`), and label, annotation and immutability helpers.

use std::collections::BTreeMap;

use crate::field_errors::{BadValue, FieldError, FieldErrors, Path, go_quote};
use crate::k8s::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use crate::names;

/// A name rule: `(name, is_generate_name_prefix) -> problems`.
pub type NameFn = fn(&str, bool) -> Vec<String>;

/// Upstream's limit on all annotations of an object together.
pub const TOTAL_ANNOTATION_SIZE_LIMIT: usize = 256 * 1024;

/// `must be greater than or equal to 0`.
pub const IS_NEGATIVE_MSG: &str = "must be greater than or equal to 0";
/// `field is immutable`.
pub const FIELD_IMMUTABLE_MSG: &str = "field is immutable";

/// Label keys must be qualified names and values valid label values; each problem is an
/// `Invalid` on the labels path with the offending key or value.
pub fn validate_labels(labels: Option<&BTreeMap<String, String>>, path: &Path) -> FieldErrors {
    let mut errs = FieldErrors::new();
    for (k, v) in labels.into_iter().flatten() {
        errs.extend(validate_label_name(k, path));
        for msg in names::is_valid_label_value(v) {
            errs.push(FieldError::invalid(path, v, msg));
        }
    }
    errs
}

/// A label key (also toleration and node-selector keys).
pub fn validate_label_name(key: &str, path: &Path) -> FieldErrors {
    names::is_qualified_name(key)
        .into_iter()
        .map(|msg| FieldError::invalid(path, key, msg))
        .collect::<Vec<_>>()
        .into()
}

/// A qualified name anywhere (readiness gates, scheduling gates, downward API subscripts).
pub fn validate_qualified_name(value: &str, path: &Path) -> FieldErrors {
    names::is_qualified_name(value)
        .into_iter()
        .map(|msg| FieldError::invalid(path, value, msg))
        .collect::<Vec<_>>()
        .into()
}

/// Annotation keys are qualified names (checked lower-cased) and all annotations together
/// stay under 256 KiB.
pub fn validate_annotations(
    annotations: Option<&BTreeMap<String, String>>,
    path: &Path,
) -> FieldErrors {
    let mut errs = FieldErrors::new();
    let mut total = 0;
    for (k, v) in annotations.into_iter().flatten() {
        for msg in names::is_qualified_name(&k.to_lowercase()) {
            errs.push(FieldError::invalid(path, k, msg));
        }
        total += k.len() + v.len();
    }
    if total > TOTAL_ANNOTATION_SIZE_LIMIT {
        errs.push(FieldError::too_long(path, TOTAL_ANNOTATION_SIZE_LIMIT));
    }
    errs
}

/// A label-like value that must be non-negative.
pub fn validate_nonnegative(value: i64, path: &Path) -> FieldErrors {
    if value < 0 {
        vec![FieldError::invalid(path, value, IS_NEGATIVE_MSG)].into()
    } else {
        FieldErrors::new()
    }
}

const STANDARD_FINALIZERS: [&str; 3] = ["kubernetes", "orphan", "foregroundDeletion"];

/// A finalizer: a qualified name, and if unprefixed one of the standard ones.
pub fn validate_finalizer_name(name: &str, path: &Path) -> FieldErrors {
    let mut errs = validate_qualified_name(name, path);
    if errs.is_empty() && !name.contains('/') && !STANDARD_FINALIZERS.contains(&name) {
        errs.push(FieldError::invalid(
            path,
            name,
            "name is neither a standard finalizer name nor is it fully qualified",
        ));
    }
    errs
}

fn validate_finalizers(finalizers: Option<&Vec<String>>, path: &Path) -> FieldErrors {
    let mut errs = FieldErrors::new();
    let list = finalizers.map(Vec::as_slice).unwrap_or_default();
    for f in list {
        errs.extend(validate_qualified_name(f, path));
    }
    if list.iter().any(|f| f == "orphan") && list.iter().any(|f| f == "foregroundDeletion") {
        errs.push(FieldError::invalid(
            path,
            BadValue::Raw(go_string_slice(list)),
            "finalizer orphan and deleteDependents cannot be both set",
        ));
    }
    for (i, f) in list.iter().enumerate() {
        errs.extend(validate_finalizer_name(f, &path.index(i)));
    }
    errs
}

/// Go's `%#v` of a `[]string`.
pub fn go_string_slice(values: &[String]) -> String {
    let quoted: Vec<String> = values.iter().map(|v| go_quote(v)).collect();
    format!("[]string{{{}}}", quoted.join(", "))
}

/// `ValidateObjectMeta`: name (or generateName), namespace presence, generation, labels,
/// annotations, finalizers.
pub fn validate_object_meta(
    meta: &ObjectMeta,
    namespaced: bool,
    name_fn: NameFn,
    path: &Path,
) -> FieldErrors {
    let mut errs = FieldErrors::new();
    if let Some(g) = meta.generate_name.as_deref().filter(|g| !g.is_empty()) {
        for msg in name_fn(g, true) {
            errs.push(FieldError::invalid(&path.child("generateName"), g, msg));
        }
    }
    match meta.name.as_deref().filter(|n| !n.is_empty()) {
        None => errs.push(FieldError::required(
            &path.child("name"),
            "name or generateName is required",
        )),
        Some(name) => {
            for msg in name_fn(name, false) {
                errs.push(FieldError::invalid(&path.child("name"), name, msg));
            }
        }
    }
    let namespace = meta.namespace.as_deref().unwrap_or("");
    if namespaced {
        if namespace.is_empty() {
            errs.push(FieldError::required(&path.child("namespace"), ""));
        } else {
            for msg in names::name_is_dns_label(namespace, false) {
                errs.push(FieldError::invalid(
                    &path.child("namespace"),
                    namespace,
                    msg,
                ));
            }
        }
    } else if !namespace.is_empty() {
        errs.push(FieldError::forbidden(
            &path.child("namespace"),
            "not allowed on this type",
        ));
    }
    errs.extend(validate_nonnegative(
        meta.generation.unwrap_or(0),
        &path.child("generation"),
    ));
    errs.extend(validate_labels(meta.labels.as_ref(), &path.child("labels")));
    errs.extend(validate_annotations(
        meta.annotations.as_ref(),
        &path.child("annotations"),
    ));
    errs.extend(validate_finalizers(
        meta.finalizers.as_ref(),
        &path.child("finalizers"),
    ));
    errs
}

/// `newVal` must equal `oldVal`: `Invalid value: "<new>": field is immutable`.
pub fn validate_immutable_str(new: Option<&str>, old: Option<&str>, path: &Path) -> FieldErrors {
    let (n, o) = (new.unwrap_or(""), old.unwrap_or(""));
    if n == o {
        FieldErrors::new()
    } else {
        vec![FieldError::invalid(path, n, FIELD_IMMUTABLE_MSG)].into()
    }
}

/// `ValidateObjectMetaUpdate`. The caller sets `resourceVersion` on unconditional updates
/// before validating (as upstream's registry does), so a missing one is an error here.
pub fn validate_object_meta_update(new: &ObjectMeta, old: &ObjectMeta, path: &Path) -> FieldErrors {
    let mut errs = FieldErrors::new();
    if old.deletion_timestamp.is_some() {
        let old_f = old.finalizers.clone().unwrap_or_default();
        let extra: Vec<String> = new
            .finalizers
            .iter()
            .flatten()
            .filter(|f| !old_f.contains(f))
            .cloned()
            .collect();
        if !extra.is_empty() {
            let mut sorted = extra;
            sorted.sort();
            errs.push(FieldError::forbidden(
                &path.child("finalizers"),
                format!("no new finalizers can be added if the object is being deleted, found new finalizers {}", go_string_slice(&sorted)),
            ));
        }
    }
    let rv = new.resource_version.as_deref().unwrap_or("");
    if rv.is_empty() {
        errs.push(FieldError::invalid(
            &path.child("resourceVersion"),
            rv,
            "must be specified for an update",
        ));
    }
    let (new_gen, old_gen) = (new.generation.unwrap_or(0), old.generation.unwrap_or(0));
    if new_gen < old_gen {
        errs.push(FieldError::invalid(
            &path.child("generation"),
            new_gen,
            "must not be decremented",
        ));
    }
    errs.extend(validate_immutable_str(
        new.name.as_deref(),
        old.name.as_deref(),
        &path.child("name"),
    ));
    errs.extend(validate_immutable_str(
        new.namespace.as_deref(),
        old.namespace.as_deref(),
        &path.child("namespace"),
    ));
    errs.extend(validate_immutable_str(
        new.uid.as_deref(),
        old.uid.as_deref(),
        &path.child("uid"),
    ));
    errs.extend(validate_labels(new.labels.as_ref(), &path.child("labels")));
    errs.extend(validate_annotations(
        new.annotations.as_ref(),
        &path.child("annotations"),
    ));
    for (i, f) in new.finalizers.iter().flatten().enumerate() {
        errs.extend(validate_finalizer_name(
            f,
            &path.child("finalizers").index(i),
        ));
    }
    errs
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(name: &str, ns: Option<&str>) -> ObjectMeta {
        ObjectMeta {
            name: Some(name.into()),
            namespace: ns.map(Into::into),
            ..Default::default()
        }
    }

    #[test]
    fn object_meta_rules() {
        let sub = names::name_is_dns_subdomain as NameFn;
        let cases: Vec<(ObjectMeta, bool, Vec<&str>)> = vec![
            (meta("web", Some("default")), true, vec![]),
            (
                meta("", Some("default")),
                true,
                vec!["metadata.name: Required value: name or generateName is required"],
            ),
            (
                meta("Foo", Some("default")),
                true,
                vec![
                    "metadata.name: Invalid value: \"Foo\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')",
                ],
            ),
            (
                meta("web", None),
                true,
                vec!["metadata.namespace: Required value"],
            ),
            (
                meta("rc", Some("default")),
                false,
                vec!["metadata.namespace: Forbidden: not allowed on this type"],
            ),
            (
                ObjectMeta {
                    generate_name: Some("web-".into()),
                    name: Some("web-x1".into()),
                    namespace: Some("d".into()),
                    ..Default::default()
                },
                true,
                vec![],
            ),
            (
                ObjectMeta {
                    name: Some("a".into()),
                    namespace: Some("d".into()),
                    labels: Some([("app".to_string(), "-bad".to_string())].into()),
                    ..Default::default()
                },
                true,
                vec![
                    "metadata.labels: Invalid value: \"-bad\": a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')",
                ],
            ),
            (
                ObjectMeta {
                    name: Some("a".into()),
                    namespace: Some("d".into()),
                    finalizers: Some(vec!["bogus".into()]),
                    ..Default::default()
                },
                true,
                vec![
                    "metadata.finalizers[0]: Invalid value: \"bogus\": name is neither a standard finalizer name nor is it fully qualified",
                ],
            ),
        ];
        for (m, namespaced, want) in cases {
            let got: Vec<String> =
                validate_object_meta(&m, namespaced, sub, &Path::new("metadata")).messages();
            assert_eq!(got, want, "{m:?}");
        }
    }

    #[test]
    fn annotations_have_a_total_size_limit() {
        let big: BTreeMap<String, String> =
            [("a".to_string(), "x".repeat(TOTAL_ANNOTATION_SIZE_LIMIT))].into();
        let errs = validate_annotations(Some(&big), &Path::new("metadata").child("annotations"));
        assert_eq!(
            errs.aggregate().unwrap(),
            "metadata.annotations: Too long: may not be more than 262144 bytes"
        );
        let bad_key: BTreeMap<String, String> = [("a b".to_string(), String::new())].into();
        assert_eq!(
            validate_annotations(Some(&bad_key), &Path::new("a")).len(),
            1
        );
        let upper: BTreeMap<String, String> =
            [("Example.com/Key".to_string(), String::new())].into();
        assert!(validate_annotations(Some(&upper), &Path::new("a")).is_empty());
    }

    #[test]
    fn meta_update_rules() {
        let mut old = meta("web", Some("default"));
        old.resource_version = Some("5".into());
        old.uid = Some("u1".into());
        let mut new = old.clone();
        assert!(validate_object_meta_update(&new, &old, &Path::new("metadata")).is_empty());
        new.name = Some("other".into());
        new.resource_version = None;
        let got: Vec<String> =
            validate_object_meta_update(&new, &old, &Path::new("metadata")).messages();
        assert_eq!(
            got,
            vec![
                "metadata.resourceVersion: Invalid value: \"\": must be specified for an update",
                "metadata.name: Invalid value: \"other\": field is immutable",
            ]
        );
    }
}

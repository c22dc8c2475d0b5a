//! Toleration validation (pods and RuntimeClass scheduling), with upstream's messages.

use super::meta::validate_label_name;
use crate::field_errors::{BadValue, FieldError, FieldErrors, Path, go_quote};
use crate::k8s::api::core::v1::Toleration;
use crate::names;

/// Go's `%#v` of the internal `core.Toleration`, as upstream prints it in `Duplicate` and
/// `Invalid` errors. A non-nil `tolerationSeconds` prints an address upstream; here `(*int64)(N)`.
pub fn go_toleration(t: &Toleration) -> String {
    let secs = match t.toleration_seconds {
        Some(n) => format!("(*int64)({n})"),
        None => "(*int64)(nil)".to_owned(),
    };
    format!(
        "core.Toleration{{Key:{}, Operator:{}, Value:{}, Effect:{}, TolerationSeconds:{secs}}}",
        go_quote(t.key.as_deref().unwrap_or("")),
        go_quote(t.operator.as_deref().unwrap_or("")),
        go_quote(t.value.as_deref().unwrap_or("")),
        go_quote(t.effect.as_deref().unwrap_or("")),
    )
}

/// `ValidateTolerations`.
pub fn validate_tolerations(tolerations: &[Toleration], path: &Path) -> FieldErrors {
    let mut errs = FieldErrors::new();
    for (i, t) in tolerations.iter().enumerate() {
        let p = path.index(i);
        let key = t.key.as_deref().unwrap_or("");
        let op = t.operator.as_deref().unwrap_or("");
        let value = t.value.as_deref().unwrap_or("");
        let effect = t.effect.as_deref().unwrap_or("");
        if !key.is_empty() {
            errs.extend(validate_label_name(key, &p.child("key")));
        }
        if key.is_empty() && op != "Exists" {
            errs.push(FieldError::invalid(
                &p.child("operator"),
                op,
                "operator must be Exists when `key` is empty, which means \"match all values and all keys\"",
            ));
        }
        if t.toleration_seconds.is_some() && effect != "NoExecute" {
            errs.push(FieldError::invalid(
                &p.child("effect"),
                effect,
                "effect must be 'NoExecute' when `tolerationSeconds` is set",
            ));
        }
        match op {
            "Equal" | "" => {
                let v = names::is_valid_label_value(value);
                if !v.is_empty() {
                    errs.push(FieldError::invalid(
                        &p.child("operator"),
                        value,
                        v.join(";"),
                    ));
                }
            }
            "Exists" => {
                if !value.is_empty() {
                    errs.push(FieldError::invalid(
                        &p.child("operator"),
                        BadValue::Raw(go_toleration(t)),
                        "value must be empty when `operator` is 'Exists'",
                    ));
                }
            }
            other => errs.push(FieldError::not_supported(
                &p.child("operator"),
                other,
                &["Equal", "Exists"],
            )),
        }
        if !effect.is_empty() {
            errs.extend(validate_taint_effect(effect, &p.child("effect")));
        }
    }
    errs
}

/// `NoSchedule`, `PreferNoSchedule` or `NoExecute`.
pub fn validate_taint_effect(effect: &str, path: &Path) -> FieldErrors {
    match effect {
        "NoSchedule" | "PreferNoSchedule" | "NoExecute" => FieldErrors::new(),
        other => vec![FieldError::not_supported(
            path,
            other,
            &["NoSchedule", "PreferNoSchedule", "NoExecute"],
        )]
        .into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(key: &str, op: &str, value: &str, effect: &str, secs: Option<i64>) -> Toleration {
        let s = |v: &str| (!v.is_empty()).then(|| v.to_owned());
        Toleration {
            key: s(key),
            operator: s(op),
            value: s(value),
            effect: s(effect),
            toleration_seconds: secs,
        }
    }

    #[test]
    fn toleration_rules() {
        let cases = [
            (
                t(
                    "node.kubernetes.io/not-ready",
                    "Exists",
                    "",
                    "NoExecute",
                    Some(300),
                ),
                vec![],
            ),
            (t("foo", "Equal", "bar", "NoSchedule", None), vec![]),
            (t("foo", "", "bar", "", None), vec![]),
            (t("", "Exists", "", "", None), vec![]),
            (
                t("", "Equal", "", "", None),
                vec![
                    "x[0].operator: Invalid value: \"Equal\": operator must be Exists when `key` is empty, which means \"match all values and all keys\"",
                ],
            ),
            (
                t("foo", "Exists", "", "NoSchedule", Some(5)),
                vec![
                    "x[0].effect: Invalid value: \"NoSchedule\": effect must be 'NoExecute' when `tolerationSeconds` is set",
                ],
            ),
            (
                t("foo", "Exists", "bar", "", None),
                vec![
                    "x[0].operator: Invalid value: core.Toleration{Key:\"foo\", Operator:\"Exists\", Value:\"bar\", Effect:\"\", TolerationSeconds:(*int64)(nil)}: value must be empty when `operator` is 'Exists'",
                ],
            ),
            (
                t("foo", "Gt", "1", "", None),
                vec![
                    "x[0].operator: Unsupported value: \"Gt\": supported values: \"Equal\", \"Exists\"",
                ],
            ),
            (
                t("foo", "Equal", "b", "Sometimes", None),
                vec![
                    "x[0].effect: Unsupported value: \"Sometimes\": supported values: \"NoSchedule\", \"PreferNoSchedule\", \"NoExecute\"",
                ],
            ),
        ];
        for (tol, want) in cases {
            let got: Vec<String> =
                validate_tolerations(std::slice::from_ref(&tol), &Path::new("x")).messages();
            assert_eq!(got, want, "{tol:?}");
        }
    }
}

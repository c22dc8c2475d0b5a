//! Server-side field validation (`fieldValidation=Strict|Warn|Ignore`, which kubectl ≥ 1.27
//! sends with create, apply and patch): which fields of a request body the API type does
//! not have.
//!
//! The API server decodes a body into the typed object; comparing the body with the typed
//! object re-encoded finds the members that were dropped. Upstream's texts: with `Strict`
//! the request fails with `<Kind> in version "<v>" cannot be handled as a <Kind>: strict
//! decoding error: unknown field "spec.x"` (400), with `Warn` each becomes a
//! `Warning: unknown field "spec.x"` header.

use serde_json::Value;

/// Paths (`spec.containers[0].imagex`) of members present in `body` but absent from
/// `decoded` (the typed object serialized back). `null` members are not reported.
pub fn unknown_fields(body: &Value, decoded: &Value) -> Vec<String> {
    let mut out = Vec::new();
    walk("", body, decoded, &mut out);
    out
}

fn walk(path: &str, body: &Value, decoded: &Value, out: &mut Vec<String>) {
    match (body, decoded) {
        (Value::Object(b), Value::Object(d)) => {
            for (k, v) in b {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                match d.get(k) {
                    Some(dv) => walk(&p, v, dv, out),
                    None if v.is_null() => {}
                    None => out.push(p),
                }
            }
        }
        (Value::Array(b), Value::Array(d)) => {
            for (i, (bv, dv)) in b.iter().zip(d).enumerate() {
                walk(&format!("{path}[{i}]"), bv, dv, out);
            }
        }
        _ => {}
    }
}

/// The text of one unknown field: `unknown field "spec.x"` (also the warning text).
pub fn unknown_field_message(path: &str) -> String {
    format!("unknown field {}", crate::field_errors::go_quote(path))
}

/// The 400 message for `fieldValidation=Strict`.
pub fn strict_decoding_message(kind: &str, api_version: &str, unknown: &[String]) -> String {
    let fields: Vec<String> = unknown.iter().map(|p| unknown_field_message(p)).collect();
    format!(
        "{kind} in version {} cannot be handled as a {kind}: strict decoding error: {}",
        crate::field_errors::go_quote(api_version),
        fields.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::k8s::api::core::v1::Pod;
    use serde_json::json;

    #[test]
    fn finds_fields_the_type_does_not_have() {
        let body = json!({
            "apiVersion":"v1","kind":"Pod",
            "metadata":{"name":"demo","creationTimestamp":null,"labelz":{"a":"b"}},
            "spec":{"containers":[{"name":"main","image":"busybox","imagex":"typo"}],"restartPolicy":"Never","bogus":1}
        });
        let pod: Pod = serde_json::from_value(body.clone()).unwrap();
        let decoded = serde_json::to_value(&pod).unwrap();
        let unknown = unknown_fields(&body, &decoded);
        assert_eq!(
            unknown,
            vec!["metadata.labelz", "spec.bogus", "spec.containers[0].imagex"]
        );
        assert_eq!(
            strict_decoding_message("Pod", "v1", &unknown),
            "Pod in version \"v1\" cannot be handled as a Pod: strict decoding error: unknown field \"metadata.labelz\", unknown field \"spec.bogus\", unknown field \"spec.containers[0].imagex\""
        );
        let clean = json!({"apiVersion":"v1","kind":"Pod","metadata":{"name":"d","labels":{}},"spec":{"containers":[{"name":"m","image":"x"}],"hostNetwork":false}});
        let pod: Pod = serde_json::from_value(clean.clone()).unwrap();
        assert!(unknown_fields(&clean, &serde_json::to_value(&pod).unwrap()).is_empty());
    }
}

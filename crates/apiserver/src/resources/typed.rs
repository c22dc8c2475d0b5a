//! Decoding bodies through the typed API (k8s-openapi), as the upstream server decodes into
//! its Go types: a field of the wrong type is a 400, and fields the type does not have are
//! dropped and reported (what `fieldValidation` decides about).

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{
    ConfigMap, Endpoints, Event, Namespace, Node, Pod, Secret, Service, ServiceAccount,
};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::events::v1::Event as EventV1;
use k8s_openapi::api::node::v1::RuntimeClass;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::{Kind, ResourceType, meta};

fn round_trip<T: DeserializeOwned + Serialize>(v: Value) -> Result<Value, String> {
    let typed: T = serde_json::from_value(v).map_err(|err| go_base64_error(&err.to_string()))?;
    serde_json::to_value(&typed).map_err(|err| err.to_string())
}

/// A bad base64 value (`Secret.data`) as Go's decoder words it
/// (`illegal base64 data at input byte 3`) rather than the Rust crate's `Invalid symbol 45,
/// offset 3.`; neither shows the value itself.
fn go_base64_error(message: &str) -> String {
    let offset = message
        .strip_prefix("Invalid symbol ")
        .or_else(|| message.strip_prefix("Invalid last symbol "))
        .and_then(|rest| rest.split_once(", offset "))
        .and_then(|(_, offset)| offset.trim_end_matches('.').parse::<usize>().ok());
    match offset {
        Some(byte) => format!("illegal base64 data at input byte {byte}"),
        None => message.to_owned(),
    }
}

/// Decodes `body` as `rt`'s type. Returns the normalised JSON (unknown fields gone) and the
/// paths of the unknown fields (`spec.foo`, `spec.containers[0].bar`).
pub fn decode(rt: &ResourceType, body: &Value) -> Result<(Value, Vec<String>), String> {
    let mut input = body.clone();
    // Type metadata is checked by the caller; set it so the typed decoder accepts the body.
    meta::set_type_meta(&mut input, &rt.api_version(), rt.kind);
    let out = match rt.id {
        Kind::Namespace => round_trip::<Namespace>(input.clone()),
        Kind::Pod => round_trip::<Pod>(input.clone()),
        Kind::Secret => round_trip::<Secret>(input.clone()),
        Kind::ServiceAccount => round_trip::<ServiceAccount>(input.clone()),
        Kind::Service => round_trip::<Service>(input.clone()),
        Kind::ConfigMap => round_trip::<ConfigMap>(input.clone()),
        Kind::Endpoints => round_trip::<Endpoints>(input.clone()),
        Kind::Node => round_trip::<Node>(input.clone()),
        Kind::Event => round_trip::<Event>(input.clone()),
        Kind::EventV1 => round_trip::<EventV1>(input.clone()),
        Kind::EndpointSlice => round_trip::<EndpointSlice>(input.clone()),
        Kind::Lease => round_trip::<Lease>(input.clone()),
        Kind::RuntimeClass => round_trip::<RuntimeClass>(input.clone()),
    }?;
    let mut unknown = Vec::new();
    unknown_fields(&input, &out, "", &mut unknown);
    Ok((out, unknown))
}

/// Fields present (and not null) in `input` but absent from the typed round trip `out`.
fn unknown_fields(input: &Value, out: &Value, path: &str, found: &mut Vec<String>) {
    match (input, out) {
        (Value::Object(a), Value::Object(b)) => {
            for (key, value) in a {
                let child = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                match b.get(key) {
                    Some(inner) => unknown_fields(value, inner, &child, found),
                    None if value.is_null() => {}
                    // Free-form maps (labels, data) keep every key, so anything missing from
                    // the round trip is a field the type does not have.
                    None => found.push(child),
                }
            }
        }
        (Value::Array(a), Value::Array(b)) => {
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                unknown_fields(x, y, &format!("{path}[{i}]"), found);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources;
    use serde_json::json;

    #[test]
    fn bad_base64_reads_as_upstream() {
        let body = json!({"metadata": {"name": "s"}, "data": {"password": "not-base64"}});
        let err = decode(resources::of(Kind::Secret), &body).unwrap_err();
        assert_eq!(err, "illegal base64 data at input byte 3");
    }

    #[test]
    fn unknown_fields_are_found_and_dropped() {
        let pods = resources::of(Kind::Pod);
        let body = json!({"metadata": {"name": "a", "creationTimestamp": null},
            "spec": {"foo": 1, "containers": [{"name": "c", "image": "busybox", "bar": true}]}});
        let (out, unknown) = decode(pods, &body).unwrap();
        assert_eq!(unknown, ["spec.containers[0].bar", "spec.foo"]);
        assert!(out["spec"].get("foo").is_none());
        assert_eq!(out["spec"]["containers"][0]["image"], "busybox");
    }

    #[test]
    fn wrong_types_are_errors() {
        let pods = resources::of(Kind::Pod);
        let body = json!({"metadata": {"name": "a"},
            "spec": {"containers": [{"name": "c", "ports": [{"containerPort": "eighty"}]}]}});
        assert!(decode(pods, &body).is_err());
    }
}

//! Secret validation: data keys, the 1 MiB limit, and the keys each built-in type requires
//! (`kubernetes.io/dockerconfigjson` needs `.dockerconfigjson` holding a JSON object, ...).

use super::meta::{
    FIELD_IMMUTABLE_MSG, validate_immutable_str, validate_object_meta, validate_object_meta_update,
};
use crate::field_errors::{FieldError, FieldErrors, Path};
use crate::k8s::api::core::v1::Secret;
use crate::names;

/// Upstream's limit on a Secret's (and a ConfigMap's) data.
pub const MAX_SECRET_SIZE: usize = 1024 * 1024;

/// The error Go's `json.Unmarshal(b, &map[string]interface{}{})` reports, if any: syntax
/// errors first (Go's words, [`crate::go_json`]), then a non-object top level (`null` is
/// accepted, as in Go).
pub fn go_json_object_error(data: &[u8]) -> Option<String> {
    if let Some(syntax) = crate::go_json::syntax_error(data) {
        return Some(syntax);
    }
    crate::go_json::non_object_kind(data).map(|kind| {
        format!("json: cannot unmarshal {kind} into Go value of type map[string]interface {{}}")
    })
}

/// Create: metadata, data keys and size, type-specific required keys.
pub fn validate_secret(secret: &Secret) -> FieldErrors {
    let mut errs = validate_object_meta(
        &secret.metadata,
        true,
        names::name_is_dns_subdomain,
        &Path::new("metadata"),
    );
    let data_path = Path::new("data");
    let data = secret.data.clone().unwrap_or_default();
    let mut total = 0;
    for (k, v) in &data {
        for m in names::is_config_map_key(k) {
            errs.push(FieldError::invalid(&data_path.key(k), k, m));
        }
        total += v.0.len();
    }
    if total > MAX_SECRET_SIZE {
        errs.push(FieldError::too_long(&data_path, MAX_SECRET_SIZE));
    }
    let json_key = |key: &str, errs: &mut FieldErrors| match data.get(key) {
        None => errs.push(FieldError::required(&data_path.key(key), "")),
        Some(bytes) => {
            if let Some(e) = go_json_object_error(&bytes.0) {
                errs.push(FieldError::invalid(
                    &data_path.key(key),
                    "<secret contents redacted>",
                    e,
                ));
            }
        }
    };
    match secret.type_.as_deref().unwrap_or("") {
        "kubernetes.io/service-account-token" => {
            let named = secret
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get("kubernetes.io/service-account.name"))
                .is_some_and(|v| !v.is_empty());
            if !named {
                errs.push(FieldError::required(
                    &Path::new("metadata")
                        .child("annotations")
                        .key("kubernetes.io/service-account.name"),
                    "",
                ));
            }
        }
        "kubernetes.io/dockercfg" => json_key(".dockercfg", &mut errs),
        "kubernetes.io/dockerconfigjson" => json_key(".dockerconfigjson", &mut errs),
        "kubernetes.io/basic-auth"
            if !data.contains_key("username") && !data.contains_key("password") =>
        {
            errs.push(FieldError::required(&data_path.key("username"), ""));
            errs.push(FieldError::required(&data_path.key("password"), ""));
        }
        "kubernetes.io/ssh-auth" if data.get("ssh-privatekey").is_none_or(|v| v.0.is_empty()) => {
            errs.push(FieldError::required(&data_path.key("ssh-privatekey"), ""));
        }
        "kubernetes.io/tls" => {
            for key in ["tls.crt", "tls.key"] {
                if !data.contains_key(key) {
                    errs.push(FieldError::required(&data_path.key(key), ""));
                }
            }
        }
        _ => {}
    }
    errs
}

/// Update: metadata rules, `type` immutable, and nothing changes once `immutable: true`.
pub fn validate_secret_update(new: &Secret, old: &Secret) -> FieldErrors {
    let mut errs =
        validate_object_meta_update(&new.metadata, &old.metadata, &Path::new("metadata"));
    errs.extend(validate_immutable_str(
        new.type_.as_deref(),
        old.type_.as_deref(),
        &Path::new("type"),
    ));
    if old.immutable == Some(true) {
        let msg = format!("{FIELD_IMMUTABLE_MSG} when `immutable` is set");
        if new.immutable != Some(true) {
            errs.push(FieldError::forbidden(&Path::new("immutable"), msg.clone()));
        }
        if new.data.clone().unwrap_or_default() != old.data.clone().unwrap_or_default() {
            errs.push(FieldError::forbidden(&Path::new("data"), msg));
        }
    }
    errs.extend(validate_secret(new));
    errs
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn secret(v: serde_json::Value) -> Secret {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn secret_rules() {
        // what `kubectl create secret docker-registry regcred --docker-server=S ...` sends
        let created = json!({"metadata":{"name":"regcred","namespace":"default"},"type":"kubernetes.io/dockerconfigjson",
            "data":{".dockerconfigjson":"eyJhdXRocyI6eyJTIjp7InVzZXJuYW1lIjoiVSIsInBhc3N3b3JkIjoiUCIsImVtYWlsIjoiRSIsImF1dGgiOiJWVHBRIn19fQ=="}});
        let cases = [
            (created, vec![]),
            (
                json!({"metadata":{"name":"s","namespace":"d"},"type":"Opaque","data":{"a":"MQ=="}}),
                vec![],
            ),
            (
                json!({"metadata":{"name":"s","namespace":"d"},"type":"kubernetes.io/dockerconfigjson"}),
                vec!["data[.dockerconfigjson]: Required value"],
            ),
            (
                json!({"metadata":{"name":"s","namespace":"d"},"type":"kubernetes.io/dockerconfigjson","data":{".dockerconfigjson":"eA=="}}),
                vec![
                    "data[.dockerconfigjson]: Invalid value: \"<secret contents redacted>\": invalid character 'x' looking for beginning of value",
                ],
            ),
            (
                json!({"metadata":{"name":"s","namespace":"d"},"type":"kubernetes.io/dockerconfigjson","data":{".dockerconfigjson":"WzFd"}}),
                vec![
                    "data[.dockerconfigjson]: Invalid value: \"<secret contents redacted>\": json: cannot unmarshal array into Go value of type map[string]interface {}",
                ],
            ),
            (
                json!({"metadata":{"name":"s","namespace":"d"},"type":"kubernetes.io/dockercfg","data":{".dockercfg":"eyJh"}}),
                vec![
                    "data[.dockercfg]: Invalid value: \"<secret contents redacted>\": unexpected end of JSON input",
                ],
            ),
            (
                json!({"metadata":{"name":"s","namespace":"d"},"type":"kubernetes.io/dockercfg","data":{".dockercfg":"e30="}}),
                vec![],
            ),
            (
                json!({"metadata":{"name":"s","namespace":"d"},"type":"kubernetes.io/tls","data":{"tls.crt":""}}),
                vec!["data[tls.key]: Required value"],
            ),
            (
                json!({"metadata":{"name":"s","namespace":"d"},"type":"kubernetes.io/basic-auth"}),
                vec![
                    "data[username]: Required value",
                    "data[password]: Required value",
                ],
            ),
            (
                json!({"metadata":{"name":"s","namespace":"d"},"type":"kubernetes.io/service-account-token"}),
                vec!["metadata.annotations[kubernetes.io/service-account.name]: Required value"],
            ),
            (
                json!({"metadata":{"name":"s","namespace":"d"},"data":{"a/b":""}}),
                vec![
                    "data[a/b]: Invalid value: \"a/b\": a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')",
                ],
            ),
        ];
        for (input, want) in cases {
            let got: Vec<String> = validate_secret(&secret(input.clone())).messages();
            assert_eq!(got, want, "{input}");
        }
    }

    #[test]
    fn size_limit() {
        let mut s = secret(json!({"metadata":{"name":"s","namespace":"d"}}));
        s.data = Some(
            [(
                "big".to_string(),
                crate::k8s::ByteString(vec![0; MAX_SECRET_SIZE + 1]),
            )]
            .into(),
        );
        assert_eq!(
            validate_secret(&s).aggregate().unwrap(),
            "data: Too long: may not be more than 1048576 bytes"
        );
    }

    #[test]
    fn updates() {
        let old = secret(
            json!({"metadata":{"name":"s","namespace":"d","resourceVersion":"3"},"type":"Opaque","immutable":true,"data":{"a":"MQ=="}}),
        );
        let mut new = old.clone();
        assert!(validate_secret_update(&new, &old).is_empty());
        new.type_ = Some("kubernetes.io/tls".into());
        new.data = None;
        let got: Vec<String> = validate_secret_update(&new, &old).messages();
        assert_eq!(
            got,
            vec![
                "type: Invalid value: \"kubernetes.io/tls\": field is immutable",
                "data: Forbidden: field is immutable when `immutable` is set",
                "data[tls.crt]: Required value",
                "data[tls.key]: Required value",
            ]
        );
    }

    #[test]
    fn go_json_errors() {
        assert_eq!(go_json_object_error(b"{}"), None);
        assert_eq!(go_json_object_error(b"null"), None);
        assert_eq!(
            go_json_object_error(b"").as_deref(),
            Some("unexpected end of JSON input")
        );
        assert_eq!(
            go_json_object_error(b"\"x\"").as_deref(),
            Some("json: cannot unmarshal string into Go value of type map[string]interface {}")
        );
        assert_eq!(
            go_json_object_error(b"x").as_deref(),
            Some("invalid character 'x' looking for beginning of value")
        );
    }
}

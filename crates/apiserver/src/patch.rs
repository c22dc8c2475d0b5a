//! PATCH bodies: the three patch formats, decoded by Content-Type and applied with
//! `nodelet_api::patch` to the object as the client sees it.

use nodelet_api::patch::{self as rules, PatchError};
use serde_json::Value;

use crate::errors::{ApiError, ApiResult};
use crate::resources::ResourceType;

/// A decoded patch.
#[derive(Clone, Debug, PartialEq)]
pub enum Patch {
    /// `application/merge-patch+json` (RFC 7386).
    Merge(Value),
    /// `application/json-patch+json` (RFC 6902).
    Json(Value),
    /// `application/strategic-merge-patch+json`.
    Strategic(Value),
}

impl Patch {
    /// Decodes a body by its Content-Type (parameters ignored).
    pub fn decode(content_type: &str, body: &[u8]) -> ApiResult<Patch> {
        let media = content_type
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        let value = || -> ApiResult<Value> {
            serde_json::from_slice(body)
                .map_err(|err| ApiError::bad_request(format!("error decoding patch: {err}")))
        };
        match media.as_str() {
            "application/merge-patch+json" => Ok(Patch::Merge(value()?)),
            "application/json-patch+json" => Ok(Patch::Json(value()?)),
            "application/strategic-merge-patch+json" => Ok(Patch::Strategic(value()?)),
            "application/apply-patch+yaml" | "application/apply-patch+json" => Err(ApiError::new(
                415,
                "UnsupportedMediaType",
                "server-side apply is not supported by this server; use client-side kubectl apply",
            )),
            other => Err(ApiError::new(
                415,
                "UnsupportedMediaType",
                format!(
                    "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/strategic-merge-patch+json ({other})"
                ),
            )),
        }
    }

    /// Applies the patch to `current` (client form).
    pub fn apply(&self, rt: &ResourceType, current: &Value) -> ApiResult<Value> {
        let result = match self {
            Patch::Merge(p) => {
                if !p.is_object() {
                    return Err(ApiError::bad_request(
                        "error decoding patch: a merge patch must be a JSON object",
                    ));
                }
                Ok(rules::merge_patch(current, p))
            }
            Patch::Json(p) => rules::json_patch(current, p),
            Patch::Strategic(p) => {
                rules::strategic_merge_patch(current, p, rules::schema::for_kind(rt.kind))
            }
        };
        result.map_err(|err| match err {
            PatchError::Invalid(_) => ApiError::bad_request(err.to_string()),
            other => ApiError::new(422, "Invalid", other.to_string()),
        })
    }

    /// Whether the patch sets `metadata.resourceVersion` (then it is a precondition, and a
    /// conflict is not retried).
    pub fn names_resource_version(&self) -> bool {
        match self {
            Patch::Merge(p) | Patch::Strategic(p) => p
                .get("metadata")
                .and_then(|m| m.get("resourceVersion"))
                .is_some_and(|rv| rv.as_str().is_some_and(|s| !s.is_empty())),
            Patch::Json(ops) => ops.as_array().is_some_and(|ops| {
                ops.iter().any(|op| {
                    op.get("path").and_then(Value::as_str) == Some("/metadata/resourceVersion")
                        && op.get("op").and_then(Value::as_str) != Some("test")
                })
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::{self, Kind};
    use serde_json::json;

    #[test]
    fn decodes_by_content_type_and_applies() {
        let sa = resources::of(Kind::ServiceAccount);
        let current = json!({"metadata": {"name": "default"}, "imagePullSecrets": [{"name": "a"}]});
        let p = Patch::decode(
            "application/strategic-merge-patch+json",
            br#"{"imagePullSecrets":[{"name":"regcred"}]}"#,
        )
        .unwrap();
        let out = p.apply(sa, &current).unwrap();
        assert_eq!(out["imagePullSecrets"], json!([{"name": "regcred"}]));
        let p = Patch::decode(
            "application/merge-patch+json; charset=utf-8",
            br#"{"metadata":{"labels":{"a":"b"}}}"#,
        )
        .unwrap();
        assert_eq!(
            p.apply(sa, &current).unwrap()["metadata"]["labels"]["a"],
            "b"
        );
        let p = Patch::decode(
            "application/json-patch+json",
            br#"[{"op":"replace","path":"/metadata/resourceVersion","value":"5"}]"#,
        )
        .unwrap();
        assert!(p.names_resource_version());
        assert_eq!(Patch::decode("text/plain", b"{}").unwrap_err().code(), 415);
    }
}

//! Every error the API answers is a `Status` object with the upstream reason, code and message,
//! because kubectl prints exactly `Error from server (<reason>): <message>` from it.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Status, StatusCause, StatusDetails};

use crate::resources::ResourceType;

/// An API error: the `Status` that goes on the wire.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("{} ({})", status.message.as_deref().unwrap_or(""), status.reason.as_deref().unwrap_or(""))]
pub struct ApiError {
    /// The Status body; `code` is the HTTP status.
    pub status: Box<Status>,
}

/// `Result` with [`ApiError`].
pub type ApiResult<T> = Result<T, ApiError>;

/// Go's `%q` for the names in messages (`pods "x" not found`).
pub fn quote(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| format!("\"{s}\""))
}

fn details(group: &str, kind: &str, name: &str) -> Option<StatusDetails> {
    Some(StatusDetails {
        group: (!group.is_empty()).then(|| group.to_owned()),
        kind: (!kind.is_empty()).then(|| kind.to_owned()),
        name: (!name.is_empty()).then(|| name.to_owned()),
        ..Default::default()
    })
}

impl ApiError {
    /// A failure with `code`, `reason` and `message`.
    pub fn new(code: u16, reason: &str, message: impl Into<String>) -> Self {
        ApiError {
            status: Box::new(Status {
                code: Some(i32::from(code)),
                message: Some(message.into()),
                reason: (!reason.is_empty()).then(|| reason.to_owned()),
                status: Some("Failure".to_owned()),
                ..Default::default()
            }),
        }
    }

    fn with_details(mut self, details: Option<StatusDetails>) -> Self {
        self.status.details = details;
        self
    }

    /// The HTTP status code.
    pub fn code(&self) -> u16 {
        self.status
            .code
            .and_then(|c| u16::try_from(c).ok())
            .unwrap_or(500)
    }

    /// The reason (`NotFound`, `Conflict`, ...).
    pub fn reason(&self) -> &str {
        self.status.reason.as_deref().unwrap_or("")
    }

    /// 404 `pods "x" not found`.
    pub fn not_found(rt: &ResourceType, name: &str) -> Self {
        Self::not_found_in(rt.group, rt.plural, name)
    }

    /// 404 for a group and plural given by name (`namespaces "x" not found`).
    pub fn not_found_in(group: &str, plural: &str, name: &str) -> Self {
        let gr = qualified(plural, group);
        Self::new(404, "NotFound", format!("{gr} {} not found", quote(name)))
            .with_details(details(group, plural, name))
    }

    /// 404 for a path that names nothing we serve (no Status details).
    pub fn no_route() -> Self {
        Self::new(
            404,
            "NotFound",
            "the server could not find the requested resource",
        )
    }

    /// 409 `pods "x" already exists`.
    pub fn already_exists(rt: &ResourceType, name: &str) -> Self {
        let gr = qualified(rt.plural, rt.group);
        Self::new(
            409,
            "AlreadyExists",
            format!("{gr} {} already exists", quote(name)),
        )
        .with_details(details(rt.group, rt.plural, name))
    }

    /// 409 `Operation cannot be fulfilled on pods "x": <why>`.
    pub fn conflict(rt: &ResourceType, name: &str, why: &str) -> Self {
        let gr = qualified(rt.plural, rt.group);
        Self::new(
            409,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {gr} {}: {why}",
                quote(name)
            ),
        )
        .with_details(details(rt.group, rt.plural, name))
    }

    /// 409 Conflict for a stale resourceVersion.
    pub fn stale(rt: &ResourceType, name: &str) -> Self {
        Self::conflict(rt, name, OBJECT_MODIFIED)
    }

    /// 422 `Pod "x" is invalid: <causes>`.
    pub fn invalid(rt: &ResourceType, name: &str, causes: Vec<StatusCause>) -> Self {
        let kind = qualified(rt.kind, rt.group);
        let texts: Vec<String> = causes
            .iter()
            .map(|c| match (&c.field, &c.message) {
                (Some(f), Some(m)) if !f.is_empty() => format!("{f}: {m}"),
                (_, Some(m)) => m.clone(),
                _ => String::new(),
            })
            .fold(Vec::new(), |mut seen, t| {
                if !seen.contains(&t) {
                    seen.push(t);
                }
                seen
            });
        let message = match texts.len() {
            0 => format!("{kind} {} is invalid", quote(name)),
            1 => format!("{kind} {} is invalid: {}", quote(name), texts[0]),
            _ => format!("{kind} {} is invalid: [{}]", quote(name), texts.join(", ")),
        };
        let mut d = details(rt.group, rt.kind, name).unwrap_or_default();
        d.name = Some(name.to_owned());
        d.causes = Some(causes);
        Self::new(422, "Invalid", message).with_details(Some(d))
    }

    /// 403 `pods "x" is forbidden: <why>` (admission rejections).
    pub fn forbidden(rt: &ResourceType, name: &str, why: &str) -> Self {
        let gr = qualified(rt.plural, rt.group);
        let message = if name.is_empty() {
            format!("{gr} is forbidden: {why}")
        } else {
            format!("{gr} {} is forbidden: {why}", quote(name))
        };
        Self::new(403, "Forbidden", message).with_details(details(rt.group, rt.plural, name))
    }

    /// 400 BadRequest with a free message.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "BadRequest", message)
    }

    /// 405 MethodNotAllowed.
    pub fn method_not_allowed() -> Self {
        Self::new(
            405,
            "MethodNotAllowed",
            "the server does not allow this method on the requested resource",
        )
    }

    /// 410 Expired: `too old resource version: 5 (120)`.
    pub fn too_old(requested: i64, oldest: i64) -> Self {
        Self::new(
            410,
            "Expired",
            format!("too old resource version: {requested} ({oldest})"),
        )
    }

    /// 401 Unauthorized.
    pub fn unauthorized() -> Self {
        Self::new(401, "Unauthorized", "Unauthorized")
    }

    /// 415 for a Content-Type we do not decode.
    pub fn unsupported_media_type(content_type: &str) -> Self {
        Self::new(
            415,
            "UnsupportedMediaType",
            format!(
                "the body of the request was in an unknown format - accepted media types include: application/json, application/yaml, application/json-patch+json, application/merge-patch+json, application/strategic-merge-patch+json ({content_type})"
            ),
        )
    }

    /// 500 `Internal error occurred: <why>`.
    pub fn internal(why: impl std::fmt::Display) -> Self {
        let why = why.to_string();
        let d = StatusDetails {
            causes: Some(vec![StatusCause {
                message: Some(why.clone()),
                ..Default::default()
            }]),
            ..Default::default()
        };
        Self::new(
            500,
            "InternalError",
            format!("Internal error occurred: {why}"),
        )
        .with_details(Some(d))
    }

    /// 504 for a request that ran out of time.
    pub fn timeout(message: impl Into<String>) -> Self {
        Self::new(504, "Timeout", message)
    }

    /// Maps a store failure that the caller did not handle itself.
    pub fn from_store(err: nodelet_store::StoreError) -> Self {
        match err {
            nodelet_store::StoreError::Compacted { requested, oldest } => {
                Self::too_old(requested, oldest)
            }
            nodelet_store::StoreError::FutureRevision { requested, current } => Self::timeout(
                format!("Too large resource version: {requested}, current: {current}"),
            ),
            other => Self::internal(other),
        }
    }

    /// The JSON body.
    pub fn body(&self) -> Vec<u8> {
        serde_json::to_vec(&*self.status).unwrap_or_default()
    }
}

/// The `why` of a stale-resourceVersion conflict.
pub const OBJECT_MODIFIED: &str =
    "the object has been modified; please apply your changes to the latest version and try again";

/// `plural.group` as upstream prints a GroupResource (`runtimeclasses.node.k8s.io`).
pub fn qualified(name: &str, group: &str) -> String {
    if group.is_empty() {
        name.to_owned()
    } else {
        format!("{name}.{group}")
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let code = StatusCode::from_u16(self.code()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        (
            code,
            [(axum::http::header::CONTENT_TYPE, "application/json")],
            self.body(),
        )
            .into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources;

    #[test]
    fn messages_match_upstream() {
        let pods = resources::by_plural("", "pods").unwrap();
        let rc = resources::by_plural("node.k8s.io", "runtimeclasses").unwrap();
        assert_eq!(
            ApiError::not_found(pods, "nosuch").status.message.unwrap(),
            "pods \"nosuch\" not found"
        );
        assert_eq!(
            ApiError::already_exists(rc, "x").status.message.unwrap(),
            "runtimeclasses.node.k8s.io \"x\" already exists"
        );
        assert_eq!(
            ApiError::stale(pods, "x").status.message.unwrap(),
            "Operation cannot be fulfilled on pods \"x\": the object has been modified; please apply your changes to the latest version and try again"
        );
        let body: serde_json::Value =
            serde_json::from_slice(&ApiError::not_found(pods, "x").body()).unwrap();
        assert_eq!(body["kind"], "Status");
        assert_eq!(body["apiVersion"], "v1");
        assert_eq!(body["code"], 404);
        assert_eq!(body["details"]["kind"], "pods");
    }
}

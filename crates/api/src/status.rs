//! `Status` objects for API errors, shaped as apimachinery's `errors.New*` build them, so that
//! kubectl prints `Error from server (<reason>): <message>` exactly as with a real API server.
//!
//! A resource is named by its plural and group (`pods`, `runtimeclasses.node.k8s.io`); a kind
//! by its kind and group (`Pod`, `RuntimeClass.node.k8s.io`). Only the HTTP layer (the
//! `apiserver` crate) sends these; building them is pure.

use crate::field_errors::{FieldErrors, go_quote};
use crate::k8s::apimachinery::pkg::apis::meta::v1::{Status, StatusDetails};

/// `group/resource` as upstream prints a `GroupResource`: `pods`, `runtimeclasses.node.k8s.io`.
pub fn qualified(name: &str, group: &str) -> String {
    if group.is_empty() {
        name.to_owned()
    } else {
        format!("{name}.{group}")
    }
}

fn failure(code: i32, reason: &str, message: String, details: Option<StatusDetails>) -> Status {
    Status {
        code: Some(code),
        details,
        message: Some(message),
        metadata: Default::default(),
        reason: Some(reason.to_owned()),
        status: Some("Failure".to_owned()),
    }
}

fn details(group: &str, kind: &str, name: &str) -> StatusDetails {
    StatusDetails {
        group: (!group.is_empty()).then(|| group.to_owned()),
        kind: Some(kind.to_owned()),
        name: (!name.is_empty()).then(|| name.to_owned()),
        ..Default::default()
    }
}

/// 422 Invalid: `Pod "x" is invalid: [...]` with one cause per field error.
pub fn invalid(group: &str, kind: &str, name: &str, errors: &FieldErrors) -> Status {
    let message = errors.invalid_message(&qualified(kind, group), name);
    let mut d = details(group, kind, name);
    d.name = Some(name.to_owned());
    d.causes = Some(errors.causes());
    failure(422, "Invalid", message, Some(d))
}

/// 403 Forbidden: `pods "x" is forbidden: <why>` (admission rejections use this).
pub fn forbidden(group: &str, resource: &str, name: &str, why: &str) -> Status {
    let gr = qualified(resource, group);
    let message = if name.is_empty() {
        format!("{gr} is forbidden: {why}")
    } else {
        format!("{gr} {} is forbidden: {why}", go_quote(name))
    };
    failure(
        403,
        "Forbidden",
        message,
        Some(details(group, resource, name)),
    )
}

/// 404 NotFound: `pods "x" not found`.
pub fn not_found(group: &str, resource: &str, name: &str) -> Status {
    let message = format!(
        "{} {} not found",
        qualified(resource, group),
        go_quote(name)
    );
    failure(
        404,
        "NotFound",
        message,
        Some(details(group, resource, name)),
    )
}

/// 409 AlreadyExists: `pods "x" already exists`.
pub fn already_exists(group: &str, resource: &str, name: &str) -> Status {
    let message = format!(
        "{} {} already exists",
        qualified(resource, group),
        go_quote(name)
    );
    failure(
        409,
        "AlreadyExists",
        message,
        Some(details(group, resource, name)),
    )
}

/// 409 Conflict on a stale resourceVersion:
/// `Operation cannot be fulfilled on pods "x": the object has been modified; please apply your
/// changes to the latest version and try again`.
pub fn conflict(group: &str, resource: &str, name: &str, why: &str) -> Status {
    let message = format!(
        "Operation cannot be fulfilled on {} {}: {why}",
        qualified(resource, group),
        go_quote(name)
    );
    failure(
        409,
        "Conflict",
        message,
        Some(details(group, resource, name)),
    )
}

/// The `why` of [`conflict`] for a stale resourceVersion.
pub const OBJECT_MODIFIED: &str =
    "the object has been modified; please apply your changes to the latest version and try again";

/// 400 BadRequest with a free message (bad selectors, undecodable bodies, bad patches).
pub fn bad_request(message: &str) -> Status {
    failure(400, "BadRequest", message.to_owned(), None)
}

/// 405 MethodNotAllowed: `the server does not allow this method on the requested resource`.
pub fn method_not_allowed() -> Status {
    failure(
        405,
        "MethodNotAllowed",
        "the server does not allow this method on the requested resource".to_owned(),
        None,
    )
}

/// 410 Gone for a watch from a compacted revision: `too old resource version: 5 (120)`.
pub fn gone_too_old(requested: u64, current_oldest: u64) -> Status {
    failure(
        410,
        "Expired",
        format!("too old resource version: {requested} ({current_oldest})"),
        None,
    )
}

/// 500 InternalError: `Internal error occurred: <why>`.
pub fn internal(why: &str) -> Status {
    let d = StatusDetails {
        causes: Some(vec![
            crate::k8s::apimachinery::pkg::apis::meta::v1::StatusCause {
                message: Some(why.to_owned()),
                ..Default::default()
            },
        ]),
        ..Default::default()
    };
    failure(
        500,
        "InternalError",
        format!("Internal error occurred: {why}"),
        Some(d),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::field_errors::{FieldError, Path};

    #[test]
    fn status_messages_match_upstream() {
        let errs: FieldErrors = vec![FieldError::required(
            &Path::new("spec")
                .child("containers")
                .index(0)
                .child("image"),
            "",
        )]
        .into();
        let cases: Vec<(Status, i32, &str, &str)> = vec![
            (
                invalid("", "Pod", "x", &errs),
                422,
                "Invalid",
                "Pod \"x\" is invalid: spec.containers[0].image: Required value",
            ),
            (
                forbidden(
                    "",
                    "pods",
                    "p",
                    "pod rejected: Pod Overhead set without corresponding RuntimeClass defined Overhead",
                ),
                403,
                "Forbidden",
                "pods \"p\" is forbidden: pod rejected: Pod Overhead set without corresponding RuntimeClass defined Overhead",
            ),
            (
                not_found("", "pods", "nosuch"),
                404,
                "NotFound",
                "pods \"nosuch\" not found",
            ),
            (
                not_found("node.k8s.io", "runtimeclasses", "x"),
                404,
                "NotFound",
                "runtimeclasses.node.k8s.io \"x\" not found",
            ),
            (
                already_exists("", "secrets", "regcred"),
                409,
                "AlreadyExists",
                "secrets \"regcred\" already exists",
            ),
            (
                conflict("", "pods", "web", OBJECT_MODIFIED),
                409,
                "Conflict",
                "Operation cannot be fulfilled on pods \"web\": the object has been modified; please apply your changes to the latest version and try again",
            ),
            (
                bad_request("field label not supported: x"),
                400,
                "BadRequest",
                "field label not supported: x",
            ),
            (
                gone_too_old(5, 120),
                410,
                "Expired",
                "too old resource version: 5 (120)",
            ),
            (
                internal("boom"),
                500,
                "InternalError",
                "Internal error occurred: boom",
            ),
        ];
        for (status, code, reason, message) in cases {
            assert_eq!(status.code, Some(code));
            assert_eq!(status.reason.as_deref(), Some(reason));
            assert_eq!(status.message.as_deref(), Some(message));
            assert_eq!(status.status.as_deref(), Some("Failure"));
        }
    }

    #[test]
    fn invalid_status_carries_causes_and_kind() {
        let errs: FieldErrors = vec![FieldError::invalid(&Path::new("handler"), "", "bad")].into();
        let s = invalid("node.k8s.io", "RuntimeClass", "rc", &errs);
        let d = s.details.unwrap();
        assert_eq!(d.group.as_deref(), Some("node.k8s.io"));
        assert_eq!(d.kind.as_deref(), Some("RuntimeClass"));
        assert_eq!(d.name.as_deref(), Some("rc"));
        let c = &d.causes.unwrap()[0];
        assert_eq!(c.reason.as_deref(), Some("FieldValueInvalid"));
        assert_eq!(c.field.as_deref(), Some("handler"));
        assert_eq!(c.message.as_deref(), Some("Invalid value: \"\": bad"));
        assert_eq!(
            s.message.as_deref(),
            Some("RuntimeClass.node.k8s.io \"rc\" is invalid: handler: Invalid value: \"\": bad")
        );
    }
}

//! `runtimeClassName` → RuntimeClass → handler (spec §6.3), and what happens when either is
//! missing.
//!
//! Upstream keeps such a pod Pending and retries sandbox creation forever; the seed says
//! otherwise ("Se o nome do RuntimeClass não existir, ou o CRI não puder executar a
//! solicitação, o Pod entrará na fase final Failed. Procure por um evento correspondente"), and
//! the seed wins here: the pod goes to phase **Failed** at once, with a `FailedCreatePodSandBox`
//! Warning whose message names the class and the handler.

use nodelet_api::field_errors::go_quote;
use nodelet_api::k8s::api::node::v1::RuntimeClass;

use crate::events::{self, Event};
use crate::status::State;

/// Why a pod's RuntimeClass cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuntimeClassError {
    /// The class does not exist (deleted after admission, or a pod from a file).
    #[error("runtimeclass.node.k8s.io {} not found", go_quote(.class))]
    ClassNotFound { class: String },
    /// The class names a handler this node's runtime table lacks. The first part is
    /// containerd's text, which upstream e2e tests look for; the class is added after it.
    #[error(
        "failed to get sandbox runtime: no runtime for {} is configured (RuntimeClass {})",
        go_quote(.handler),
        go_quote(.class)
    )]
    HandlerNotFound { class: String, handler: String },
    /// No class requested and the node's default handler is missing (configuration error).
    #[error("failed to get sandbox runtime: no runtime for {} is configured", go_quote(.handler))]
    DefaultHandlerNotFound { handler: String },
}

/// The handler a pod runs with: its class's `handler`, or `default_handler` when
/// `runtimeClassName` is unset or empty. `class` looks a RuntimeClass up by name;
/// `handler_exists` asks the node's handler table.
pub fn resolve_handler<'c>(
    runtime_class_name: Option<&str>,
    default_handler: &str,
    class: impl FnOnce(&str) -> Option<&'c RuntimeClass>,
    handler_exists: impl Fn(&str) -> bool,
) -> Result<String, RuntimeClassError> {
    let Some(name) = runtime_class_name.filter(|n| !n.is_empty()) else {
        return if handler_exists(default_handler) {
            Ok(default_handler.to_owned())
        } else {
            Err(RuntimeClassError::DefaultHandlerNotFound {
                handler: default_handler.to_owned(),
            })
        };
    };
    let rc = class(name).ok_or_else(|| RuntimeClassError::ClassNotFound {
        class: name.to_owned(),
    })?;
    if !handler_exists(&rc.handler) {
        return Err(RuntimeClassError::HandlerNotFound {
            class: name.to_owned(),
            handler: rc.handler.clone(),
        });
    }
    Ok(rc.handler.clone())
}

/// The pod status `reason` (and each container's waiting reason) for a pod failed this way:
/// upstream's name for a failed sandbox creation.
pub const CREATE_POD_SANDBOX_ERROR: &str = "CreatePodSandboxError";

/// The Warning recorded on the pod: `Failed to create pod sandbox: <error>`.
pub fn failure_event(error: &RuntimeClassError) -> Event {
    events::failed_create_pod_sandbox(&error.to_string())
}

/// What the pod's status says: phase `Failed`, `reason` [`CREATE_POD_SANDBOX_ERROR`], `message`
/// the event's text; every container that never ran waits with the same reason and the error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailedPod {
    pub phase: &'static str,
    pub reason: &'static str,
    pub message: String,
    pub container_state: State,
}

pub fn failed_pod(error: &RuntimeClassError) -> FailedPod {
    FailedPod {
        phase: "Failed",
        reason: CREATE_POD_SANDBOX_ERROR,
        message: failure_event(error).message,
        container_state: State::Waiting {
            reason: CREATE_POD_SANDBOX_ERROR.to_owned(),
            message: error.to_string(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nodelet_api::k8s::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn rc(name: &str, handler: &str) -> RuntimeClass {
        RuntimeClass {
            metadata: ObjectMeta {
                name: Some(name.into()),
                ..ObjectMeta::default()
            },
            handler: handler.into(),
            ..RuntimeClass::default()
        }
    }

    #[test]
    fn resolution() {
        let classes = [
            rc("myclass", "myconfiguration"),
            rc("gvisor", "runsc"),
            rc("fast", "crun"),
        ];
        let lookup = |name: &str| {
            classes
                .iter()
                .find(|c| c.metadata.name.as_deref() == Some(name))
        };
        let table = ["runc", "crun", "youki"];
        let exists = |h: &str| table.contains(&h);
        let cases: Vec<(Option<&str>, &str, Result<&str, &str>)> = vec![
            (None, "runc", Ok("runc")),
            (Some(""), "runc", Ok("runc")),
            (Some("fast"), "runc", Ok("crun")),
            (
                Some("missing"),
                "runc",
                Err(r#"runtimeclass.node.k8s.io "missing" not found"#),
            ),
            (
                Some("myclass"),
                "runc",
                Err(
                    r#"failed to get sandbox runtime: no runtime for "myconfiguration" is configured (RuntimeClass "myclass")"#,
                ),
            ),
            (
                None,
                "kata",
                Err(r#"failed to get sandbox runtime: no runtime for "kata" is configured"#),
            ),
        ];
        for (class, default, want) in cases {
            let got = resolve_handler(class, default, lookup, exists).map_err(|e| e.to_string());
            assert_eq!(got.as_deref().map_err(String::as_str), want, "{class:?}");
        }
    }

    #[test]
    fn failed_phase_and_event() {
        let err = RuntimeClassError::HandlerNotFound {
            class: "myclass".into(),
            handler: "myconfiguration".into(),
        };
        let event = failure_event(&err);
        assert_eq!(event.reason, "FailedCreatePodSandBox");
        assert_eq!(
            event.message,
            r#"Failed to create pod sandbox: failed to get sandbox runtime: no runtime for "myconfiguration" is configured (RuntimeClass "myclass")"#
        );
        let failed = failed_pod(&err);
        assert_eq!(failed.phase, "Failed");
        assert_eq!(failed.reason, "CreatePodSandboxError");
        assert_eq!(failed.message, event.message);
        assert_eq!(
            failed.container_state,
            State::Waiting {
                reason: "CreatePodSandboxError".into(),
                message: err.to_string()
            }
        );
        let missing = failure_event(&RuntimeClassError::ClassNotFound {
            class: "gone".into(),
        });
        assert_eq!(
            missing.message,
            r#"Failed to create pod sandbox: runtimeclass.node.k8s.io "gone" not found"#
        );
    }
}

//! The pure parts of admission: what the API server's admission plugins do to a pod, given
//! the objects they would look up (the caller does the lookups).
//!
//! | plugin | functions |
//! |---|---|
//! | `RuntimeClass` | [`runtime_class::admit`], [`runtime_class::validate`] |
//! | `AlwaysPullImages` | [`always_pull_images::admit`], [`always_pull_images::validate`] |
//! | `ServiceAccount` | [`service_account::admit`], [`service_account::validate_mirror_pod`] |
//! | `DefaultTolerationSeconds` | [`pod_defaults::default_toleration_seconds`] |
//! | `Priority` | [`pod_defaults::admit_priority`] |
//!
//! A [`Rejection`] is answered with a 403 Forbidden: `pods "x" is forbidden: <reason>`.

pub mod always_pull_images;
pub mod pod_defaults;
pub mod runtime_class;
pub mod service_account;
pub mod tolerations;

use crate::k8s::apimachinery::pkg::apis::meta::v1::Status;

/// An admission plugin refused the object; the text is the plugin's reason.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Rejection(pub String);

impl Rejection {
    /// The 403 `Status`, e.g. `pods "web" is forbidden: <reason>`.
    pub fn to_status(&self, group: &str, resource: &str, name: &str) -> Status {
        crate::status::forbidden(group, resource, name, &self.0)
    }
}

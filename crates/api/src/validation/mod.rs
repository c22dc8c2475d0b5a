//! Create and update validation with upstream's field paths and messages.
//!
//! Each `validate_*` returns a [`FieldErrors`](crate::field_errors::FieldErrors) list; an
//! empty list means valid. The API server turns a non-empty list into a 422 with
//! [`status::invalid`](crate::status::invalid). Objects are validated after defaulting,
//! as upstream does.

pub mod config_map;
pub mod container;
pub mod meta;
pub mod namespace;
pub mod pod;
pub mod resources;
pub mod runtime_class;
pub mod secret;
pub mod service;
pub mod service_account;
pub mod tolerations;
pub mod volumes;

pub use config_map::{validate_config_map, validate_config_map_update};
pub use namespace::{validate_namespace, validate_namespace_update};
pub use pod::{pod_warnings, validate_pod_create, validate_pod_spec, validate_pod_update};
pub use runtime_class::{validate_runtime_class, validate_runtime_class_update};
pub use secret::{validate_secret, validate_secret_update};
pub use service::{validate_service, validate_service_update};
pub use service_account::{validate_service_account, validate_service_account_update};

/// Rules that depend on feature gates. The defaults are those of the Kubernetes version
/// nodelet serves (1.33): relaxed environment variable names (`RelaxedEnvironmentVariableValidation`,
/// beta and on since 1.32) and zero-second sleep hooks (`PodLifecycleSleepActionAllowZero`,
/// beta and on since 1.33).
#[derive(Clone, Copy, Debug)]
pub struct PodValidationOptions {
    /// Any printable ASCII but `=` in env var names and `envFrom` prefixes; `false` gives the
    /// older C-identifier-like rule.
    pub relaxed_env_var_names: bool,
    /// `sleep: {seconds: 0}` is allowed.
    pub allow_sleep_zero: bool,
}

impl Default for PodValidationOptions {
    fn default() -> Self {
        PodValidationOptions {
            relaxed_env_var_names: true,
            allow_sleep_zero: true,
        }
    }
}

//! # nodelet-api
//!
//! The Kubernetes API as data: the k8s-openapi types (re-exported as [`k8s`]), and the pure rules
//! over them: validation with upstream field paths, defaulting, label and field selectors,
//! merge patches and `Status` errors.
//!
//! **May not:** do any I/O (no files, sockets, clocks or tokio). Everything here is a function of
//! its inputs, so the API server, the kubelet and `nodelet run` share one set of rules.
//!
//! The Kubernetes version is chosen once, by the `nodelet` binary crate (k8s-openapi feature);
//! this crate builds against whichever version that is.
//!
//! | module | concept |
//! |---|---|
//! | [`field_errors`] | field errors and their aggregate text, `Status` causes |
//! | [`status`] | `Status` objects for API errors (422, 403, 404, 409, …) |
//! | [`names`] | DNS labels/subdomains, qualified names, env var names, with upstream messages |
//! | [`quantity`] | resource quantities: parse, compare, add, canonical text |
//! | [`defaults`] | defaulting of pods and the other kinds |
//! | [`validation`] | create/update validation with upstream field paths |
//! | [`admission`] | pure parts of admission: RuntimeClass, AlwaysPullImages, ServiceAccount |
//! | [`selectors`] | label and field selectors |
//! | [`patch`] | JSON merge patch, JSON patch, strategic merge patch |
//! | [`decode`] | server-side field validation: unknown fields of a request body |
//! | [`go_json`] | Go's `encoding/json` syntax errors, for messages that quote them |

pub use k8s_openapi as k8s;

pub mod admission;
pub mod decode;
pub mod defaults;
pub mod field_errors;
pub mod go_json;
pub mod names;
pub mod patch;
pub mod quantity;
pub mod selectors;
pub mod status;
pub mod validation;

// The Kubernetes minor version whose API this build serves; exactly one line survives.
k8s_openapi::k8s_if_1_33! { const KUBERNETES_MINOR: u32 = 33; }
k8s_openapi::k8s_if_1_34! { const KUBERNETES_MINOR: u32 = 34; }
k8s_openapi::k8s_if_1_35! { const KUBERNETES_MINOR: u32 = 35; }
k8s_openapi::k8s_if_1_36! { const KUBERNETES_MINOR: u32 = 36; }
k8s_openapi::k8s_if_1_37! { const KUBERNETES_MINOR: u32 = 37; }

/// The Kubernetes version this build serves, e.g. `"v1.33.0"`.
pub fn kubernetes_version() -> String {
    format!("v1.{KUBERNETES_MINOR}.0")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_the_enabled_kubernetes_version() {
        assert!(kubernetes_version().starts_with("v1.3"));
    }
}

//! The three PATCH formats the API accepts, applied to JSON documents:
//!
//! - [`merge::merge_patch`]: JSON merge patch (RFC 7386, `application/merge-patch+json`);
//! - [`json_patch::apply`]: JSON patch (RFC 6902, `application/json-patch+json`);
//! - [`strategic::strategic_merge_patch`]: strategic merge patch
//!   (`application/strategic-merge-patch+json`), what `kubectl apply` and `kubectl patch`
//!   send for built-in kinds: lists merged by key, `$patch`, `$retainKeys`,
//!   `$setElementOrder/<field>` and `$deleteFromPrimitiveList/<field>` directives, with the
//!   per-kind list metadata in [`schema`].
//!
//! Patches work on `serde_json::Value` so the API server can patch the stored JSON and then
//! decode and validate the result like any update.

pub mod json_patch;
pub mod merge;
pub mod schema;
pub mod strategic;

pub use json_patch::apply as json_patch;
pub use merge::merge_patch;
pub use strategic::strategic_merge_patch;

/// Why a patch could not be applied. The API server answers these with a 422 (or 400 for an
/// undecodable patch); messages name the operation and the JSON pointer involved.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PatchError {
    /// The patch document itself is malformed (not the expected JSON shape, unknown op,
    /// missing member, bad pointer).
    #[error("invalid patch: {0}")]
    Invalid(String),
    /// An operation names a location that does not exist in the document.
    #[error("{op} operation does not apply: doc is missing path: {path:?}: missing value")]
    MissingPath { op: &'static str, path: String },
    /// A JSON-patch `test` did not match.
    #[error("testing value {path} failed: test failed")]
    TestFailed { path: String },
    /// An array index is outside the array.
    #[error("{op} operation does not apply: index {index} out of bounds at {path:?}")]
    OutOfBounds {
        op: &'static str,
        path: String,
        index: String,
    },
    /// A strategic-merge-patch list element lacks the list's merge key.
    #[error("map: {element} does not contain declared merge key: {key}")]
    NoMergeKey { element: String, key: String },
    /// An unknown `$patch` directive.
    #[error("unknown patch type: {kind} in map: {element}")]
    BadPatchType { kind: String, element: String },
}

//! Label and field selectors applied to JSON objects.
//!
//! The rules (grammar, error texts, the fields each kind supports) are `nodelet_api::selectors`;
//! this module reads them on the stored JSON and maps their errors to 400s.

use serde_json::Value;

use nodelet_api::selectors::LabelSelector;

use crate::errors::ApiError;
use crate::resources::{ResourceType, meta};

/// Parses a `labelSelector` query value (upstream grammar and messages, from `nodelet-api`);
/// an empty string selects everything.
pub fn parse_labels(s: &str) -> Result<LabelSelector, ApiError> {
    LabelSelector::parse(s).map_err(|e| ApiError::bad_request(e.to_string()))
}

/// A field selector of one resource type: upstream's grammar, supported fields and matching
/// rule (`nodelet_api::selectors::FieldSelector`), read on the stored JSON.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FieldSelector(nodelet_api::selectors::FieldSelector);

impl FieldSelector {
    /// Parses `f=v,g!=w` for resource type `rt`; bad syntax and unsupported fields are a 400
    /// with upstream's message.
    pub fn parse(s: &str, rt: &ResourceType) -> Result<Self, ApiError> {
        nodelet_api::selectors::FieldSelector::parse(s)
            .and_then(|sel| sel.for_kind(rt.kind))
            .map(FieldSelector)
            .map_err(|e| ApiError::bad_request(e.to_string()))
    }

    /// Whether the (stored, core-form) object is selected.
    pub fn matches(&self, obj: &Value) -> bool {
        self.0.matches_with(|field| match field {
            "source" => meta::field_string(obj, "source.component"),
            other => meta::field_string(obj, other),
        })
    }

    /// The value an `=` term requires of `metadata.name`, if any (one key instead of a scan).
    pub fn exact_name(&self) -> Option<&str> {
        self.0.exact("metadata.name")
    }

    /// Whether it selects everything.
    pub fn is_everything(&self) -> bool {
        self.0.is_everything()
    }
}

/// Both selectors of a list or watch.
#[derive(Clone, Debug, Default)]
pub struct Selection {
    /// `labelSelector`.
    pub labels: LabelSelector,
    /// `fieldSelector`.
    pub fields: FieldSelector,
}

impl Selection {
    /// Whether the object is selected.
    pub fn matches(&self, obj: &Value) -> bool {
        self.fields.matches(obj)
            && (self.labels.is_everything() || self.labels.matches(&meta::labels(obj)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::{self, Kind};
    use serde_json::json;

    #[test]
    fn selection_reads_labels_and_fields_of_stored_json() {
        let pods = resources::of(Kind::Pod);
        let pod = json!({"metadata": {"name": "web", "namespace": "default",
                                      "labels": {"app": "web"}},
                         "spec": {"nodeName": "n1"}});
        let select = |labels: &str, fields: &str| Selection {
            labels: parse_labels(labels).unwrap(),
            fields: FieldSelector::parse(fields, pods).unwrap(),
        };
        assert!(select("", "").matches(&pod));
        assert!(select("app=web", "spec.nodeName=n1").matches(&pod));
        assert!(!select("app=db", "spec.nodeName=n1").matches(&pod));
        assert!(!select("app=web", "spec.nodeName=n2").matches(&pod));
        let err = parse_labels("a b c").unwrap_err();
        assert_eq!(err.status.code, Some(400), "{err}");
    }

    #[test]
    fn field_selectors() {
        let pods = resources::of(Kind::Pod);
        let pod = json!({"metadata": {"name": "web", "namespace": "default"},
                         "spec": {"nodeName": "n1"}, "status": {"phase": "Running"}});
        let sel = FieldSelector::parse(
            "spec.nodeName=n1,status.phase!=Failed,status.phase!=Succeeded",
            pods,
        )
        .unwrap();
        assert!(sel.matches(&pod));
        assert!(
            !FieldSelector::parse("metadata.name=other", pods)
                .unwrap()
                .matches(&pod)
        );
        assert_eq!(
            FieldSelector::parse("metadata.name=web", pods)
                .unwrap()
                .exact_name(),
            Some("web")
        );
        let err = FieldSelector::parse("spec.foo=bar", pods).unwrap_err();
        assert_eq!(
            err.status.message.as_deref(),
            Some("field label not supported: spec.foo")
        );
        let events = resources::of(Kind::Event);
        let ev = json!({"involvedObject": {"name": "web", "namespace": "default", "uid": "u1"}});
        assert!(
            FieldSelector::parse(
                "involvedObject.uid=u1,involvedObject.name=web,involvedObject.namespace=default",
                events
            )
            .unwrap()
            .matches(&ev)
        );
    }
}

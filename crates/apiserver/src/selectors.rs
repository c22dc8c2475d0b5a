//! Label and field selectors applied to JSON objects.
//!
//! Label selectors are `nodelet_api::selectors::LabelSelector`. Field selectors are matched
//! here on the stored JSON (terms `f=v`, `f==v`, `f!=v`), with the fields each kind supports.

use serde_json::Value;

use nodelet_api::selectors::LabelSelector;

use crate::errors::ApiError;
use crate::resources::{Kind, ResourceType, meta};

/// Parses a `labelSelector` query value (upstream grammar and messages, from `nodelet-api`);
/// an empty string selects everything.
pub fn parse_labels(s: &str) -> Result<LabelSelector, ApiError> {
    LabelSelector::parse(s).map_err(|e| ApiError::bad_request(e.to_string()))
}

/// A parsed field selector: terms `(field, value, negated)`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FieldSelector {
    terms: Vec<(String, String, bool)>,
}

/// The fields each kind can be selected by (upstream's field label conversions).
fn supported(kind: Kind) -> &'static [&'static str] {
    match kind {
        Kind::Pod => &[
            "metadata.name",
            "metadata.namespace",
            "spec.nodeName",
            "spec.restartPolicy",
            "spec.schedulerName",
            "spec.serviceAccountName",
            "spec.hostNetwork",
            "status.phase",
            "status.podIP",
            "status.nominatedNodeName",
        ],
        Kind::Event | Kind::EventV1 => &[
            "metadata.name",
            "metadata.namespace",
            "involvedObject.kind",
            "involvedObject.namespace",
            "involvedObject.name",
            "involvedObject.uid",
            "involvedObject.apiVersion",
            "involvedObject.resourceVersion",
            "involvedObject.fieldPath",
            "reason",
            "reportingComponent",
            "source",
            "type",
        ],
        Kind::Node => &["metadata.name", "spec.unschedulable"],
        Kind::Namespace => &["metadata.name", "status.phase"],
        Kind::Secret => &["metadata.name", "metadata.namespace", "type"],
        Kind::Service => &[
            "metadata.name",
            "metadata.namespace",
            "spec.clusterIP",
            "spec.type",
        ],
        _ => &["metadata.name", "metadata.namespace"],
    }
}

impl FieldSelector {
    /// Parses `f=v,g!=w` for resource type `rt`; unsupported fields are a 400 with upstream's
    /// message.
    pub fn parse(s: &str, rt: &ResourceType) -> Result<Self, ApiError> {
        let mut terms = Vec::new();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (field, value, negated) = if let Some((f, v)) = part.split_once("!=") {
                (f, v, true)
            } else if let Some((f, v)) = part.split_once("==").or_else(|| part.split_once('=')) {
                (f, v, false)
            } else {
                return Err(ApiError::bad_request(format!(
                    "invalid selector: '{s}'; can't understand '{part}'"
                )));
            };
            let mut field = field.trim().to_owned();
            if rt.id == Kind::Pod && field == "spec.host" {
                field = "spec.nodeName".into();
            }
            if !supported(rt.id).contains(&field.as_str()) {
                return Err(ApiError::bad_request(format!(
                    "field label not supported: {field}"
                )));
            }
            terms.push((field, value.trim().to_owned(), negated));
        }
        Ok(FieldSelector { terms })
    }

    /// Whether the (stored, core-form) object is selected.
    pub fn matches(&self, obj: &Value) -> bool {
        self.terms.iter().all(|(field, value, negated)| {
            let have = match field.as_str() {
                "source" => meta::field_string(obj, "source.component"),
                other => meta::field_string(obj, other),
            };
            (have == *value) != *negated
        })
    }

    /// The value an `=` term requires of `metadata.name`, if any (one key instead of a scan).
    pub fn exact_name(&self) -> Option<&str> {
        self.terms
            .iter()
            .find(|(f, _, neg)| f == "metadata.name" && !neg)
            .map(|(_, v, _)| v.as_str())
    }

    /// Whether it selects everything.
    pub fn is_everything(&self) -> bool {
        self.terms.is_empty()
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
    use crate::resources;
    use serde_json::json;
    use std::collections::BTreeMap;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn label_selectors() {
        let l = labels(&[("app", "web"), ("tier", "front")]);
        for (sel, want) in [
            ("", true),
            ("app=web", true),
            ("app==web", true),
            ("app!=web", false),
            ("app=web,tier=back", false),
            ("tier in (front,back)", true),
            ("tier notin (front)", false),
            ("app", true),
            ("!app", false),
            ("!missing", true),
            ("missing!=x", true),
        ] {
            assert_eq!(parse_labels(sel).unwrap().matches(&l), want, "{sel}");
        }
        assert!(parse_labels("a b c").is_err());
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

//! Label and field selectors applied to JSON objects.
//!
//! A private, small implementation: `nodelet_api::selectors` (typed, fuller) was not exported
//! yet when this was written; the grammar accepted here is the one kubectl sends
//! (`a=b`, `a==b`, `a!=b`, `a in (x,y)`, `a notin (x)`, `a`, `!a`; field terms `f=v`, `f!=v`).

use std::collections::BTreeMap;

use serde_json::Value;

use crate::errors::ApiError;
use crate::resources::{Kind, ResourceType, meta};

#[derive(Clone, Debug, PartialEq, Eq)]
enum Op {
    In(Vec<String>),
    NotIn(Vec<String>),
    Exists,
    DoesNotExist,
}

/// A parsed label selector (a conjunction of requirements).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LabelSelector {
    reqs: Vec<(String, Op)>,
}

/// Splits on commas that are not inside parentheses.
fn split_top(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut depth, mut start) = (0i32, 0usize);
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&s[start..]);
    out
}

fn set_values(s: &str) -> Option<Vec<String>> {
    let inner = s.trim().strip_prefix('(')?.strip_suffix(')')?;
    Some(
        inner
            .split(',')
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
            .collect(),
    )
}

impl LabelSelector {
    /// Parses the string form; an empty string selects everything.
    pub fn parse(s: &str) -> Result<Self, ApiError> {
        let bad = |part: &str| {
            ApiError::bad_request(format!(
                "unable to parse requirement: found '{part}', expected: identifier"
            ))
        };
        let mut reqs = Vec::new();
        for part in split_top(s).into_iter().map(str::trim) {
            if part.is_empty() {
                continue;
            }
            let req = if let Some(key) = part.strip_prefix('!') {
                (key.trim().to_owned(), Op::DoesNotExist)
            } else if let Some((k, v)) = part.split_once("!=") {
                (k.trim().to_owned(), Op::NotIn(vec![v.trim().to_owned()]))
            } else if let Some((k, v)) = part.split_once("==").or_else(|| part.split_once('=')) {
                (k.trim().to_owned(), Op::In(vec![v.trim().to_owned()]))
            } else if let Some((k, v)) = part.split_once(" notin ") {
                (
                    k.trim().to_owned(),
                    Op::NotIn(set_values(v).ok_or_else(|| bad(part))?),
                )
            } else if let Some((k, v)) = part.split_once(" in ") {
                (
                    k.trim().to_owned(),
                    Op::In(set_values(v).ok_or_else(|| bad(part))?),
                )
            } else if part
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_./".contains(c))
            {
                (part.to_owned(), Op::Exists)
            } else {
                return Err(bad(part));
            };
            if req.0.is_empty() {
                return Err(bad(part));
            }
            reqs.push(req);
        }
        Ok(LabelSelector { reqs })
    }

    /// Whether `labels` satisfy every requirement.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.reqs.iter().all(|(key, op)| match op {
            Op::In(vals) => labels.get(key).is_some_and(|v| vals.contains(v)),
            Op::NotIn(vals) => labels.get(key).is_none_or(|v| !vals.contains(v)),
            Op::Exists => labels.contains_key(key),
            Op::DoesNotExist => !labels.contains_key(key),
        })
    }

    /// Whether it selects everything.
    pub fn is_everything(&self) -> bool {
        self.reqs.is_empty()
    }
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
            assert_eq!(
                LabelSelector::parse(sel).unwrap().matches(&l),
                want,
                "{sel}"
            );
        }
        assert!(LabelSelector::parse("a b c").is_err());
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

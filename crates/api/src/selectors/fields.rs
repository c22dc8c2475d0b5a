//! Field selectors (`metadata.name=web,status.phase!=Failed`): parsing, the fields each kind
//! supports, and the field values of an object.
//!
//! kubectl depends on these: `delete` waits with `metadata.name=`, `describe` lists events
//! with `involvedObject.*`, `describe node` lists pods with `spec.nodeName` and
//! `status.phase!=`. An unsupported field is a 400 with upstream's
//! `field label not supported: <field>`.

use std::collections::BTreeMap;
use std::fmt;

use super::labels::SelectorError;
use crate::k8s::api::core::v1::{Event, Namespace, Node, Pod, Secret, Service};
use crate::k8s::apimachinery::pkg::apis::meta::v1::ObjectMeta;

/// One term: `field=value`, `field==value` or `field!=value`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldTerm {
    pub field: String,
    pub value: String,
    pub negated: bool,
}

/// A conjunction of terms; the empty selector matches everything.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FieldSelector {
    terms: Vec<FieldTerm>,
}

/// The selectable field values of one object (absent fields read as `""`, as upstream).
pub type Fields = BTreeMap<&'static str, String>;

impl FieldSelector {
    pub fn everything() -> FieldSelector {
        FieldSelector::default()
    }

    /// Parses the string syntax: comma-separated terms (a `\,` is not a separator), values may
    /// escape `\\`, `\,` and `\=`.
    pub fn parse(s: &str) -> Result<FieldSelector, SelectorError> {
        let mut parts = split_terms(s);
        parts.sort();
        let mut terms = Vec::new();
        for part in parts.iter().filter(|p| !p.is_empty()) {
            let Some((field, op, rhs)) = split_term(part) else {
                return Err(SelectorError(format!(
                    "invalid selector: '{s}'; can't understand '{part}'"
                )));
            };
            let value = unescape_value(rhs)?;
            terms.push(FieldTerm {
                field: field.to_owned(),
                value,
                negated: op == "!=",
            });
        }
        Ok(FieldSelector { terms })
    }

    pub fn terms(&self) -> &[FieldTerm] {
        &self.terms
    }

    pub fn is_everything(&self) -> bool {
        self.terms.is_empty()
    }

    /// Checks every field against what `kind` supports, rewriting the legacy `spec.host` to
    /// `spec.nodeName` for pods as upstream does.
    pub fn for_kind(mut self, kind: &str) -> Result<FieldSelector, SelectorError> {
        for term in &mut self.terms {
            if kind == "Pod" && term.field == "spec.host" {
                term.field = "spec.nodeName".to_owned();
            }
            if !supported_fields(kind).contains(&term.field.as_str()) {
                return Err(SelectorError(format!(
                    "field label not supported: {}",
                    term.field
                )));
            }
        }
        Ok(self)
    }

    /// Whether an object with these field values is selected.
    pub fn matches(&self, fields: &Fields) -> bool {
        self.matches_with(|field| fields.get(field).cloned().unwrap_or_default())
    }

    /// Whether an object is selected, reading each term's field through `value_of` (absent
    /// fields read as `""`); for callers that hold objects in another form, such as JSON.
    pub fn matches_with(&self, value_of: impl Fn(&str) -> String) -> bool {
        self.terms
            .iter()
            .all(|t| (value_of(&t.field) == t.value) != t.negated)
    }

    /// The value required by an `=` term on `field`, if any (e.g. `metadata.name`, so a
    /// store can look one key up instead of scanning).
    pub fn exact(&self, field: &str) -> Option<&str> {
        self.terms
            .iter()
            .find(|t| t.field == field && !t.negated)
            .map(|t| t.value.as_str())
    }
}

impl fmt::Display for FieldSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self
            .terms
            .iter()
            .map(|t| {
                format!(
                    "{}{}{}",
                    t.field,
                    if t.negated { "!=" } else { "=" },
                    escape_value(&t.value)
                )
            })
            .collect();
        f.write_str(&parts.join(","))
    }
}

fn escape_value(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace(',', "\\,")
        .replace('=', "\\=")
}

fn split_terms(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut escaped = false;
    for c in s.chars() {
        if escaped {
            cur.push(c);
            escaped = false;
        } else if c == '\\' {
            cur.push(c);
            escaped = true;
        } else if c == ',' {
            out.push(std::mem::take(&mut cur));
        } else {
            cur.push(c);
        }
    }
    out.push(cur);
    out
}

/// The first operator in the term, trying `!=`, `==`, `=` at each position (upstream's order).
fn split_term(term: &str) -> Option<(&str, &str, &str)> {
    for (i, _) in term.char_indices() {
        let rest = &term[i..];
        for op in ["!=", "==", "="] {
            if rest.starts_with(op) {
                return Some((&term[..i], op, &term[i + op.len()..]));
            }
        }
    }
    None
}

fn unescape_value(v: &str) -> Result<String, SelectorError> {
    let mut out = String::new();
    let mut chars = v.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(e @ ('\\' | ',' | '=')) => out.push(e),
                Some(e) => {
                    return Err(SelectorError(format!(
                        "invalid field selector: invalid escape sequence: \\{e}"
                    )));
                }
                None => {
                    return Err(SelectorError(
                        "invalid field selector: invalid escape sequence: \\".to_owned(),
                    ));
                }
            },
            ',' | '=' => {
                // Go prints the rune with %v: its code point
                return Err(SelectorError(format!(
                    "invalid field selector: unescaped character in value: {}",
                    c as u32
                )));
            }
            c => out.push(c),
        }
    }
    Ok(out)
}

/// The fields a kind can be selected by (the API server's field label conversions).
pub fn supported_fields(kind: &str) -> &'static [&'static str] {
    match kind {
        "Pod" => &[
            "metadata.name",
            "metadata.namespace",
            "spec.nodeName",
            "spec.restartPolicy",
            "spec.schedulerName",
            "spec.serviceAccountName",
            "spec.hostNetwork",
            "status.phase",
            "status.podIP",
            "status.podIPs",
            "status.nominatedNodeName",
        ],
        "Event" => &[
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
            "metadata.namespace",
            "metadata.name",
        ],
        "Node" => &["metadata.name", "spec.unschedulable"],
        "Namespace" => &["metadata.name", "status.phase"],
        "Secret" => &["type", "metadata.namespace", "metadata.name"],
        "Service" => &[
            "metadata.namespace",
            "metadata.name",
            "spec.clusterIP",
            "spec.type",
        ],
        _ => &["metadata.name", "metadata.namespace"],
    }
}

/// `metadata.name` and, for namespaced kinds, `metadata.namespace`.
pub fn meta_fields(meta: &ObjectMeta, namespaced: bool) -> Fields {
    let mut f = Fields::new();
    f.insert("metadata.name", meta.name.clone().unwrap_or_default());
    if namespaced {
        f.insert(
            "metadata.namespace",
            meta.namespace.clone().unwrap_or_default(),
        );
    }
    f
}

pub fn pod_fields(pod: &Pod) -> Fields {
    let mut f = meta_fields(&pod.metadata, true);
    let spec = pod.spec.clone().unwrap_or_default();
    let status = pod.status.clone().unwrap_or_default();
    f.insert("spec.nodeName", spec.node_name.unwrap_or_default());
    f.insert(
        "spec.restartPolicy",
        spec.restart_policy.unwrap_or_default(),
    );
    f.insert(
        "spec.schedulerName",
        spec.scheduler_name.unwrap_or_default(),
    );
    f.insert(
        "spec.serviceAccountName",
        spec.service_account_name.unwrap_or_default(),
    );
    f.insert(
        "spec.hostNetwork",
        spec.host_network.unwrap_or(false).to_string(),
    );
    f.insert("status.phase", status.phase.unwrap_or_default());
    let first_ip = status
        .pod_ips
        .as_ref()
        .and_then(|ips| ips.first())
        .map(|ip| ip.ip.clone())
        .or(status.pod_ip.clone())
        .unwrap_or_default();
    f.insert("status.podIP", first_ip);
    f.insert(
        "status.nominatedNodeName",
        status.nominated_node_name.unwrap_or_default(),
    );
    f
}

pub fn event_fields(ev: &Event) -> Fields {
    let mut f = meta_fields(&ev.metadata, true);
    let o = &ev.involved_object;
    f.insert("involvedObject.kind", o.kind.clone().unwrap_or_default());
    f.insert(
        "involvedObject.namespace",
        o.namespace.clone().unwrap_or_default(),
    );
    f.insert("involvedObject.name", o.name.clone().unwrap_or_default());
    f.insert("involvedObject.uid", o.uid.clone().unwrap_or_default());
    f.insert(
        "involvedObject.apiVersion",
        o.api_version.clone().unwrap_or_default(),
    );
    f.insert(
        "involvedObject.resourceVersion",
        o.resource_version.clone().unwrap_or_default(),
    );
    f.insert(
        "involvedObject.fieldPath",
        o.field_path.clone().unwrap_or_default(),
    );
    f.insert("reason", ev.reason.clone().unwrap_or_default());
    f.insert(
        "reportingComponent",
        ev.reporting_component.clone().unwrap_or_default(),
    );
    let source = ev
        .source
        .as_ref()
        .and_then(|s| s.component.clone())
        .filter(|c| !c.is_empty())
        .or(ev.reporting_component.clone())
        .unwrap_or_default();
    f.insert("source", source);
    f.insert("type", ev.type_.clone().unwrap_or_default());
    f
}

pub fn node_fields(node: &Node) -> Fields {
    let mut f = meta_fields(&node.metadata, false);
    let unschedulable = node
        .spec
        .as_ref()
        .and_then(|s| s.unschedulable)
        .unwrap_or(false);
    f.insert("spec.unschedulable", unschedulable.to_string());
    f
}

pub fn namespace_fields(ns: &Namespace) -> Fields {
    let mut f = meta_fields(&ns.metadata, false);
    f.insert(
        "status.phase",
        ns.status
            .as_ref()
            .and_then(|s| s.phase.clone())
            .unwrap_or_default(),
    );
    f
}

pub fn secret_fields(secret: &Secret) -> Fields {
    let mut f = meta_fields(&secret.metadata, true);
    f.insert("type", secret.type_.clone().unwrap_or_default());
    f
}

pub fn service_fields(svc: &Service) -> Fields {
    let mut f = meta_fields(&svc.metadata, true);
    let spec = svc.spec.clone().unwrap_or_default();
    f.insert("spec.clusterIP", spec.cluster_ip.unwrap_or_default());
    f.insert("spec.type", spec.type_.unwrap_or_default());
    f
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::k8s::api::core::v1::{EventSource, ObjectReference, PodSpec, PodStatus};

    fn pod() -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some("web".into()),
                namespace: Some("default".into()),
                ..Default::default()
            },
            spec: Some(PodSpec {
                node_name: Some("node1".into()),
                restart_policy: Some("Always".into()),
                scheduler_name: Some("default-scheduler".into()),
                ..Default::default()
            }),
            status: Some(PodStatus {
                phase: Some("Running".into()),
                pod_ip: Some("10.0.0.5".into()),
                ..Default::default()
            }),
        }
    }

    #[test]
    fn selects_pods_like_kubectl_asks() {
        let fields = pod_fields(&pod());
        let cases = [
            ("metadata.name=web", true),
            ("metadata.name==web", true),
            ("metadata.name=other", false),
            (
                "spec.nodeName=node1,status.phase!=Failed,status.phase!=Succeeded",
                true,
            ),
            ("status.phase!=Running", false),
            ("spec.schedulerName=default-scheduler", true),
            ("spec.restartPolicy=Always", true),
            ("status.podIP=10.0.0.5", true),
            ("spec.hostNetwork=false", true),
            ("metadata.namespace=default", true),
            ("spec.host=node1", true),
            ("", true),
        ];
        for (input, want) in cases {
            let sel = FieldSelector::parse(input)
                .unwrap()
                .for_kind("Pod")
                .unwrap();
            assert_eq!(sel.matches(&fields), want, "{input}");
        }
    }

    #[test]
    fn selects_events_for_describe() {
        let ev = Event {
            metadata: ObjectMeta {
                name: Some("web.1".into()),
                namespace: Some("default".into()),
                ..Default::default()
            },
            involved_object: ObjectReference {
                kind: Some("Pod".into()),
                name: Some("web".into()),
                namespace: Some("default".into()),
                uid: Some("u-1".into()),
                ..Default::default()
            },
            reason: Some("Pulled".into()),
            type_: Some("Normal".into()),
            source: Some(EventSource {
                component: Some("kubelet".into()),
                host: None,
            }),
            ..Default::default()
        };
        let fields = event_fields(&ev);
        let cases = [
            (
                "involvedObject.name=web,involvedObject.namespace=default,involvedObject.uid=u-1",
                true,
            ),
            ("involvedObject.uid=u-1,involvedObject.name=web", true),
            ("involvedObject.kind=Pod", true),
            ("involvedObject.kind=Node", false),
            ("reason=Pulled,type=Normal", true),
            ("source=kubelet", true),
            ("involvedObject.namespace=", false),
        ];
        for (input, want) in cases {
            let sel = FieldSelector::parse(input)
                .unwrap()
                .for_kind("Event")
                .unwrap();
            assert_eq!(sel.matches(&fields), want, "{input}");
        }
    }

    #[test]
    fn rejects_unsupported_fields_and_bad_syntax() {
        let cases = [
            ("Pod", "x=1", "field label not supported: x"),
            (
                "Pod",
                "spec.containers=1",
                "field label not supported: spec.containers",
            ),
            (
                "Event",
                "involvedObject.bogus=1",
                "field label not supported: involvedObject.bogus",
            ),
            (
                "RuntimeClass",
                "handler=runc",
                "field label not supported: handler",
            ),
        ];
        for (kind, input, want) in cases {
            let err = FieldSelector::parse(input)
                .unwrap()
                .for_kind(kind)
                .unwrap_err();
            assert_eq!(err.0, want);
        }
        let syntax = [
            (
                "nonsense",
                "invalid selector: 'nonsense'; can't understand 'nonsense'",
            ),
            (
                "a=b\\x",
                "invalid field selector: invalid escape sequence: \\x",
            ),
            (
                "a=b=c",
                "invalid field selector: unescaped character in value: 61",
            ),
        ];
        for (input, want) in syntax {
            assert_eq!(FieldSelector::parse(input).unwrap_err().0, want, "{input}");
        }
    }

    #[test]
    fn escapes_and_exact_lookups() {
        let sel = FieldSelector::parse("metadata.name=a\\,b,status.phase!=x").unwrap();
        assert_eq!(sel.exact("metadata.name"), Some("a,b"));
        assert_eq!(sel.exact("status.phase"), None);
        assert_eq!(sel.to_string(), "metadata.name=a\\,b,status.phase!=x");
        let mut f = Fields::new();
        f.insert("metadata.name", "a,b".into());
        assert!(sel.matches(&f));
    }
}

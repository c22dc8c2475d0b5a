//! The strict rules upstream applies to Events created through events.k8s.io/v1
//! (`ValidateEventCreate` beyond the legacy checks): the reporting fields, action and reason
//! present and short, a known type, `eventTime` set and the legacy-only fields unset. Events
//! created through core/v1 keep the lenient legacy rules (the kubelet and scheduler write
//! those). Works on the storage form (core/v1 field names), with upstream's field paths.

use nodelet_api::field_errors::{FieldError, FieldErrors, Path};
use nodelet_api::names;
use serde_json::Value;

const REPORTING_INSTANCE_LENGTH_LIMIT: usize = 128;
const ACTION_LENGTH_LIMIT: usize = 128;
const REASON_LENGTH_LIMIT: usize = 128;
const NOTE_LENGTH_LIMIT: usize = 1024;

fn text<'a>(event: &'a Value, field: &str) -> &'a str {
    event[field].as_str().unwrap_or("")
}

fn at_most(errs: &mut FieldErrors, field: &str, value: &str, limit: usize) {
    if value.len() > limit {
        errs.push(FieldError::invalid(
            &Path::new(field),
            "",
            format!("can have at most {limit} characters"),
        ));
    }
}

fn required(errs: &mut FieldErrors, field: &str, value: &str) {
    if value.is_empty() {
        errs.push(FieldError::required(&Path::new(field), ""));
    }
}

/// The rules of an events.k8s.io/v1 create, on the converted (core/v1) event.
pub fn validate_v1_event_create(event: &Value) -> FieldErrors {
    let mut errs = FieldErrors::new();
    let namespace = event["metadata"]["namespace"].as_str().unwrap_or("");
    if text(&event["involvedObject"], "namespace").is_empty()
        && namespace != "default"
        && namespace != "kube-system"
    {
        errs.push(FieldError::invalid(
            &Path::new("involvedObject").child("namespace"),
            "",
            "does not match event.namespace",
        ));
    }
    let controller = text(event, "reportingComponent");
    required(&mut errs, "reportingController", controller);
    for msg in names::is_qualified_name(controller) {
        errs.push(FieldError::invalid(
            &Path::new("reportingController"),
            controller,
            msg,
        ));
    }
    let instance = text(event, "reportingInstance");
    required(&mut errs, "reportingInstance", instance);
    at_most(
        &mut errs,
        "reportingInstance",
        instance,
        REPORTING_INSTANCE_LENGTH_LIMIT,
    );
    let action = text(event, "action");
    required(&mut errs, "action", action);
    at_most(&mut errs, "action", action, ACTION_LENGTH_LIMIT);
    let reason = text(event, "reason");
    required(&mut errs, "reason", reason);
    at_most(&mut errs, "reason", reason, REASON_LENGTH_LIMIT);
    at_most(
        &mut errs,
        "message",
        text(event, "message"),
        NOTE_LENGTH_LIMIT,
    );

    let series = &event["series"];
    if series.is_object() {
        if series["count"].as_i64().unwrap_or(0) < 2 {
            errs.push(FieldError::invalid(
                &Path::new("series").child("count"),
                "",
                "should be at least 2",
            ));
        }
        if text(series, "lastObservedTime").is_empty() {
            errs.push(FieldError::required(
                &Path::new("series").child("lastObservedTime"),
                "",
            ));
        }
    }
    if text(event, "eventTime").is_empty() {
        errs.push(FieldError::required(&Path::new("eventTime"), ""));
    }
    let kind = text(event, "type");
    if kind != "Normal" && kind != "Warning" {
        errs.push(FieldError::invalid(
            &Path::new("type"),
            "",
            format!("has invalid value: {kind}"),
        ));
    }
    for (field, set) in [
        ("firstTimestamp", !text(event, "firstTimestamp").is_empty()),
        ("lastTimestamp", !text(event, "lastTimestamp").is_empty()),
        ("count", event["count"].as_i64().unwrap_or(0) != 0),
        (
            "source",
            !text(&event["source"], "component").is_empty()
                || !text(&event["source"], "host").is_empty(),
        ),
    ] {
        if set {
            errs.push(FieldError::invalid(
                &Path::new(field),
                "",
                "needs to be unset",
            ));
        }
    }
    errs
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn event() -> Value {
        json!({
            "metadata": {"name": "e", "namespace": "default"},
            "eventTime": "2026-01-02T03:04:05.000000Z",
            "reportingComponent": "example.com/checker",
            "reportingInstance": "checker-1",
            "action": "Checking",
            "reason": "Checked",
            "message": "fine",
            "type": "Normal",
            "involvedObject": {"kind": "Pod", "name": "p", "namespace": "default"},
        })
    }

    #[test]
    fn a_complete_event_passes() {
        assert!(validate_v1_event_create(&event()).is_empty());
    }

    #[test]
    fn upstream_messages() {
        let mut e = event();
        e["type"] = json!("Odd");
        e["action"] = json!("");
        e["count"] = json!(3);
        e.as_object_mut().unwrap().remove("eventTime");
        assert_eq!(
            validate_v1_event_create(&e).messages(),
            [
                "action: Required value",
                "eventTime: Required value",
                "type: Invalid value: \"\": has invalid value: Odd",
                "count: Invalid value: \"\": needs to be unset",
            ]
        );
    }
}

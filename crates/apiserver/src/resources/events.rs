//! events.k8s.io/v1 Events are the same objects as core/v1 Events with other field names;
//! upstream stores one form and converts. Here the stored form is core/v1, converted at the
//! edge, so both APIs list the same events.

use serde_json::{Map, Value};

/// (events.k8s.io/v1 field, core/v1 field) pairs that only differ in name.
const RENAMES: &[(&str, &str)] = &[
    ("regarding", "involvedObject"),
    ("note", "message"),
    ("reportingController", "reportingComponent"),
    ("deprecatedSource", "source"),
    ("deprecatedFirstTimestamp", "firstTimestamp"),
    ("deprecatedLastTimestamp", "lastTimestamp"),
    ("deprecatedCount", "count"),
];

fn rename(obj: Value, from_v1: bool) -> Value {
    let Value::Object(map) = obj else { return obj };
    let mut out = Map::with_capacity(map.len());
    for (key, value) in map {
        let renamed = RENAMES
            .iter()
            .find(|(v1, core)| if from_v1 { v1 == &key } else { core == &key })
            .map(|(v1, core)| if from_v1 { *core } else { *v1 });
        out.insert(renamed.map(str::to_owned).unwrap_or(key), value);
    }
    Value::Object(out)
}

/// events.k8s.io/v1 → core/v1 (the stored form).
pub fn to_core(obj: Value) -> Value {
    let mut obj = rename(obj, true);
    crate::resources::meta::set_type_meta(&mut obj, "v1", "Event");
    obj
}

/// core/v1 → events.k8s.io/v1.
pub fn from_core(obj: Value) -> Value {
    let mut obj = rename(obj, false);
    crate::resources::meta::set_type_meta(&mut obj, "events.k8s.io/v1", "Event");
    obj
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn converts_both_ways() {
        let v1 = json!({"apiVersion": "events.k8s.io/v1", "kind": "Event",
            "metadata": {"name": "e"}, "regarding": {"kind": "Pod", "name": "web"},
            "note": "hello", "reason": "Started", "reportingController": "kubelet",
            "deprecatedCount": 2});
        let core = to_core(v1.clone());
        assert_eq!(core["apiVersion"], "v1");
        assert_eq!(core["involvedObject"]["name"], "web");
        assert_eq!(core["message"], "hello");
        assert_eq!(core["count"], 2);
        assert_eq!(core["reportingComponent"], "kubelet");
        assert_eq!(from_core(core), v1);
    }
}

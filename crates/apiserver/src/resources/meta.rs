//! Object metadata on JSON values, and the clock-dependent bits (timestamps, ages).
//!
//! Objects travel through the server as `serde_json::Value`: the generic layer only needs a
//! few metadata fields, and keeping the JSON means fields this build's types do not know
//! survive a round trip unchanged.

use serde_json::{Map, Value};

/// `metadata` of an object (created empty when missing or not an object).
pub fn metadata_mut(obj: &mut Value) -> &mut Map<String, Value> {
    if !obj.is_object() {
        *obj = Value::Object(Map::new());
    }
    let map = obj.as_object_mut().expect("made an object above");
    let meta = map
        .entry("metadata")
        .or_insert_with(|| Value::Object(Map::new()));
    if !meta.is_object() {
        *meta = Value::Object(Map::new());
    }
    meta.as_object_mut().expect("made an object above")
}

/// A string field of `metadata`.
pub fn meta_str<'a>(obj: &'a Value, field: &str) -> Option<&'a str> {
    obj.get("metadata")?.get(field)?.as_str()
}

/// `metadata.name` (empty when missing).
pub fn name(obj: &Value) -> &str {
    meta_str(obj, "name").unwrap_or("")
}

/// `metadata.namespace`.
pub fn namespace(obj: &Value) -> Option<&str> {
    meta_str(obj, "namespace")
}

/// `metadata.labels` as pairs.
pub fn labels(obj: &Value) -> std::collections::BTreeMap<String, String> {
    obj.get("metadata")
        .and_then(|m| m.get("labels"))
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
                .collect()
        })
        .unwrap_or_default()
}

/// Sets a string field of `metadata`.
pub fn set_meta(obj: &mut Value, field: &str, value: impl Into<String>) {
    metadata_mut(obj).insert(field.to_owned(), Value::String(value.into()));
}

/// Sets `apiVersion` and `kind` (first in the object's key order, as upstream prints them).
pub fn set_type_meta(obj: &mut Value, api_version: &str, kind: &str) {
    if let Value::Object(map) = obj {
        let mut out = Map::with_capacity(map.len() + 2);
        out.insert("apiVersion".into(), Value::String(api_version.to_owned()));
        out.insert("kind".into(), Value::String(kind.to_owned()));
        for (k, v) in std::mem::take(map) {
            if k != "apiVersion" && k != "kind" {
                out.insert(k, v);
            }
        }
        *map = out;
    }
}

/// Follows a dotted path (`spec.nodeName`) through objects.
pub fn path<'a>(obj: &'a Value, dotted: &str) -> Option<&'a Value> {
    dotted.split('.').try_fold(obj, |v, part| v.get(part))
}

/// A field as a selector compares it: strings as they are, booleans and numbers printed, a
/// missing field as `""`.
pub fn field_string(obj: &Value, dotted: &str) -> String {
    match path(obj, dotted) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Bool(b)) => b.to_string(),
        Some(Value::Number(n)) => n.to_string(),
        _ => String::new(),
    }
}

/// The current time as Kubernetes writes `metav1.Time` (`2024-01-02T03:04:05Z`).
pub fn now_rfc3339() -> String {
    format_time(jiff::Timestamp::now())
}

/// A timestamp as `metav1.Time` (whole seconds, UTC).
pub fn format_time(ts: jiff::Timestamp) -> String {
    let secs = ts.as_second();
    jiff::Timestamp::from_second(secs)
        .unwrap_or(ts)
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

/// The current time as `metav1.MicroTime` (`2024-01-02T03:04:05.123456Z`).
pub fn now_micro() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%S.%6fZ")
        .to_string()
}

/// Parses an RFC 3339 timestamp.
pub fn parse_time(s: &str) -> Option<jiff::Timestamp> {
    s.parse().ok()
}

/// A random version-4 UUID (for `metadata.uid`).
pub fn new_uid() -> String {
    let mut b = crate::tls::random_bytes::<16>();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = crate::tls::hex(&b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// The five random characters `generateName` gets (the alphabet upstream uses: no vowels, no
/// digits that look like letters, so no words and no confusion).
pub fn random_suffix() -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    crate::tls::random_bytes::<5>()
        .iter()
        .map(|b| ALPHABET[usize::from(*b) % ALPHABET.len()] as char)
        .collect()
}

/// kubectl's human-readable duration (`5s`, `3m2s`, `60m`, `5h3m`, `2d3h`, `3y40d`).
pub fn human_duration(seconds: i64) -> String {
    if seconds < -1 {
        return "<invalid>".into();
    }
    if seconds < 0 {
        return "0s".into();
    }
    if seconds < 60 * 2 {
        return format!("{seconds}s");
    }
    let minutes = seconds / 60;
    if minutes < 10 {
        let s = seconds % 60;
        return if s == 0 {
            format!("{minutes}m")
        } else {
            format!("{minutes}m{s}s")
        };
    }
    if minutes < 60 * 3 {
        return format!("{minutes}m");
    }
    let hours = minutes / 60;
    if hours < 8 {
        let m = minutes % 60;
        return if m == 0 {
            format!("{hours}h")
        } else {
            format!("{hours}h{m}m")
        };
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    if hours < 24 * 8 {
        let h = hours % 24;
        return if h == 0 {
            format!("{}d", hours / 24)
        } else {
            format!("{}d{h}h", hours / 24)
        };
    }
    if hours < 24 * 365 * 2 {
        return format!("{}d", hours / 24);
    }
    if hours < 24 * 365 * 8 {
        let d = (hours / 24) % 365;
        return if d == 0 {
            format!("{}y", hours / 24 / 365)
        } else {
            format!("{}y{d}d", hours / 24 / 365)
        };
    }
    format!("{}y", hours / 24 / 365)
}

/// The age column of a timestamp field: `<unknown>` when missing.
pub fn age(timestamp: Option<&str>, now: jiff::Timestamp) -> String {
    match timestamp.and_then(parse_time) {
        Some(ts) => human_duration(now.as_second() - ts.as_second()),
        None => "<unknown>".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn human_durations_like_kubectl() {
        let cases = [
            (-5, "<invalid>"),
            (-1, "0s"),
            (0, "0s"),
            (5, "5s"),
            (119, "119s"),
            (120, "2m"),
            (182, "3m2s"),
            (600, "10m"),
            (3600, "60m"),
            (3 * 3600, "3h"),
            (5 * 3600 + 3 * 60, "5h3m"),
            (10 * 3600, "10h"),
            (2 * 86400 + 3 * 3600, "2d3h"),
            (3 * 86400, "3d"),
            (30 * 86400, "30d"),
            (3 * 365 * 86400 + 40 * 86400, "3y40d"),
            (9 * 365 * 86400, "9y"),
        ];
        for (secs, want) in cases {
            assert_eq!(human_duration(secs), want, "{secs}s");
        }
    }

    #[test]
    fn uid_and_suffix_shapes() {
        let uid = new_uid();
        assert_eq!(uid.len(), 36);
        assert_eq!(&uid[14..15], "4");
        assert_ne!(uid, new_uid());
        let s = random_suffix();
        assert_eq!(s.len(), 5);
        assert!(s.chars().all(|c| c.is_ascii_alphanumeric()));
    }

    #[test]
    fn type_meta_goes_first_and_paths_resolve() {
        let mut obj =
            json!({"metadata": {"name": "a"}, "spec": {"nodeName": "n1", "hostNetwork": true}});
        set_type_meta(&mut obj, "v1", "Pod");
        let keys: Vec<_> = obj.as_object().unwrap().keys().cloned().collect();
        assert_eq!(keys[..2], ["apiVersion".to_owned(), "kind".to_owned()]);
        assert_eq!(field_string(&obj, "spec.nodeName"), "n1");
        assert_eq!(field_string(&obj, "spec.hostNetwork"), "true");
        assert_eq!(field_string(&obj, "status.phase"), "");
        assert_eq!(name(&obj), "a");
    }

    #[test]
    fn times_are_whole_seconds_utc() {
        let ts: jiff::Timestamp = "2024-01-02T03:04:05.678Z".parse().unwrap();
        assert_eq!(format_time(ts), "2024-01-02T03:04:05Z");
        assert_eq!(age(Some("2024-01-02T03:04:05Z"), ts), "0s");
        assert_eq!(age(None, ts), "<unknown>");
    }
}

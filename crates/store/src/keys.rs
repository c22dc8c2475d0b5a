//! Key and prefix helpers shared by backends.

use crate::{Result, StoreError};

/// Rejects keys no backend can store.
pub(crate) fn check_key(key: &str) -> Result<()> {
    if key.is_empty() {
        return Err(StoreError::InvalidArgument("empty key".into()));
    }
    Ok(())
}

/// Rejects negative revisions.
pub(crate) fn check_revision(what: &str, revision: i64) -> Result<()> {
    if revision < 0 {
        return Err(StoreError::InvalidArgument(format!(
            "{what} {revision} is negative"
        )));
    }
    Ok(())
}

/// The smallest byte string greater than every string that starts with `prefix`, or `None` if
/// there is none (the empty prefix, or one of only `0xff` bytes). `k` starts with `prefix`
/// exactly when `prefix <= k < prefix_end(prefix)`: the etcd `range_end` of a prefix.
pub(crate) fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_end_cases() {
        let cases: &[(&[u8], Option<&[u8]>)] = &[
            (b"", None),
            (b"/a/", Some(b"/a0")),
            (b"a", Some(b"b")),
            (b"a\xff", Some(b"b")),
            (b"\xff\xff", None),
        ];
        for (prefix, want) in cases {
            assert_eq!(prefix_end(prefix).as_deref(), *want, "prefix {prefix:?}");
        }
    }

    #[test]
    fn prefix_range_matches_starts_with() {
        let prefix = "/registry/pods/default/";
        let end = prefix_end(prefix.as_bytes()).unwrap();
        for key in [
            "/registry/pods/default/a",
            "/registry/pods/default/",
            "/registry/pods/default2/a",
            "/registry/pods/defaulu",
            "/registry/pods/default0",
            "/registry/pods/default/\u{10ffff}",
        ] {
            let in_range = key.as_bytes() >= prefix.as_bytes() && key.as_bytes() < &end[..];
            assert_eq!(in_range, key.starts_with(prefix), "{key}");
        }
    }

    #[test]
    fn checks() {
        assert!(check_key("").is_err());
        assert!(check_key("/a").is_ok());
        assert!(check_revision("r", -1).is_err());
        assert!(check_revision("r", 0).is_ok());
    }
}

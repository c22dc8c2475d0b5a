//! The part of image-reference parsing the API server needs for defaulting
//! `imagePullPolicy`: whether a reference parses, and its tag.
//!
//! Upstream defaults with `ParseImageName` (distribution's `ParseNormalizedNamed`): the tag
//! is the explicit tag, `latest` when there is neither tag nor digest, and empty when the
//! reference has only a digest or does not parse. Pulling itself uses the `image` crate's
//! full reference model; this module only answers "which tag".

/// The image string is not a valid reference (the kubelet reports `InvalidImageName`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid reference format")]
pub struct InvalidReference;

/// The tag the kubelet would pull: `Ok(Some(tag))`, `Ok(None)` for a digest-only reference.
pub fn effective_tag(image: &str) -> Result<Option<String>, InvalidReference> {
    let (tag, digest) = parse_normalized(image)?;
    Ok(match (tag, digest) {
        (Some(t), _) => Some(t),
        (None, Some(_)) => None,
        (None, None) => Some("latest".to_owned()),
    })
}

/// `Always` when the effective tag is `latest`, else `IfNotPresent` (also for references
/// that do not parse: the kubelet reports those as `InvalidImageName` later).
pub fn default_pull_policy(image: &str) -> &'static str {
    match effective_tag(image) {
        Ok(Some(t)) if t == "latest" => "Always",
        _ => "IfNotPresent",
    }
}

fn is_hex64(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// `(tag, digest)` of a reference in the familiar or full form.
fn parse_normalized(image: &str) -> Result<(Option<String>, Option<String>), InvalidReference> {
    if image.is_empty() || is_hex64(image) {
        return Err(InvalidReference);
    }
    // the domain is the first path part if it looks like a host
    let (domain, remainder) = match image.split_once('/') {
        Some((first, rest))
            if first == "localhost"
                || first.contains('.')
                || first.contains(':')
                || first.bytes().any(|b| b.is_ascii_uppercase()) =>
        {
            (Some(first), rest)
        }
        _ => (None, image),
    };
    let name_part = remainder.split(':').next().unwrap_or("");
    if name_part.bytes().any(|b| b.is_ascii_uppercase()) {
        return Err(InvalidReference);
    }
    if let Some(d) = domain
        && !valid_domain(d)
    {
        return Err(InvalidReference);
    }
    let (before_digest, digest) = match remainder.split_once('@') {
        Some((n, d)) => (n, Some(d)),
        None => (remainder, None),
    };
    let (path, tag) = match before_digest.rsplit_once(':') {
        Some((p, t)) if !t.contains('/') => (p, Some(t)),
        _ => (before_digest, None),
    };
    if path.is_empty() || path.len() > 255 || !path.split('/').all(valid_path_component) {
        return Err(InvalidReference);
    }
    if let Some(t) = tag
        && !valid_tag(t)
    {
        return Err(InvalidReference);
    }
    if let Some(d) = digest
        && !valid_digest(d)
    {
        return Err(InvalidReference);
    }
    Ok((tag.map(str::to_owned), digest.map(str::to_owned)))
}

fn valid_domain(d: &str) -> bool {
    let (host, port) = if let Some(rest) = d.strip_prefix('[') {
        // [IPv6]:port
        let Some((addr, after)) = rest.split_once(']') else {
            return false;
        };
        if addr.is_empty() || !addr.bytes().all(|b| b.is_ascii_hexdigit() || b == b':') {
            return false;
        }
        match after {
            "" => return true,
            a => match a.strip_prefix(':') {
                Some(p) => ("ok", Some(p)),
                None => return false,
            },
        }
    } else {
        match d.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (d, None),
        }
    };
    if let Some(p) = port
        && (p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()))
    {
        return false;
    }
    !host.is_empty()
        && host.split('.').all(|c| {
            let b = c.as_bytes();
            !b.is_empty()
                && b[0].is_ascii_alphanumeric()
                && b[b.len() - 1].is_ascii_alphanumeric()
                && b.iter().all(|&x| x.is_ascii_alphanumeric() || x == b'-')
        })
}

/// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`
fn valid_path_component(c: &str) -> bool {
    let b = c.as_bytes();
    let alnum = |x: u8| x.is_ascii_lowercase() || x.is_ascii_digit();
    if b.is_empty() || !alnum(b[0]) || !alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if alnum(b[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && !alnum(b[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|x| x == b'-');
        if !ok {
            return false;
        }
    }
    true
}

/// `[\w][\w.-]{0,127}`
fn valid_tag(t: &str) -> bool {
    let b = t.as_bytes();
    let word = |x: u8| x.is_ascii_alphanumeric() || x == b'_';
    !b.is_empty()
        && b.len() <= 128
        && word(b[0])
        && b.iter().all(|&x| word(x) || x == b'.' || x == b'-')
}

/// A digest go-digest accepts: a registered algorithm with its exact lowercase hex length.
fn valid_digest(d: &str) -> bool {
    let Some((alg, hex)) = d.split_once(':') else {
        return false;
    };
    let len = match alg {
        "sha256" => 64,
        "sha384" => 96,
        "sha512" => 128,
        _ => return false,
    };
    hex.len() == len
        && hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pull_policy_follows_the_tag() {
        let d = "a".repeat(64);
        let cases = [
            ("busybox", "Always"),
            ("busybox:latest", "Always"),
            ("busybox:1.36", "IfNotPresent"),
            ("library/nginx", "Always"),
            ("myuser/app:V1", "IfNotPresent"),
            ("docker.io/nginx", "Always"),
            ("localhost/app", "Always"),
            ("registry.example.com:5000/team/app:1.0", "IfNotPresent"),
            ("registry.example.com:5000/team/app", "Always"),
            ("[::1]:5000/app", "Always"),
            ("127.0.0.1:5000/app:v2", "IfNotPresent"),
            (&format!("img@sha256:{d}"), "IfNotPresent"),
            (&format!("img:3.5@sha256:{d}"), "IfNotPresent"),
            (&format!("img:latest@sha256:{d}"), "Always"),
            (
                &format!("img:latest@sha256:{}", "a".repeat(10)),
                "IfNotPresent",
            ),
            ("Nginx", "IfNotPresent"),
            ("nginx::1", "IfNotPresent"),
            ("ko://x/y", "IfNotPresent"),
            ("a b", "IfNotPresent"),
            ("", "IfNotPresent"),
            (&d, "IfNotPresent"),
            ("Registry.Example.com/app", "Always"),
            ("a__b/c--d/e.f:tag_1.0-x", "IfNotPresent"),
            ("a___b", "IfNotPresent"),
        ];
        for (image, want) in cases {
            assert_eq!(default_pull_policy(image), want, "{image:?}");
        }
    }

    #[test]
    fn effective_tags() {
        assert_eq!(effective_tag("busybox:1.36"), Ok(Some("1.36".into())));
        assert_eq!(effective_tag("busybox"), Ok(Some("latest".into())));
        assert_eq!(
            effective_tag(&format!("b@sha256:{}", "0".repeat(64))),
            Ok(None)
        );
        assert_eq!(effective_tag("UPPER"), Err(InvalidReference));
    }
}

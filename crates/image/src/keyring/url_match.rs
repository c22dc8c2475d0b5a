//! Registry-key normalisation and the kubelet's `URLsMatch` rule (spec §3.3–§3.5).

use super::glob::glob_match;
use super::go_url::{ParsedUrl, UrlError, parse_url_with_scheme, split_host_port};

/// Host of Docker Hub's v1 index; the key that `https://index.docker.io/v1/` normalises to and
/// the fallback key for images that look like Docker Hub images.
pub const DOCKER_HUB_INDEX_HOST: &str = "index.docker.io";

/// Normalises a registry key from a docker config into the keyring's key: scheme dropped,
/// a leading `/v1/` or `/v2/` reduced to `/`, and the path kept only if it is more than `/`.
///
/// `https://index.docker.io/v1/` → `index.docker.io`; `my.reg:5000/team` → `my.reg:5000/team`.
pub fn normalize_registry_key(raw_key: &str) -> Result<String, UrlError> {
    let parsed = if raw_key.starts_with("https://") || raw_key.starts_with("http://") {
        parse_url_with_scheme(raw_key)?
    } else {
        parse_url_with_scheme(&format!("https://{raw_key}"))?
    };
    // The docker client treats `/v1/` and `/v2/` as "the whole registry".
    let path = if parsed.path.starts_with("/v1/") || parsed.path.starts_with("/v2/") {
        &parsed.path[3..]
    } else {
        parsed.path.as_str()
    };
    Ok(if path.is_empty() || path == "/" {
        parsed.host
    } else {
        format!("{}{path}", parsed.host)
    })
}

/// The kubelet's `URLsMatchStr`: whether `target` (an image name without tag or digest, such
/// as `docker.io/library/nginx`) is covered by `pattern` (a normalised registry key or a
/// `matchImages` entry).
///
/// Both are read as `https://<text>`. They match when the ports are equal (absent on both
/// sides counts as equal), the hosts have the same number of dot-separated labels, every
/// target label matches its pattern label as a glob (`*`, `?`, `[...]`, `\`), and the target
/// path starts with the pattern path. Anything unparsable matches nothing.
pub fn urls_match(pattern: &str, target: &str) -> bool {
    match (parse_schemeless(pattern), parse_schemeless(target)) {
        (Ok(pattern), Ok(target)) => parsed_urls_match(&pattern, &target),
        _ => false,
    }
}

fn parse_schemeless(text: &str) -> Result<ParsedUrl, UrlError> {
    parse_url_with_scheme(&format!("https://{text}"))
}

fn parsed_urls_match(pattern: &ParsedUrl, target: &ParsedUrl) -> bool {
    let (pattern_labels, pattern_port) = labels_and_port(&pattern.host);
    let (target_labels, target_port) = labels_and_port(&target.host);
    pattern_port == target_port
        && pattern_labels.len() == target_labels.len()
        && target.path.starts_with(&pattern.path)
        && pattern_labels
            .iter()
            .zip(&target_labels)
            .all(|(pattern_label, target_label)| glob_match(pattern_label, target_label))
}

/// Host labels and port; a host Go cannot split (no port, odd brackets) is all labels.
fn labels_and_port(host: &str) -> (Vec<&str>, &str) {
    match split_host_port(host) {
        Some((name, port)) => (name.split('.').collect(), port),
        None => (host.split('.').collect(), ""),
    }
}

/// Whether an image name without a registry-looking first component belongs to Docker Hub,
/// so that credentials stored for `index.docker.io` apply to it.
pub fn looks_like_docker_hub_image(image: &str) -> bool {
    let (first, rest) = match image.split_once('/') {
        Some((first, rest)) => (first, Some(rest)),
        None => (image, None),
    };
    if first.is_empty() {
        return false;
    }
    match rest {
        None => true,
        Some(_) => {
            first == "docker.io" || first == DOCKER_HUB_INDEX_HOST || !first.contains(['.', ':'])
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_registry_keys() {
        let cases: &[(&str, &str)] = &[
            ("https://index.docker.io/v1/", "index.docker.io"),
            ("index.docker.io/v1/", "index.docker.io"),
            ("http://quay.io", "quay.io"),
            ("quay.io/", "quay.io"),
            ("my.reg:5000/team", "my.reg:5000/team"),
            ("https://my.reg/v2/team/app", "my.reg/team/app"),
            ("my.reg/v1", "my.reg/v1"),
            ("*.example.com", "*.example.com"),
            ("user:pw@reg.io", "reg.io"),
            ("reg.io/a%20b", "reg.io/a b"),
        ];
        for (raw, expected) in cases {
            assert_eq!(
                normalize_registry_key(raw).as_deref(),
                Ok(*expected),
                "key {raw:?}"
            );
        }
        assert!(normalize_registry_key("reg.io:port").is_err());
        assert!(normalize_registry_key("reg io").is_err());
    }

    #[test]
    fn urls_match_table() {
        // (pattern, target, expected): the §3.4 examples first, then ports and paths.
        let cases: &[(&str, &str, bool)] = &[
            ("*.kubernetes.io", "kubernetes.io", false),
            ("*.kubernetes.io", "abc.kubernetes.io", true),
            ("*.*.kubernetes.io", "abc.kubernetes.io", false),
            ("*.*.kubernetes.io", "a.b.kubernetes.io", true),
            ("prefix.*.io", "prefix.kubernetes.io", true),
            ("*-good.kubernetes.io", "prefix-good.kubernetes.io", true),
            ("*-good.kubernetes.io", "prefix-bad.kubernetes.io", false),
            ("k8s.*.io", "k8s.example.io", true),
            ("k8s.*", "k8s.io", true),
            ("app*.k8s.io", "app1.k8s.io", true),
            ("app*.k8s.io", "api.k8s.io", false),
            ("*.k8s.io", "a.b.k8s.io", false),
            ("reg?.io", "reg1.io", false),
            ("reg[0-9].io", "reg1.io", true),
            ("reg[0-9].io", "regx.io", false),
            // Go's URL parser rejects `^` in a host, so negated classes never match here.
            ("r[^x]g.io", "reg.io", false),
            // A key starting with `[` reads as an IPv6 literal: `eg.io` is then a bad port.
            ("[r]eg.io", "reg.io", false),
            ("Reg.io", "reg.io", false),
            ("gcr.io", "gcr.io/project/image", true),
            ("gcr.io", "eu.gcr.io/project/image", false),
            ("registry.io:8080/path", "registry.io:8080/path/image", true),
            ("registry.io:8080/path", "registry.io/path/image", false),
            ("registry.io", "registry.io:8080/image", false),
            ("registry.io:8080", "registry.io:8081/image", false),
            ("registry.io:8080", "registry.io:8080/image", true),
            ("*.io:8080", "registry.io:8080", true),
            ("reg.io/team", "reg.io/team/app", true),
            ("reg.io/team", "reg.io/teamwork/app", true),
            ("reg.io/team", "reg.io/other/app", false),
            ("reg.io/team/app", "reg.io/team", false),
            ("reg.io/*", "reg.io/anything", false),
            (
                "123456789.dkr.ecr.us-east-1.amazonaws.com",
                "123456789.dkr.ecr.us-east-1.amazonaws.com/app",
                true,
            ),
            ("*.azurecr.io", "myreg.azurecr.io/app", true),
            ("reg.io:bad", "reg.io:bad/app", false),
        ];
        for (pattern, target, expected) in cases {
            assert_eq!(
                urls_match(pattern, target),
                *expected,
                "pattern {pattern:?} target {target:?}"
            );
        }
    }

    #[test]
    fn recognises_docker_hub_images() {
        let cases: &[(&str, bool)] = &[
            ("nginx", true),
            ("library/nginx", true),
            ("docker.io/library/nginx", true),
            ("index.docker.io/library/nginx", true),
            ("user/app", true),
            ("quay.io/coreos/etcd", false),
            ("localhost:5000/app", false),
            ("/app", false),
            ("", false),
        ];
        for (image, expected) in cases {
            assert_eq!(
                looks_like_docker_hub_image(image),
                *expected,
                "image {image:?}"
            );
        }
    }
}

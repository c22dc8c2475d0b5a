//! The part of Go's `net/url.Parse` and `net.SplitHostPort` that registry-key matching relies on.
//!
//! The kubelet turns registry keys and image names into URLs (`https://` + text) and compares
//! host labels, ports and paths. Which keys are rejected, and what host and path come out
//! (percent-decoded, query and fragment cut off), decides what matches, so this follows Go's
//! rules for URLs of the form `http(s)://authority/path?query#fragment`.

/// Why a registry key or pattern is not a URL; texts follow Go's `net/url` errors.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    #[error("net/url: invalid control character in URL")]
    ControlCharacter,
    #[error("invalid URL escape {0:?}")]
    InvalidEscape(String),
    /// The user-info part is malformed; its text is never repeated because it may hold a
    /// password.
    #[error("net/url: invalid userinfo")]
    InvalidUserinfo,
    #[error("missing ']' in host")]
    MissingBracket,
    #[error("invalid port {0:?} after host")]
    InvalidPort(String),
    #[error("invalid character {0:?} in host name")]
    InvalidHostCharacter(String),
}

/// Host (with port, percent-decoded) and path (percent-decoded) of a parsed URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedUrl {
    pub host: String,
    pub path: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Component {
    Host,
    Path,
    Userinfo,
    Fragment,
}

/// Parses `raw`, which must begin with a scheme and `://` (callers always add one).
pub fn parse_url_with_scheme(raw: &str) -> Result<ParsedUrl, UrlError> {
    let (before_fragment, fragment) = match raw.split_once('#') {
        Some((before, fragment)) => (before, Some(fragment)),
        None => (raw, None),
    };
    if before_fragment.bytes().any(|b| b < b' ' || b == 0x7f) {
        return Err(UrlError::ControlCharacter);
    }
    let rest = before_fragment
        .split_once(':')
        .map_or(before_fragment, |(_scheme, rest)| rest);
    // The query is cut off unvalidated, as Go keeps it raw.
    let rest = rest
        .split_once('?')
        .map_or(rest, |(before_query, _)| before_query);
    let (host, raw_path) = match rest.strip_prefix("//") {
        Some(authority_and_path) => {
            let (authority, path) = match authority_and_path.find('/') {
                Some(slash) => authority_and_path.split_at(slash),
                None => (authority_and_path, ""),
            };
            (parse_authority(authority)?, path)
        }
        None => (String::new(), rest),
    };
    let path = unescape(raw_path, Component::Path)?;
    if let Some(fragment) = fragment {
        unescape(fragment, Component::Fragment)?;
    }
    Ok(ParsedUrl { host, path })
}

/// Splits `host:port` like Go's `net.SplitHostPort`; `None` where Go returns an error
/// (no port, too many colons, stray brackets).
pub fn split_host_port(host_port: &str) -> Option<(&str, &str)> {
    let last_colon = host_port.rfind(':')?;
    let (host, unbracketed_from, bracket_end_from) = if host_port.starts_with('[') {
        let close = host_port.find(']')?;
        // The port must follow the closing bracket directly.
        if close + 1 != last_colon {
            return None;
        }
        (&host_port[1..close], 1, close + 1)
    } else {
        let host = &host_port[..last_colon];
        if host.contains(':') {
            return None;
        }
        (host, 0, 0)
    };
    if host_port[unbracketed_from..].contains('[') || host_port[bracket_end_from..].contains(']') {
        return None;
    }
    Some((host, &host_port[last_colon + 1..]))
}

fn parse_authority(authority: &str) -> Result<String, UrlError> {
    let (userinfo, host_port) = match authority.rfind('@') {
        Some(at) => (Some(&authority[..at]), &authority[at + 1..]),
        None => (None, authority),
    };
    let host = parse_host(host_port)?;
    if let Some(userinfo) = userinfo {
        if !is_valid_userinfo(userinfo) {
            return Err(UrlError::InvalidUserinfo);
        }
        unescape(userinfo, Component::Userinfo).map_err(|_| UrlError::InvalidUserinfo)?;
    }
    Ok(host)
}

fn parse_host(host: &str) -> Result<String, UrlError> {
    let colon_port = if host.starts_with('[') {
        let close = host.rfind(']').ok_or(UrlError::MissingBracket)?;
        &host[close + 1..]
    } else {
        host.rfind(':').map_or("", |colon| &host[colon..])
    };
    if !is_valid_optional_port(colon_port) {
        return Err(UrlError::InvalidPort(colon_port.to_owned()));
    }
    unescape(host, Component::Host)
}

fn is_valid_optional_port(colon_port: &str) -> bool {
    match colon_port.strip_prefix(':') {
        Some(digits) => digits.bytes().all(|b| b.is_ascii_digit()),
        None => colon_port.is_empty(),
    }
}

fn is_valid_userinfo(userinfo: &str) -> bool {
    userinfo
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "-._:~!$&'()*+,;=%@".contains(c))
}

/// ASCII bytes Go accepts unescaped in a host: alphanumerics, the RFC 3986 sub-delimiters,
/// `:` for the port, brackets for IPv6, and a few Go lets through (`<`, `>`, `"`).
fn allowed_in_host(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!$&'()*+,;=:[]<>\"-_.~".contains(&b)
}

/// Percent-decodes `text`, rejecting malformed escapes (and, in a host, ASCII bytes that
/// would need escaping or escapes of ASCII other than `%25`).
fn unescape(text: &str, component: Component) -> Result<String, UrlError> {
    let bytes = text.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut at = 0;
    while at < bytes.len() {
        let b = bytes[at];
        if b == b'%' {
            let escape_end = (at + 3).min(bytes.len());
            let escape = || String::from_utf8_lossy(&bytes[at..escape_end]).into_owned();
            let (Some(high), Some(low)) = (
                bytes.get(at + 1).copied().and_then(hex_value),
                bytes.get(at + 2).copied().and_then(hex_value),
            ) else {
                return Err(UrlError::InvalidEscape(escape()));
            };
            if component == Component::Host && high < 8 && &bytes[at..at + 3] != b"%25" {
                return Err(UrlError::InvalidEscape(escape()));
            }
            decoded.push(high << 4 | low);
            at += 3;
            continue;
        }
        if component == Component::Host && b < 0x80 && !allowed_in_host(b) {
            return Err(UrlError::InvalidHostCharacter(char::from(b).to_string()));
        }
        decoded.push(b);
        at += 1;
    }
    // Go strings may hold any bytes; Rust strings may not. Invalid UTF-8 after decoding can
    // only come from escapes, and lossy conversion keeps the comparison deterministic.
    Ok(String::from_utf8_lossy(&decoded).into_owned())
}

fn hex_value(b: u8) -> Option<u8> {
    char::from(b)
        .to_digit(16)
        .and_then(|digit| u8::try_from(digit).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(host: &str, path: &str) -> Result<ParsedUrl, UrlError> {
        Ok(ParsedUrl {
            host: host.to_owned(),
            path: path.to_owned(),
        })
    }

    #[test]
    fn parses_host_and_path_like_go() {
        let cases: &[(&str, Result<ParsedUrl, UrlError>)] = &[
            ("https://quay.io", parsed("quay.io", "")),
            ("https://quay.io/", parsed("quay.io", "/")),
            (
                "https://my.reg:5000/team/app",
                parsed("my.reg:5000", "/team/app"),
            ),
            (
                "http://index.docker.io/v1/",
                parsed("index.docker.io", "/v1/"),
            ),
            ("https://user:pw@reg.io/x", parsed("reg.io", "/x")),
            ("https://reg.io/a%2Fb", parsed("reg.io", "/a/b")),
            ("https://reg.io/a?b=c#d", parsed("reg.io", "/a")),
            ("https://*.reg.io", parsed("*.reg.io", "")),
            ("https://[::1]:5000/x", parsed("[::1]:5000", "/x")),
            ("https://reg.io:", parsed("reg.io:", "")),
            (
                "https://reg.io:abc",
                Err(UrlError::InvalidPort(":abc".into())),
            ),
            (
                "https://reg io",
                Err(UrlError::InvalidHostCharacter(" ".into())),
            ),
            (
                "https://reg\\io",
                Err(UrlError::InvalidHostCharacter("\\".into())),
            ),
            (
                "https://reg.io/%zz",
                Err(UrlError::InvalidEscape("%zz".into())),
            ),
            (
                "https://reg.io/%4",
                Err(UrlError::InvalidEscape("%4".into())),
            ),
            (
                "https://reg%41.io",
                Err(UrlError::InvalidEscape("%41".into())),
            ),
            ("https://reg.io#%", Err(UrlError::InvalidEscape("%".into()))),
            ("https://reg.io/\n", Err(UrlError::ControlCharacter)),
            ("https://[::1", Err(UrlError::MissingBracket)),
            ("https://us er:pw@reg.io", Err(UrlError::InvalidUserinfo)),
        ];
        for (raw, expected) in cases {
            assert_eq!(&parse_url_with_scheme(raw), expected, "url {raw:?}");
        }
    }

    #[test]
    fn splits_host_and_port_like_go() {
        let cases: &[(&str, Option<(&str, &str)>)] = &[
            ("reg.io:5000", Some(("reg.io", "5000"))),
            ("reg.io:", Some(("reg.io", ""))),
            ("reg.io", None),
            ("a:b:c", None),
            ("[::1]:80", Some(("::1", "80"))),
            ("[::1]", None),
            ("[::1]x:80", None),
            ("re[g.io:80", None),
            ("re]g.io:80", None),
        ];
        for (input, expected) in cases {
            assert_eq!(split_host_port(input), *expected, "input {input:?}");
        }
    }
}

//! Image references, parsed and normalised exactly as the kubelet does it.
//!
//! The kubelet hands `container.image` to the distribution reference library
//! (`ParseNormalizedNamed`). Which strings it accepts, how a short name such as `busybox` becomes
//! `docker.io/library/busybox`, and the exact error texts are all user-visible (they end up in
//! `InvalidImageName` events and waiting messages), so this module reproduces that behaviour
//! rather than inventing a nicer grammar.
//!
//! The grammar is matched by a small hand-written scanner. Every character the grammar accepts is
//! ASCII, and all the delimiters we split on (`/`, `:`, `@`, `[`, `]`) are ASCII too, so byte
//! offsets always fall on character boundaries and no input can make the scanner panic.

use std::fmt;
use std::str::FromStr;

use nodelet_goquote::go_quote;

/// Registry used when a reference names none (Docker Hub).
pub const DEFAULT_DOMAIN: &str = "docker.io";
/// Historic name of Docker Hub, rewritten to [`DEFAULT_DOMAIN`].
pub const LEGACY_DEFAULT_DOMAIN: &str = "index.docker.io";
/// Namespace of Docker Hub's official images, added to single-component Hub names.
pub const OFFICIAL_REPO_PREFIX: &str = "library/";
/// Tag assumed when a reference has neither tag nor digest.
pub const DEFAULT_TAG: &str = "latest";
/// Longest repository path (without the domain) the reference library accepts.
pub const MAX_PATH_LENGTH: usize = 255;
/// Longest tag the grammar accepts.
pub const MAX_TAG_LENGTH: usize = 128;

/// Host name that is always treated as a registry, never as a Docker Hub namespace.
const LOCALHOST: &str = "localhost";

/// Why a string is not a valid image reference. The texts are the upstream ones, verbatim.
#[derive(Debug, Clone, PartialEq, Eq, Hash, thiserror::Error)]
pub enum ReferenceError {
    /// The string does not match the reference grammar.
    #[error("invalid reference format")]
    InvalidFormat,
    /// The string would match the grammar if it were lowercased.
    #[error("repository name must be lowercase")]
    ContainsUppercase,
    /// The repository part after normalisation contains uppercase characters.
    #[error("invalid reference format: repository name ({remote}) must be lowercase")]
    RemoteNotLowercase {
        /// The repository part as the normaliser saw it (with `library/` already added).
        remote: String,
    },
    /// Only [`Reference::parse`] can see an empty string; the normalising parser reports
    /// [`ReferenceError::InvalidFormat`] for it, like upstream.
    #[error("repository name must have at least one component")]
    NameEmpty,
    /// The repository path is longer than [`MAX_PATH_LENGTH`].
    #[error("repository name must not be more than 255 characters")]
    NameTooLong,
    /// A bare 64-character hex string looks like an image ID, so it is refused as a name.
    #[error("invalid repository name ({input}), cannot specify 64-byte hexadecimal strings")]
    HexIdentifier {
        /// The refused input.
        input: String,
    },
    /// [`Reference::parse_canonical`] was given something other than the full normalised form.
    #[error("repository name must be canonical")]
    NotCanonical,
    /// [`Reference::with_tag`] was given a string that is not a tag.
    #[error("invalid tag format")]
    InvalidTag,
    /// [`Reference::with_digest`] was given a string that is not shaped like a digest.
    #[error("invalid digest format")]
    InvalidDigest,
    /// The digest is malformed for its algorithm (wrong characters, or no algorithm/hex split).
    #[error("invalid checksum digest format")]
    DigestInvalidFormat,
    /// The digest's hex part has the wrong length for its algorithm.
    #[error("invalid checksum digest length")]
    DigestInvalidLength,
    /// The digest names an algorithm other than sha256, sha384 or sha512.
    #[error("unsupported digest algorithm")]
    DigestUnsupported,
}

/// A parsed image reference: `domain/path[:tag][@digest]`.
///
/// Values only come out of the parsers and the `with_*` methods, so every `Reference` satisfies
/// the grammar; the domain is empty only in the rare case described on [`Reference::domain`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Reference {
    domain: String,
    path: String,
    tag: Option<String>,
    digest: Option<String>,
}

/// What a registry is asked for when the reference is pulled: the manifest reference in
/// `/v2/<name>/manifests/<reference>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PullTarget<'a> {
    /// Pull by content digest (`sha256:…`); any tag on the reference is ignored.
    Digest(&'a str),
    /// Pull by tag (`latest` when the reference named none).
    Tag(&'a str),
}

impl PullTarget<'_> {
    /// The manifest reference string sent to the registry.
    pub fn as_str(&self) -> &str {
        match self {
            PullTarget::Digest(digest) => digest,
            PullTarget::Tag(tag) => tag,
        }
    }
}

impl fmt::Display for PullTarget<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Reference {
    /// Parses a user-supplied image string the way the kubelet does (`ParseNormalizedNamed`):
    /// Docker Hub is the default registry, `index.docker.io` becomes `docker.io`, single-component
    /// Hub names get `library/`, and the repository part must be lowercase.
    pub fn parse_normalized(input: &str) -> Result<Reference, ReferenceError> {
        if is_hex_identifier(input) {
            return Err(ReferenceError::HexIdentifier {
                input: input.to_owned(),
            });
        }
        let (domain, remainder) = split_docker_domain(input);
        // Upstream checks case only up to the first ':' so that tags may contain uppercase.
        let remote = remainder.split(':').next().unwrap_or_default();
        if changes_when_lowercased(remote) {
            return Err(ReferenceError::RemoteNotLowercase {
                remote: remote.to_owned(),
            });
        }
        Reference::parse(&format!("{domain}/{remainder}"))
    }

    /// Parses a reference without any normalisation (upstream `Parse`): the domain is whatever
    /// precedes the first `/` if it looks like a host, otherwise empty.
    pub fn parse(input: &str) -> Result<Reference, ReferenceError> {
        let Some(parts) = match_reference(input) else {
            if input.is_empty() {
                return Err(ReferenceError::NameEmpty);
            }
            if match_reference(&go_to_lower(input)).is_some() {
                return Err(ReferenceError::ContainsUppercase);
            }
            return Err(ReferenceError::InvalidFormat);
        };
        if parts.path.len() > MAX_PATH_LENGTH {
            return Err(ReferenceError::NameTooLong);
        }
        if let Some(digest) = parts.digest {
            validate_digest(digest)?;
        }
        Ok(Reference {
            domain: parts.domain.to_owned(),
            path: parts.path.to_owned(),
            tag: parts.tag.map(str::to_owned),
            digest: parts.digest.map(str::to_owned),
        })
    }

    /// Parses a reference that must already be in full normalised form (upstream `ParseNamed`),
    /// e.g. `docker.io/library/nginx:1.27`; `nginx:1.27` is refused as not canonical.
    pub fn parse_canonical(input: &str) -> Result<Reference, ReferenceError> {
        let reference = Reference::parse_normalized(input)?;
        if reference.to_string() != input {
            return Err(ReferenceError::NotCanonical);
        }
        Ok(reference)
    }

    /// Registry host, with port and IPv6 brackets as written (`docker.io`, `[::1]:5000`).
    ///
    /// Empty only when the normaliser took the first component for a host but the grammar does
    /// not accept it as one (e.g. `my_host.com/app`): upstream then keeps the whole name as the
    /// path, and so do we.
    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// Repository path within the registry (`library/busybox`).
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The tag, if the reference carries one.
    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    /// The digest (`sha256:<hex>`), if the reference carries one.
    pub fn digest(&self) -> Option<&str> {
        self.digest.as_deref()
    }

    /// `domain/path` without tag or digest: the kubelet's `repoToPull`, which is what
    /// credentials are matched against.
    pub fn name(&self) -> String {
        join_name(&self.domain, &self.path)
    }

    /// True when the reference has neither tag nor digest.
    pub fn is_name_only(&self) -> bool {
        self.tag.is_none() && self.digest.is_none()
    }

    /// The short form people type: `docker.io/` removed and, for single-level official images,
    /// `library/` too (`docker.io/library/nginx:1` → `nginx:1`, `docker.io/library/a/b` stays
    /// `library/a/b`).
    pub fn familiar_string(&self) -> String {
        let mut out = self.familiar_name();
        push_tag_and_digest(&mut out, self.tag(), self.digest());
        out
    }

    /// [`Reference::familiar_string`] without tag and digest.
    pub fn familiar_name(&self) -> String {
        if self.domain != DEFAULT_DOMAIN {
            return join_name(&self.domain, &self.path);
        }
        match self.path.strip_prefix(OFFICIAL_REPO_PREFIX) {
            Some(official) if !official.contains('/') => official.to_owned(),
            _ => self.path.clone(),
        }
    }

    /// Adds the `latest` tag when the reference has neither tag nor digest (upstream
    /// `TagNameOnly`); a digest-only reference is left alone because the digest already pins it.
    pub fn with_default_tag(&self) -> Reference {
        let mut reference = self.clone();
        if reference.is_name_only() {
            reference.tag = Some(DEFAULT_TAG.to_owned());
        }
        reference
    }

    /// Replaces the tag, keeping any digest (upstream `WithTag`).
    pub fn with_tag(&self, tag: &str) -> Result<Reference, ReferenceError> {
        if !is_tag(tag) {
            return Err(ReferenceError::InvalidTag);
        }
        let mut reference = self.clone();
        reference.tag = Some(tag.to_owned());
        Ok(reference)
    }

    /// Replaces the digest, keeping any tag (upstream `WithDigest`). Unlike upstream, the digest
    /// is also checked against its algorithm, so a `Reference` never holds an unusable digest.
    pub fn with_digest(&self, digest: &str) -> Result<Reference, ReferenceError> {
        if !is_digest_pattern(digest) {
            return Err(ReferenceError::InvalidDigest);
        }
        validate_digest(digest)?;
        let mut reference = self.clone();
        reference.digest = Some(digest.to_owned());
        Ok(reference)
    }

    /// The reference a runtime actually pulls (upstream `ParseDockerRef`): with a digest the tag
    /// is dropped ("only the digest will be used for pulling"); without either, `latest` is added.
    pub fn pull_reference(&self) -> Reference {
        let mut reference = self.with_default_tag();
        if reference.digest.is_some() {
            reference.tag = None;
        }
        reference
    }

    /// What the registry is asked for: the digest if there is one, otherwise the tag
    /// (`latest` when none was given).
    pub fn pull_target(&self) -> PullTarget<'_> {
        match (&self.digest, &self.tag) {
            (Some(digest), _) => PullTarget::Digest(digest),
            (None, Some(tag)) => PullTarget::Tag(tag),
            (None, None) => PullTarget::Tag(DEFAULT_TAG),
        }
    }
}

impl fmt::Display for Reference {
    /// The full normalised form `domain/path[:tag][@digest]`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = self.name();
        push_tag_and_digest(&mut out, self.tag(), self.digest());
        f.write_str(&out)
    }
}

impl FromStr for Reference {
    type Err = ReferenceError;

    /// Same as [`Reference::parse_normalized`].
    fn from_str(input: &str) -> Result<Self, Self::Err> {
        Reference::parse_normalized(input)
    }
}

/// The kubelet could not make sense of `container.image` (`ParseImageName` failed).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("couldn't parse image name {}: {}", go_quote(.image), .cause)]
pub struct ImageNameError {
    image: String,
    cause: ReferenceError,
}

impl ImageNameError {
    /// The image string exactly as the pod spec gave it.
    pub fn image(&self) -> &str {
        &self.image
    }

    /// The underlying reference error (also part of this error's text).
    pub fn reference_error(&self) -> &ReferenceError {
        &self.cause
    }
}

/// The kubelet's `ParseImageName`: parses `container.image` and gives it the default tag when it
/// has neither tag nor digest, so `name()` is the repository to pull and `tag()`/`digest()` what
/// to pull from it.
pub fn parse_image_name(image: &str) -> Result<Reference, ImageNameError> {
    Reference::parse_normalized(image)
        .map(|reference| reference.with_default_tag())
        .map_err(|cause| ImageNameError {
            image: image.to_owned(),
            cause,
        })
}

/// The kubelet's `applyDefaultImageTag`: appends `:latest` to the user's string when it has no
/// tag and no digest. The string is otherwise left as written (no `docker.io/library/`), so the
/// runtime, not the kubelet, decides how short names are qualified.
pub fn apply_default_image_tag(image: &str) -> Result<String, ImageNameError> {
    let parsed = parse_image_name(image)?;
    match (parsed.digest(), parsed.tag()) {
        (None, Some(tag)) if !ends_with_tag(image, tag) => Ok(format!("{image}:{tag}")),
        _ => Ok(image.to_owned()),
    }
}

/// Message of the `InspectFailed` event emitted when [`apply_default_image_tag`] fails (the
/// container then waits with reason `InvalidImageName`).
pub fn default_tag_failure_message(image: &str, error: &ImageNameError) -> String {
    format!(
        "Failed to apply default image tag {}: {error}",
        go_quote(image)
    )
}

fn ends_with_tag(image: &str, tag: &str) -> bool {
    image
        .strip_suffix(tag)
        .is_some_and(|before| before.ends_with(':'))
}

fn join_name(domain: &str, path: &str) -> String {
    if domain.is_empty() {
        path.to_owned()
    } else {
        format!("{domain}/{path}")
    }
}

fn push_tag_and_digest(out: &mut String, tag: Option<&str>, digest: Option<&str>) {
    if let Some(tag) = tag {
        out.push(':');
        out.push_str(tag);
    }
    if let Some(digest) = digest {
        out.push('@');
        out.push_str(digest);
    }
}

/// Splits a user string into registry and remainder following upstream `splitDockerDomain`.
/// The remainder still carries tag and digest; it only gains `library/` for Hub names.
fn split_docker_domain(input: &str) -> (String, String) {
    let (domain, remote) = match input.split_once('/') {
        None => (DEFAULT_DOMAIN, input),
        Some((first, rest)) if first == LOCALHOST => (first, rest),
        Some((first, rest)) if first == LEGACY_DEFAULT_DOMAIN => (DEFAULT_DOMAIN, rest),
        Some((first, rest)) if first.contains(['.', ':']) => (first, rest),
        // Namespaces are lowercase, so an uppercase first component can only be a host.
        Some((first, rest)) if changes_when_lowercased(first) => (first, rest),
        Some(_) => (DEFAULT_DOMAIN, input),
    };
    if domain == DEFAULT_DOMAIN && !remote.contains('/') {
        (domain.to_owned(), format!("{OFFICIAL_REPO_PREFIX}{remote}"))
    } else {
        (domain.to_owned(), remote.to_owned())
    }
}

/// Lowercases one character the way Go's `unicode.ToLower` does. Rust's full mapping turns
/// U+0130 into two characters where Go gives plain `i`; everything else maps alike.
fn go_lower_char(c: char) -> char {
    if c == '\u{130}' {
        return 'i';
    }
    let mut lower = c.to_lowercase();
    match (lower.next(), lower.next()) {
        (Some(single), None) => single,
        _ => c,
    }
}

fn go_to_lower(text: &str) -> String {
    text.chars().map(go_lower_char).collect()
}

fn changes_when_lowercased(text: &str) -> bool {
    text.chars().any(|c| go_lower_char(c) != c)
}

/// A 64-character lowercase hex string: an image ID, not a name.
fn is_hex_identifier(input: &str) -> bool {
    input.len() == 64 && input.bytes().all(is_lower_hex)
}

fn is_lower_hex(byte: u8) -> bool {
    matches!(byte, b'0'..=b'9' | b'a'..=b'f')
}

/// The pieces of a string that matched the reference grammar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Parts<'a> {
    domain: &'a str,
    path: &'a str,
    tag: Option<&'a str>,
    digest: Option<&'a str>,
}

/// Matches `[domain "/"] remote-name [":" tag] ["@" digest]` over the whole input, choosing the
/// same split the upstream regular expression does (a domain when one fits, since the optional
/// domain group is greedy).
fn match_reference(input: &str) -> Option<Parts<'_>> {
    // Neither name nor tag may contain '@', and a digest never does, so the first '@' is the
    // only possible digest separator.
    let (before_digest, digest) = match input.split_once('@') {
        Some((before, digest)) => (before, Some(digest)),
        None => (input, None),
    };
    if digest.is_some_and(|digest| !is_digest_pattern(digest)) {
        return None;
    }
    // A ':' before the last '/' can only belong to the domain (a port or IPv6 address); the
    // path has no ':' at all, so the first ':' after the last '/' starts the tag.
    let last_component_start = before_digest.rfind('/').map_or(0, |slash| slash + 1);
    let (name, tag) = match before_digest[last_component_start..].find(':') {
        Some(offset) => {
            let colon = last_component_start + offset;
            (&before_digest[..colon], Some(&before_digest[colon + 1..]))
        }
        None => (before_digest, None),
    };
    if tag.is_some_and(|tag| !is_tag(tag)) {
        return None;
    }
    let (domain, path) = split_name(name)?;
    Some(Parts {
        domain,
        path,
        tag,
        digest,
    })
}

/// Splits `[domain "/"] remote-name`, preferring a domain when the first component is one.
fn split_name(name: &str) -> Option<(&str, &str)> {
    if let Some((domain, path)) = name.split_once('/')
        && is_domain(domain)
        && is_remote_name(path)
    {
        return Some((domain, path));
    }
    is_remote_name(name).then_some(("", name))
}

/// `host [":" port]` where host is a DNS-style name, an IPv4 address or `[IPv6]`.
fn is_domain(domain: &str) -> bool {
    let (host_is_valid, port) = if let Some(bracketed) = domain.strip_prefix('[') {
        let Some((address, after)) = bracketed.split_once(']') else {
            return false;
        };
        let address_is_valid =
            !address.is_empty() && address.bytes().all(|b| b.is_ascii_hexdigit() || b == b':');
        if after.is_empty() {
            (address_is_valid, None)
        } else {
            match after.strip_prefix(':') {
                Some(port) => (address_is_valid, Some(port)),
                None => return false,
            }
        }
    } else {
        match domain.split_once(':') {
            Some((host, port)) => (is_domain_name(host), Some(port)),
            None => (is_domain_name(domain), None),
        }
    };
    host_is_valid
        && port.is_none_or(|port| !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()))
}

fn is_domain_name(host: &str) -> bool {
    host.split('.').all(is_domain_component)
}

/// Letters (either case), digits and inner hyphens.
fn is_domain_component(component: &str) -> bool {
    let bytes = component.as_bytes();
    match (bytes.first(), bytes.last()) {
        (Some(first), Some(last)) => {
            first.is_ascii_alphanumeric()
                && last.is_ascii_alphanumeric()
                && bytes
                    .iter()
                    .all(|b| b.is_ascii_alphanumeric() || *b == b'-')
        }
        _ => false,
    }
}

fn is_remote_name(path: &str) -> bool {
    path.split('/').all(is_path_component)
}

/// Lowercase alphanumeric runs joined by `.`, `_`, `__` or any run of `-`.
fn is_path_component(component: &str) -> bool {
    let bytes = component.as_bytes();
    let mut index = 0;
    loop {
        let run_start = index;
        while index < bytes.len() && is_lower_alnum(bytes[index]) {
            index += 1;
        }
        if index == run_start {
            // Empty component, leading separator, or separator at the end.
            return false;
        }
        if index == bytes.len() {
            return true;
        }
        let separator_start = index;
        while index < bytes.len() && !is_lower_alnum(bytes[index]) {
            index += 1;
        }
        if !is_separator(&bytes[separator_start..index]) {
            return false;
        }
    }
}

fn is_lower_alnum(byte: u8) -> bool {
    byte.is_ascii_lowercase() || byte.is_ascii_digit()
}

fn is_separator(separator: &[u8]) -> bool {
    matches!(separator, b"." | b"_" | b"__")
        || (!separator.is_empty() && separator.iter().all(|b| *b == b'-'))
}

/// `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`.
fn is_tag(tag: &str) -> bool {
    let bytes = tag.as_bytes();
    let is_word = |b: &u8| b.is_ascii_alphanumeric() || *b == b'_';
    match bytes.split_first() {
        Some((first, rest)) => {
            bytes.len() <= MAX_TAG_LENGTH
                && is_word(first)
                && rest.iter().all(|b| is_word(b) || *b == b'.' || *b == b'-')
        }
        None => false,
    }
}

/// The reference grammar's digest shape: `algorithm ":" hex{32,}`, where the algorithm is
/// letter-led alphanumeric parts joined by single `-`, `_`, `+` or `.`.
fn is_digest_pattern(digest: &str) -> bool {
    let Some((algorithm, hex)) = digest.split_once(':') else {
        return false;
    };
    let algorithm_is_valid = algorithm.split(['-', '_', '+', '.']).all(|part| {
        let bytes = part.as_bytes();
        bytes.first().is_some_and(u8::is_ascii_alphabetic)
            && bytes.iter().all(u8::is_ascii_alphanumeric)
    });
    algorithm_is_valid && hex.len() >= 32 && hex.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The checks the digest library applies after the grammar matched (`digest.Parse`): a known
/// algorithm, the exact length for it, lowercase hex.
fn validate_digest(digest: &str) -> Result<(), ReferenceError> {
    let Some((algorithm, encoded)) = digest.split_once(':') else {
        return Err(ReferenceError::DigestInvalidFormat);
    };
    if algorithm.is_empty() || encoded.is_empty() {
        return Err(ReferenceError::DigestInvalidFormat);
    }
    let expected_length = match algorithm {
        "sha256" => 64,
        "sha384" => 96,
        "sha512" => 128,
        _ if is_loose_digest_pattern(digest) => return Err(ReferenceError::DigestUnsupported),
        _ => return Err(ReferenceError::DigestInvalidFormat),
    };
    if encoded.len() != expected_length {
        return Err(ReferenceError::DigestInvalidLength);
    }
    if !encoded.bytes().all(is_lower_hex) {
        return Err(ReferenceError::DigestInvalidFormat);
    }
    Ok(())
}

/// The digest library's own, looser shape (`[a-z0-9]+([.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+`), used
/// only to choose between "unsupported algorithm" and "invalid format".
fn is_loose_digest_pattern(digest: &str) -> bool {
    let Some((algorithm, encoded)) = digest.split_once(':') else {
        return false;
    };
    let algorithm_is_valid = algorithm
        .split(['.', '+', '_', '-'])
        .all(|part| !part.is_empty() && part.bytes().all(is_lower_alnum));
    let encoded_is_valid = !encoded.is_empty()
        && encoded
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'=' | b'_' | b'-'));
    algorithm_is_valid && encoded_is_valid
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    const HEX64: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    /// Expected outcome of `parse_normalized`: either the four parts or the error text.
    type Expected = Result<(&'static str, String, Option<String>, Option<String>), String>;

    fn ok(domain: &'static str, path: &str, tag: Option<&str>, digest: Option<&str>) -> Expected {
        Ok((
            domain,
            path.to_owned(),
            tag.map(str::to_owned),
            digest.map(str::to_owned),
        ))
    }

    fn err(text: &str) -> Expected {
        Err(text.to_owned())
    }

    fn sha256() -> String {
        format!("sha256:{HEX64}")
    }

    fn hex(length: usize) -> String {
        HEX64.chars().cycle().take(length).collect()
    }

    fn normalized_cases() -> Vec<(String, Expected)> {
        let d = sha256();
        let invalid = "invalid reference format";
        let lowercase = "repository name must be lowercase";
        let too_long = "repository name must not be more than 255 characters";
        let digest_length = "invalid checksum digest length";
        let digest_format = "invalid checksum digest format";
        let unsupported = "unsupported digest algorithm";
        let remote_upper = |remote: &str| {
            err(&format!(
                "invalid reference format: repository name ({remote}) must be lowercase"
            ))
        };
        let s = |text: &str| text.to_owned();
        vec![
            // §1.7 worked examples.
            (s("busybox"), ok("docker.io", "library/busybox", None, None)),
            (
                s("busybox:1.36"),
                ok("docker.io", "library/busybox", Some("1.36"), None),
            ),
            (
                s("library/nginx"),
                ok("docker.io", "library/nginx", None, None),
            ),
            (
                s("myuser/app:V1"),
                ok("docker.io", "myuser/app", Some("V1"), None),
            ),
            (
                s("docker.io/nginx"),
                ok("docker.io", "library/nginx", None, None),
            ),
            (
                s("index.docker.io/foo/bar"),
                ok("docker.io", "foo/bar", None, None),
            ),
            (s("localhost/app"), ok("localhost", "app", None, None)),
            (
                s("registry.example.com:5000/team/app:1.0"),
                ok("registry.example.com:5000", "team/app", Some("1.0"), None),
            ),
            (s("[::1]:5000/app"), ok("[::1]:5000", "app", None, None)),
            (
                format!("img@{d}"),
                ok("docker.io", "library/img", None, Some(&d)),
            ),
            (
                format!("img:3.5@{d}"),
                ok("docker.io", "library/img", Some("3.5"), Some(&d)),
            ),
            (
                format!("img:latest@{d}"),
                ok("docker.io", "library/img", Some("latest"), Some(&d)),
            ),
            (s("Nginx"), remote_upper("library/Nginx")),
            (s("nginx::1"), err(invalid)),
            (s("ko://x/y"), err(invalid)),
            (s("a b"), err(invalid)),
            // Domains: Hub aliases, localhost, hosts, ports, IP addresses.
            (
                s("docker.io/library/nginx"),
                ok("docker.io", "library/nginx", None, None),
            ),
            (
                s("docker.io/foo"),
                ok("docker.io", "library/foo", None, None),
            ),
            (
                s("index.docker.io/nginx"),
                ok("docker.io", "library/nginx", None, None),
            ),
            (
                s("index.docker.io/library/nginx:1"),
                ok("docker.io", "library/nginx", Some("1"), None),
            ),
            (
                s("localhost:5000/foo"),
                ok("localhost:5000", "foo", None, None),
            ),
            (
                s("localhost:5000"),
                ok("docker.io", "library/localhost", Some("5000"), None),
            ),
            (
                s("localhost"),
                ok("docker.io", "library/localhost", None, None),
            ),
            (
                s("127.0.0.1:5000/foo/bar:baz"),
                ok("127.0.0.1:5000", "foo/bar", Some("baz"), None),
            ),
            (s("1.2.3.4/app"), ok("1.2.3.4", "app", None, None)),
            (s("[2001:db8::1]/x"), ok("[2001:db8::1]", "x", None, None)),
            (s("[::1]/app:v1"), ok("[::1]", "app", Some("v1"), None)),
            (s("[fe80::1%eth0]/x"), err(invalid)),
            (s("[]/app"), err(invalid)),
            (s("[::1/app"), err(invalid)),
            (s("[::g]/app"), err(invalid)),
            (s("[::1]:/app"), err(invalid)),
            (s("[::1]x/app"), err(invalid)),
            (s("Foo/bar"), ok("Foo", "bar", None, None)),
            (s("Example.COM/app"), ok("Example.COM", "app", None, None)),
            (
                s("xn--bcher-kva.example/app"),
                ok("xn--bcher-kva.example", "app", None, None),
            ),
            (
                s("example.com:5000/app"),
                ok("example.com:5000", "app", None, None),
            ),
            (
                s("example.com/a/b/c/d"),
                ok("example.com", "a/b/c/d", None, None),
            ),
            (
                s("foo/bar/baz/qux"),
                ok("docker.io", "foo/bar/baz/qux", None, None),
            ),
            (s("-host.com/app"), err(invalid)),
            (s("host-.com/app"), err(invalid)),
            (s("host.com:/app"), err(invalid)),
            (s("host.com:abc/app"), err(invalid)),
            (s("host..com/app"), err(invalid)),
            // Not a valid host for the grammar, so the whole name becomes the path.
            (s("my_host.com/app"), ok("", "my_host.com/app", None, None)),
            // Uppercase host that is not a host: only lowercasing would make it match.
            (s("Foo_Bar/x"), err(lowercase)),
            (s("\u{212a}8s.io/x"), err(lowercase)),
            // Path components and separators.
            (s("a__b"), ok("docker.io", "library/a__b", None, None)),
            (s("a___b"), err(invalid)),
            (s("a--b"), ok("docker.io", "library/a--b", None, None)),
            (s("a---b"), ok("docker.io", "library/a---b", None, None)),
            (s("a.b"), ok("docker.io", "library/a.b", None, None)),
            (s("a_b.c-d"), ok("docker.io", "library/a_b.c-d", None, None)),
            (s("a..b"), err(invalid)),
            (s("a.-b"), err(invalid)),
            (s("a_-b"), err(invalid)),
            (s("a-"), err(invalid)),
            (s("a_"), err(invalid)),
            (s("a."), err(invalid)),
            (s("-a"), err(invalid)),
            (s("foo/bar/"), err(invalid)),
            (s("foo//bar"), err(invalid)),
            (s("/nginx"), err(invalid)),
            (s("/"), err(invalid)),
            (s("a/b:c"), ok("docker.io", "a/b", Some("c"), None)),
            (s("foo/Bar"), remote_upper("foo/Bar")),
            (s("docker.io/Foo"), remote_upper("library/Foo")),
            (s("example.com/Foo:tag"), remote_upper("Foo")),
            (s("localhost:5000/Foo"), remote_upper("Foo")),
            (s("ACTOKEY"), remote_upper("library/ACTOKEY")),
            (s("\u{d1}ginx"), remote_upper("library/\u{d1}ginx")),
            (s("\u{f1}ginx"), err(invalid)),
            // Empty and fragmentary input.
            (s(""), err(invalid)),
            (s(":tag"), err(invalid)),
            (s(":"), err(invalid)),
            (s("@"), err(invalid)),
            (format!("@{d}"), err(invalid)),
            (s("nginx:"), err(invalid)),
            (s("nginx@"), err(invalid)),
            (s("nginx:tag@"), err(invalid)),
            (s(" nginx"), err(invalid)),
            (s("nginx "), err(invalid)),
            (s("nginx\n"), err(invalid)),
            (s("ko://x"), err(invalid)),
            (s("https://registry.example.com/app"), err(invalid)),
            // Tags.
            (
                s("nginx:V1.0-RC_1"),
                ok("docker.io", "library/nginx", Some("V1.0-RC_1"), None),
            ),
            (
                s("ubuntu:_private"),
                ok("docker.io", "library/ubuntu", Some("_private"), None),
            ),
            (s("nginx:.tag"), err(invalid)),
            (s("nginx:-tag"), err(invalid)),
            (s("nginx:tag!"), err(invalid)),
            (s("nginx:tag:more"), err(invalid)),
            (
                format!("nginx:{}", "t".repeat(128)),
                ok("docker.io", "library/nginx", Some(&"t".repeat(128)), None),
            ),
            (format!("nginx:{}", "t".repeat(129)), err(invalid)),
            // Digests.
            (
                format!("gcr.io/p/i@sha384:{}", hex(96)),
                ok("gcr.io", "p/i", None, Some(&format!("sha384:{}", hex(96)))),
            ),
            (
                format!("gcr.io/p/i@sha512:{}", hex(128)),
                ok("gcr.io", "p/i", None, Some(&format!("sha512:{}", hex(128)))),
            ),
            (s("nginx@sha256:abc"), err(invalid)),
            (format!("nginx@sha256:{}", hex(31)), err(invalid)),
            (format!("nginx@sha256:{}", hex(32)), err(digest_length)),
            (format!("nginx@sha256:{}", hex(63)), err(digest_length)),
            (format!("nginx@sha256:{}", hex(65)), err(digest_length)),
            (format!("nginx@sha384:{HEX64}"), err(digest_length)),
            (
                format!("nginx@sha256:{}", HEX64.to_uppercase()),
                err(digest_format),
            ),
            (format!("nginx@md5:{}", hex(32)), err(unsupported)),
            (format!("nginx@sha256+b64:{HEX64}"), err(unsupported)),
            (format!("nginx:1@SHA256:{HEX64}"), err(digest_format)),
            (
                format!("nginx@SHA256:{HEX64}"),
                remote_upper("library/nginx@SHA256"),
            ),
            (format!("nginx@sha256:{HEX64}@{d}"), err(invalid)),
            (format!("nginx@1sha:{HEX64}"), err(invalid)),
            (format!("nginx@sha--256:{HEX64}"), err(invalid)),
            (format!("nginx@sha256:{}g", hex(63)), err(invalid)),
            // Image IDs are not names.
            (
                HEX64.to_owned(),
                err(&format!(
                    "invalid repository name ({HEX64}), cannot specify 64-byte hexadecimal strings"
                )),
            ),
            (
                format!("{HEX64}:tag"),
                ok("docker.io", &format!("library/{HEX64}"), Some("tag"), None),
            ),
            (
                hex(63),
                ok("docker.io", &format!("library/{}", hex(63)), None, None),
            ),
            (
                HEX64.to_uppercase(),
                remote_upper(&format!("library/{}", HEX64.to_uppercase())),
            ),
            // Path length counts the path only, with `library/` included.
            (
                format!("example.com/{}", "a".repeat(255)),
                ok("example.com", &"a".repeat(255), None, None),
            ),
            (format!("example.com/{}", "a".repeat(256)), err(too_long)),
            (
                "a".repeat(247),
                ok(
                    "docker.io",
                    &format!("library/{}", "a".repeat(247)),
                    None,
                    None,
                ),
            ),
            ("a".repeat(248), err(too_long)),
            (
                format!("{}@sha256:{}", "a".repeat(300), hex(10)),
                err(invalid),
            ),
            (
                format!("{}@md5:{}", "a".repeat(300), hex(32)),
                err(too_long),
            ),
        ]
    }

    #[test]
    fn parse_normalized_table() {
        let cases = normalized_cases();
        assert!(cases.len() >= 70, "only {} cases", cases.len());
        for (input, expected) in cases {
            let actual = Reference::parse_normalized(&input)
                .map(|r| {
                    (
                        r.domain().to_owned(),
                        r.path().to_owned(),
                        r.tag().map(str::to_owned),
                        r.digest().map(str::to_owned),
                    )
                })
                .map_err(|e| e.to_string());
            let expected = expected.map(|(d, p, t, g)| (d.to_owned(), p, t, g));
            assert_eq!(actual, expected, "input {input:?}");
        }
    }

    #[test]
    fn parse_without_normalisation() {
        assert_eq!(Reference::parse(""), Err(ReferenceError::NameEmpty));
        let plain = Reference::parse("foo/bar").unwrap();
        assert_eq!((plain.domain(), plain.path()), ("foo", "bar"));
        let short = Reference::parse("nginx").unwrap();
        assert_eq!((short.domain(), short.path()), ("", "nginx"));
        assert_eq!(short.name(), "nginx");
        let port_like = Reference::parse("localhost:5000").unwrap();
        assert_eq!(
            (port_like.path(), port_like.tag()),
            ("localhost", Some("5000"))
        );
        assert_eq!(
            Reference::parse("Foo"),
            Err(ReferenceError::ContainsUppercase)
        );
        assert_eq!(Reference::parse("a b"), Err(ReferenceError::InvalidFormat));
    }

    #[test]
    fn parse_canonical_requires_the_full_form() {
        let full = format!("docker.io/library/nginx:1@{}", sha256());
        assert_eq!(Reference::parse_canonical(&full).unwrap().to_string(), full);
        assert_eq!(
            Reference::parse_canonical("nginx"),
            Err(ReferenceError::NotCanonical)
        );
        assert_eq!(
            Reference::parse_canonical("index.docker.io/library/nginx"),
            Err(ReferenceError::NotCanonical)
        );
        assert_eq!(
            Reference::parse_canonical("Nginx").unwrap_err().to_string(),
            "invalid reference format: repository name (library/Nginx) must be lowercase"
        );
    }

    #[test]
    fn display_is_the_full_normalised_form() {
        let cases = [
            ("busybox", "docker.io/library/busybox".to_owned()),
            ("busybox:1.36", "docker.io/library/busybox:1.36".to_owned()),
            ("myuser/app:V1", "docker.io/myuser/app:V1".to_owned()),
            ("[::1]:5000/app", "[::1]:5000/app".to_owned()),
            ("my_host.com/app", "my_host.com/app".to_owned()),
            (
                &format!("img:3.5@{}", sha256()),
                format!("docker.io/library/img:3.5@{}", sha256()),
            ),
        ];
        for (input, expected) in cases {
            let reference: Reference = input.parse().unwrap();
            assert_eq!(reference.to_string(), expected, "input {input:?}");
        }
    }

    #[test]
    fn name_is_the_repository_to_pull() {
        let cases = [
            ("nginx", "docker.io/library/nginx"),
            ("nginx:1.27", "docker.io/library/nginx"),
            (
                "registry.example.com:5000/team/app:1.0",
                "registry.example.com:5000/team/app",
            ),
            ("localhost/app", "localhost/app"),
        ];
        for (input, expected) in cases {
            let reference = Reference::parse_normalized(input).unwrap();
            assert_eq!(reference.name(), expected, "input {input:?}");
        }
    }

    #[test]
    fn familiar_string_strips_hub_defaults() {
        let digest = sha256();
        let cases = [
            ("docker.io/library/nginx:1".to_owned(), "nginx:1".to_owned()),
            ("nginx".to_owned(), "nginx".to_owned()),
            ("docker.io/foo/bar".to_owned(), "foo/bar".to_owned()),
            (
                "docker.io/library/foo/bar".to_owned(),
                "library/foo/bar".to_owned(),
            ),
            ("localhost/app:v1".to_owned(), "localhost/app:v1".to_owned()),
            (
                "example.com/library/app".to_owned(),
                "example.com/library/app".to_owned(),
            ),
            (format!("img:3.5@{digest}"), format!("img:3.5@{digest}")),
        ];
        for (input, expected) in cases {
            let reference = Reference::parse_normalized(&input).unwrap();
            assert_eq!(reference.familiar_string(), expected, "input {input:?}");
        }
    }

    #[test]
    fn default_tag_only_for_name_only_references() {
        let tagless = Reference::parse_normalized("busybox").unwrap();
        assert!(tagless.is_name_only());
        assert_eq!(tagless.with_default_tag().tag(), Some("latest"));
        let tagged = Reference::parse_normalized("busybox:1").unwrap();
        assert_eq!(tagged.with_default_tag(), tagged);
        let pinned = Reference::parse_normalized(&format!("busybox@{}", sha256())).unwrap();
        assert_eq!(pinned.with_default_tag().tag(), None);
    }

    #[test]
    fn pull_target_prefers_the_digest() {
        let digest = sha256();
        let both = Reference::parse_normalized(&format!("img:3.5@{digest}")).unwrap();
        assert_eq!(both.pull_target(), PullTarget::Digest(&digest));
        assert_eq!(both.pull_target().to_string(), digest);
        assert_eq!(
            both.pull_reference().to_string(),
            format!("docker.io/library/img@{digest}")
        );
        let tagged = Reference::parse_normalized("img:3.5").unwrap();
        assert_eq!(tagged.pull_target(), PullTarget::Tag("3.5"));
        let bare = Reference::parse_normalized("img").unwrap();
        assert_eq!(bare.pull_target(), PullTarget::Tag("latest"));
        assert_eq!(
            bare.pull_reference().to_string(),
            "docker.io/library/img:latest"
        );
    }

    #[test]
    fn with_tag_and_with_digest_validate() {
        let base = Reference::parse_normalized("img:1").unwrap();
        assert_eq!(base.with_tag("V2").unwrap().tag(), Some("V2"));
        assert_eq!(base.with_tag("-x"), Err(ReferenceError::InvalidTag));
        assert_eq!(base.with_tag(""), Err(ReferenceError::InvalidTag));
        let pinned = base.with_digest(&sha256()).unwrap();
        assert_eq!(pinned.tag(), Some("1"));
        assert_eq!(pinned.digest(), Some(sha256().as_str()));
        assert_eq!(
            pinned.with_tag("2").unwrap().digest(),
            Some(sha256().as_str())
        );
        assert_eq!(
            base.with_digest("sha256:xyz"),
            Err(ReferenceError::InvalidDigest)
        );
        assert_eq!(
            base.with_digest(&format!("md5:{}", hex(32))),
            Err(ReferenceError::DigestUnsupported)
        );
    }

    #[test]
    fn apply_default_image_tag_appends_latest_to_the_user_string() {
        let digest = sha256();
        let cases = [
            ("busybox".to_owned(), "busybox:latest".to_owned()),
            ("busybox:1.36".to_owned(), "busybox:1.36".to_owned()),
            ("busybox:latest".to_owned(), "busybox:latest".to_owned()),
            (
                "docker.io/library/nginx".to_owned(),
                "docker.io/library/nginx:latest".to_owned(),
            ),
            (
                "localhost:5000/app".to_owned(),
                "localhost:5000/app:latest".to_owned(),
            ),
            (
                "[::1]:5000/app".to_owned(),
                "[::1]:5000/app:latest".to_owned(),
            ),
            (format!("img@{digest}"), format!("img@{digest}")),
            (format!("img:3.5@{digest}"), format!("img:3.5@{digest}")),
        ];
        for (input, expected) in cases {
            assert_eq!(
                apply_default_image_tag(&input).unwrap(),
                expected,
                "input {input:?}"
            );
        }
    }

    #[test]
    fn image_name_errors_carry_the_kubelet_wording() {
        let error = apply_default_image_tag("ACTOKEY").unwrap_err();
        assert_eq!(error.image(), "ACTOKEY");
        assert_eq!(
            error.to_string(),
            "couldn't parse image name \"ACTOKEY\": invalid reference format: repository name (library/ACTOKEY) must be lowercase"
        );
        assert_eq!(
            default_tag_failure_message("ACTOKEY", &error),
            "Failed to apply default image tag \"ACTOKEY\": couldn't parse image name \"ACTOKEY\": invalid reference format: repository name (library/ACTOKEY) must be lowercase"
        );
        let quoted = apply_default_image_tag("a \"b\"\n").unwrap_err();
        assert_eq!(
            quoted.to_string(),
            "couldn't parse image name \"a \\\"b\\\"\\n\": invalid reference format"
        );
        assert_eq!(quoted.reference_error(), &ReferenceError::InvalidFormat);
    }

    #[test]
    fn parse_image_name_reports_repo_tag_and_digest() {
        let tagless = parse_image_name("nginx").unwrap();
        assert_eq!(tagless.name(), "docker.io/library/nginx");
        assert_eq!(tagless.tag(), Some("latest"));
        let pinned = parse_image_name(&format!("nginx@{}", sha256())).unwrap();
        assert_eq!(pinned.tag(), None);
        assert_eq!(pinned.digest(), Some(sha256().as_str()));
    }

    /// Deterministic pseudo-random strings built from the characters that matter to the grammar.
    pub(crate) fn odd_strings() -> Vec<String> {
        let alphabet: Vec<char> = "aZ09-_.:/@[]% \t\nAf+=\u{212a}\u{130}\u{e9}\u{1f600}\u{0}"
            .chars()
            .collect();
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let mut strings: Vec<String> = [
            "",
            " ",
            ":",
            "@",
            "/",
            "//",
            "[",
            "]",
            "[]",
            "[:",
            "[::]",
            "[::]:",
            ":@",
            "@:",
            "a@",
            "a@:",
            "a@b:",
            "a:b@c:d",
            "::::",
            "@@@@",
            "a/b/c/",
            "/a",
            "a//b",
            "[::1]",
            "[::1]:",
            "[::1]:5000",
            "[::1]:5000/",
            "localhost:",
            "localhost/",
            "docker.io/",
            "index.docker.io",
            "index.docker.io/",
            "library/",
            "\u{130}",
            "\u{212a}",
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
        for _ in 0..400 {
            let length = (next() % 24) as usize;
            let text: String = (0..length)
                .map(|_| alphabet[(next() % alphabet.len() as u64) as usize])
                .collect();
            strings.push(text);
        }
        let digest = sha256();
        strings.push(format!("a@{digest}"));
        strings.push(format!("[::1]:5000/a:b@{digest}"));
        strings.push("a".repeat(10_000));
        strings.push("/".repeat(1000));
        strings.push(format!("{}:{}", "a/".repeat(200), "t".repeat(200)));
        strings
    }

    #[test]
    fn never_panics_and_round_trips() {
        for input in odd_strings() {
            let _ = Reference::parse(&input);
            let _ = Reference::parse_canonical(&input);
            let _ = apply_default_image_tag(&input);
            if let Ok(reference) = Reference::parse_normalized(&input) {
                let full = reference.to_string();
                assert_eq!(
                    Reference::parse_normalized(&full).as_ref(),
                    Ok(&reference),
                    "input {input:?} printed as {full:?}"
                );
                let _ = reference.familiar_string();
                let _ = reference.pull_target();
                let _ = reference.pull_reference();
            }
            let _ = go_quote(&input);
        }
    }
}

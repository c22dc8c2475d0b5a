//! The two docker config formats (spec §3.2) and the `auth` field.
//!
//! - `config.json` / `.dockerconfigjson`: `{"auths": {"<registry key>": <entry>}, ...}`
//! - legacy `.dockercfg`: the bare `{"<registry key>": <entry>}` map.
//!
//! An entry holds `username`, `password`, `email` and `auth`; a non-empty `auth`
//! (`base64(username:password)`) overrides the other two. Pod data is parsed into
//! [`PodDockerConfig`], which has no room for `credHelpers`/`credsStore`: only the node's own
//! [`NodeDockerConfig`] can name a program to run.

use std::collections::BTreeMap;
use std::fmt;

use base64::Engine as _;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use serde_json::{Map, Value};

use super::credential::Credential;
use super::go_json::{JsonSyntaxError, field, parse_document, string_field};

/// Why an `auth` field could not be decoded. Never includes the field's content.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthFieldError {
    #[error("illegal base64 data at input byte {offset}")]
    Base64 { offset: usize },
    /// The decoded text has no `:` between username and password.
    #[error("unable to parse auth field")]
    MissingColon,
}

/// Why a docker config document was rejected. Texts never quote values from the document.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigParseError {
    #[error(transparent)]
    Json(#[from] JsonSyntaxError),
    /// A field of the wrong JSON type (Go's `json: cannot unmarshal ...`).
    #[error("{field} must be {expected}")]
    WrongType {
        field: String,
        expected: &'static str,
    },
    /// An entry's `auth` field is malformed; `registry` is its key with any user-info redacted.
    #[error("{reason}")]
    AuthField {
        registry: String,
        reason: AuthFieldError,
    },
}

/// Registry key (as written in the document) → credential. `Debug` redacts the secrets.
///
/// Keys are kept sorted: the kubelet reads these documents into Go maps, whose order is
/// unspecified, so any fixed order is faithful and sorted is reproducible.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RegistryAuths(BTreeMap<String, Credential>);

impl RegistryAuths {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn insert(&mut self, registry_key: impl Into<String>, credential: Credential) {
        self.0.insert(registry_key.into(), credential);
    }

    pub fn get(&self, registry_key: &str) -> Option<&Credential> {
        self.0.get(registry_key)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &Credential)> {
        self.0
            .iter()
            .map(|(key, credential)| (key.as_str(), credential))
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl FromIterator<(String, Credential)> for RegistryAuths {
    fn from_iter<I: IntoIterator<Item = (String, Credential)>>(entries: I) -> Self {
        Self(entries.into_iter().collect())
    }
}

/// Credentials from a pod's image pull secret.
///
/// Deliberately only `auths`: a secret is pod (user) data, and a `credHelpers` or
/// `credsStore` in it would let a pod author choose a program for the node to run. There is
/// no field to carry such a name, so nothing downstream can run one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PodDockerConfig {
    pub auths: RegistryAuths,
}

impl PodDockerConfig {
    /// Parses a `.dockerconfigjson` value (`{"auths": {...}}`).
    pub fn from_config_json(bytes: &[u8]) -> Result<Self, ConfigParseError> {
        let document = parse_document(bytes)?;
        let object = top_level_object(&document, "the config.json document")?;
        Ok(Self {
            auths: parse_config_json_auths(object)?,
        })
    }

    /// Parses a legacy `.dockercfg` value (the bare registry map).
    pub fn from_dockercfg(bytes: &[u8]) -> Result<Self, ConfigParseError> {
        Ok(Self {
            auths: parse_dockercfg(bytes)?,
        })
    }
}

/// The node's own docker config: `auths` plus the docker CLI's credential-helper settings,
/// which only node configuration may use.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeDockerConfig {
    pub auths: RegistryAuths,
    /// `credHelpers`: registry key → helper name (`docker-credential-<name>`).
    pub cred_helpers: BTreeMap<String, String>,
    /// `credsStore`: the helper for registries without a `credHelpers` entry.
    pub creds_store: Option<String>,
}

impl NodeDockerConfig {
    /// Parses a `config.json`. Malformed `credHelpers`/`credsStore` values are ignored rather
    /// than failing the file, because the kubelet (which ignores those fields) accepts it.
    pub fn from_config_json(bytes: &[u8]) -> Result<Self, ConfigParseError> {
        let document = parse_document(bytes)?;
        let object = top_level_object(&document, "the config.json document")?;
        let auths = parse_config_json_auths(object)?;
        let Some(object) = object else {
            return Ok(Self {
                auths,
                ..Self::default()
            });
        };
        let cred_helpers = match field(object, "credHelpers") {
            Some(Value::Object(helpers)) => helpers
                .iter()
                .filter_map(|(registry, helper)| match helper {
                    Value::String(helper) if !helper.is_empty() => {
                        Some((registry.clone(), helper.clone()))
                    }
                    _ => None,
                })
                .collect(),
            _ => BTreeMap::new(),
        };
        let creds_store = match field(object, "credsStore") {
            Some(Value::String(store)) if !store.is_empty() => Some(store.clone()),
            _ => None,
        };
        Ok(Self {
            auths,
            cred_helpers,
            creds_store,
        })
    }

    /// Parses a legacy `.dockercfg` (which has no helper settings).
    pub fn from_dockercfg(bytes: &[u8]) -> Result<Self, ConfigParseError> {
        Ok(Self {
            auths: parse_dockercfg(bytes)?,
            ..Self::default()
        })
    }
}

/// Decodes an `auth` field into `(username, password)`.
///
/// Padded standard base64 when the length is a multiple of 4, unpadded otherwise; the text is
/// split at the first `:` (so passwords may contain `:`).
pub fn decode_auth_field(auth: &str) -> Result<(String, String), AuthFieldError> {
    // Go's decoders tolerate non-zero trailing bits and skip CR/LF; so do these.
    const PADDED: GeneralPurpose = GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        GeneralPurposeConfig::new()
            .with_decode_allow_trailing_bits(true)
            .with_decode_padding_mode(DecodePaddingMode::RequireCanonical),
    );
    const UNPADDED: GeneralPurpose = GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        GeneralPurposeConfig::new()
            .with_decode_allow_trailing_bits(true)
            .with_decode_padding_mode(DecodePaddingMode::RequireNone),
    );
    let engine = if auth.len().is_multiple_of(4) {
        &PADDED
    } else {
        &UNPADDED
    };
    let without_newlines: Vec<u8> = auth
        .bytes()
        .filter(|b| !matches!(b, b'\r' | b'\n'))
        .collect();
    let decoded = engine.decode(&without_newlines).map_err(|error| {
        let offset = match error {
            base64::DecodeError::InvalidByte(offset, _)
            | base64::DecodeError::InvalidLastSymbol(offset, _) => offset,
            base64::DecodeError::InvalidPadding => without_newlines
                .iter()
                .position(|b| *b == b'=')
                .unwrap_or(without_newlines.len()),
            base64::DecodeError::InvalidLength(_) => without_newlines.len(),
        };
        AuthFieldError::Base64 { offset }
    })?;
    // Go keeps arbitrary bytes; non-UTF-8 credentials cannot travel in CRI's string fields
    // unchanged either way, so convert lossily instead of failing the whole document.
    let decoded = String::from_utf8_lossy(&decoded);
    let (username, password) = decoded
        .split_once(':')
        .ok_or(AuthFieldError::MissingColon)?;
    Ok((username.to_owned(), password.to_owned()))
}

/// Replaces the user-info of a registry key (`user:pw@host`) so keys can appear in messages.
pub fn redact_userinfo(registry_key: &str) -> String {
    let (scheme, rest) = match registry_key.find("://") {
        Some(at) => registry_key.split_at(at + 3),
        None => ("", registry_key),
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{scheme}<redacted>{}", &rest[at..]),
        None => registry_key.to_owned(),
    }
}

/// The document's top-level object; JSON `null` reads as an empty document, as in Go.
fn top_level_object<'a>(
    document: &'a Value,
    what: &str,
) -> Result<Option<&'a Map<String, Value>>, ConfigParseError> {
    match document {
        Value::Null => Ok(None),
        Value::Object(object) => Ok(Some(object)),
        _ => Err(ConfigParseError::WrongType {
            field: what.to_owned(),
            expected: "a JSON object",
        }),
    }
}

fn parse_config_json_auths(
    object: Option<&Map<String, Value>>,
) -> Result<RegistryAuths, ConfigParseError> {
    let Some(object) = object else {
        return Ok(RegistryAuths::new());
    };
    // The kubelet's struct also declares `HttpHeaders` as a string map, so a mistyped one
    // makes the whole document invalid there too.
    match field(object, "HttpHeaders") {
        None | Some(Value::Null) => {}
        Some(Value::Object(headers))
            if headers
                .values()
                .all(|value| value.is_string() || value.is_null()) => {}
        Some(_) => {
            return Err(ConfigParseError::WrongType {
                field: "HttpHeaders".to_owned(),
                expected: "a map of strings",
            });
        }
    }
    match field(object, "auths") {
        None | Some(Value::Null) => Ok(RegistryAuths::new()),
        Some(Value::Object(entries)) => parse_entries(entries),
        Some(_) => Err(ConfigParseError::WrongType {
            field: "auths".to_owned(),
            expected: "a JSON object",
        }),
    }
}

fn parse_dockercfg(bytes: &[u8]) -> Result<RegistryAuths, ConfigParseError> {
    let document = parse_document(bytes)?;
    match top_level_object(&document, "the .dockercfg document")? {
        Some(entries) => parse_entries(entries),
        None => Ok(RegistryAuths::new()),
    }
}

fn parse_entries(entries: &Map<String, Value>) -> Result<RegistryAuths, ConfigParseError> {
    entries
        .iter()
        .map(|(registry_key, entry)| Ok((registry_key.clone(), parse_entry(registry_key, entry)?)))
        .collect()
}

fn parse_entry(registry_key: &str, entry: &Value) -> Result<Credential, ConfigParseError> {
    let entry = match entry {
        Value::Null => return Ok(Credential::default()),
        Value::Object(entry) => entry,
        _ => {
            return Err(ConfigParseError::WrongType {
                field: format!("entry {:?}", redact_userinfo(registry_key)),
                expected: "a JSON object",
            });
        }
    };
    let text = |name: &str| {
        string_field(entry, name).map_err(|_| ConfigParseError::WrongType {
            field: format!("entry {:?} field {name:?}", redact_userinfo(registry_key)),
            expected: "a string",
        })
    };
    let mut credential = Credential::basic(text("username")?, text("password")?);
    // `email` is read only so a mistyped one fails like in the kubelet; CRI has no use for it.
    text("email")?;
    let auth = text("auth")?;
    if !auth.is_empty() {
        let (username, password) =
            decode_auth_field(&auth).map_err(|reason| ConfigParseError::AuthField {
                registry: redact_userinfo(registry_key),
                reason,
            })?;
        credential.username = username;
        credential.password = password;
    }
    Ok(credential)
}

impl fmt::Display for RegistryAuths {
    /// Lists the registry keys only.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let keys: Vec<String> = self.0.keys().map(|key| redact_userinfo(key)).collect();
        write!(f, "[{}]", keys.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn basic(username: &str, password: &str) -> Credential {
        Credential::basic(username, password)
    }

    #[test]
    fn decodes_auth_field() {
        type AuthCase = (
            &'static str,
            Result<(&'static str, &'static str), AuthFieldError>,
        );
        let cases: &[AuthCase] = &[
            // base64("user:pass"), padded length 12.
            ("dXNlcjpwYXNz", Ok(("user", "pass"))),
            // base64("foo:bar") padded and unpadded.
            ("Zm9vOmJhcg==", Ok(("foo", "bar"))),
            ("Zm9vOmJhcg", Ok(("foo", "bar"))),
            // base64("a:b:c"): split at the first colon.
            ("YTpiOmM=", Ok(("a", "b:c"))),
            // base64(":") and base64("user:").
            ("Og==", Ok(("", ""))),
            ("dXNlcjo=", Ok(("user", ""))),
            // base64("nocolon")
            ("bm9jb2xvbg==", Err(AuthFieldError::MissingColon)),
            ("bm9jb2xvbg", Err(AuthFieldError::MissingColon)),
            ("!!!!", Err(AuthFieldError::Base64 { offset: 0 })),
            // Padding where the length says "unpadded".
            ("Zm9vOmJhcg=", Err(AuthFieldError::Base64 { offset: 10 })),
        ];
        for (field, expected) in cases {
            let got = decode_auth_field(field);
            let expected = expected
                .clone()
                .map(|(user, pass)| (user.to_owned(), pass.to_owned()));
            assert_eq!(got, expected, "auth {field:?}");
        }
        assert_eq!(
            AuthFieldError::MissingColon.to_string(),
            "unable to parse auth field"
        );
    }

    #[test]
    fn parses_config_json_and_dockercfg() {
        let config_json = br#"{
            "auths": {
                "https://index.docker.io/v1/": {"auth": "dXNlcjpwYXNz", "email": "a@b.c"},
                "quay.io": {"username": "qu", "password": "qp", "auth": ""},
                "gcr.io": {"username": "ignored", "password": "ignored", "auth": "Zm9vOmJhcg"},
                "empty.io": {},
                "null.io": null
            },
            "HttpHeaders": {"User-Agent": "x"}
        }"#;
        let pod = PodDockerConfig::from_config_json(config_json).unwrap();
        assert_eq!(pod.auths.len(), 5);
        assert_eq!(
            pod.auths.get("https://index.docker.io/v1/"),
            Some(&basic("user", "pass"))
        );
        assert_eq!(pod.auths.get("quay.io"), Some(&basic("qu", "qp")));
        assert_eq!(pod.auths.get("gcr.io"), Some(&basic("foo", "bar")));
        assert_eq!(pod.auths.get("empty.io"), Some(&Credential::default()));
        assert_eq!(pod.auths.get("null.io"), Some(&Credential::default()));

        let dockercfg = br#"{"reg.io:5000": {"username": "u", "password": "p"}}"#;
        let pod = PodDockerConfig::from_dockercfg(dockercfg).unwrap();
        assert_eq!(pod.auths.get("reg.io:5000"), Some(&basic("u", "p")));
        // A .dockercfg read as config.json has no `auths`: valid and empty, as in the kubelet.
        assert!(
            PodDockerConfig::from_config_json(dockercfg)
                .unwrap()
                .auths
                .is_empty()
        );
    }

    #[test]
    fn go_field_rules() {
        // Field names match case-insensitively; null documents and null `auths` are empty.
        let pod = PodDockerConfig::from_config_json(
            br#"{"Auths": {"r.io": {"Username": "u", "PASSWORD": "p"}}}"#,
        )
        .unwrap();
        assert_eq!(pod.auths.get("r.io"), Some(&basic("u", "p")));
        assert!(
            PodDockerConfig::from_config_json(b"null")
                .unwrap()
                .auths
                .is_empty()
        );
        assert!(
            PodDockerConfig::from_config_json(br#"{"auths": null}"#)
                .unwrap()
                .auths
                .is_empty()
        );
        assert!(
            PodDockerConfig::from_dockercfg(b"null")
                .unwrap()
                .auths
                .is_empty()
        );
        // Unknown fields are ignored; `identitytoken` is not read from files.
        let pod = PodDockerConfig::from_config_json(
            br#"{"auths": {"r.io": {"identitytoken": "tok", "username": "u"}}, "other": [1]}"#,
        )
        .unwrap();
        assert_eq!(pod.auths.get("r.io"), Some(&basic("u", "")));
    }

    #[test]
    fn rejects_malformed_documents_without_quoting_them() {
        let cases: &[&[u8]] = &[
            b"",
            b"{",
            b"[]",
            br#""hunter2""#,
            br#"{"auths": []}"#,
            br#"{"auths": {"r.io": "hunter2"}}"#,
            br#"{"auths": {"r.io": {"password": 7}}}"#,
            br#"{"auths": {"r.io": {"email": true}}}"#,
            br#"{"auths": {}, "HttpHeaders": {"a": 1}}"#,
            br#"{"auths": {"u:hunter2@r.io": {"auth": "aHVudGVyMg=="}}}"#,
            br#"{"auths": {"r.io": {"auth": "hunter2!"}}}"#,
        ];
        for document in cases {
            let error = PodDockerConfig::from_config_json(document).unwrap_err();
            let text = format!("{error} {error:?}");
            assert!(!text.contains("hunter2"), "{text}");
        }
        let error =
            PodDockerConfig::from_config_json(br#"{"auths": {"r.io": {"auth": "bm9jb2xvbg=="}}}"#)
                .unwrap_err();
        assert_eq!(error.to_string(), "unable to parse auth field");
        assert_eq!(
            error,
            ConfigParseError::AuthField {
                registry: "r.io".into(),
                reason: AuthFieldError::MissingColon
            }
        );
        assert!(PodDockerConfig::from_dockercfg(br#"{"r.io": 5}"#).is_err());
    }

    #[test]
    fn node_config_reads_helpers_but_pod_config_cannot() {
        let document = br#"{
            "auths": {"r.io": {"username": "u", "password": "p"}},
            "credHelpers": {"ecr.aws": "ecr-login", "bad.io": 5, "empty.io": ""},
            "credsStore": "desktop"
        }"#;
        let node = NodeDockerConfig::from_config_json(document).unwrap();
        assert_eq!(node.cred_helpers.len(), 1);
        assert_eq!(
            node.cred_helpers.get("ecr.aws").map(String::as_str),
            Some("ecr-login")
        );
        assert_eq!(node.creds_store.as_deref(), Some("desktop"));
        assert_eq!(node.auths.get("r.io"), Some(&basic("u", "p")));
        // The pod type parses the same bytes into auths only.
        let pod = PodDockerConfig::from_config_json(document).unwrap();
        assert_eq!(pod.auths, node.auths);
        // Mistyped helper settings do not invalidate the node file.
        let node =
            NodeDockerConfig::from_config_json(br#"{"credHelpers": [], "credsStore": 1}"#).unwrap();
        assert!(node.cred_helpers.is_empty() && node.creds_store.is_none());
    }

    #[test]
    fn redacts_userinfo_and_debug() {
        assert_eq!(redact_userinfo("u:pw@reg.io/x"), "<redacted>@reg.io/x");
        assert_eq!(
            redact_userinfo("https://u:pw@reg.io"),
            "https://<redacted>@reg.io"
        );
        assert_eq!(redact_userinfo("reg.io/a@b"), "reg.io/a@b");
        let auths: RegistryAuths = [("r.io".to_owned(), basic("u", "secret-pw"))]
            .into_iter()
            .collect();
        assert!(!format!("{auths:?} {auths}").contains("secret-pw"));
        assert_eq!(auths.to_string(), "[r.io]");
    }
}

//! Pod `imagePullSecrets` (spec §3.6): the secrets the kubelet read for a pod, turned into one
//! keyring that is searched before the node's credentials.

use std::collections::BTreeMap;
use std::fmt;

use super::basic::{InvalidRegistryKey, Keyring};
use super::credential::CredentialSource;
use super::docker_config::{ConfigParseError, PodDockerConfig};

pub const SECRET_TYPE_DOCKER_CONFIG_JSON: &str = "kubernetes.io/dockerconfigjson";
pub const SECRET_TYPE_DOCKERCFG: &str = "kubernetes.io/dockercfg";
pub const DOCKER_CONFIG_JSON_KEY: &str = ".dockerconfigjson";
pub const DOCKERCFG_KEY: &str = ".dockercfg";

/// Why a secret does not yield image pull credentials. Never includes the secret's data.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PullSecretError {
    #[error(
        "secret type {secret_type:?} does not hold registry credentials (want \"kubernetes.io/dockerconfigjson\" or \"kubernetes.io/dockercfg\")"
    )]
    UnsupportedType { secret_type: String },
    #[error("secret of type {secret_type:?} has no non-empty data key {key:?}")]
    MissingKey {
        secret_type: String,
        key: &'static str,
    },
    #[error("secret data key {key:?} is not a valid docker config: {source}")]
    Malformed {
        key: &'static str,
        #[source]
        source: ConfigParseError,
    },
}

impl PullSecretError {
    /// Whether the kubelet would silently skip such a secret (wrong type or missing key)
    /// rather than fail the pull (malformed data).
    pub fn is_ignored_by_kubelet(&self) -> bool {
        !matches!(self, PullSecretError::Malformed { .. })
    }
}

/// Parses a secret's data as registry credentials: type `kubernetes.io/dockerconfigjson` with
/// a non-empty `.dockerconfigjson`, or `kubernetes.io/dockercfg` with a non-empty `.dockercfg`.
///
/// The result type has no credential-helper fields, so nothing read from a pod's secret can
/// make the node run a program.
pub fn parse_pull_secret(
    secret_type: &str,
    data: &BTreeMap<String, Vec<u8>>,
) -> Result<PodDockerConfig, PullSecretError> {
    type Parser = fn(&[u8]) -> Result<PodDockerConfig, ConfigParseError>;
    let (key, parse): (_, Parser) = match secret_type {
        SECRET_TYPE_DOCKER_CONFIG_JSON => {
            (DOCKER_CONFIG_JSON_KEY, PodDockerConfig::from_config_json)
        }
        SECRET_TYPE_DOCKERCFG => (DOCKERCFG_KEY, PodDockerConfig::from_dockercfg),
        other => {
            return Err(PullSecretError::UnsupportedType {
                secret_type: other.to_owned(),
            });
        }
    };
    match data.get(key) {
        Some(bytes) if !bytes.is_empty() => {
            parse(bytes).map_err(|source| PullSecretError::Malformed { key, source })
        }
        _ => Err(PullSecretError::MissingKey {
            secret_type: secret_type.to_owned(),
            key,
        }),
    }
}

/// A secret the kubelet fetched for the pod (from the pod's namespace), borrowed so the
/// secret bytes are not copied. `Debug` lists the data keys, never the values.
#[derive(Clone, Copy)]
pub struct PullSecret<'a> {
    pub namespace: &'a str,
    pub name: &'a str,
    pub uid: Option<&'a str>,
    pub secret_type: &'a str,
    pub data: &'a BTreeMap<String, Vec<u8>>,
}

impl fmt::Debug for PullSecret<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PullSecret")
            .field("namespace", &self.namespace)
            .field("name", &self.name)
            .field("uid", &self.uid)
            .field("secret_type", &self.secret_type)
            .field("data_keys", &self.data.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// A secret that was passed but holds no registry credentials (skipped, like the kubelet).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IgnoredPullSecret {
    pub namespace: String,
    pub name: String,
    pub reason: PullSecretError,
}

/// A secret whose registry data is malformed: the kubelet fails the pull in that case.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("image pull secret {namespace}/{name}: {source}")]
pub struct PodSecretsError {
    pub namespace: String,
    pub name: String,
    #[source]
    pub source: PullSecretError,
}

/// The keyring built from all of a pod's pull secrets, with what was left out.
#[derive(Debug, Clone, Default)]
pub struct PodSecretsKeyring {
    /// Every usable secret merged into one keyring, in the order the secrets were given.
    pub keyring: Keyring,
    pub ignored: Vec<IgnoredPullSecret>,
    pub invalid_keys: Vec<InvalidRegistryKey>,
}

/// Merges the pod's pull secrets into one keyring, as the kubelet does: secrets of another
/// type or without their data key are skipped; malformed data fails the whole lookup.
pub fn pod_secrets_keyring<'a>(
    secrets: impl IntoIterator<Item = PullSecret<'a>>,
) -> Result<PodSecretsKeyring, PodSecretsError> {
    let mut result = PodSecretsKeyring::default();
    for secret in secrets {
        let config = match parse_pull_secret(secret.secret_type, secret.data) {
            Ok(config) => config,
            Err(reason) if reason.is_ignored_by_kubelet() => {
                result.ignored.push(IgnoredPullSecret {
                    namespace: secret.namespace.to_owned(),
                    name: secret.name.to_owned(),
                    reason,
                });
                continue;
            }
            Err(source) => {
                return Err(PodSecretsError {
                    namespace: secret.namespace.to_owned(),
                    name: secret.name.to_owned(),
                    source,
                });
            }
        };
        let source = CredentialSource::PodSecret {
            namespace: secret.namespace.to_owned(),
            name: secret.name.to_owned(),
            uid: secret.uid.map(str::to_owned),
        };
        let skipped = result.keyring.add(&config.auths, &source);
        result.invalid_keys.extend(skipped);
    }
    Ok(result)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keyring::credential::Credential;

    fn data(key: &str, value: &str) -> BTreeMap<String, Vec<u8>> {
        [(key.to_owned(), value.as_bytes().to_vec())]
            .into_iter()
            .collect()
    }

    #[test]
    fn parses_both_secret_types() {
        let json = data(
            DOCKER_CONFIG_JSON_KEY,
            r#"{"auths":{"r.io":{"username":"u","password":"p"}}}"#,
        );
        let config = parse_pull_secret(SECRET_TYPE_DOCKER_CONFIG_JSON, &json).unwrap();
        assert_eq!(config.auths.get("r.io"), Some(&Credential::basic("u", "p")));

        let legacy = data(DOCKERCFG_KEY, r#"{"r.io":{"auth":"dTpw"}}"#);
        let config = parse_pull_secret(SECRET_TYPE_DOCKERCFG, &legacy).unwrap();
        assert_eq!(config.auths.get("r.io"), Some(&Credential::basic("u", "p")));
    }

    #[test]
    fn typed_errors_for_wrong_type_or_key() {
        let json = data(DOCKER_CONFIG_JSON_KEY, r#"{"auths":{}}"#);
        assert_eq!(
            parse_pull_secret("Opaque", &json),
            Err(PullSecretError::UnsupportedType {
                secret_type: "Opaque".into()
            })
        );
        // The key must be the one of the secret's type.
        assert_eq!(
            parse_pull_secret(SECRET_TYPE_DOCKERCFG, &json),
            Err(PullSecretError::MissingKey {
                secret_type: SECRET_TYPE_DOCKERCFG.into(),
                key: DOCKERCFG_KEY
            })
        );
        let empty = data(DOCKER_CONFIG_JSON_KEY, "");
        assert_eq!(
            parse_pull_secret(SECRET_TYPE_DOCKER_CONFIG_JSON, &empty),
            Err(PullSecretError::MissingKey {
                secret_type: SECRET_TYPE_DOCKER_CONFIG_JSON.into(),
                key: DOCKER_CONFIG_JSON_KEY
            })
        );
        let broken = data(
            DOCKER_CONFIG_JSON_KEY,
            r#"{"auths":{"r.io":{"password":"hunter2""#,
        );
        let error = parse_pull_secret(SECRET_TYPE_DOCKER_CONFIG_JSON, &broken).unwrap_err();
        assert!(matches!(
            error,
            PullSecretError::Malformed {
                key: DOCKER_CONFIG_JSON_KEY,
                ..
            }
        ));
        assert!(!error.to_string().contains("hunter2"));
    }

    #[test]
    fn merges_secrets_in_order_and_skips_unusable_ones() {
        let first = data(
            DOCKER_CONFIG_JSON_KEY,
            r#"{"auths":{"r.io":{"username":"first","password":"p"}}}"#,
        );
        let second = data(
            DOCKERCFG_KEY,
            r#"{"https://r.io/v1/":{"username":"second","password":"p"}}"#,
        );
        let opaque = data("token", "x");
        let team = data(
            DOCKER_CONFIG_JSON_KEY,
            r#"{"auths":{"r.io/team":{"username":"team","password":"p"}}}"#,
        );
        let secret = |name, secret_type, data| PullSecret {
            namespace: "ns",
            name,
            uid: Some("uid-1"),
            secret_type,
            data,
        };
        let built = pod_secrets_keyring([
            secret("first", SECRET_TYPE_DOCKER_CONFIG_JSON, &first),
            secret("opaque", "Opaque", &opaque),
            secret("second", SECRET_TYPE_DOCKERCFG, &second),
            secret("team", SECRET_TYPE_DOCKER_CONFIG_JSON, &team),
        ])
        .unwrap();
        assert_eq!(built.ignored.len(), 1);
        assert_eq!(built.ignored[0].name, "opaque");
        let found = built.keyring.lookup("r.io/team/app");
        let names: Vec<(&str, String)> = found
            .iter()
            .map(|(credential, source)| (credential.username.as_str(), source.to_string()))
            .collect();
        assert_eq!(
            names,
            [
                ("team", "image pull secret ns/team".to_owned()),
                ("first", "image pull secret ns/first".to_owned()),
                ("second", "image pull secret ns/second".to_owned()),
            ]
        );
        assert_eq!(
            found[0].1,
            CredentialSource::PodSecret {
                namespace: "ns".into(),
                name: "team".into(),
                uid: Some("uid-1".into())
            }
        );
    }

    #[test]
    fn malformed_secret_fails_the_lookup() {
        let good = data(DOCKER_CONFIG_JSON_KEY, r#"{"auths":{}}"#);
        let bad = data(DOCKER_CONFIG_JSON_KEY, "not json");
        let error = pod_secrets_keyring([
            PullSecret {
                namespace: "ns",
                name: "good",
                uid: None,
                secret_type: SECRET_TYPE_DOCKER_CONFIG_JSON,
                data: &good,
            },
            PullSecret {
                namespace: "ns",
                name: "bad",
                uid: None,
                secret_type: SECRET_TYPE_DOCKER_CONFIG_JSON,
                data: &bad,
            },
        ])
        .unwrap_err();
        assert_eq!(error.name, "bad");
        assert!(
            error
                .to_string()
                .starts_with("image pull secret ns/bad: secret data key \".dockerconfigjson\"")
        );
        let debug = format!(
            "{:?}",
            PullSecret {
                namespace: "ns",
                name: "bad",
                uid: None,
                secret_type: "t",
                data: &bad
            }
        );
        assert!(debug.contains(".dockerconfigjson") && !debug.contains("not json"));
    }
}

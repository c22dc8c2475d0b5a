//! A registry credential and the record of where it came from.

use std::fmt;
use std::path::PathBuf;

/// What a registry accepts for authentication: basic auth, an identity (refresh) token, or a
/// registry (bearer) token. Empty strings mean "not set"; an all-empty credential is anonymous.
///
/// `Debug` shows the username only; the secrets print as `<redacted>`.
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct Credential {
    pub username: String,
    pub password: String,
    pub identity_token: String,
    pub registry_token: String,
}

impl Credential {
    /// A username/password pair.
    pub fn basic(username: impl Into<String>, password: impl Into<String>) -> Self {
        Self {
            username: username.into(),
            password: password.into(),
            ..Self::default()
        }
    }

    /// Whether nothing is set, so a pull with it is an anonymous pull.
    pub fn is_anonymous(&self) -> bool {
        self.username.is_empty()
            && self.password.is_empty()
            && self.identity_token.is_empty()
            && self.registry_token.is_empty()
    }
}

/// Stands in for a secret in `Debug` output while still telling set from unset.
fn redacted(secret: &str) -> &'static str {
    if secret.is_empty() { "" } else { "<redacted>" }
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credential")
            .field("username", &self.username)
            .field("password", &redacted(&self.password))
            .field("identity_token", &redacted(&self.identity_token))
            .field("registry_token", &redacted(&self.registry_token))
            .finish()
    }
}

/// Where a credential came from, so callers can record which credentials pulled an image
/// (secret-pulled-image verification, spec §3.10) and say so in events and logs.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum CredentialSource {
    /// An `imagePullSecrets` entry of the pod.
    PodSecret {
        namespace: String,
        name: String,
        /// The secret's UID when the caller knows it (records match on uid/namespace/name).
        uid: Option<String>,
    },
    /// A node-wide docker config file (`config.json` or `.dockercfg`), as the kubelet sees the
    /// path.
    NodeFile { path: PathBuf },
    /// A `docker-credential-<helper>` program named by the node config's `credHelpers` or
    /// `credsStore`.
    CredentialHelper {
        helper: String,
        config_path: PathBuf,
    },
    /// A kubelet credential provider exec plugin, by its configured name.
    ExecPlugin { provider: String },
}

impl CredentialSource {
    /// Whether the credential belongs to the node rather than to the pod: such credentials
    /// may pull images for any pod, whereas secret-pulled images need the same secret again.
    pub fn is_node_wide(&self) -> bool {
        !matches!(self, CredentialSource::PodSecret { .. })
    }
}

impl fmt::Display for CredentialSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CredentialSource::PodSecret {
                namespace, name, ..
            } => {
                write!(f, "image pull secret {namespace}/{name}")
            }
            CredentialSource::NodeFile { path } => write!(f, "node file {}", path.display()),
            CredentialSource::CredentialHelper { helper, .. } => {
                write!(f, "credential helper docker-credential-{helper}")
            }
            CredentialSource::ExecPlugin { provider } => {
                write!(f, "credential provider plugin {provider}")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_prints_secrets() {
        let credential = Credential {
            username: "alice".into(),
            password: "hunter2".into(),
            identity_token: "id-tok".into(),
            registry_token: "reg-tok".into(),
        };
        let printed = format!("{credential:?} {credential:#?}");
        assert!(printed.contains("alice"));
        for secret in ["hunter2", "id-tok", "reg-tok"] {
            assert!(!printed.contains(secret), "{printed}");
        }
        assert!(printed.contains("<redacted>"));
        assert!(!format!("{:?}", Credential::basic("bob", "")).contains("<redacted>"));
    }

    #[test]
    fn anonymous_and_sources() {
        assert!(Credential::default().is_anonymous());
        assert!(!Credential::basic("", "x").is_anonymous());
        let secret = CredentialSource::PodSecret {
            namespace: "ns".into(),
            name: "regcred".into(),
            uid: None,
        };
        assert!(!secret.is_node_wide());
        assert_eq!(secret.to_string(), "image pull secret ns/regcred");
        let plugin = CredentialSource::ExecPlugin {
            provider: "ecr".into(),
        };
        assert!(plugin.is_node_wide());
        assert_eq!(plugin.to_string(), "credential provider plugin ecr");
    }
}

//! The kubelet's `--image-credential-provider-config` file (`CredentialProviderConfig`,
//! `kubelet.config.k8s.io/v1`) and its validation.
//!
//! The types derive serde, so the file may be decoded from JSON with
//! [`CredentialProviderConfig::from_json`] or from YAML by any serde YAML crate the caller uses.

use std::collections::BTreeSet;
use std::fmt;

use serde::{Deserialize, Serialize};

use super::api::SUPPORTED_CREDENTIAL_PROVIDER_APIS;
use super::duration::GoDuration;
use crate::keyring::go_json::JsonSyntaxError;
use crate::keyring::go_url::parse_url_with_scheme;

pub const KUBELET_CONFIG_API_V1: &str = "kubelet.config.k8s.io/v1";
pub const CREDENTIAL_PROVIDER_CONFIG_KIND: &str = "CredentialProviderConfig";
/// Config versions still accepted for the file itself (same schema as v1).
const SUPPORTED_CONFIG_APIS: [&str; 3] = [
    KUBELET_CONFIG_API_V1,
    "kubelet.config.k8s.io/v1beta1",
    "kubelet.config.k8s.io/v1alpha1",
];

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CredentialProviderConfig {
    pub api_version: String,
    pub kind: String,
    #[serde(default)]
    pub providers: Vec<CredentialProvider>,
}

/// One exec plugin.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CredentialProvider {
    /// The executable's file name in the plugin bin dir; unique in the config.
    pub name: String,
    /// Image patterns the plugin is asked about (same matching as registry keys).
    #[serde(default)]
    pub match_images: Vec<String>,
    /// Required: how long responses without `cacheDuration` are cached.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_cache_duration: Option<GoDuration>,
    /// Version of the request/response exchanged with the plugin.
    #[serde(default)]
    pub api_version: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<ExecEnvVar>,
    /// Service-account token settings (KEP-4412). Kept so configs round-trip, but nodelet
    /// does not mint pod tokens, so validation rejects providers that set it rather than
    /// running them without the token they require.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_attributes: Option<serde_json::Value>,
}

/// An environment variable for the plugin, added to the kubelet's own environment.
/// `Debug` hides the value (it may hold a cloud credential).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecEnvVar {
    pub name: String,
    pub value: String,
}

impl fmt::Debug for ExecEnvVar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExecEnvVar")
            .field("name", &self.name)
            .field("value", &"<redacted>")
            .finish()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProviderConfigError {
    #[error("credential provider config: {0}")]
    Json(#[from] JsonSyntaxError),
    #[error("credential provider config: {0}")]
    Decode(String),
    /// Every problem found, one per entry, field path first.
    #[error("invalid credential provider config: {}", .0.join("; "))]
    Invalid(Vec<String>),
    #[error("plugin binary executable {} did not exist", .0.display())]
    MissingExecutable(std::path::PathBuf),
}

impl CredentialProviderConfig {
    /// Decodes a JSON config and validates it.
    pub fn from_json(bytes: &[u8]) -> Result<Self, ProviderConfigError> {
        let document = crate::keyring::go_json::parse_document(bytes)?;
        let config: Self = serde_json::from_value(document)
            .map_err(|error| ProviderConfigError::Decode(redact_quoted(&error.to_string())))?;
        config.validate()?;
        Ok(config)
    }

    /// The kubelet's checks: known apiVersion/kind, at least one provider, and for each a
    /// plain unique name, a supported apiVersion, parsable `matchImages`, and a non-negative
    /// `defaultCacheDuration`.
    pub fn validate(&self) -> Result<(), ProviderConfigError> {
        let mut problems = Vec::new();
        if !SUPPORTED_CONFIG_APIS.contains(&self.api_version.as_str()) {
            problems.push(format!(
                "apiVersion: unsupported value {:?}",
                self.api_version
            ));
        }
        if self.kind != CREDENTIAL_PROVIDER_CONFIG_KIND {
            problems.push(format!(
                "kind: must be {CREDENTIAL_PROVIDER_CONFIG_KIND:?}, not {:?}",
                self.kind
            ));
        }
        if self.providers.is_empty() {
            problems.push("providers: at least 1 item in plugins is required".to_owned());
        }
        let mut seen_names = BTreeSet::new();
        for (position, provider) in self.providers.iter().enumerate() {
            let at = format!("providers[{position}]");
            provider.check(&at, &mut problems);
            if !seen_names.insert(provider.name.as_str()) {
                problems.push(format!("{at}.name: duplicate value {:?}", provider.name));
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(ProviderConfigError::Invalid(problems))
        }
    }
}

/// Replaces the double-quoted values serde puts in type errors (`invalid type: string "..."`),
/// which could be an env value; field names (in backticks) stay.
fn redact_quoted(message: &str) -> String {
    let mut redacted = String::with_capacity(message.len());
    let mut parts = message.split('"');
    redacted.push_str(parts.next().unwrap_or_default());
    let mut inside_quotes = true;
    for part in parts {
        redacted.push('"');
        redacted.push_str(if inside_quotes { "<redacted>" } else { part });
        inside_quotes = !inside_quotes;
    }
    redacted
}

impl CredentialProvider {
    fn check(&self, at: &str, problems: &mut Vec<String>) {
        let name = &self.name;
        if name.is_empty() {
            problems.push(format!("{at}.name: name is required"));
        } else if name.contains('/') {
            problems.push(format!("{at}.name: provider name cannot contain '/'"));
        } else if name.contains(' ') {
            problems.push(format!("{at}.name: provider name cannot contain spaces"));
        } else if name == "." || name == ".." {
            problems.push(format!("{at}.name: provider name cannot be {name:?}"));
        } else if name.contains('\0') {
            problems.push(format!("{at}.name: provider name cannot contain NUL"));
        }
        if self.api_version.is_empty() {
            problems.push(format!("{at}.apiVersion: apiVersion is required"));
        } else if !SUPPORTED_CREDENTIAL_PROVIDER_APIS.contains(&self.api_version.as_str()) {
            problems.push(format!(
                "{at}.apiVersion: unsupported value {:?}, supported: {}",
                self.api_version,
                SUPPORTED_CREDENTIAL_PROVIDER_APIS.join(", ")
            ));
        }
        if self.match_images.is_empty() {
            problems.push(format!(
                "{at}.matchImages: at least 1 item in matchImages is required"
            ));
        }
        for match_image in &self.match_images {
            if let Err(error) = parse_url_with_scheme(&format!("https://{match_image}")) {
                problems.push(format!(
                    "{at}.matchImages: match image {match_image:?} is invalid: {error}"
                ));
            }
        }
        match self.default_cache_duration {
            None => problems.push(format!(
                "{at}.defaultCacheDuration: defaultCacheDuration is required"
            )),
            Some(duration) if duration.is_negative() => problems.push(format!(
                "{at}.defaultCacheDuration: must be greater than or equal to 0"
            )),
            Some(_) => {}
        }
        for (position, variable) in self.env.iter().enumerate() {
            if variable.name.is_empty() || variable.name.contains(['=', '\0']) {
                problems.push(format!(
                    "{at}.env[{position}].name: invalid environment variable name"
                ));
            }
        }
        if self.token_attributes.is_some() {
            problems.push(format!(
                "{at}.tokenAttributes: service account tokens for credential providers are not supported by nodelet"
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const VALID: &str = r#"{
        "apiVersion": "kubelet.config.k8s.io/v1",
        "kind": "CredentialProviderConfig",
        "providers": [{
            "name": "ecr-credential-provider",
            "matchImages": ["*.dkr.ecr.*.amazonaws.com", "registry.io:8080/path"],
            "defaultCacheDuration": "12h",
            "apiVersion": "credentialprovider.kubelet.k8s.io/v1",
            "args": ["get-credentials"],
            "env": [{"name": "AWS_PROFILE", "value": "node-secret-profile"}]
        }]
    }"#;

    #[test]
    fn decodes_a_valid_config() {
        let config = CredentialProviderConfig::from_json(VALID.as_bytes()).unwrap();
        let provider = &config.providers[0];
        assert_eq!(provider.name, "ecr-credential-provider");
        assert_eq!(provider.match_images.len(), 2);
        assert_eq!(
            provider.default_cache_duration,
            Some(GoDuration::parse("12h").unwrap())
        );
        assert_eq!(provider.args, ["get-credentials"]);
        assert!(!format!("{config:?}").contains("node-secret-profile"));
        // Round trip keeps the Go duration syntax.
        let text = serde_json::to_string(&config).unwrap();
        assert!(
            text.contains(r#""defaultCacheDuration":"12h0m0s""#),
            "{text}"
        );
    }

    fn problems_of(edit: impl FnOnce(&mut CredentialProviderConfig)) -> Vec<String> {
        let mut config: CredentialProviderConfig = serde_json::from_str(VALID).unwrap();
        edit(&mut config);
        match config.validate() {
            Ok(()) => Vec::new(),
            Err(ProviderConfigError::Invalid(problems)) => problems,
            Err(other) => panic!("unexpected {other}"),
        }
    }

    #[test]
    fn validation_rules() {
        assert!(problems_of(|_| {}).is_empty());
        type Edit = Box<dyn FnOnce(&mut CredentialProviderConfig)>;
        let cases: Vec<(Edit, &str)> = vec![
            (
                Box::new(|c| c.api_version = "v9".into()),
                "apiVersion: unsupported",
            ),
            (Box::new(|c| c.kind = "Other".into()), "kind: must be"),
            (
                Box::new(|c| c.providers.clear()),
                "at least 1 item in plugins",
            ),
            (
                Box::new(|c| c.providers[0].name = String::new()),
                "name is required",
            ),
            (
                Box::new(|c| c.providers[0].name = "../x".into()),
                "cannot contain '/'",
            ),
            (
                Box::new(|c| c.providers[0].name = "a b".into()),
                "cannot contain spaces",
            ),
            (
                Box::new(|c| c.providers[0].name = "..".into()),
                "cannot be \"..\"",
            ),
            (
                Box::new(|c| c.providers[0].api_version = String::new()),
                "apiVersion is required",
            ),
            (
                Box::new(|c| c.providers[0].api_version = "x/v1".into()),
                "unsupported value \"x/v1\"",
            ),
            (
                Box::new(|c| c.providers[0].match_images.clear()),
                "at least 1 item in matchImages",
            ),
            (
                Box::new(|c| c.providers[0].match_images = vec!["reg.io:port".into()]),
                "is invalid",
            ),
            (
                Box::new(|c| c.providers[0].default_cache_duration = None),
                "defaultCacheDuration is required",
            ),
            (
                Box::new(|c| {
                    c.providers[0].default_cache_duration = Some(GoDuration::parse("-1s").unwrap())
                }),
                "greater than or equal to 0",
            ),
            (
                Box::new(|c| c.providers.push(c.providers[0].clone())),
                "duplicate value",
            ),
            (
                Box::new(|c| c.providers[0].token_attributes = Some(serde_json::json!({}))),
                "not supported",
            ),
            (
                Box::new(|c| c.providers[0].env[0].name = "A=B".into()),
                "invalid environment variable",
            ),
        ];
        for (edit, expected) in cases {
            let problems = problems_of(edit);
            assert!(
                problems.iter().any(|problem| problem.contains(expected)),
                "{expected}: {problems:?}"
            );
        }
        assert!(matches!(
            CredentialProviderConfig::from_json(b"{\"apiVersion\": 5}"),
            Err(ProviderConfigError::Decode(_))
        ));
        assert!(matches!(
            CredentialProviderConfig::from_json(b"{"),
            Err(ProviderConfigError::Json(_))
        ));
        let error = CredentialProviderConfig::from_json(
            br#"{"apiVersion":"kubelet.config.k8s.io/v1","kind":"CredentialProviderConfig","providers":[{"name":"p","env":"SECRET=hunter2"}]}"#,
        )
        .unwrap_err();
        assert!(!error.to_string().contains("hunter2"), "{error}");
    }
}

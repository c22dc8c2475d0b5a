//! The kubelet credential provider exec API (`credentialprovider.kubelet.k8s.io/v1`): the
//! request written to a plugin's stdin and the response read from its stdout.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize};

use super::duration::GoDuration;

pub const CREDENTIAL_PROVIDER_API_V1: &str = "credentialprovider.kubelet.k8s.io/v1";
pub const CREDENTIAL_PROVIDER_API_V1BETA1: &str = "credentialprovider.kubelet.k8s.io/v1beta1";
pub const CREDENTIAL_PROVIDER_API_V1ALPHA1: &str = "credentialprovider.kubelet.k8s.io/v1alpha1";
/// Request/response versions a provider may be configured with (same schema in each).
pub const SUPPORTED_CREDENTIAL_PROVIDER_APIS: [&str; 3] = [
    CREDENTIAL_PROVIDER_API_V1,
    CREDENTIAL_PROVIDER_API_V1BETA1,
    CREDENTIAL_PROVIDER_API_V1ALPHA1,
];
pub const REQUEST_KIND: &str = "CredentialProviderRequest";
pub const RESPONSE_KIND: &str = "CredentialProviderResponse";

/// Written to the plugin's stdin. `Debug` redacts the service-account token.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CredentialProviderRequest {
    pub api_version: String,
    pub kind: String,
    /// The image being pulled, as the kubelet looks it up (no tag or digest).
    pub image: String,
    /// A pod service-account token, only for providers configured with `tokenAttributes`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account_token: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub service_account_annotations: BTreeMap<String, String>,
}

impl CredentialProviderRequest {
    pub fn new(api_version: impl Into<String>, image: impl Into<String>) -> Self {
        Self {
            api_version: api_version.into(),
            kind: REQUEST_KIND.to_owned(),
            image: image.into(),
            service_account_token: None,
            service_account_annotations: BTreeMap::new(),
        }
    }
}

impl fmt::Debug for CredentialProviderRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CredentialProviderRequest")
            .field("api_version", &self.api_version)
            .field("kind", &self.kind)
            .field("image", &self.image)
            .field(
                "service_account_token",
                &self.service_account_token.as_ref().map(|_| "<redacted>"),
            )
            .field(
                "service_account_annotations",
                &self.service_account_annotations,
            )
            .finish()
    }
}

/// How a response is cached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum PluginCacheKeyType {
    /// For this image only (registry, port and path; no tag or digest).
    Image,
    /// For every image of the same `host[:port]`.
    Registry,
    /// For every image the plugin handles.
    Global,
}

/// Read from the plugin's stdout.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CredentialProviderResponse {
    pub api_version: String,
    pub kind: String,
    /// Required; a missing or unknown value makes the response unusable, as in the kubelet.
    pub cache_key_type: PluginCacheKeyType,
    /// Absent: the provider's `defaultCacheDuration`; zero: not cached.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_duration: Option<GoDuration>,
    /// Match pattern (same syntax as `matchImages`) → credentials.
    #[serde(default, deserialize_with = "null_as_default")]
    pub auth: BTreeMap<String, AuthConfig>,
}

/// A username and password from a plugin. `Debug` redacts the password.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthConfig {
    #[serde(default, deserialize_with = "null_as_default")]
    pub username: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub password: String,
}

impl fmt::Debug for AuthConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthConfig")
            .field("username", &self.username)
            .field(
                "password",
                &if self.password.is_empty() {
                    ""
                } else {
                    "<redacted>"
                },
            )
            .finish()
    }
}

/// Go decodes JSON `null` into a field as its zero value.
fn null_as_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_wire_format() {
        let request = CredentialProviderRequest::new(CREDENTIAL_PROVIDER_API_V1, "registry.io/app");
        assert_eq!(
            serde_json::to_string(&request).unwrap(),
            r#"{"apiVersion":"credentialprovider.kubelet.k8s.io/v1","kind":"CredentialProviderRequest","image":"registry.io/app"}"#
        );
        let with_token = CredentialProviderRequest {
            service_account_token: Some("jwt-secret".into()),
            ..request
        };
        assert!(!format!("{with_token:?}").contains("jwt-secret"));
        assert!(
            serde_json::to_string(&with_token)
                .unwrap()
                .contains(r#""serviceAccountToken":"jwt-secret""#)
        );
    }

    #[test]
    fn response_wire_format() {
        let response: CredentialProviderResponse = serde_json::from_str(
            r#"{"apiVersion":"credentialprovider.kubelet.k8s.io/v1","kind":"CredentialProviderResponse",
                "cacheKeyType":"Registry","cacheDuration":"6h",
                "auth":{"*.registry.io":{"username":"u","password":"p"},"other.io":{"username":null}}}"#,
        )
        .unwrap();
        assert_eq!(response.cache_key_type, PluginCacheKeyType::Registry);
        assert_eq!(
            response.cache_duration,
            Some(GoDuration::parse("6h").unwrap())
        );
        assert_eq!(
            response.auth["*.registry.io"],
            AuthConfig {
                username: "u".into(),
                password: "p".into()
            }
        );
        assert_eq!(response.auth["other.io"], AuthConfig::default());
        assert!(!format!("{response:?}").contains("\"p\""));

        let minimal: CredentialProviderResponse = serde_json::from_str(
            r#"{"apiVersion":"v","kind":"k","cacheKeyType":"Global","auth":null}"#,
        )
        .unwrap();
        assert_eq!(minimal.cache_duration, None);
        assert!(minimal.auth.is_empty());
        for invalid in [
            r#"{"apiVersion":"v","kind":"k","cacheKeyType":"Nope"}"#,
            r#"{"apiVersion":"v","kind":"k","cacheKeyType":""}"#,
            r#"{"apiVersion":"v","kind":"k"}"#,
            r#"{"apiVersion":"v","kind":"k","cacheKeyType":"Image","cacheDuration":"soon"}"#,
        ] {
            assert!(
                serde_json::from_str::<CredentialProviderResponse>(invalid).is_err(),
                "{invalid}"
            );
        }
    }
}

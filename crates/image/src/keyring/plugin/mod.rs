//! Kubelet credential provider exec plugins (spec §3.9).
//!
//! A plugin is run only for images one of its `matchImages` patterns covers; it gets a
//! `CredentialProviderRequest` on stdin and answers with a `CredentialProviderResponse`, whose
//! `auth` patterns are matched like registry keys. Responses are cached per image, registry
//! or globally, for `cacheDuration` (default: the provider's `defaultCacheDuration`).

mod api;
mod cache;
mod config;
mod duration;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

pub use api::{
    AuthConfig, CREDENTIAL_PROVIDER_API_V1, CREDENTIAL_PROVIDER_API_V1ALPHA1,
    CREDENTIAL_PROVIDER_API_V1BETA1, CredentialProviderRequest, CredentialProviderResponse,
    PluginCacheKeyType, REQUEST_KIND, RESPONSE_KIND, SUPPORTED_CREDENTIAL_PROVIDER_APIS,
};
pub use config::{
    CREDENTIAL_PROVIDER_CONFIG_KIND, CredentialProvider, CredentialProviderConfig, ExecEnvVar,
    KUBELET_CONFIG_API_V1, ProviderConfigError,
};
pub use duration::{GoDuration, InvalidDuration};

use self::cache::ResponseCache;
use super::CredentialLookup;
use super::basic::Keyring;
use super::credential::{Credential, CredentialSource};
use super::docker_config::RegistryAuths;
use super::go_json::{field, parse_document};
use super::process::{ProcessError, run_with_timeout};
use super::url_match::urls_match;

/// The kubelet's catch-all limit for one plugin run.
pub const DEFAULT_PLUGIN_TIMEOUT: Duration = Duration::from_secs(60);
/// Plugin stderr quoted in errors is cut to this many characters.
const MAX_STDERR_CHARS: usize = 1024;

#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    #[error("error execing credential provider plugin {provider} for image {image}: {source}")]
    Run {
        provider: String,
        image: String,
        #[source]
        source: ProcessError,
    },
    #[error(
        "error execing credential provider plugin {provider} for image {image}: {status}: {stderr}"
    )]
    Exit {
        provider: String,
        image: String,
        status: String,
        stderr: String,
    },
    #[error("error reading GVK from response")]
    UnreadableGvk,
    #[error(
        "apiVersion from credential plugin response did not match expected apiVersion:{expected}, actual apiVersion:{actual}"
    )]
    ApiVersionMismatch { expected: String, actual: String },
    #[error(
        "kind from credential plugin response is {actual:?}, expected \"CredentialProviderResponse\""
    )]
    WrongKind { actual: String },
    /// Deliberately without details: the response may contain credentials.
    #[error("error decoding credential provider plugin response from stdout")]
    Decode,
}

/// One configured plugin with its response cache.
#[derive(Debug)]
pub struct ExecPlugin {
    provider: CredentialProvider,
    executable: PathBuf,
    timeout: Duration,
    cache: Mutex<ResponseCache>,
}

impl ExecPlugin {
    /// The plugin `provider.name` in `bin_dir` (the kubelet's
    /// `--image-credential-provider-bin-dir`). The provider is assumed validated.
    pub fn new(provider: CredentialProvider, bin_dir: &Path) -> Self {
        Self {
            executable: bin_dir.join(&provider.name),
            provider,
            timeout: DEFAULT_PLUGIN_TIMEOUT,
            cache: Mutex::new(ResponseCache::default()),
        }
    }

    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    pub fn name(&self) -> &str {
        &self.provider.name
    }

    pub fn executable(&self) -> &Path {
        &self.executable
    }

    /// Whether any `matchImages` pattern covers `image`.
    pub fn matches_image(&self, image: &str) -> bool {
        self.provider
            .match_images
            .iter()
            .any(|pattern| urls_match(pattern, image))
    }

    /// Runs the plugin for `image` (no matching, no cache) and checks the response's version.
    pub fn exec(&self, image: &str) -> Result<CredentialProviderResponse, PluginError> {
        let api_version = &self.provider.api_version;
        let request = CredentialProviderRequest::new(api_version.clone(), image);
        // Serialising a struct of strings into a Vec cannot fail.
        let stdin = serde_json::to_vec(&request).unwrap_or_default();
        let mut command = Command::new(&self.executable);
        command.args(&self.provider.args);
        // Added to the kubelet's environment, overriding same-named variables.
        command.envs(self.provider.env.iter().map(|var| (&var.name, &var.value)));
        let output =
            run_with_timeout(command, &stdin, self.timeout).map_err(|source| PluginError::Run {
                provider: self.provider.name.clone(),
                image: image.to_owned(),
                source,
            })?;
        if !output.status.success() {
            return Err(PluginError::Exit {
                provider: self.provider.name.clone(),
                image: image.to_owned(),
                status: output.status.to_string(),
                stderr: String::from_utf8_lossy(&output.stderr)
                    .trim()
                    .chars()
                    .take(MAX_STDERR_CHARS)
                    .collect(),
            });
        }
        decode_response(&output.stdout, api_version)
    }

    /// Credentials the plugin offers for `image` at `now`: empty if no pattern matches,
    /// otherwise from the cache or a fresh run (then cached as the response says).
    pub fn provide(&self, image: &str, now: Instant) -> Result<RegistryAuths, PluginError> {
        if !self.matches_image(image) {
            return Ok(RegistryAuths::new());
        }
        if let Some(cached) = self.lock_cache().get(image, now) {
            return Ok(cached);
        }
        // The cache is not locked while the plugin runs, so one slow plugin run does not hold
        // up lookups of other images; concurrent misses may run the plugin twice.
        let response = self.exec(image)?;
        let auths: RegistryAuths = response
            .auth
            .iter()
            .map(|(pattern, auth)| {
                (
                    pattern.clone(),
                    Credential::basic(&auth.username, &auth.password),
                )
            })
            .collect();
        let lifetime = match response.cache_duration {
            // A negative duration has already expired: the same as not caching.
            Some(duration) => duration.to_std().unwrap_or(Duration::ZERO),
            None => self
                .provider
                .default_cache_duration
                .and_then(GoDuration::to_std)
                .unwrap_or(Duration::ZERO),
        };
        self.lock_cache()
            .insert(response.cache_key_type, image, auths.clone(), now, lifetime);
        Ok(auths)
    }

    fn lock_cache(&self) -> std::sync::MutexGuard<'_, ResponseCache> {
        self.cache.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Checks apiVersion and kind before decoding, so a version mismatch is reported as such.
fn decode_response(
    stdout: &[u8],
    expected_api_version: &str,
) -> Result<CredentialProviderResponse, PluginError> {
    let document = parse_document(stdout).map_err(|_| PluginError::UnreadableGvk)?;
    let serde_json::Value::Object(object) = &document else {
        return Err(PluginError::UnreadableGvk);
    };
    let text_of = |name: &str| match field(object, name) {
        Some(serde_json::Value::String(text)) => Ok(text.clone()),
        None | Some(serde_json::Value::Null) => Ok(String::new()),
        Some(_) => Err(PluginError::UnreadableGvk),
    };
    let api_version = text_of("apiVersion")?;
    if api_version != expected_api_version {
        return Err(PluginError::ApiVersionMismatch {
            expected: expected_api_version.to_owned(),
            actual: api_version,
        });
    }
    let kind = text_of("kind")?;
    if kind != RESPONSE_KIND {
        return Err(PluginError::WrongKind { actual: kind });
    }
    serde_json::from_value(document).map_err(|_| PluginError::Decode)
}

/// All configured plugins, asked in configuration order.
#[derive(Debug, Default)]
pub struct CredentialProviderPlugins {
    plugins: Vec<ExecPlugin>,
}

impl CredentialProviderPlugins {
    /// Validates `config` and checks that every plugin exists in `bin_dir`.
    pub fn new(
        config: &CredentialProviderConfig,
        bin_dir: &Path,
    ) -> Result<Self, ProviderConfigError> {
        config.validate()?;
        let plugins: Vec<ExecPlugin> = config
            .providers
            .iter()
            .map(|provider| ExecPlugin::new(provider.clone(), bin_dir))
            .collect();
        if let Some(missing) = plugins.iter().find(|plugin| !plugin.executable.exists()) {
            return Err(ProviderConfigError::MissingExecutable(
                missing.executable.clone(),
            ));
        }
        Ok(Self { plugins })
    }

    /// Applies `timeout` to every plugin run (default one minute).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.plugins = self
            .plugins
            .into_iter()
            .map(|plugin| plugin.with_timeout(timeout))
            .collect();
        self
    }

    pub fn plugins(&self) -> &[ExecPlugin] {
        &self.plugins
    }

    /// Credentials for `repo_to_pull` from every matching plugin, merged into one keyring so
    /// the most specific pattern comes first and, for equal patterns, the earlier plugin.
    /// Failing plugins are logged and skipped.
    pub fn lookup(&self, repo_to_pull: &str, now: Instant) -> Vec<(Credential, CredentialSource)> {
        let mut keyring = Keyring::new();
        for plugin in &self.plugins {
            match plugin.provide(repo_to_pull, now) {
                Ok(auths) if !auths.is_empty() => {
                    let source = CredentialSource::ExecPlugin {
                        provider: plugin.name().to_owned(),
                    };
                    keyring.add(&auths, &source);
                }
                Ok(_) => {}
                Err(error) => tracing::error!(
                    "Failed getting credential from external registry credential provider: {error}"
                ),
            }
        }
        keyring.lookup(repo_to_pull)
    }
}

impl CredentialLookup for CredentialProviderPlugins {
    fn lookup_credentials(
        &self,
        repo_to_pull: &str,
        now: Instant,
    ) -> Vec<(Credential, CredentialSource)> {
        self.lookup(repo_to_pull, now)
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use crate::keyring::test_support::write_script;

    /// A fake plugin: records its request, arguments and one line per call in `$STATE_DIR`,
    /// and answers with the cache key type and duration given as arguments, for the auth
    /// pattern given in `$AUTH_PATTERN`.
    const FAKE_PLUGIN: &str = r#"cat > "$STATE_DIR/request.json"
echo "$*" > "$STATE_DIR/args"
echo call >> "$STATE_DIR/calls"
duration=""
[ -n "$2" ] && duration=",\"cacheDuration\":\"$2\""
printf '{"apiVersion":"credentialprovider.kubelet.k8s.io/v1","kind":"CredentialProviderResponse","cacheKeyType":"%s"%s,"auth":{"%s":{"username":"%s","password":"pw"}}}' "$1" "$duration" "$AUTH_PATTERN" "${USER_NAME:-plugin-user}"
"#;

    struct Fixture {
        bin: tempfile::TempDir,
        state: tempfile::TempDir,
    }

    impl Fixture {
        fn new() -> Self {
            let fixture = Self {
                bin: tempfile::tempdir().unwrap(),
                state: tempfile::tempdir().unwrap(),
            };
            write_script(fixture.bin.path(), "fake-plugin", FAKE_PLUGIN);
            fixture
        }

        fn provider(
            &self,
            name: &str,
            args: &[&str],
            pattern: &str,
            user: &str,
        ) -> CredentialProvider {
            CredentialProvider {
                name: name.to_owned(),
                match_images: vec!["*.registry.io".into(), "registry.io:8080/path".into()],
                default_cache_duration: Some(GoDuration::parse("1m").unwrap()),
                api_version: CREDENTIAL_PROVIDER_API_V1.to_owned(),
                args: args.iter().map(|arg| (*arg).to_owned()).collect(),
                env: vec![
                    ExecEnvVar {
                        name: "STATE_DIR".into(),
                        value: self.state.path().display().to_string(),
                    },
                    ExecEnvVar {
                        name: "AUTH_PATTERN".into(),
                        value: pattern.into(),
                    },
                    ExecEnvVar {
                        name: "USER_NAME".into(),
                        value: user.into(),
                    },
                ],
                token_attributes: None,
            }
        }

        fn plugin(&self, args: &[&str]) -> ExecPlugin {
            ExecPlugin::new(
                self.provider("fake-plugin", args, "*.registry.io", "plugin-user"),
                self.bin.path(),
            )
        }

        fn calls(&self) -> usize {
            std::fs::read_to_string(self.state.path().join("calls"))
                .map_or(0, |calls| calls.lines().count())
        }
    }

    #[test]
    fn runs_the_plugin_with_request_args_and_env() {
        let fixture = Fixture::new();
        let plugin = fixture.plugin(&["Image", "5m"]);
        let response = plugin.exec("a.registry.io/team/app").unwrap();
        assert_eq!(response.cache_key_type, PluginCacheKeyType::Image);
        assert_eq!(
            response.cache_duration,
            Some(GoDuration::parse("5m").unwrap())
        );
        assert_eq!(response.auth["*.registry.io"].username, "plugin-user");
        let request = std::fs::read_to_string(fixture.state.path().join("request.json")).unwrap();
        assert_eq!(
            request,
            r#"{"apiVersion":"credentialprovider.kubelet.k8s.io/v1","kind":"CredentialProviderRequest","image":"a.registry.io/team/app"}"#
        );
        assert_eq!(
            std::fs::read_to_string(fixture.state.path().join("args")).unwrap(),
            "Image 5m\n"
        );
    }

    #[test]
    fn only_matching_images_run_the_plugin() {
        let fixture = Fixture::new();
        let plugin = fixture.plugin(&["Image"]);
        let now = Instant::now();
        for image in [
            "registry.io/app",
            "a.b.registry.io/app",
            "registry.io:8080/other",
            "docker.io/library/nginx",
        ] {
            assert!(plugin.provide(image, now).unwrap().is_empty(), "{image}");
        }
        assert_eq!(fixture.calls(), 0);
        assert!(
            !plugin
                .provide("registry.io:8080/path/app", now)
                .unwrap()
                .is_empty()
        );
        assert_eq!(fixture.calls(), 1);
    }

    #[test]
    fn caches_by_key_type_and_duration() {
        let start = Instant::now();
        let minute = Duration::from_secs(60);
        // (args, second image, later, expected calls after: first, same image, second image, later)
        let cases: &[(&[&str], &str, Duration, [usize; 4])] = &[
            (&["Image"], "a.registry.io/other", minute, [1, 1, 2, 3]),
            (
                &["Image"],
                "a.registry.io/other",
                minute - Duration::from_secs(1),
                [1, 1, 2, 2],
            ),
            (
                &["Registry", "10m"],
                "a.registry.io/other",
                5 * minute,
                [1, 1, 1, 1],
            ),
            (
                &["Registry", "10m"],
                "b.registry.io/other",
                11 * minute,
                [1, 1, 2, 3],
            ),
            (
                &["Global", "1h"],
                "b.registry.io/other",
                30 * minute,
                [1, 1, 1, 1],
            ),
            (
                &["Global", "0s"],
                "b.registry.io/other",
                Duration::ZERO,
                [1, 2, 3, 4],
            ),
            (
                &["Global", "-5s"],
                "b.registry.io/other",
                Duration::ZERO,
                [1, 2, 3, 4],
            ),
        ];
        for (args, second_image, later, expected) in cases {
            let fixture = Fixture::new();
            let plugin = fixture.plugin(args);
            let mut calls = Vec::new();
            plugin.provide("a.registry.io/app", start).unwrap();
            calls.push(fixture.calls());
            plugin
                .provide("a.registry.io/app", start + Duration::from_secs(1))
                .unwrap();
            calls.push(fixture.calls());
            plugin
                .provide(second_image, start + Duration::from_secs(2))
                .unwrap();
            calls.push(fixture.calls());
            plugin
                .provide("a.registry.io/app", start + *later + Duration::from_secs(1))
                .unwrap();
            calls.push(fixture.calls());
            assert_eq!(
                calls, expected,
                "args {args:?} second {second_image} later {later:?}"
            );
        }
    }

    #[test]
    fn zero_default_duration_disables_caching() {
        let fixture = Fixture::new();
        let mut provider = fixture.provider("fake-plugin", &["Image"], "*.registry.io", "u");
        provider.default_cache_duration = Some(GoDuration::ZERO);
        let plugin = ExecPlugin::new(provider, fixture.bin.path());
        let now = Instant::now();
        plugin.provide("a.registry.io/app", now).unwrap();
        plugin.provide("a.registry.io/app", now).unwrap();
        assert_eq!(fixture.calls(), 2);
    }

    #[test]
    fn bad_responses_are_errors() {
        let bin = tempfile::tempdir().unwrap();
        let cases: &[(&str, &str)] = &[
            ("not-json", "echo hello"),
            (
                "wrong-version",
                r#"echo '{"apiVersion":"credentialprovider.kubelet.k8s.io/v1beta1","kind":"CredentialProviderResponse","cacheKeyType":"Image"}'"#,
            ),
            (
                "wrong-kind",
                r#"echo '{"apiVersion":"credentialprovider.kubelet.k8s.io/v1","kind":"Other","cacheKeyType":"Image"}'"#,
            ),
            (
                "bad-key-type",
                r#"echo '{"apiVersion":"credentialprovider.kubelet.k8s.io/v1","kind":"CredentialProviderResponse","cacheKeyType":"Forever","auth":{"x":{"password":"hunter2"}}}'"#,
            ),
            ("failing", "echo 'no credentials for you' >&2; exit 4"),
            ("slow", "exec sleep 30"),
        ];
        for (name, body) in cases {
            write_script(bin.path(), name, body);
        }
        let error_of = |name: &str| {
            let provider = CredentialProvider {
                name: name.to_owned(),
                match_images: vec!["*.io".into()],
                default_cache_duration: Some(GoDuration::ZERO),
                api_version: CREDENTIAL_PROVIDER_API_V1.to_owned(),
                args: Vec::new(),
                env: Vec::new(),
                token_attributes: None,
            };
            let plugin =
                ExecPlugin::new(provider, bin.path()).with_timeout(Duration::from_millis(300));
            plugin.provide("r.io/app", Instant::now()).unwrap_err()
        };
        assert!(matches!(error_of("not-json"), PluginError::UnreadableGvk));
        assert_eq!(
            error_of("wrong-version").to_string(),
            "apiVersion from credential plugin response did not match expected apiVersion:credentialprovider.kubelet.k8s.io/v1, actual apiVersion:credentialprovider.kubelet.k8s.io/v1beta1"
        );
        assert!(matches!(
            error_of("wrong-kind"),
            PluginError::WrongKind { .. }
        ));
        let decode = error_of("bad-key-type");
        assert!(matches!(decode, PluginError::Decode));
        assert!(!format!("{decode} {decode:?}").contains("hunter2"));
        let failing = error_of("failing").to_string();
        assert!(
            failing.starts_with(
                "error execing credential provider plugin failing for image r.io/app:"
            ),
            "{failing}"
        );
        assert!(failing.ends_with("no credentials for you"), "{failing}");
        assert!(matches!(
            error_of("slow"),
            PluginError::Run {
                source: ProcessError::TimedOut { .. },
                ..
            }
        ));
    }

    #[test]
    fn plugins_merge_in_config_order_and_specificity() {
        let fixture = Fixture::new();
        write_script(fixture.bin.path(), "second-plugin", FAKE_PLUGIN);
        write_script(fixture.bin.path(), "specific-plugin", FAKE_PLUGIN);
        let config = CredentialProviderConfig {
            api_version: KUBELET_CONFIG_API_V1.to_owned(),
            kind: CREDENTIAL_PROVIDER_CONFIG_KIND.to_owned(),
            providers: vec![
                fixture.provider("fake-plugin", &["Image", "0s"], "*.registry.io", "first"),
                fixture.provider("second-plugin", &["Image", "0s"], "*.registry.io", "second"),
                fixture.provider(
                    "specific-plugin",
                    &["Image", "0s"],
                    "a.registry.io/team",
                    "specific",
                ),
            ],
        };
        let plugins = CredentialProviderPlugins::new(&config, fixture.bin.path()).unwrap();
        let found = plugins.lookup("a.registry.io/team/app", Instant::now());
        let found: Vec<(&str, String)> = found
            .iter()
            .map(|(credential, source)| (credential.username.as_str(), source.to_string()))
            .collect();
        assert_eq!(
            found,
            [
                (
                    "specific",
                    "credential provider plugin specific-plugin".to_owned()
                ),
                ("first", "credential provider plugin fake-plugin".to_owned()),
                (
                    "second",
                    "credential provider plugin second-plugin".to_owned()
                ),
            ]
        );
        assert!(
            plugins
                .lookup("docker.io/library/nginx", Instant::now())
                .is_empty()
        );

        let mut missing = config.clone();
        missing.providers[0].name = "absent-plugin".into();
        assert!(matches!(
            CredentialProviderPlugins::new(&missing, fixture.bin.path()),
            Err(ProviderConfigError::MissingExecutable(_))
        ));
    }
}

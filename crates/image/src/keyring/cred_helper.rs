//! Docker credential helpers (`docker-credential-<name> get`) named by the node's own
//! `config.json` (`credHelpers` per registry, `credsStore` for the rest).
//!
//! Only [`NodeDockerConfig`] carries helper names, and the lookup here takes a
//! [`NodeCredentialFile`], so a pod's secret can never choose a program for the node to run.
//! The kubelet itself ignores these fields; nodelet honours them for node configuration as an
//! extension, asking helpers before the file's static `auths` (docker's own precedence), while
//! still offering every credential in turn.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use super::basic::RegistryKeyIndex;
use super::credential::{Credential, CredentialSource};
use super::docker_config::NodeDockerConfig;
use super::go_json::{field, parse_document};
use super::node_files::NodeCredentialFile;
use super::process::{ProcessError, run_with_timeout};
use super::url_match::looks_like_docker_hub_image;

pub const CREDENTIAL_HELPER_PREFIX: &str = "docker-credential-";
/// The server URL docker uses for Docker Hub credentials.
pub const DOCKER_HUB_SERVER_URL: &str = "https://index.docker.io/v1/";
pub const DEFAULT_HELPER_TIMEOUT: Duration = Duration::from_secs(60);
/// What helpers print (with a failing exit) when they hold nothing for the server.
const NOT_FOUND_MESSAGE: &str = "credentials not found in native keychain";
/// A helper answering with this username returns an identity token as the secret.
const TOKEN_USERNAME: &str = "<token>";
/// Helper error messages are cut to this many characters.
const MAX_MESSAGE_CHARS: usize = 200;

#[derive(Debug, thiserror::Error)]
pub enum CredentialHelperError {
    #[error("invalid credential helper name {0:?}")]
    InvalidName(String),
    #[error("credential helper {program} not found")]
    NotFound { program: String },
    #[error(transparent)]
    Run(#[from] ProcessError),
    #[error("{program} get failed: {message}")]
    Failed { program: String, message: String },
    #[error("{program} get returned an unreadable response")]
    InvalidResponse { program: String },
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum HelperSearch {
    /// The directories of `$PATH`, read when a helper is run.
    PathEnv,
    Dirs(Vec<PathBuf>),
}

/// Finds and runs `docker-credential-<name>` programs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CredentialHelperRunner {
    search: HelperSearch,
    timeout: Duration,
}

impl CredentialHelperRunner {
    /// Looks helpers up in `$PATH`, like the docker CLI.
    pub fn from_path_env() -> Self {
        Self {
            search: HelperSearch::PathEnv,
            timeout: DEFAULT_HELPER_TIMEOUT,
        }
    }

    /// Looks helpers up in these directories only (in order).
    pub fn with_search_dirs(dirs: impl IntoIterator<Item = PathBuf>) -> Self {
        Self {
            search: HelperSearch::Dirs(dirs.into_iter().collect()),
            timeout: DEFAULT_HELPER_TIMEOUT,
        }
    }

    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The executable for helper `name`.
    pub fn program_path(&self, name: &str) -> Result<PathBuf, CredentialHelperError> {
        // The name becomes part of a file name: no separators, nothing that could climb out.
        if name.is_empty() || name.contains(['/', '\\', '\0']) || name.starts_with('.') {
            return Err(CredentialHelperError::InvalidName(name.to_owned()));
        }
        let program = format!("{CREDENTIAL_HELPER_PREFIX}{name}");
        let dirs = match &self.search {
            HelperSearch::Dirs(dirs) => dirs.clone(),
            HelperSearch::PathEnv => std::env::var_os("PATH")
                .map(|path| std::env::split_paths(&path).collect())
                .unwrap_or_default(),
        };
        dirs.iter()
            // Relative `$PATH` entries would depend on the kubelet's working directory.
            .filter(|dir| dir.is_absolute())
            .map(|dir| dir.join(&program))
            .find(|candidate| is_executable_file(candidate))
            .ok_or(CredentialHelperError::NotFound { program })
    }

    /// Runs `docker-credential-<name> get` with `server_url` on stdin. `Ok(None)` when the
    /// helper holds no credentials for the server.
    pub fn get(
        &self,
        name: &str,
        server_url: &str,
    ) -> Result<Option<Credential>, CredentialHelperError> {
        let path = self.program_path(name)?;
        let program = format!("{CREDENTIAL_HELPER_PREFIX}{name}");
        let mut command = Command::new(&path);
        command.arg("get");
        let output = run_with_timeout(command, server_url.as_bytes(), self.timeout)?;
        let stdout = String::from_utf8_lossy(&output.stdout);
        if !output.status.success() {
            let message = stdout.trim();
            if message == NOT_FOUND_MESSAGE {
                return Ok(None);
            }
            let message = if message.is_empty() {
                output.status.to_string()
            } else {
                message.chars().take(MAX_MESSAGE_CHARS).collect()
            };
            return Err(CredentialHelperError::Failed { program, message });
        }
        parse_helper_response(&output.stdout)
            .ok_or(CredentialHelperError::InvalidResponse { program })
    }
}

/// `{"ServerURL": ..., "Username": ..., "Secret": ...}` → credential; `None` inside `Some`
/// when both are empty.
fn parse_helper_response(stdout: &[u8]) -> Option<Option<Credential>> {
    let document = parse_document(stdout).ok()?;
    let Value::Object(object) = document else {
        return None;
    };
    let text = |name: &str| match field(&object, name) {
        None | Some(Value::Null) => Some(String::new()),
        Some(Value::String(text)) => Some(text.clone()),
        Some(_) => None,
    };
    let (username, secret) = (text("Username")?, text("Secret")?);
    if username.is_empty() && secret.is_empty() {
        return Some(None);
    }
    Some(Some(if username == TOKEN_USERNAME {
        Credential {
            identity_token: secret,
            ..Credential::default()
        }
    } else {
        Credential::basic(username, secret)
    }))
}

#[cfg(unix)]
fn is_executable_file(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(path)
        .is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
}

#[cfg(not(unix))]
fn is_executable_file(path: &Path) -> bool {
    path.is_file()
}

/// The server URL docker asks a helper about for an image: the registry host (with port),
/// or the Docker Hub index URL for Docker Hub images.
pub fn registry_server_url(repo_to_pull: &str) -> String {
    let first = repo_to_pull.split('/').next().unwrap_or_default();
    if first != "localhost" && looks_like_docker_hub_image(repo_to_pull) {
        DOCKER_HUB_SERVER_URL.to_owned()
    } else {
        first.to_owned()
    }
}

/// The helper settings of one node config, with `credHelpers` keys matched like keyring keys
/// (most specific first, `index.docker.io` fallback for Docker Hub images).
#[derive(Debug, Clone, Default)]
pub(crate) struct HelperTable {
    per_registry: RegistryKeyIndex<String>,
    store: Option<String>,
}

impl HelperTable {
    pub(crate) fn new(config: &NodeDockerConfig) -> Self {
        let mut per_registry = RegistryKeyIndex::default();
        for (registry, helper) in &config.cred_helpers {
            if let Err(invalid) = per_registry.insert(registry, helper.clone()) {
                tracing::warn!("credHelpers: {invalid}");
            }
        }
        Self {
            per_registry,
            store: config.creds_store.clone(),
        }
    }

    /// The helpers to ask for `repo_to_pull`, each once: the matching `credHelpers` entries,
    /// or else the `credsStore`.
    pub(crate) fn helpers_for(&self, repo_to_pull: &str) -> Vec<&str> {
        let mut helpers: Vec<&str> = Vec::new();
        for helper in self.per_registry.lookup(repo_to_pull) {
            if !helpers.contains(&helper.as_str()) {
                helpers.push(helper);
            }
        }
        if helpers.is_empty() {
            helpers.extend(self.store.as_deref());
        }
        helpers
    }

    pub(crate) fn lookup(
        &self,
        runner: &CredentialHelperRunner,
        config_path: &Path,
        repo_to_pull: &str,
    ) -> Vec<(Credential, CredentialSource)> {
        let server_url = registry_server_url(repo_to_pull);
        let mut found = Vec::new();
        for helper in self.helpers_for(repo_to_pull) {
            match runner.get(helper, &server_url) {
                Ok(Some(credential)) => found.push((
                    credential,
                    CredentialSource::CredentialHelper {
                        helper: helper.to_owned(),
                        config_path: config_path.to_owned(),
                    },
                )),
                Ok(None) => {}
                Err(error) => tracing::warn!(%server_url, %error, "credential helper failed"),
            }
        }
        found
    }
}

/// Asks the helpers that a node config file names for `repo_to_pull`. Failing helpers are
/// logged and skipped.
pub fn helper_credentials(
    file: &NodeCredentialFile,
    runner: &CredentialHelperRunner,
    repo_to_pull: &str,
) -> Vec<(Credential, CredentialSource)> {
    HelperTable::new(&file.config).lookup(runner, &file.path, repo_to_pull)
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use crate::keyring::node_files::NodeFileFormat;
    use crate::keyring::test_support::write_script;

    /// A fake helper: answers for `reg.example.com` and Docker Hub, refuses the rest.
    const FAKE_HELPER: &str = r#"[ "$1" = get ] || { echo "unexpected arguments: $*"; exit 2; }
server=$(cat)
case "$server" in
  reg.example.com) printf '{"ServerURL":"%s","Username":"helper-user","Secret":"helper-pass"}' "$server" ;;
  https://index.docker.io/v1/) printf '{"ServerURL":"%s","Username":"<token>","Secret":"id-token"}' "$server" ;;
  broken.example.com) echo 'keychain locked'; exit 1 ;;
  garbage.example.com) echo 'not json' ;;
  *) printf 'credentials not found in native keychain\n'; exit 1 ;;
esac
"#;

    fn runner_with_fake_helper(dir: &Path) -> CredentialHelperRunner {
        write_script(dir, "docker-credential-fake", FAKE_HELPER);
        CredentialHelperRunner::with_search_dirs([dir.to_path_buf()])
    }

    #[test]
    fn runs_the_helper_protocol() {
        let dir = tempfile::tempdir().unwrap();
        let runner = runner_with_fake_helper(dir.path());
        assert_eq!(
            runner.get("fake", "reg.example.com").unwrap(),
            Some(Credential::basic("helper-user", "helper-pass"))
        );
        let token = runner.get("fake", DOCKER_HUB_SERVER_URL).unwrap().unwrap();
        assert_eq!(token.identity_token, "id-token");
        assert!(token.username.is_empty() && token.password.is_empty());
        assert_eq!(runner.get("fake", "other.example.com").unwrap(), None);
        let failed = runner.get("fake", "broken.example.com").unwrap_err();
        assert_eq!(
            failed.to_string(),
            "docker-credential-fake get failed: keychain locked"
        );
        assert!(matches!(
            runner.get("fake", "garbage.example.com"),
            Err(CredentialHelperError::InvalidResponse { .. })
        ));
        assert!(matches!(
            runner.get("absent", "reg.example.com"),
            Err(CredentialHelperError::NotFound { .. })
        ));
        for bad_name in ["", "../fake", "a/b", ".hidden"] {
            assert!(matches!(
                runner.get(bad_name, "x"),
                Err(CredentialHelperError::InvalidName(_))
            ));
        }
    }

    #[test]
    fn non_executable_files_are_not_helpers() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("docker-credential-plain"), "#!/bin/sh\n").unwrap();
        let runner = CredentialHelperRunner::with_search_dirs([dir.path().to_path_buf()]);
        assert!(matches!(
            runner.program_path("plain"),
            Err(CredentialHelperError::NotFound { .. })
        ));
    }

    #[test]
    fn server_urls() {
        assert_eq!(
            registry_server_url("docker.io/library/nginx"),
            DOCKER_HUB_SERVER_URL
        );
        assert_eq!(registry_server_url("nginx"), DOCKER_HUB_SERVER_URL);
        assert_eq!(
            registry_server_url("reg.example.com/team/app"),
            "reg.example.com"
        );
        assert_eq!(
            registry_server_url("reg.example.com:5000/app"),
            "reg.example.com:5000"
        );
        assert_eq!(registry_server_url("localhost/app"), "localhost");
    }

    fn node_file(document: &str) -> NodeCredentialFile {
        NodeCredentialFile {
            path: PathBuf::from("/var/lib/kubelet/config.json"),
            format: NodeFileFormat::ConfigJson,
            config: NodeDockerConfig::from_config_json(document.as_bytes()).unwrap(),
        }
    }

    #[test]
    fn cred_helpers_match_registry_keys_and_creds_store_covers_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let runner = runner_with_fake_helper(dir.path());
        let file = node_file(
            r#"{"credHelpers": {"reg.example.com": "fake", "*.example.org": "absent"}, "credsStore": "fake"}"#,
        );
        let table = HelperTable::new(&file.config);
        assert_eq!(table.helpers_for("reg.example.com/app"), ["fake"]);
        assert_eq!(table.helpers_for("x.example.org/app"), ["absent"]);
        assert_eq!(table.helpers_for("docker.io/library/nginx"), ["fake"]);

        let found = helper_credentials(&file, &runner, "reg.example.com/app");
        assert_eq!(
            found,
            [(
                Credential::basic("helper-user", "helper-pass"),
                CredentialSource::CredentialHelper {
                    helper: "fake".into(),
                    config_path: PathBuf::from("/var/lib/kubelet/config.json")
                }
            )]
        );
        // credsStore answers for Docker Hub with an identity token.
        let found = helper_credentials(&file, &runner, "docker.io/library/nginx");
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].0.identity_token, "id-token");
        // A missing helper is skipped, not fatal.
        assert!(helper_credentials(&file, &runner, "x.example.org/app").is_empty());
        // No helper settings, no programs.
        assert!(helper_credentials(&node_file("{}"), &runner, "reg.example.com/app").is_empty());
    }
}

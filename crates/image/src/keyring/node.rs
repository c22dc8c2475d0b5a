//! The node's credentials: the docker config file found by the kubelet's search, re-read at
//! most every five minutes, plus the credential helpers that file names.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use super::CredentialLookup;
use super::basic::Keyring;
use super::cred_helper::{CredentialHelperRunner, HelperTable};
use super::credential::{Credential, CredentialSource};
use super::node_files::{NodeCredentialFile, NodeCredentialFiles};
use super::timed_cache::{NODE_CONFIG_CACHE_LIFETIME, TimedCache};

/// A found file, prepared for lookups.
#[derive(Debug)]
struct LoadedNodeConfig {
    file: NodeCredentialFile,
    keyring: Keyring,
    helpers: HelperTable,
}

/// Node-wide credentials from the docker config files (spec §3.1), cached like the kubelet's
/// `CachingDockerConfigProvider`: the search result, including "nothing found", is kept for
/// five minutes of the caller's clock.
#[derive(Debug)]
pub struct NodeCredentials {
    files: NodeCredentialFiles,
    fs_root: PathBuf,
    helper_runner: Option<CredentialHelperRunner>,
    cache: Mutex<TimedCache<Option<Arc<LoadedNodeConfig>>>>,
}

impl NodeCredentials {
    /// Searches under `/`, runs credential helpers found in `$PATH`, caches for five minutes.
    pub fn new(files: NodeCredentialFiles) -> Self {
        Self {
            files,
            fs_root: PathBuf::from("/"),
            helper_runner: Some(CredentialHelperRunner::from_path_env()),
            cache: Mutex::new(TimedCache::new(NODE_CONFIG_CACHE_LIFETIME)),
        }
    }

    /// The same search with an empty cache. The kubelet gives each pod its own, so a
    /// credentials file written for the next pod counts at once (the seed's walkthrough
    /// writes `config.json`, then creates the pod).
    pub fn fresh(&self) -> Self {
        let lifetime = self
            .cache
            .lock()
            .map_or(NODE_CONFIG_CACHE_LIFETIME, |cache| cache.lifetime());
        Self {
            files: self.files.clone(),
            fs_root: self.fs_root.clone(),
            helper_runner: self.helper_runner.clone(),
            cache: Mutex::new(TimedCache::new(lifetime)),
        }
    }

    /// Resolves the search paths under `fs_root` instead of `/`.
    pub fn with_fs_root(mut self, fs_root: impl Into<PathBuf>) -> Self {
        self.fs_root = fs_root.into();
        self
    }

    pub fn with_credential_helpers(mut self, runner: CredentialHelperRunner) -> Self {
        self.helper_runner = Some(runner);
        self
    }

    /// Ignores `credHelpers`/`credsStore`, exactly like the kubelet.
    pub fn without_credential_helpers(mut self) -> Self {
        self.helper_runner = None;
        self
    }

    pub fn with_cache_lifetime(mut self, lifetime: Duration) -> Self {
        self.cache = Mutex::new(TimedCache::new(lifetime));
        self
    }

    /// The file in use at `now` (searching again if the cached result is stale).
    pub fn current_file(&self, now: Instant) -> Option<NodeCredentialFile> {
        self.loaded(now).map(|loaded| loaded.file.clone())
    }

    /// Credentials for `repo_to_pull`: those from the file's credential helpers first (docker's
    /// precedence), then the file's `auths`, most specific key first.
    pub fn lookup(&self, repo_to_pull: &str, now: Instant) -> Vec<(Credential, CredentialSource)> {
        let Some(loaded) = self.loaded(now) else {
            return Vec::new();
        };
        let mut found = match &self.helper_runner {
            Some(runner) => loaded
                .helpers
                .lookup(runner, &loaded.file.path, repo_to_pull),
            None => Vec::new(),
        };
        found.extend(loaded.keyring.lookup(repo_to_pull));
        found
    }

    fn loaded(&self, now: Instant) -> Option<Arc<LoadedNodeConfig>> {
        // A panic elsewhere while holding the lock leaves a consistent cache; keep using it.
        let mut cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
        cache.get_or_refresh(now, || self.load())
    }

    fn load(&self) -> Option<Arc<LoadedNodeConfig>> {
        let file = match self.files.find(&self.fs_root) {
            Ok(file) => file,
            Err(not_found) => {
                tracing::debug!("Docker config file not found: {not_found}");
                return None;
            }
        };
        let (keyring, _invalid_keys_already_logged) = file.keyring();
        let helpers = HelperTable::new(&file.config);
        Some(Arc::new(LoadedNodeConfig {
            file,
            keyring,
            helpers,
        }))
    }
}

impl CredentialLookup for NodeCredentials {
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
    use std::path::Path;

    fn write(root: &Path, absolute: &str, contents: &str) {
        let path = root.join(absolute.trim_start_matches('/'));
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, contents).unwrap();
    }

    fn node_credentials(root: &Path) -> NodeCredentials {
        NodeCredentials::new(NodeCredentialFiles::new("/var/lib/kubelet", "/", None))
            .with_fs_root(root)
            .without_credential_helpers()
    }

    fn users(found: &[(Credential, CredentialSource)]) -> Vec<&str> {
        found
            .iter()
            .map(|(credential, _)| credential.username.as_str())
            .collect()
    }

    #[test]
    fn caches_the_search_for_five_minutes() {
        let root = tempfile::tempdir().unwrap();
        let node = node_credentials(root.path());
        let start = Instant::now();
        // Nothing yet; "not found" is cached too.
        assert!(node.lookup("r.io/app", start).is_empty());
        write(
            root.path(),
            "/.docker/config.json",
            r#"{"auths":{"r.io":{"username":"one","password":"p"}}}"#,
        );
        assert!(
            node.lookup("r.io/app", start + Duration::from_secs(299))
                .is_empty()
        );
        let found = node.lookup("r.io/app", start + Duration::from_secs(300));
        assert_eq!(users(&found), ["one"]);
        assert_eq!(
            found[0].1,
            CredentialSource::NodeFile {
                path: "/.docker/config.json".into()
            }
        );
        // A better-placed file appears: still the cached one until the next refresh.
        let refreshed_at = start + Duration::from_secs(300);
        write(
            root.path(),
            "/var/lib/kubelet/config.json",
            r#"{"auths":{"r.io":{"username":"two","password":"p"}}}"#,
        );
        assert_eq!(
            users(&node.lookup("r.io/app", refreshed_at + Duration::from_secs(60))),
            ["one"]
        );
        assert_eq!(
            users(&node.lookup("r.io/app", refreshed_at + Duration::from_secs(300))),
            ["two"]
        );
        assert_eq!(
            node.current_file(refreshed_at + Duration::from_secs(300))
                .unwrap()
                .path,
            PathBuf::from("/var/lib/kubelet/config.json")
        );
    }

    #[test]
    fn helpers_come_before_static_auths() {
        let root = tempfile::tempdir().unwrap();
        let bin = tempfile::tempdir().unwrap();
        write_script(
            bin.path(),
            "docker-credential-fake",
            "server=$(cat)\nprintf '{\"ServerURL\":\"%s\",\"Username\":\"from-helper\",\"Secret\":\"s\"}' \"$server\"\n",
        );
        write(
            root.path(),
            "/var/lib/kubelet/config.json",
            r#"{"auths":{"r.io":{"username":"from-file","password":"p"}},"credHelpers":{"r.io":"fake"}}"#,
        );
        let runner = CredentialHelperRunner::with_search_dirs([bin.path().to_path_buf()]);
        let node = node_credentials(root.path()).with_credential_helpers(runner);
        let found = node.lookup("r.io/app", Instant::now());
        assert_eq!(users(&found), ["from-helper", "from-file"]);
        assert_eq!(
            found[0].1,
            CredentialSource::CredentialHelper {
                helper: "fake".into(),
                config_path: "/var/lib/kubelet/config.json".into()
            }
        );
        // Kubelet-exact mode never runs the helper.
        let plain = node_credentials(root.path());
        assert_eq!(
            users(&plain.lookup("r.io/app", Instant::now())),
            ["from-file"]
        );
    }
}

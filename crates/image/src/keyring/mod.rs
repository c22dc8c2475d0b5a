//! The credential keyring: which registry credentials to try, in which order, for an image
//! (spec §3).
//!
//! Three kinds of source, searched in this order for a pod's pull:
//!
//! 1. the pod's `imagePullSecrets`, all merged into one [`Keyring`] ([`pod_secrets_keyring`]);
//! 2. the node's docker config file, found by the kubelet's eight-path search and cached for
//!    five minutes ([`NodeCredentials`]), plus the `docker-credential-*` helpers that file
//!    names;
//! 3. kubelet credential provider exec plugins ([`CredentialProviderPlugins`]).
//!
//! [`UnionKeyring::for_pod_pull`] strings them together. Every credential found is returned,
//! most specific registry key first within each source, and the puller tries them in turn.
//!
//! Nothing here reads secrets from the API server: callers pass the secrets they fetched.
//! Only node configuration can name a program to run ([`NodeDockerConfig`] has helper fields,
//! [`PodDockerConfig`] does not).

mod basic;
mod cred_helper;
mod credential;
mod docker_config;
mod glob;
mod go_json;
mod go_url;
mod node;
mod node_files;
pub mod plugin;
mod pod_secrets;
mod process;
#[cfg(all(test, unix))]
mod test_support;
mod timed_cache;
mod url_match;

use std::fmt;
use std::time::Instant;

pub use basic::{InvalidRegistryKey, Keyring};
pub use cred_helper::{
    CREDENTIAL_HELPER_PREFIX, CredentialHelperError, CredentialHelperRunner,
    DEFAULT_HELPER_TIMEOUT, DOCKER_HUB_SERVER_URL, helper_credentials, registry_server_url,
};
pub use credential::{Credential, CredentialSource};
pub use docker_config::{
    AuthFieldError, ConfigParseError, NodeDockerConfig, PodDockerConfig, RegistryAuths,
    decode_auth_field,
};
pub use glob::{BadPattern, GlobPattern, glob_match};
pub use go_json::JsonSyntaxError;
pub use go_url::UrlError;
pub use node::NodeCredentials;
pub use node_files::{
    CONFIG_JSON_FILE_NAME, DEFAULT_KUBELET_ROOT_DIR, DOCKERCFG_FILE_NAME, NodeCredentialFile,
    NodeCredentialFiles, NodeFileFormat, NodeFileNotFound, SkippedNodeFile,
};
pub use plugin::{CredentialProviderPlugins, ExecPlugin, PluginError};
pub use pod_secrets::{
    DOCKER_CONFIG_JSON_KEY, DOCKERCFG_KEY, IgnoredPullSecret, PodSecretsError, PodSecretsKeyring,
    PullSecret, PullSecretError, SECRET_TYPE_DOCKER_CONFIG_JSON, SECRET_TYPE_DOCKERCFG,
    parse_pull_secret, pod_secrets_keyring,
};
pub use process::{MAX_OUTPUT_BYTES, ProcessError};
pub use timed_cache::{NODE_CONFIG_CACHE_LIFETIME, TimedCache};
pub use url_match::{
    DOCKER_HUB_INDEX_HOST, looks_like_docker_hub_image, normalize_registry_key, urls_match,
};

/// Anything that can offer credentials for an image. `now` drives the caches of the sources
/// that have one, so tests control time.
pub trait CredentialLookup: fmt::Debug {
    /// The credentials to try for `repo_to_pull` (image name without tag or digest), in order.
    fn lookup_credentials(
        &self,
        repo_to_pull: &str,
        now: Instant,
    ) -> Vec<(Credential, CredentialSource)>;
}

/// Several sources searched one after another; the results are concatenated in order (the
/// kubelet's `UnionDockerKeyring`).
#[derive(Debug, Default)]
pub struct UnionKeyring<'a> {
    members: Vec<&'a dyn CredentialLookup>,
}

impl<'a> UnionKeyring<'a> {
    pub fn new(members: Vec<&'a dyn CredentialLookup>) -> Self {
        Self { members }
    }

    /// The kubelet's order for a pod's pull: pod secrets, then node files (and their
    /// helpers), then exec plugins.
    pub fn for_pod_pull(
        pod_secrets: &'a Keyring,
        node: &'a NodeCredentials,
        plugins: &'a CredentialProviderPlugins,
    ) -> Self {
        Self::new(vec![pod_secrets, node, plugins])
    }

    pub fn push(&mut self, member: &'a dyn CredentialLookup) {
        self.members.push(member);
    }

    pub fn lookup(&self, repo_to_pull: &str, now: Instant) -> Vec<(Credential, CredentialSource)> {
        self.members
            .iter()
            .flat_map(|member| member.lookup_credentials(repo_to_pull, now))
            .collect()
    }
}

impl CredentialLookup for UnionKeyring<'_> {
    fn lookup_credentials(
        &self,
        repo_to_pull: &str,
        now: Instant,
    ) -> Vec<(Credential, CredentialSource)> {
        self.lookup(repo_to_pull, now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use std::path::Path;

    #[test]
    fn pod_secrets_then_node_files_then_plugins() {
        let root = tempfile::tempdir().unwrap();
        let node_file = root.path().join("var/lib/kubelet/config.json");
        std::fs::create_dir_all(node_file.parent().unwrap()).unwrap();
        std::fs::write(
            &node_file,
            r#"{"auths":{"quay.io":{"username":"node-host","password":"p"},"quay.io/team":{"username":"node-team","password":"p"}}}"#,
        )
        .unwrap();
        let node = NodeCredentials::new(NodeCredentialFiles::new("/var/lib/kubelet", "/", None))
            .with_fs_root(root.path())
            .without_credential_helpers();

        let data: BTreeMap<String, Vec<u8>> = [(
            DOCKER_CONFIG_JSON_KEY.to_owned(),
            br#"{"auths":{"quay.io":{"username":"secret-host","password":"p"}}}"#.to_vec(),
        )]
        .into_iter()
        .collect();
        let secrets = pod_secrets_keyring([PullSecret {
            namespace: "ns",
            name: "regcred",
            uid: None,
            secret_type: SECRET_TYPE_DOCKER_CONFIG_JSON,
            data: &data,
        }])
        .unwrap();
        let plugins = CredentialProviderPlugins::default();

        let union = UnionKeyring::for_pod_pull(&secrets.keyring, &node, &plugins);
        let found = union.lookup("quay.io/team/app", Instant::now());
        let order: Vec<(&str, bool)> = found
            .iter()
            .map(|(credential, source)| (credential.username.as_str(), source.is_node_wide()))
            .collect();
        assert_eq!(
            order,
            [
                ("secret-host", false),
                ("node-team", true),
                ("node-host", true)
            ]
        );
        assert_eq!(
            found[1].1,
            CredentialSource::NodeFile {
                path: Path::new("/var/lib/kubelet/config.json").to_path_buf()
            }
        );
        assert!(union.lookup("gcr.io/x", Instant::now()).is_empty());
    }
}

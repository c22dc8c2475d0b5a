//! The kubelet's `BasicDockerKeyring`: credentials indexed by normalised registry key.

use std::collections::HashMap;
use std::time::Instant;

use super::CredentialLookup;
use super::credential::{Credential, CredentialSource};
use super::docker_config::{RegistryAuths, redact_userinfo};
use super::go_url::UrlError;
use super::url_match::{
    DOCKER_HUB_INDEX_HOST, looks_like_docker_hub_image, normalize_registry_key, urls_match,
};

/// A registry key that could not be parsed and was left out (the kubelet logs
/// `Entry %q in dockercfg invalid (%v), ignoring`). The key's user-info is redacted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("entry {key:?} in dockercfg invalid ({reason}), ignoring")]
pub struct InvalidRegistryKey {
    pub key: String,
    pub reason: UrlError,
}

/// Values filed under normalised registry keys, looked up most specific key first.
///
/// Shared by the credential keyring and the node's `credHelpers` table so both match keys
/// exactly the same way.
#[derive(Debug, Clone)]
pub(crate) struct RegistryKeyIndex<T> {
    /// Distinct keys in reverse lexicographic order, so `quay.io/coreos` comes before
    /// `quay.io`.
    keys: Vec<String>,
    values: HashMap<String, Vec<T>>,
}

impl<T> Default for RegistryKeyIndex<T> {
    fn default() -> Self {
        Self {
            keys: Vec::new(),
            values: HashMap::new(),
        }
    }
}

impl<T> RegistryKeyIndex<T> {
    /// Files `value` under the normalised form of `raw_key`, after earlier values of that key.
    pub(crate) fn insert(&mut self, raw_key: &str, value: T) -> Result<(), InvalidRegistryKey> {
        let key = normalize_registry_key(raw_key).map_err(|reason| InvalidRegistryKey {
            key: redact_userinfo(raw_key),
            reason,
        })?;
        if let Err(position) = self.keys.binary_search_by(|probe| key.cmp(probe)) {
            self.keys.insert(position, key.clone());
        }
        self.values.entry(key).or_default().push(value);
        Ok(())
    }

    /// All values of every key matching `repo_to_pull`, most specific key first; if none
    /// matches and the image looks like a Docker Hub image, the values under
    /// `index.docker.io`.
    pub(crate) fn lookup(&self, repo_to_pull: &str) -> Vec<&T> {
        let matched: Vec<&T> = self
            .keys
            .iter()
            .filter(|key| urls_match(key, repo_to_pull))
            .flat_map(|key| self.values_of(key))
            .collect();
        if !matched.is_empty() || !looks_like_docker_hub_image(repo_to_pull) {
            return matched;
        }
        self.values_of(DOCKER_HUB_INDEX_HOST).collect()
    }

    fn values_of(&self, key: &str) -> impl Iterator<Item = &T> {
        self.values.get(key).into_iter().flatten()
    }

    pub(crate) fn keys(&self) -> impl Iterator<Item = &str> {
        self.keys.iter().map(String::as_str)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

/// Credentials with their sources, filed by registry key (the kubelet's `BasicDockerKeyring`).
///
/// Several credentials may share a key; they are returned in the order they were added, so
/// merging several secrets into one keyring keeps the secrets' order for equal keys.
#[derive(Debug, Clone, Default)]
pub struct Keyring {
    index: RegistryKeyIndex<(Credential, CredentialSource)>,
}

impl Keyring {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds every entry of `auths`, tagged with `source`. Entries whose key is not a valid
    /// URL are skipped and returned (and logged).
    pub fn add(
        &mut self,
        auths: &RegistryAuths,
        source: &CredentialSource,
    ) -> Vec<InvalidRegistryKey> {
        let mut skipped = Vec::new();
        for (raw_key, credential) in auths.iter() {
            if let Err(invalid) = self
                .index
                .insert(raw_key, (credential.clone(), source.clone()))
            {
                tracing::warn!(%source, "{invalid}");
                skipped.push(invalid);
            }
        }
        skipped
    }

    /// The credentials to try for `repo_to_pull` (an image name without tag or digest, such as
    /// `docker.io/library/nginx`), in the order to try them: for every matching key, most
    /// specific first, all of its credentials in insertion order; failing any match, the
    /// `index.docker.io` credentials for Docker Hub images.
    pub fn lookup(&self, repo_to_pull: &str) -> Vec<(Credential, CredentialSource)> {
        self.index
            .lookup(repo_to_pull)
            .into_iter()
            .cloned()
            .collect()
    }

    /// The normalised keys in lookup order.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.index.keys()
    }

    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }
}

impl CredentialLookup for Keyring {
    fn lookup_credentials(
        &self,
        repo_to_pull: &str,
        _now: Instant,
    ) -> Vec<(Credential, CredentialSource)> {
        self.lookup(repo_to_pull)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file_source(name: &str) -> CredentialSource {
        CredentialSource::NodeFile { path: name.into() }
    }

    fn keyring_of(entries: &[(&str, &str)]) -> Keyring {
        let mut keyring = Keyring::new();
        for (key, username) in entries {
            let auths: RegistryAuths = [((*key).to_owned(), Credential::basic(*username, "pw"))]
                .into_iter()
                .collect();
            assert!(
                keyring.add(&auths, &file_source("f")).is_empty(),
                "key {key:?}"
            );
        }
        keyring
    }

    fn usernames(keyring: &Keyring, image: &str) -> Vec<String> {
        keyring
            .lookup(image)
            .into_iter()
            .map(|(credential, _)| credential.username)
            .collect()
    }

    #[test]
    fn lookup_table() {
        // (keys with a username each, image, usernames returned in order)
        type LookupCase = (
            &'static [(&'static str, &'static str)],
            &'static str,
            &'static [&'static str],
        );
        let cases: &[LookupCase] = &[
            // Exact host, any path below it.
            (&[("quay.io", "q")], "quay.io/coreos/etcd", &["q"]),
            (&[("quay.io", "q")], "quay.io", &["q"]),
            (&[("quay.io", "q")], "eu.quay.io/x", &[]),
            // Most specific first: reverse-sorted keys.
            (
                &[
                    ("quay.io", "host"),
                    ("quay.io/coreos", "team"),
                    ("quay.io/coreos/etcd", "repo"),
                ],
                "quay.io/coreos/etcd",
                &["repo", "team", "host"],
            ),
            (
                &[("quay.io", "host"), ("quay.io/coreos", "team")],
                "quay.io/other/x",
                &["host"],
            ),
            // Path prefix is a plain string prefix.
            (&[("reg.io/team", "t")], "reg.io/teamwork/app", &["t"]),
            // Globs per label.
            (&[("*.kubernetes.io", "g")], "kubernetes.io/x", &[]),
            (&[("*.kubernetes.io", "g")], "abc.kubernetes.io/x", &["g"]),
            (&[("*.*.kubernetes.io", "g")], "abc.kubernetes.io/x", &[]),
            (&[("prefix.*.io", "g")], "prefix.kubernetes.io/x", &["g"]),
            (
                &[("*-good.kubernetes.io", "g")],
                "prefix-good.kubernetes.io/x",
                &["g"],
            ),
            (
                &[("*.example.com", "glob"), ("registry.example.com", "exact")],
                "registry.example.com/app",
                &["exact", "glob"],
            ),
            // Ports must be equal on both sides.
            (&[("reg.io:5000", "p")], "reg.io:5000/app", &["p"]),
            (&[("reg.io:5000", "p")], "reg.io/app", &[]),
            (&[("reg.io", "p")], "reg.io:5000/app", &[]),
            (&[("localhost:5000", "l")], "localhost:5000/app", &["l"]),
            // Docker Hub: `docker.io` keys match directly, the v1 index key is the fallback.
            (
                &[("https://index.docker.io/v1/", "hub")],
                "docker.io/library/nginx",
                &["hub"],
            ),
            (&[("https://index.docker.io/v1/", "hub")], "nginx", &["hub"]),
            (
                &[("https://index.docker.io/v1/", "hub")],
                "library/nginx",
                &["hub"],
            ),
            (
                &[("https://index.docker.io/v1/", "hub")],
                "index.docker.io/library/nginx",
                &["hub"],
            ),
            (&[("https://index.docker.io/v1/", "hub")], "quay.io/x", &[]),
            (
                &[("https://index.docker.io/v1/", "hub")],
                "localhost:5000/x",
                &[],
            ),
            (
                &[("docker.io", "direct")],
                "docker.io/library/nginx",
                &["direct"],
            ),
            // The fallback applies only when nothing matched.
            (
                &[
                    ("https://index.docker.io/v1/", "hub"),
                    ("docker.io", "direct"),
                ],
                "docker.io/library/nginx",
                &["direct"],
            ),
        ];
        for (entries, image, expected) in cases {
            let keyring = keyring_of(entries);
            assert_eq!(
                usernames(&keyring, image),
                *expected,
                "keys {entries:?} image {image:?}"
            );
        }
    }

    #[test]
    fn credentials_sharing_a_key_keep_insertion_order() {
        let mut keyring = Keyring::new();
        for (raw_key, user, source) in [
            ("https://quay.io/v2/", "first", "a"),
            ("quay.io", "second", "b"),
            ("http://quay.io/", "third", "c"),
        ] {
            let auths: RegistryAuths = [(raw_key.to_owned(), Credential::basic(user, "pw"))]
                .into_iter()
                .collect();
            keyring.add(&auths, &file_source(source));
        }
        assert_eq!(keyring.keys().collect::<Vec<_>>(), ["quay.io"]);
        let found = keyring.lookup("quay.io/app");
        let found: Vec<(&str, &CredentialSource)> = found
            .iter()
            .map(|(credential, source)| (credential.username.as_str(), source))
            .collect();
        assert_eq!(
            found,
            [
                ("first", &file_source("a")),
                ("second", &file_source("b")),
                ("third", &file_source("c"))
            ]
        );
    }

    #[test]
    fn index_is_reverse_sorted_and_deduplicated() {
        let keyring = keyring_of(&[
            ("a.io", "1"),
            ("quay.io", "2"),
            ("quay.io/coreos", "3"),
            ("a.io/", "4"),
        ]);
        assert_eq!(
            keyring.keys().collect::<Vec<_>>(),
            ["quay.io/coreos", "quay.io", "a.io"]
        );
    }

    #[test]
    fn invalid_keys_are_skipped_and_reported_without_userinfo() {
        let auths: RegistryAuths = [
            ("reg.io:port".to_owned(), Credential::basic("a", "b")),
            ("u:hunter2@bad host".to_owned(), Credential::basic("c", "d")),
            ("good.io".to_owned(), Credential::basic("e", "f")),
        ]
        .into_iter()
        .collect();
        let mut keyring = Keyring::new();
        let skipped = keyring.add(&auths, &file_source("f"));
        assert_eq!(skipped.len(), 2);
        assert!(
            skipped
                .iter()
                .all(|invalid| !invalid.to_string().contains("hunter2"))
        );
        assert_eq!(keyring.keys().collect::<Vec<_>>(), ["good.io"]);
        assert_eq!(
            skipped[0].to_string(),
            "entry \"reg.io:port\" in dockercfg invalid (invalid port \":port\" after host), ignoring"
        );
    }

    #[test]
    fn hostile_image_names_do_not_panic() {
        let keyring = keyring_of(&[("*.io", "g"), ("https://index.docker.io/v1/", "hub")]);
        for image in [
            "",
            "/",
            "%",
            "[",
            "a:b:c/d",
            "\u{0}",
            "é.io/x",
            "*.io",
            &"a.".repeat(10_000),
        ] {
            let _ = keyring.lookup(image);
        }
    }
}

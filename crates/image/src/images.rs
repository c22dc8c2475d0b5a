//! Image records: what a name points at (manifest, config, layers, platform), and which
//! credentials have pulled it, so a cached private image is not a back door: a pod may reuse
//! it only if it presents a credential that pulled it, or it was pulled anonymously or with the
//! node's own credentials (the intent of upstream's "ensure secret pulled images").

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::digest::Digest;
use crate::keyring::{Credential, CredentialSource};
use crate::oci::ContainerConfig;
use crate::registry::auth::credential_id;
use crate::store::StoreError;

/// The grant recorded for an anonymous pull.
pub const ANONYMOUS: &str = "anonymous";
/// The grant recorded for a pull with node-wide credentials (config.json, helpers, plugins).
pub const NODE: &str = "node";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerRecord {
    pub digest: String,
    pub diff_id: String,
    pub size: u64,
    pub media_type: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageRecord {
    /// The normalised reference, e.g. `docker.io/library/busybox:1.36`.
    pub name: String,
    /// What the name resolved to: the index digest for multi-arch images, else the manifest's.
    pub digest: String,
    pub media_type: String,
    pub manifest_digest: String,
    /// The image ID (as `crictl images` shows it).
    pub config_digest: String,
    pub platform: String,
    pub layers: Vec<LayerRecord>,
    /// Compressed bytes of all layers.
    pub size: u64,
    pub config: ContainerConfig,
    /// Seconds since the epoch.
    pub pulled_at: u64,
    /// [`ANONYMOUS`], [`NODE`], or the ids of pod credentials that pulled it.
    pub pulled_with: BTreeSet<String>,
}

impl ImageRecord {
    /// Whether a pod presenting `credentials` may use the cached image without pulling.
    pub fn accessible_with(&self, credentials: &[(Credential, CredentialSource)]) -> bool {
        self.pulled_with.contains(ANONYMOUS)
            || self.pulled_with.contains(NODE)
            || credentials
                .iter()
                .any(|(c, _)| self.pulled_with.contains(&credential_id(Some(c))))
    }
}

/// What to record for a pull that succeeded with `credential`.
pub fn grant_for(credential: Option<&(Credential, CredentialSource)>) -> String {
    match credential {
        None => ANONYMOUS.into(),
        Some((_, source)) if source.is_node_wide() => NODE.into(),
        Some((c, _)) => credential_id(Some(c)),
    }
}

/// Records on disk, one JSON file per name (written atomically).
#[derive(Debug, Clone)]
pub struct ImageRecords {
    dir: PathBuf,
}

impl ImageRecords {
    pub fn new(dir: &Path) -> ImageRecords {
        ImageRecords {
            dir: dir.to_path_buf(),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir
            .join(format!("{}.json", Digest::sha256_of(name.as_bytes()).hex()))
    }

    pub fn get(&self, name: &str) -> Option<ImageRecord> {
        let bytes = fs::read(self.path(name)).ok()?;
        serde_json::from_slice(&bytes)
            .ok()
            .filter(|r: &ImageRecord| r.name == name)
    }

    pub fn save(&self, record: &ImageRecord) -> Result<(), StoreError> {
        let path = self.path(&record.name);
        let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
        let io = |source| StoreError::Io {
            path: path.clone(),
            source,
        };
        let bytes = serde_json::to_vec_pretty(record).map_err(|e| io(std::io::Error::other(e)))?;
        fs::write(&tmp, bytes).map_err(io)?;
        fs::rename(&tmp, &path).map_err(io)
    }

    /// All records, sorted by name.
    pub fn list(&self) -> Vec<ImageRecord> {
        let Ok(entries) = fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        let mut records: Vec<ImageRecord> = entries
            .flatten()
            .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
            .filter_map(|e| fs::read(e.path()).ok())
            .filter_map(|bytes| serde_json::from_slice(&bytes).ok())
            .collect();
        records.sort_by(|a, b| a.name.cmp(&b.name));
        records
    }

    /// Removes the record for `name`; true if there was one.
    pub fn remove(&self, name: &str) -> Result<bool, StoreError> {
        match fs::remove_file(self.path(name)) {
            Ok(()) => Ok(true),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(source) => Err(StoreError::Io {
                path: self.path(name),
                source,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(name: &str, pulled_with: &[&str]) -> ImageRecord {
        ImageRecord {
            name: name.into(),
            digest: "sha256:1".into(),
            media_type: crate::oci::OCI_MANIFEST.into(),
            manifest_digest: "sha256:1".into(),
            config_digest: "sha256:2".into(),
            platform: "linux/amd64".into(),
            layers: Vec::new(),
            size: 0,
            config: ContainerConfig::default(),
            pulled_at: 0,
            pulled_with: pulled_with.iter().map(|s| s.to_string()).collect(),
        }
    }

    fn pod_secret(user: &str) -> (Credential, CredentialSource) {
        (
            Credential::basic(user, "secret"),
            CredentialSource::PodSecret {
                namespace: "default".into(),
                name: "regcred".into(),
                uid: None,
            },
        )
    }

    #[test]
    fn a_private_image_is_only_for_pods_with_a_credential_that_pulled_it() {
        let alice = pod_secret("alice");
        let bob = pod_secret("bob");
        let image = record("reg/private:v1", &[&grant_for(Some(&alice))]);
        assert!(image.accessible_with(std::slice::from_ref(&alice)));
        assert!(!image.accessible_with(std::slice::from_ref(&bob)));
        assert!(!image.accessible_with(&[]));
        assert!(record("reg/public:v1", &[ANONYMOUS]).accessible_with(&[]));
        assert!(record("reg/node:v1", &[NODE]).accessible_with(&[bob]));
    }

    #[test]
    fn records_round_trip_and_list_sorted() {
        let dir = tempfile::tempdir().unwrap();
        let records = ImageRecords::new(dir.path());
        records.save(&record("b/x:1", &[ANONYMOUS])).unwrap();
        records.save(&record("a/x:1", &[ANONYMOUS])).unwrap();
        assert_eq!(records.get("b/x:1").unwrap().name, "b/x:1");
        assert!(records.get("c/x:1").is_none());
        let names: Vec<String> = records.list().into_iter().map(|r| r.name).collect();
        assert_eq!(names, ["a/x:1", "b/x:1"]);
        assert!(records.remove("a/x:1").unwrap());
        assert!(!records.remove("a/x:1").unwrap());
    }
}

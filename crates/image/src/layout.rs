//! OCI image layouts (the `oci:` directories skopeo reads and writes): importing an image from
//! one into the store, and exporting a stored image as one.

use std::fs::{self, File};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::json;

use crate::digest::Digest;
use crate::images::{ImageRecord, NODE};
use crate::oci::{
    Descriptor, ImageConfigFile, Index, Manifest, ManifestKind, OCI_MANIFEST, Platform,
};
use crate::pull::{ImageService, LayerSource, PullError, PullProgress};
use crate::registry::select_platform;
use crate::store::StoreError;

/// The annotation naming an index entry (usually a tag).
pub const REF_NAME: &str = "org.opencontainers.image.ref.name";
/// The annotation containerd and nodelet use for the full image name.
pub const IMAGE_NAME: &str = "io.containerd.image.name";

impl ImageService {
    /// Imports the image `ref_name` (or the layout's only image) for `platform` from the
    /// layout in `dir`, under `name` (default: the entry's `io.containerd.image.name`).
    /// Every blob is verified as it is copied in. Imported images are the node's own: any
    /// pod may use them.
    pub async fn import_layout(
        &self,
        dir: &Path,
        ref_name: Option<&str>,
        name: Option<&str>,
        platform: &Platform,
        progress: Arc<dyn PullProgress>,
    ) -> Result<ImageRecord, PullError> {
        let label = name
            .unwrap_or_else(|| ref_name.unwrap_or("image"))
            .to_string();
        let invalid = |cause: String| PullError::Invalid {
            image: format!("importing {label}"),
            cause,
        };
        let layout_version = fs::read(dir.join("oci-layout"))
            .map_err(|e| invalid(format!("{}: {e}", dir.join("oci-layout").display())))?;
        let layout_version: serde_json::Value = serde_json::from_slice(&layout_version)
            .map_err(|e| invalid(format!("oci-layout: {e}")))?;
        if layout_version["imageLayoutVersion"] != "1.0.0" {
            return Err(invalid(format!(
                "unsupported image layout version {}",
                layout_version["imageLayoutVersion"]
            )));
        }
        let index_bytes =
            fs::read(dir.join("index.json")).map_err(|e| invalid(format!("index.json: {e}")))?;
        let index: Index = serde_json::from_slice(&index_bytes)
            .map_err(|e| invalid(format!("index.json: {e}")))?;
        let entry = pick_entry(&index, ref_name).map_err(&invalid)?;
        let name = match name.or_else(|| entry.annotations.get(IMAGE_NAME).map(String::as_str)) {
            Some(name) => crate::reference::parse_image_name(name)
                .map_err(|e| invalid(e.to_string()))?
                .to_string(),
            None => {
                return Err(invalid(
                    "the layout does not name the image: give a name".into(),
                ));
            }
        };
        let image = name.clone();

        let top_digest = self.import_blob(dir, entry, &image)?;
        let top_bytes = self
            .store()
            .read_blob(&top_digest)
            .map_err(|source| PullError::Store {
                image: image.clone(),
                source,
            })?;
        let (manifest_descriptor, manifest_digest) =
            match ManifestKind::parse(&entry.media_type, &top_bytes).map_err(&invalid)? {
                ManifestKind::Image(_) => (entry.clone(), top_digest.clone()),
                ManifestKind::Index(nested) => {
                    let chosen = select_platform(&nested, platform)
                        .map_err(|offered| {
                            invalid(format!(
                                "no manifest for {platform} in the layout: it offers {offered}"
                            ))
                        })?
                        .clone();
                    let digest = self.import_blob(dir, &chosen, &image)?;
                    (chosen, digest)
                }
            };
        let manifest_bytes =
            self.store()
                .read_blob(&manifest_digest)
                .map_err(|source| PullError::Store {
                    image: image.clone(),
                    source,
                })?;
        let ManifestKind::Image(manifest) =
            ManifestKind::parse(&manifest_descriptor.media_type, &manifest_bytes)
                .map_err(&invalid)?
        else {
            return Err(invalid("an index entry points at another index".into()));
        };
        let config_digest = self.import_blob(dir, &manifest.config, &image)?;
        let config_bytes =
            self.store()
                .read_blob(&config_digest)
                .map_err(|source| PullError::Store {
                    image: image.clone(),
                    source,
                })?;
        let config: ImageConfigFile = serde_json::from_slice(&config_bytes)
            .map_err(|e| invalid(format!("invalid image config: {e}")))?;
        for layer in &manifest.layers {
            self.import_blob(dir, layer, &image)?;
        }
        self.ensure_layers(&image, &manifest, &config, LayerSource::Store, progress)
            .await?;
        let record = self.record_image(
            &image,
            (&top_digest, &entry.media_type),
            &manifest_digest,
            &manifest,
            (&config_digest, &config),
            NODE,
        );
        self.records()
            .save(&record)
            .map_err(|source| PullError::Store { image, source })?;
        Ok(record)
    }

    /// Copies one blob of the layout into the store, verifying size and digest.
    fn import_blob(
        &self,
        dir: &Path,
        descriptor: &Descriptor,
        image: &str,
    ) -> Result<Digest, PullError> {
        let store_error = |source| PullError::Store {
            image: image.to_string(),
            source,
        };
        let digest = Digest::parse(&descriptor.digest).map_err(|cause| PullError::Invalid {
            image: image.to_string(),
            cause,
        })?;
        if self.store().has_blob(&digest) {
            return Ok(digest);
        }
        let path = blob_path(dir, &digest);
        let mut file = File::open(&path).map_err(|source| {
            store_error(StoreError::Io {
                path: path.clone(),
                source,
            })
        })?;
        let mut ingest = self.store().begin_ingest(&digest).map_err(store_error)?;
        let mut buffer = vec![0u8; 1 << 20];
        loop {
            let n = file.read(&mut buffer).map_err(|source| {
                store_error(StoreError::Io {
                    path: path.clone(),
                    source,
                })
            })?;
            if n == 0 {
                break;
            }
            ingest.write(&buffer[..n]).map_err(store_error)?;
        }
        ingest.commit(descriptor.size).map_err(store_error)?;
        Ok(digest)
    }

    /// Writes the stored image `name` as an OCI layout in `dir` (created; blobs are added to
    /// an existing layout), its entry named `ref_name`.
    pub fn export_layout(&self, name: &str, dir: &Path, ref_name: &str) -> Result<(), PullError> {
        let store_error = |source| PullError::Store {
            image: name.to_string(),
            source,
        };
        let io_error = |path: &Path| {
            let path = path.to_path_buf();
            move |source| PullError::Store {
                image: name.to_string(),
                source: StoreError::Io { path, source },
            }
        };
        let record = self.records().get(name).ok_or_else(|| PullError::Invalid {
            image: name.to_string(),
            cause: "not on this node".into(),
        })?;
        let parse = |text: &str| {
            Digest::parse(text).map_err(|cause| PullError::Invalid {
                image: name.to_string(),
                cause,
            })
        };
        let manifest_digest = parse(&record.manifest_digest)?;
        let manifest_bytes = self
            .store()
            .read_blob(&manifest_digest)
            .map_err(store_error)?;
        let manifest: Manifest =
            serde_json::from_slice(&manifest_bytes).map_err(|e| PullError::Invalid {
                image: name.to_string(),
                cause: format!("stored manifest: {e}"),
            })?;
        let manifest_media_type = manifest
            .media_type
            .clone()
            .unwrap_or_else(|| OCI_MANIFEST.to_string());

        fs::create_dir_all(dir.join("blobs/sha256")).map_err(io_error(dir))?;
        fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#)
            .map_err(io_error(dir))?;
        let mut blobs = vec![manifest_digest.clone(), parse(&manifest.config.digest)?];
        for layer in &manifest.layers {
            blobs.push(parse(&layer.digest)?);
        }
        for digest in &blobs {
            let target = blob_path(dir, digest);
            if target.exists() {
                continue;
            }
            if let Some(parent) = target.parent() {
                fs::create_dir_all(parent).map_err(io_error(parent))?;
            }
            fs::copy(self.store().blob_path(digest), &target).map_err(io_error(&target))?;
        }

        let index_path = dir.join("index.json");
        let mut index: serde_json::Value = match fs::read(&index_path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| PullError::Invalid {
                image: name.to_string(),
                cause: format!("existing index.json: {e}"),
            })?,
            Err(_) => json!({"schemaVersion": 2, "manifests": []}),
        };
        let entries = index["manifests"]
            .as_array_mut()
            .ok_or_else(|| PullError::Invalid {
                image: name.to_string(),
                cause: "existing index.json has no manifests list".into(),
            })?;
        entries.retain(|e| e["annotations"][REF_NAME] != ref_name);
        entries.push(json!({
            "mediaType": manifest_media_type,
            "digest": manifest_digest.to_string(),
            "size": manifest_bytes.len(),
            "annotations": {REF_NAME: ref_name, IMAGE_NAME: record.name},
        }));
        let bytes = serde_json::to_vec(&index)
            .map_err(|e| io_error(&index_path)(std::io::Error::other(e)))?;
        fs::write(&index_path, bytes).map_err(io_error(&index_path))
    }
}

fn blob_path(dir: &Path, digest: &Digest) -> PathBuf {
    let algorithm = digest.to_string();
    let algorithm = algorithm.split(':').next().unwrap_or("sha256");
    dir.join("blobs").join(algorithm).join(digest.hex())
}

fn pick_entry<'a>(index: &'a Index, ref_name: Option<&str>) -> Result<&'a Descriptor, String> {
    let names = || {
        let names: Vec<&str> = index
            .manifests
            .iter()
            .filter_map(|d| d.annotations.get(REF_NAME).map(String::as_str))
            .collect();
        if names.is_empty() {
            "none".to_string()
        } else {
            names.join(", ")
        }
    };
    match ref_name {
        Some(wanted) => index
            .manifests
            .iter()
            .find(|d| d.annotations.get(REF_NAME).map(String::as_str) == Some(wanted))
            .ok_or_else(|| {
                format!(
                    "no image named {wanted:?} in the layout (it has: {})",
                    names()
                )
            }),
        None if index.manifests.len() == 1 => Ok(&index.manifests[0]),
        None => Err(format!(
            "the layout holds {} images; name one (it has: {})",
            index.manifests.len(),
            names()
        )),
    }
}

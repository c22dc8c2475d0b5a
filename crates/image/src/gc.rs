//! Garbage collection: content and snapshots no image record refers to are removed, and when
//! the disk fills past a high threshold, unused images are removed least recently pulled
//! first until usage is under the low threshold (the kubelet's image GC policy: 85% / 80% by
//! default).

use std::collections::BTreeSet;
use std::fs;
use std::path::Path;
use std::time::{Duration, SystemTime};

use crate::digest::Digest;
use crate::pull::ImageService;
use crate::store::StoreError;

/// The kubelet's `imageGCHighThresholdPercent` / `imageGCLowThresholdPercent` and a grace
/// age that protects content a concurrent pull wrote but has not recorded yet.
#[derive(Debug, Clone)]
pub struct GcPolicy {
    pub high_threshold_percent: u8,
    pub low_threshold_percent: u8,
    pub min_age: Duration,
}

impl Default for GcPolicy {
    fn default() -> GcPolicy {
        GcPolicy {
            high_threshold_percent: 85,
            low_threshold_percent: 80,
            min_age: Duration::from_secs(600),
        }
    }
}

/// Filesystem usage of the image store's disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DiskUsage {
    pub capacity: u64,
    pub available: u64,
}

impl DiskUsage {
    pub fn used_percent(&self) -> u64 {
        if self.capacity == 0 {
            return 0;
        }
        (self.capacity - self.available.min(self.capacity)) * 100 / self.capacity
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PruneReport {
    pub images_removed: Vec<String>,
    pub blobs_removed: usize,
    pub snapshots_removed: usize,
    pub bytes_freed: u64,
}

impl ImageService {
    /// Removes blobs and snapshots that no image record refers to and that are older than
    /// `min_age`.
    pub fn prune_unreferenced(&self, min_age: Duration) -> Result<PruneReport, StoreError> {
        let mut blobs = BTreeSet::new();
        let mut snapshots = BTreeSet::new();
        for record in self.records().list() {
            for digest in [
                &record.digest,
                &record.manifest_digest,
                &record.config_digest,
            ] {
                blobs.insert(digest.clone());
            }
            for layer in &record.layers {
                blobs.insert(layer.digest.clone());
                snapshots.insert(layer.diff_id.clone());
            }
        }
        let keep_blob: BTreeSet<String> = blobs
            .iter()
            .filter_map(|d| Digest::parse(d).ok())
            .map(|d| d.hex().to_string())
            .collect();
        let keep_snapshot: BTreeSet<String> = snapshots
            .iter()
            .filter_map(|d| Digest::parse(d).ok())
            .map(|d| d.hex().to_string())
            .collect();
        let mut report = PruneReport::default();
        let root = self.store().root();
        for algorithm in ["sha256", "sha384", "sha512"] {
            let dir = root.join("content/blobs").join(algorithm);
            for path in old_entries(&dir, min_age)? {
                if keep_blob.contains(&file_name(&path)) {
                    continue;
                }
                report.bytes_freed += fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
                fs::remove_file(&path).map_err(|source| StoreError::Io {
                    path: path.clone(),
                    source,
                })?;
                report.blobs_removed += 1;
            }
        }
        let dir = root.join("snapshots");
        for path in old_entries(&dir, min_age)? {
            let name = file_name(&path);
            if name.starts_with('.') || keep_snapshot.contains(&name) {
                continue;
            }
            report.bytes_freed += tree_size(&path);
            fs::remove_dir_all(&path).map_err(|source| StoreError::Io {
                path: path.clone(),
                source,
            })?;
            report.snapshots_removed += 1;
        }
        Ok(report)
    }

    /// Runs the kubelet's image GC: above the high threshold, removes images not in `in_use`
    /// (names or config digests), least recently pulled first, until usage is at or below the
    /// low threshold; then prunes unreferenced content.
    pub fn garbage_collect(
        &self,
        policy: &GcPolicy,
        in_use: &BTreeSet<String>,
        mut usage: impl FnMut() -> std::io::Result<DiskUsage>,
    ) -> Result<PruneReport, StoreError> {
        let io = |source| StoreError::Io {
            path: self.store().root().to_path_buf(),
            source,
        };
        let mut removed = Vec::new();
        if usage().map_err(io)?.used_percent() >= u64::from(policy.high_threshold_percent) {
            let mut candidates: Vec<_> = self
                .records()
                .list()
                .into_iter()
                .filter(|r| !in_use.contains(&r.name) && !in_use.contains(&r.config_digest))
                .collect();
            candidates.sort_by_key(|r| r.pulled_at);
            for record in candidates {
                if usage().map_err(io)?.used_percent() <= u64::from(policy.low_threshold_percent) {
                    break;
                }
                self.records().remove(&record.name)?;
                removed.push(record.name);
                self.prune_unreferenced(policy.min_age)?;
            }
        }
        let mut report = self.prune_unreferenced(policy.min_age)?;
        report.images_removed = removed;
        Ok(report)
    }
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Entries of `dir` last modified at least `min_age` ago.
fn old_entries(dir: &Path, min_age: Duration) -> Result<Vec<std::path::PathBuf>, StoreError> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(StoreError::Io {
                path: dir.to_path_buf(),
                source,
            });
        }
    };
    let now = SystemTime::now();
    Ok(entries
        .flatten()
        .filter(|e| {
            e.metadata()
                .and_then(|m| m.modified())
                .map(|modified| now.duration_since(modified).unwrap_or_default() >= min_age)
                .unwrap_or(true)
        })
        .map(|e| e.path())
        .collect())
}

fn tree_size(path: &Path) -> u64 {
    let Ok(metadata) = fs::symlink_metadata(path) else {
        return 0;
    };
    if !metadata.is_dir() {
        return metadata.len();
    }
    fs::read_dir(path)
        .map(|entries| entries.flatten().map(|e| tree_size(&e.path())).sum())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_percent_is_of_capacity() {
        assert_eq!(
            DiskUsage {
                capacity: 100,
                available: 15
            }
            .used_percent(),
            85
        );
        assert_eq!(
            DiskUsage {
                capacity: 0,
                available: 0
            }
            .used_percent(),
            0
        );
        assert_eq!(
            DiskUsage {
                capacity: 10,
                available: 20
            }
            .used_percent(),
            0
        );
    }
}

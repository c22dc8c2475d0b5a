//! The content store and snapshots on disk, shared by all images:
//!
//! ```text
//! <root>/content/blobs/sha256/<hex>   immutable, verified blobs (manifests, configs, layers)
//! <root>/content/ingest/<hex>.<n>     a blob being written; renamed into blobs/ once verified
//! <root>/snapshots/<hex>/             one unpacked layer (overlay upper-dir form), by diff_id
//! <root>/snapshots/.tmp-<n>/          a layer being unpacked; renamed once its diff_id checks out
//! <root>/locks/<hex>.lock             held while one process fetches or unpacks that layer
//! <root>/images/<hex>.json            image records (see `images`)
//! ```
//!
//! Everything becomes visible by an atomic rename only after it was verified, so a crash or a
//! failed pull leaves at most files under `ingest/` and `.tmp-*`, which `open` removes.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::digest::{Digest, Hasher};

static UNIQUE: AtomicU64 = AtomicU64::new(0);

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("blob {expected} is corrupt: got {actual} ({size} bytes)")]
    Corrupt {
        expected: String,
        actual: String,
        size: u64,
    },
    #[error("blob {digest} should be {expected} bytes, got {actual}")]
    WrongSize {
        digest: String,
        expected: u64,
        actual: u64,
    },
}

fn io_error(path: &Path) -> impl FnOnce(io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.to_path_buf(),
        source,
    }
}

#[derive(Debug, Clone)]
pub struct ContentStore {
    root: PathBuf,
}

impl ContentStore {
    /// Opens (creating) the store and removes what interrupted pulls left behind.
    pub fn open(root: &Path) -> Result<ContentStore, StoreError> {
        let store = ContentStore {
            root: root.to_path_buf(),
        };
        for dir in [
            "content/blobs/sha256",
            "content/ingest",
            "snapshots",
            "locks",
            "images",
        ] {
            let path = root.join(dir);
            fs::create_dir_all(&path).map_err(io_error(&path))?;
        }
        store.remove_leftovers()?;
        Ok(store)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn remove_leftovers(&self) -> Result<(), StoreError> {
        let ingest = self.root.join("content/ingest");
        for entry in fs::read_dir(&ingest).map_err(io_error(&ingest))?.flatten() {
            // A concurrent pull in another process may own it; only stale files go.
            if is_stale(&entry.path()) {
                let _ = fs::remove_file(entry.path());
            }
        }
        let snapshots = self.root.join("snapshots");
        for entry in fs::read_dir(&snapshots)
            .map_err(io_error(&snapshots))?
            .flatten()
        {
            if entry.file_name().to_string_lossy().starts_with(".tmp-") && is_stale(&entry.path()) {
                let _ = fs::remove_dir_all(entry.path());
            }
        }
        Ok(())
    }

    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.root
            .join("content/blobs")
            .join(algorithm_dir(digest))
            .join(digest.hex())
    }

    pub fn has_blob(&self, digest: &Digest) -> bool {
        self.blob_path(digest).is_file()
    }

    /// Reads a blob and checks it still hashes to its name.
    pub fn read_blob(&self, digest: &Digest) -> Result<Vec<u8>, StoreError> {
        let path = self.blob_path(digest);
        let bytes = fs::read(&path).map_err(io_error(&path))?;
        let mut hasher = Hasher::new(digest.algorithm());
        hasher.update(&bytes);
        let actual = hasher.finish();
        if &actual != digest {
            return Err(StoreError::Corrupt {
                expected: digest.to_string(),
                actual: actual.to_string(),
                size: bytes.len() as u64,
            });
        }
        Ok(bytes)
    }

    /// Stores small content already in memory (manifests, configs), verifying it first.
    pub fn write_blob(&self, digest: &Digest, bytes: &[u8]) -> Result<(), StoreError> {
        if self.has_blob(digest) {
            return Ok(());
        }
        let mut ingest = self.begin_ingest(digest)?;
        ingest.write(bytes)?;
        ingest.commit(bytes.len() as u64)
    }

    /// Starts writing a blob; nothing is visible until [`Ingest::commit`] verifies it.
    pub fn begin_ingest(&self, digest: &Digest) -> Result<Ingest, StoreError> {
        let path = self
            .root
            .join("content/ingest")
            .join(format!("{}.{}", digest.hex(), unique()));
        let file = File::create(&path).map_err(io_error(&path))?;
        Ok(Ingest {
            file,
            path,
            target: self.blob_path(digest),
            expected: digest.clone(),
            hasher: Hasher::new(digest.algorithm()),
            written: 0,
            committed: false,
        })
    }

    pub fn snapshot_path(&self, diff_id: &Digest) -> PathBuf {
        self.root.join("snapshots").join(diff_id.hex())
    }

    pub fn has_snapshot(&self, diff_id: &Digest) -> bool {
        self.snapshot_path(diff_id).is_dir()
    }

    /// A fresh, empty directory to unpack one layer into.
    pub fn begin_snapshot(&self) -> Result<PathBuf, StoreError> {
        let path = self
            .root
            .join("snapshots")
            .join(format!(".tmp-{}", unique()));
        fs::create_dir(&path).map_err(io_error(&path))?;
        Ok(path)
    }

    /// Makes an unpacked layer visible under its diff_id. If another pull got there first,
    /// its (identical) snapshot stays and ours is removed.
    pub fn commit_snapshot(&self, unpacked: &Path, diff_id: &Digest) -> Result<(), StoreError> {
        let target = self.snapshot_path(diff_id);
        match fs::rename(unpacked, &target) {
            Ok(()) => Ok(()),
            Err(_) if target.is_dir() => {
                let _ = fs::remove_dir_all(unpacked);
                Ok(())
            }
            Err(err) => Err(StoreError::Io {
                path: target,
                source: err,
            }),
        }
    }

    /// A lock file for work on one piece of content (held across processes with flock).
    pub fn lock_path(&self, digest: &Digest) -> PathBuf {
        self.root
            .join("locks")
            .join(format!("{}.lock", digest.hex()))
    }

    pub fn images_dir(&self) -> PathBuf {
        self.root.join("images")
    }
}

/// A blob being written: bytes are hashed as they arrive.
#[derive(Debug)]
pub struct Ingest {
    file: File,
    path: PathBuf,
    target: PathBuf,
    expected: Digest,
    hasher: Hasher,
    written: u64,
    committed: bool,
}

impl Ingest {
    pub fn write(&mut self, bytes: &[u8]) -> Result<(), StoreError> {
        self.hasher.update(bytes);
        self.written += bytes.len() as u64;
        self.file.write_all(bytes).map_err(io_error(&self.path))
    }

    pub fn written(&self) -> u64 {
        self.written
    }

    /// Verifies size and digest, then renames the blob into place (read-only). On any
    /// failure the partial file is removed (by `Drop`).
    pub fn commit(mut self, expected_size: u64) -> Result<(), StoreError> {
        if self.written != expected_size {
            return Err(StoreError::WrongSize {
                digest: self.expected.to_string(),
                expected: expected_size,
                actual: self.written,
            });
        }
        let hasher = std::mem::replace(&mut self.hasher, Hasher::new(self.expected.algorithm()));
        let actual = hasher.finish();
        if actual != self.expected {
            return Err(StoreError::Corrupt {
                expected: self.expected.to_string(),
                actual: actual.to_string(),
                size: self.written,
            });
        }
        let mut permissions = self
            .file
            .metadata()
            .map_err(io_error(&self.path))?
            .permissions();
        permissions.set_readonly(true);
        self.file
            .set_permissions(permissions)
            .map_err(io_error(&self.path))?;
        if let Some(parent) = self.target.parent() {
            fs::create_dir_all(parent).map_err(io_error(parent))?;
        }
        fs::rename(&self.path, &self.target).map_err(io_error(&self.target))?;
        self.committed = true;
        Ok(())
    }
}

impl Drop for Ingest {
    fn drop(&mut self) {
        // Not committed (an error or a cancelled pull): the partial file goes.
        if !self.committed {
            let _ = fs::remove_file(&self.path);
        }
    }
}

fn algorithm_dir(digest: &Digest) -> &'static str {
    match digest.algorithm() {
        crate::digest::Algorithm::Sha256 => "sha256",
        crate::digest::Algorithm::Sha384 => "sha384",
        crate::digest::Algorithm::Sha512 => "sha512",
    }
}

/// Names unique across processes and within one.
fn unique() -> String {
    format!(
        "{}-{}",
        std::process::id(),
        UNIQUE.fetch_add(1, Ordering::Relaxed)
    )
}

/// Left by a process that no longer runs (the pid is the first part of the unique suffix).
fn is_stale(path: &Path) -> bool {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let suffix = name.rsplit(['.']).next().unwrap_or_default();
    let suffix = suffix.strip_prefix("tmp-").unwrap_or(suffix);
    match suffix
        .split('-')
        .next()
        .and_then(|pid| pid.parse::<u32>().ok())
    {
        Some(pid) => pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists(),
        None => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_blob_appears_only_once_verified() {
        let dir = tempfile::tempdir().unwrap();
        let store = ContentStore::open(dir.path()).unwrap();
        let digest = Digest::sha256_of(b"hello");
        let mut ingest = store.begin_ingest(&digest).unwrap();
        ingest.write(b"hel").unwrap();
        assert!(!store.has_blob(&digest));
        ingest.write(b"lo").unwrap();
        ingest.commit(5).unwrap();
        assert_eq!(store.read_blob(&digest).unwrap(), b"hello");
        assert_eq!(
            fs::read_dir(dir.path().join("content/ingest"))
                .unwrap()
                .count(),
            0
        );
    }

    #[test]
    fn a_corrupt_or_short_blob_is_never_committed() {
        let dir = tempfile::tempdir().unwrap();
        let store = ContentStore::open(dir.path()).unwrap();
        let digest = Digest::sha256_of(b"hello");
        let mut ingest = store.begin_ingest(&digest).unwrap();
        ingest.write(b"HELLO").unwrap();
        assert!(matches!(ingest.commit(5), Err(StoreError::Corrupt { .. })));
        let mut ingest = store.begin_ingest(&digest).unwrap();
        ingest.write(b"hell").unwrap();
        assert!(matches!(
            ingest.commit(5),
            Err(StoreError::WrongSize { .. })
        ));
        drop(store.begin_ingest(&digest).unwrap());
        assert!(!store.has_blob(&digest));
        assert_eq!(
            fs::read_dir(dir.path().join("content/ingest"))
                .unwrap()
                .count(),
            0
        );
    }

    #[test]
    fn a_blob_changed_on_disk_is_detected_on_read() {
        let dir = tempfile::tempdir().unwrap();
        let store = ContentStore::open(dir.path()).unwrap();
        let digest = Digest::sha256_of(b"hello");
        store.write_blob(&digest, b"hello").unwrap();
        let path = store.blob_path(&digest);
        let mut permissions = fs::metadata(&path).unwrap().permissions();
        #[allow(clippy::permissions_set_readonly_false)]
        permissions.set_readonly(false);
        fs::set_permissions(&path, permissions).unwrap();
        fs::write(&path, b"jello").unwrap();
        assert!(matches!(
            store.read_blob(&digest),
            Err(StoreError::Corrupt { .. })
        ));
    }

    #[test]
    fn leftovers_of_dead_processes_are_removed_on_open() {
        let dir = tempfile::tempdir().unwrap();
        let store = ContentStore::open(dir.path()).unwrap();
        let dead = dir.path().join("content/ingest/abc.999999999-0");
        fs::write(&dead, b"partial").unwrap();
        let mine = store.begin_snapshot().unwrap();
        let dead_snapshot = dir.path().join("snapshots/.tmp-999999999-1");
        fs::create_dir(&dead_snapshot).unwrap();
        ContentStore::open(dir.path()).unwrap();
        assert!(!dead.exists());
        assert!(!dead_snapshot.exists());
        assert!(
            mine.exists(),
            "a live process's snapshot in progress must stay"
        );
    }

    #[test]
    fn a_snapshot_committed_twice_keeps_the_first() {
        let dir = tempfile::tempdir().unwrap();
        let store = ContentStore::open(dir.path()).unwrap();
        let diff_id = Digest::sha256_of(b"layer");
        let first = store.begin_snapshot().unwrap();
        fs::write(first.join("a"), b"1").unwrap();
        store.commit_snapshot(&first, &diff_id).unwrap();
        let second = store.begin_snapshot().unwrap();
        fs::write(second.join("b"), b"2").unwrap();
        store.commit_snapshot(&second, &diff_id).unwrap();
        assert!(store.snapshot_path(&diff_id).join("a").exists());
        assert!(!second.exists());
    }
}

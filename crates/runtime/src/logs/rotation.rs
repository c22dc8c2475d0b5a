//! Container log rotation, the kubelet's `containerLogMaxSize` / `containerLogMaxFiles`, done
//! by the log's only writer (the shim) at a record boundary, so no reopen signal is needed.
//!
//! When a record would take the current file (`<restart>.log`) past the maximum size, the
//! file is renamed to `<restart>.log.<YYYYmmdd-HHMMSS>` (Go layout `20060102-150405`, in
//! UTC) and a new one is created at the old name. Rotated files other than the newest are
//! gzip-compressed to `<name>.gz` (through `<name>.gz.tmp` and a rename), and the oldest are
//! deleted so that at most `max_files` files remain, the current one included. Two
//! rotations within one second (only possible with a tiny maximum) get `.1`, `.2`, ...
//! after the timestamp, so no rotated file is ever overwritten.

use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

/// The kubelet's default `containerLogMaxSize` (10Mi).
pub const DEFAULT_MAX_SIZE: u64 = 10 * 1024 * 1024;
/// The kubelet's default `containerLogMaxFiles`.
pub const DEFAULT_MAX_FILES: u32 = 5;
/// Fewer would leave no rotated file at all (the kubelet's own lower bound).
pub const MIN_MAX_FILES: u32 = 2;
/// Go's `20060102-150405`.
const TIMESTAMP_FORMAT: &str = "%Y%m%d-%H%M%S";
const COMPRESSED_SUFFIX: &str = ".gz";
const TMP_SUFFIX: &str = ".tmp";

/// When and how far a container's log is rotated (`shim.json`'s `log_rotation`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogRotation {
    /// Rotate once the current file would grow past this many bytes.
    pub max_size: u64,
    /// Files kept per log, the current one included (at least [`MIN_MAX_FILES`]).
    pub max_files: u32,
}

impl Default for LogRotation {
    fn default() -> LogRotation {
        LogRotation {
            max_size: DEFAULT_MAX_SIZE,
            max_files: DEFAULT_MAX_FILES,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RotationError {
    #[error("container_log_max_size must be a positive number of bytes, not {0}")]
    MaxSize(i128),
    #[error("container_log_max_files must be at least {MIN_MAX_FILES}, not {0}")]
    MaxFiles(i64),
}

impl LogRotation {
    /// Checks the limits as the kubelet's configuration validation does.
    pub fn new(max_size: i128, max_files: i64) -> Result<LogRotation, RotationError> {
        let max_size = u64::try_from(max_size)
            .ok()
            .filter(|size| *size > 0)
            .ok_or(RotationError::MaxSize(max_size))?;
        let max_files = u32::try_from(max_files)
            .ok()
            .filter(|files| *files >= MIN_MAX_FILES)
            .ok_or(RotationError::MaxFiles(max_files))?;
        Ok(LogRotation {
            max_size,
            max_files,
        })
    }
}

/// A log file that rotates itself: [`Write::write_all`] (what [`super::CriLogWriter`] calls
/// once per batch of whole records) rotates first when the batch would take the file past
/// the maximum. Plain [`Write::write`] never rotates (it may write part of a record).
#[derive(Debug)]
pub struct RotatingFile {
    path: PathBuf,
    file: File,
    size: u64,
    rotation: LogRotation,
}

impl RotatingFile {
    /// Opens `path` for appending (creating it and its directories), counting what it holds.
    pub fn open(path: &Path, rotation: LogRotation) -> io::Result<RotatingFile> {
        let file = super::open_log_file(path)?;
        let size = file.metadata()?.len();
        Ok(RotatingFile {
            path: path.to_owned(),
            file,
            size,
            rotation,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Renames the current file aside, starts a new one, then compresses and deletes older
    /// rotated files. Only the rename and the new file must succeed; the rest is retried at
    /// the next rotation.
    pub fn rotate(&mut self, now: Timestamp) -> io::Result<()> {
        let existing = rotated_files(&self.path)?;
        let rotated = rotated_name(&self.path, now, &existing);
        std::fs::rename(&self.path, &rotated)?;
        self.file = super::open_log_file(&self.path)?;
        self.size = 0;
        let mut all = existing;
        all.push(rotated);
        all.sort_by_key(|p| rotation_order(p));
        let excess = all
            .len()
            .saturating_sub(self.rotation.max_files as usize - 1);
        for old in all.drain(..excess) {
            remove_if_present(&old)?;
        }
        // The newest rotated file stays plain: a follower may still be reading it.
        if let Some((_newest, older)) = all.split_last() {
            for old in older {
                if !is_compressed(old) {
                    compress(old)?;
                }
            }
        }
        Ok(())
    }
}

impl Write for RotatingFile {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        let n = self.file.write(bytes)?;
        self.size += n as u64;
        Ok(n)
    }

    fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        if self.size > 0 && self.size + bytes.len() as u64 > self.rotation.max_size {
            // A failed rotation (a full disk) keeps appending to the current file.
            if let Err(err) = self.rotate(Timestamp::now()) {
                eprintln!(
                    "nodelet: rotating the container log {}: {err}",
                    self.path.display()
                );
            }
        }
        let result = self.file.write_all(bytes);
        // Not exact after a failed write, which is fine for a size limit.
        self.size += bytes.len() as u64;
        result
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

/// The rotated files of the log at `path` (`<name>.<timestamp>[.<n>][.gz]`, leftover
/// `.tmp` files of an interrupted compression excluded), oldest first.
pub fn rotated_files(path: &Path) -> io::Result<Vec<PathBuf>> {
    let (Some(dir), Some(name)) = (path.parent(), path.file_name().and_then(|n| n.to_str())) else {
        return Ok(Vec::new());
    };
    let prefix = format!("{name}.");
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let Some(file) = entry.file_name().to_str().map(str::to_owned) else {
            continue;
        };
        if file.starts_with(&prefix) && !file.ends_with(TMP_SUFFIX) {
            found.push(dir.join(file));
        }
    }
    found.sort_by_key(|p| rotation_order(p));
    Ok(found)
}

/// `<path>.<timestamp>`, or `.<n>` after it, one past the same second's latest (a deleted
/// older one's number is not reused: the name must sort after every existing one).
fn rotated_name(path: &Path, now: Timestamp, existing: &[PathBuf]) -> PathBuf {
    let stamp = now.strftime(TIMESTAMP_FORMAT).to_string();
    let base = format!("{}.{stamp}", path.display());
    let latest = existing
        .iter()
        .map(|p| rotation_order(p))
        .filter(|(timestamp, _)| *timestamp == stamp)
        .map(|(_, n)| n)
        .max();
    match latest {
        None => PathBuf::from(base),
        Some(n) => PathBuf::from(format!("{base}.{}", n + 1)),
    }
}

/// Sorts rotated files by their timestamp, then their same-second number.
fn rotation_order(path: &Path) -> (String, u32) {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    let name = name.strip_suffix(COMPRESSED_SUFFIX).unwrap_or(name);
    // `<restart>.log.<timestamp>[.<n>]`
    let suffix = name.split_once(".log.").map_or(name, |(_, suffix)| suffix);
    let mut parts = suffix.split('.');
    let timestamp = parts.next().unwrap_or("").to_owned();
    let n = parts.next().and_then(|n| n.parse().ok()).unwrap_or(0);
    (timestamp, n)
}

fn is_compressed(path: &Path) -> bool {
    path.as_os_str()
        .to_str()
        .is_some_and(|p| p.ends_with(COMPRESSED_SUFFIX))
}

/// `path` -> `path.gz`, through `path.gz.tmp`; the original is removed once the archive is
/// in place. Fast compression: the shim does this between reads of the container's pipes.
fn compress(path: &Path) -> io::Result<()> {
    let mut source = File::open(path)?;
    let target = PathBuf::from(format!("{}{COMPRESSED_SUFFIX}", path.display()));
    let tmp = PathBuf::from(format!("{}{TMP_SUFFIX}", target.display()));
    let result = (|| {
        let out = super::create_log_file(&tmp)?;
        let mut encoder = flate2::write::GzEncoder::new(out, flate2::Compression::fast());
        io::copy(&mut source, &mut encoder)?;
        encoder.finish()?;
        std::fs::rename(&tmp, &target)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result?;
    remove_if_present(path)
}

fn remove_if_present(path: &Path) -> io::Result<()> {
    match std::fs::remove_file(path) {
        Err(err) if err.kind() != io::ErrorKind::NotFound => Err(err),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn names(paths: &[PathBuf]) -> Vec<String> {
        paths
            .iter()
            .map(|p| p.file_name().unwrap().to_str().unwrap().to_owned())
            .collect()
    }

    #[test]
    fn limits_are_checked_like_the_kubelet() {
        assert_eq!(
            LogRotation::new(4096, 2).unwrap(),
            LogRotation {
                max_size: 4096,
                max_files: 2
            }
        );
        assert_eq!(
            LogRotation::new(0, 5).unwrap_err().to_string(),
            "container_log_max_size must be a positive number of bytes, not 0"
        );
        assert_eq!(
            LogRotation::new(10, 1).unwrap_err(),
            RotationError::MaxFiles(1)
        );
        assert_eq!(
            LogRotation::default(),
            LogRotation {
                max_size: 10 * 1024 * 1024,
                max_files: 5
            }
        );
    }

    #[test]
    fn rotated_names_carry_the_time_and_never_collide() {
        let path = Path::new("/logs/ns_pod_uid/c/2.log");
        let now: Timestamp = "2026-11-25T16:16:03.5Z".parse().unwrap();
        let first = rotated_name(path, now, &[]);
        assert_eq!(first, Path::new("/logs/ns_pod_uid/c/2.log.20261125-161603"));
        let compressed = PathBuf::from(format!("{}.gz", first.display()));
        let second = rotated_name(path, now, std::slice::from_ref(&compressed));
        assert_eq!(
            second,
            Path::new("/logs/ns_pod_uid/c/2.log.20261125-161603.1")
        );
        let third = rotated_name(path, now, &[compressed, second.clone()]);
        assert!(third.ends_with("2.log.20261125-161603.2"));
        // Not the number of one deleted meanwhile.
        let fourth = rotated_name(path, now, &[third]);
        assert!(fourth.ends_with("2.log.20261125-161603.3"));
        // Numbers sort as numbers, compressed or not.
        let mut files = vec![
            PathBuf::from("2.log.20261125-161603.10"),
            PathBuf::from("2.log.20261125-161604"),
            PathBuf::from("2.log.20261125-161603.2.gz"),
            PathBuf::from("2.log.20261125-161603.gz"),
        ];
        files.sort_by_key(|p| rotation_order(p));
        assert_eq!(
            names(&files),
            [
                "2.log.20261125-161603.gz",
                "2.log.20261125-161603.2.gz",
                "2.log.20261125-161603.10",
                "2.log.20261125-161604"
            ]
        );
    }

    #[test]
    fn rotation_keeps_max_files_and_compresses_all_but_the_newest() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c/0.log");
        let rotation = LogRotation::new(10, 3).unwrap();
        let mut file = RotatingFile::open(&path, rotation).unwrap();
        // Another log of the same container (an earlier run) is not touched.
        std::fs::write(dir.path().join("c/1.log.20200101-000000"), "other").unwrap();
        for n in 0..6 {
            // Each batch fills the file: the next one rotates.
            file.write_all(format!("batch {n:02}\n").as_bytes())
                .unwrap();
        }
        let rotated = rotated_files(&path).unwrap();
        assert_eq!(rotated.len(), 2, "{:?}", names(&rotated));
        let (older, newest) = (&rotated[0], &rotated[1]);
        assert!(
            is_compressed(older) && !is_compressed(newest),
            "{rotated:?}"
        );
        assert_eq!(std::fs::read_to_string(newest).unwrap(), "batch 04\n");
        let mut text = String::new();
        flate2::read::GzDecoder::new(File::open(older).unwrap())
            .read_to_string(&mut text)
            .unwrap();
        assert_eq!(text, "batch 03\n");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "batch 05\n");
        assert!(dir.path().join("c/1.log.20200101-000000").exists());
        let mut all: Vec<_> = std::fs::read_dir(dir.path().join("c"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.starts_with("0.log"))
            .collect();
        all.sort();
        assert_eq!(all.len(), 3, "{all:?}");
        assert!(!all.iter().any(|n| n.ends_with(".tmp")), "{all:?}");
    }

    #[test]
    fn a_batch_fits_in_an_empty_file_whatever_its_size() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.log");
        let mut file = RotatingFile::open(&path, LogRotation::new(4, 2).unwrap()).unwrap();
        file.write_all(b"longer than four\n").unwrap();
        assert!(rotated_files(&path).unwrap().is_empty());
        file.write_all(b"x\n").unwrap();
        assert_eq!(rotated_files(&path).unwrap().len(), 1);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "x\n");
    }
}

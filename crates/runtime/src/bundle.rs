//! A container's directory, which is also its OCI bundle:
//!
//! ```text
//! <dir>/config.json    the OCI spec (crate::spec)
//! <dir>/nodelet.json   our metadata: stop signal, kill scope
//! <dir>/rootfs/        the overlay root filesystem (crate::rootfs), with upper/ and work/
//! <dir>/init.pid       written by the runtime's create
//! ```
//!
//! Everything nodelet needs to find, stop and remove the container again after a restart is
//! in this directory (and in the runtime's own state).

use std::path::{Path, PathBuf};

use nodelet_sys::mount::{HostMounter, Mounter};
use oci_spec::runtime::{Process, Spec};

use crate::rootfs::{self, RootfsError};
use crate::spec::{ContainerMetadata, GeneratedSpec};

const CONFIG: &str = "config.json";
const METADATA: &str = "nodelet.json";
const PID_FILE: &str = "init.pid";

#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    #[error("bundle {}: {what}: {source}", .dir.display())]
    Io {
        dir: PathBuf,
        what: String,
        source: std::io::Error,
    },
    #[error("bundle {}: {file} is not valid: {problem}", .dir.display())]
    Invalid {
        dir: PathBuf,
        file: &'static str,
        problem: String,
    },
    #[error(transparent)]
    Rootfs(#[from] RootfsError),
}

/// A container's directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bundle {
    dir: PathBuf,
}

impl Bundle {
    /// Creates `dir` (mode 0700) and mounts the root filesystem over `layers_bottom_first`.
    /// Repeatable: an existing directory and mount are kept.
    pub fn create(dir: &Path, layers_bottom_first: &[PathBuf]) -> Result<Bundle, BundleError> {
        Bundle::create_with(&HostMounter, dir, layers_bottom_first)
    }

    pub fn create_with(
        mounter: &dyn Mounter,
        dir: &Path,
        layers_bottom_first: &[PathBuf],
    ) -> Result<Bundle, BundleError> {
        use std::os::unix::fs::DirBuilderExt;
        let bundle = Bundle {
            dir: dir.to_path_buf(),
        };
        match std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
        {
            Ok(()) => {}
            Err(source) => return Err(bundle.io("creating the directory", source)),
        }
        if let Err(err) = rootfs::mount_rootfs(mounter, dir, layers_bottom_first) {
            let _ = rootfs::unmount_rootfs(mounter, dir);
            return Err(err.into());
        }
        Ok(bundle)
    }

    /// A bundle that exists already (after a restart).
    pub fn open(dir: &Path) -> Bundle {
        Bundle {
            dir: dir.to_path_buf(),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The mounted root filesystem.
    pub fn rootfs(&self) -> PathBuf {
        rootfs::RootfsPaths::in_dir(&self.dir).mountpoint
    }

    pub fn pid_file(&self) -> PathBuf {
        self.dir.join(PID_FILE)
    }

    /// Writes `config.json` and `nodelet.json` (each atomically).
    pub fn write_spec(&self, generated: &GeneratedSpec) -> Result<(), BundleError> {
        self.write_json(CONFIG, &generated.spec)?;
        self.write_json(METADATA, &generated.metadata)
    }

    pub fn spec(&self) -> Result<Spec, BundleError> {
        self.read_json(CONFIG)
    }

    /// The container's init process, as `config.json` has it.
    pub fn init_process(&self) -> Result<Process, BundleError> {
        self.spec()?
            .process()
            .clone()
            .ok_or_else(|| BundleError::Invalid {
                dir: self.dir.clone(),
                file: CONFIG,
                problem: "it has no process".into(),
            })
    }

    pub fn metadata(&self) -> Result<ContainerMetadata, BundleError> {
        self.read_json(METADATA)
    }

    /// Unmounts the root filesystem and removes the directory. Repeatable.
    pub fn remove(&self) -> Result<(), BundleError> {
        self.remove_with(&HostMounter)
    }

    pub fn remove_with(&self, mounter: &dyn Mounter) -> Result<(), BundleError> {
        rootfs::unmount_rootfs(mounter, &self.dir)?;
        match std::fs::remove_dir_all(&self.dir) {
            Ok(()) => Ok(()),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(self.io("removing the directory", source)),
        }
    }

    fn write_json<T: serde::Serialize>(
        &self,
        file: &'static str,
        value: &T,
    ) -> Result<(), BundleError> {
        let bytes = serde_json::to_vec_pretty(value).map_err(|e| BundleError::Invalid {
            dir: self.dir.clone(),
            file,
            problem: e.to_string(),
        })?;
        let path = self.dir.join(file);
        let tmp = self.dir.join(format!(".{file}.tmp"));
        std::fs::write(&tmp, bytes)
            .map_err(|source| self.io(&format!("writing {file}"), source))?;
        std::fs::rename(&tmp, &path).map_err(|source| self.io(&format!("writing {file}"), source))
    }

    fn read_json<T: serde::de::DeserializeOwned>(
        &self,
        file: &'static str,
    ) -> Result<T, BundleError> {
        let bytes = std::fs::read(self.dir.join(file))
            .map_err(|source| self.io(&format!("reading {file}"), source))?;
        serde_json::from_slice(&bytes).map_err(|e| BundleError::Invalid {
            dir: self.dir.clone(),
            file,
            problem: e.to_string(),
        })
    }

    fn io(&self, what: &str, source: std::io::Error) -> BundleError {
        BundleError::Io {
            dir: self.dir.clone(),
            what: what.to_string(),
            source,
        }
    }
}

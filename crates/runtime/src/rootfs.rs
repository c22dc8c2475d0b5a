//! A container's root filesystem: an overlay of the image's layer snapshots (read-only,
//! shared by every container of the image) under a writable layer of its own, all inside the
//! container's directory:
//!
//! ```text
//! <container dir>/rootfs   the overlay mount (the bundle's root.path)
//! <container dir>/upper    the container's writes
//! <container dir>/work     overlayfs' scratch space (same filesystem as upper)
//! ```
//!
//! For images with many layers, see `nodelet_sys::mount` (the lowers are passed one by one,
//! not as one page-limited option string).

use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use nodelet_sys::mount::{MountError, Mounter, Overlay, is_not_mounted};

const EBUSY: i32 = 16;

#[derive(Debug, thiserror::Error)]
pub enum RootfsError {
    #[error("root filesystem in {}: the image has no layers", .dir.display())]
    NoLayers { dir: PathBuf },
    #[error("root filesystem in {}: layer snapshot {} is missing", .dir.display(), .layer.display())]
    MissingLayer { dir: PathBuf, layer: PathBuf },
    #[error("root filesystem in {}: {what}: {source}", .dir.display())]
    Io {
        dir: PathBuf,
        what: String,
        source: std::io::Error,
    },
    #[error("root filesystem in {}: {source}", .dir.display())]
    Mount { dir: PathBuf, source: MountError },
}

/// Where a container's root filesystem parts live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RootfsPaths {
    pub mountpoint: PathBuf,
    pub upper: PathBuf,
    pub work: PathBuf,
}

impl RootfsPaths {
    pub fn in_dir(container_dir: &Path) -> RootfsPaths {
        RootfsPaths {
            mountpoint: container_dir.join("rootfs"),
            upper: container_dir.join("upper"),
            work: container_dir.join("work"),
        }
    }
}

/// Mounts the overlay of `layers_bottom_first` (the image's order: base layer first) in
/// `container_dir`, creating what is missing. Mounting an already mounted root filesystem
/// does nothing, so a sync can run this again. Returns the mount point.
pub fn mount_rootfs(
    mounter: &dyn Mounter,
    container_dir: &Path,
    layers_bottom_first: &[PathBuf],
) -> Result<PathBuf, RootfsError> {
    let dir = container_dir.to_path_buf();
    if layers_bottom_first.is_empty() {
        return Err(RootfsError::NoLayers { dir });
    }
    if let Some(layer) = layers_bottom_first.iter().find(|l| !l.is_dir()) {
        return Err(RootfsError::MissingLayer {
            dir,
            layer: layer.clone(),
        });
    }
    let paths = RootfsPaths::in_dir(container_dir);
    for path in [&paths.mountpoint, &paths.upper, &paths.work] {
        make_dir(path).map_err(|source| RootfsError::Io {
            dir: dir.clone(),
            what: format!("creating {}", path.display()),
            source,
        })?;
    }
    if is_mount_point(&paths.mountpoint, container_dir).map_err(|source| RootfsError::Io {
        dir: dir.clone(),
        what: "checking the mount point".into(),
        source,
    })? {
        return Ok(paths.mountpoint);
    }
    let lowers: Vec<PathBuf> = layers_bottom_first.iter().rev().cloned().collect();
    mounter
        .mount_overlay(
            Overlay {
                lowers: &lowers,
                upper: &paths.upper,
                work: &paths.work,
                // A container's writable layer does not outlive the container, and a
                // crash ends the container: nothing is gained by syncing it, while
                // syncing would flush the whole filesystem at each unmount.
                volatile: true,
            },
            &paths.mountpoint,
        )
        .map_err(|source| RootfsError::Mount { dir, source })?;
    Ok(paths.mountpoint)
}

/// Unmounts the root filesystem if it is mounted (lazily when something still holds it) and
/// removes the writable layer. Safe to repeat.
pub fn unmount_rootfs(mounter: &dyn Mounter, container_dir: &Path) -> Result<(), RootfsError> {
    let dir = container_dir.to_path_buf();
    let paths = RootfsPaths::in_dir(container_dir);
    let mount_error = |source| RootfsError::Mount {
        dir: dir.clone(),
        source,
    };
    match mounter.unmount(&paths.mountpoint, false) {
        Ok(()) => {}
        Err(err) if is_not_mounted(&err) => {}
        // A process that outlived its container can pin the mount: detach it now, the kernel
        // frees it when that process goes.
        Err(err) if err.raw_os_error() == Some(EBUSY) => mounter
            .unmount(&paths.mountpoint, true)
            .map_err(mount_error)?,
        Err(err) => return Err(mount_error(err)),
    }
    if paths.mountpoint.exists()
        && is_mount_point(&paths.mountpoint, container_dir).map_err(|source| RootfsError::Io {
            dir: dir.clone(),
            what: "checking the mount point".into(),
            source,
        })?
    {
        // Stacked mounts: never delete through a mount into someone's files.
        return Err(mount_error(MountError::Syscall {
            op: "still mounted after unmounting".into(),
            target: paths.mountpoint.clone(),
            source: std::io::Error::from_raw_os_error(EBUSY),
        }));
    }
    for path in [&paths.upper, &paths.work, &paths.mountpoint] {
        match std::fs::remove_dir_all(path) {
            Ok(()) => {}
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => {
                return Err(RootfsError::Io {
                    dir: dir.clone(),
                    what: format!("removing {}", path.display()),
                    source,
                });
            }
        }
    }
    Ok(())
}

/// A directory with mode 0755 whatever the umask: the upper directory's mode becomes the
/// container's `/`.
fn make_dir(path: &Path) -> std::io::Result<()> {
    match std::fs::DirBuilder::new().mode(0o755).create(path) {
        Ok(()) => std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)),
        Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(err) => Err(err),
    }
}

/// Whether something is mounted at `path`: an overlay has a device of its own.
fn is_mount_point(path: &Path, parent: &Path) -> std::io::Result<bool> {
    Ok(std::fs::symlink_metadata(path)?.dev() != std::fs::symlink_metadata(parent)?.dev())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;

    /// Records calls; fails unmounts with the queued errnos.
    #[derive(Default)]
    struct FakeMounter {
        calls: RefCell<Vec<String>>,
        unmount_errors: RefCell<Vec<i32>>,
    }

    impl Mounter for FakeMounter {
        fn mount_overlay(&self, overlay: Overlay<'_>, target: &Path) -> Result<(), MountError> {
            let lowers: Vec<String> = overlay
                .lowers
                .iter()
                .map(|l| l.file_name().unwrap().to_string_lossy().into_owned())
                .collect();
            self.calls.borrow_mut().push(format!(
                "mount {} on {}",
                lowers.join(":"),
                target.file_name().unwrap().to_string_lossy()
            ));
            Ok(())
        }

        fn unmount(&self, target: &Path, detach: bool) -> Result<(), MountError> {
            self.calls
                .borrow_mut()
                .push(format!("unmount detach={detach}"));
            match self.unmount_errors.borrow_mut().pop() {
                Some(errno) => Err(MountError::Syscall {
                    op: "unmounting".into(),
                    target: target.to_path_buf(),
                    source: std::io::Error::from_raw_os_error(errno),
                }),
                None => Ok(()),
            }
        }
    }

    fn layers(root: &Path, names: &[&str]) -> Vec<PathBuf> {
        names
            .iter()
            .map(|n| {
                let dir = root.join(n);
                std::fs::create_dir_all(&dir).unwrap();
                dir
            })
            .collect()
    }

    #[test]
    fn mounts_the_top_layer_first() {
        let tmp = tempfile::tempdir().unwrap();
        let layers = layers(tmp.path(), &["base", "middle", "top"]);
        let dir = tmp.path().join("c1");
        std::fs::create_dir(&dir).unwrap();
        let mounter = FakeMounter::default();
        let rootfs = mount_rootfs(&mounter, &dir, &layers).unwrap();
        assert_eq!(rootfs, dir.join("rootfs"));
        assert_eq!(*mounter.calls.borrow(), ["mount top:middle:base on rootfs"]);
        let mode = std::fs::metadata(dir.join("upper"))
            .unwrap()
            .permissions()
            .mode()
            & 0o7777;
        assert_eq!(mode, 0o755);
    }

    #[test]
    fn refuses_missing_layers() {
        let tmp = tempfile::tempdir().unwrap();
        let mounter = FakeMounter::default();
        let err = mount_rootfs(&mounter, tmp.path(), &[]).unwrap_err();
        assert!(matches!(err, RootfsError::NoLayers { .. }), "{err}");
        let err = mount_rootfs(&mounter, tmp.path(), &[tmp.path().join("gone")]).unwrap_err();
        assert!(err.to_string().contains("gone"), "{err}");
        assert!(mounter.calls.borrow().is_empty());
    }

    #[test]
    fn teardown_is_repeatable_and_detaches_when_busy() {
        let tmp = tempfile::tempdir().unwrap();
        let layers = layers(tmp.path(), &["base"]);
        let dir = tmp.path().join("c1");
        std::fs::create_dir(&dir).unwrap();
        let mounter = FakeMounter::default();
        mount_rootfs(&mounter, &dir, &layers).unwrap();
        std::fs::write(dir.join("upper/written"), "x").unwrap();
        mounter.unmount_errors.borrow_mut().push(EBUSY);
        unmount_rootfs(&mounter, &dir).unwrap();
        assert!(
            !dir.join("upper").exists()
                && !dir.join("work").exists()
                && !dir.join("rootfs").exists()
        );
        // Not mounted any more (EINVAL) and already removed: still fine.
        mounter.unmount_errors.borrow_mut().push(22);
        unmount_rootfs(&mounter, &dir).unwrap();
        assert_eq!(
            *mounter.calls.borrow(),
            [
                "mount base on rootfs",
                "unmount detach=false",
                "unmount detach=true",
                "unmount detach=false"
            ]
        );
        mounter.unmount_errors.borrow_mut().push(1);
        assert!(unmount_rootfs(&mounter, &dir).is_err(), "EPERM is an error");
    }
}

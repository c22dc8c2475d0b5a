//! Mounts: overlayfs for container root filesystems, unmounting, shared propagation for
//! volumes with `mountPropagation`, and hiding a mount from a child process (in a private
//! mount namespace of its own).
//!
//! # Many lower layers
//!
//! `mount(2)` takes overlayfs' options as one string of at most a page (4 KiB), and a long
//! `lowerdir=a:b:c...` list of snapshot paths runs past it at a few dozen layers. We use the
//! new mount API instead: `fsopen("overlay")` and one `fsconfig(lowerdir+, <path>)` call per
//! layer (Linux 6.8), so there is no total limit beyond overlayfs' own 500 layers (each value
//! may be up to 255 bytes). On older kernels, which refuse `lowerdir+`, we fall back to
//! `mount(2)` and name every directory through an `O_PATH` descriptor we hold open during the
//! call (`/proc/self/fd/<n>`, about 18 bytes a layer), which fits about 200 layers in a page
//! and needs no escaping of `:` or `,` in paths; beyond that the mount fails with
//! [`MountError::TooManyLayers`].

use std::ffi::CString;
use std::fmt;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use rustix::fd::{AsFd, AsRawFd, OwnedFd};
use rustix::fs::{CWD, Mode, OFlags};
use rustix::io::Errno;
use rustix::mount::{
    FsMountFlags, FsOpenFlags, MountAttrFlags, MountFlags, MountPropagationFlags, MoveMountFlags,
    UnmountFlags,
};

/// `mount(2)` data is copied in one page.
const MOUNT_DATA_MAX: usize = 4095;

/// What went wrong with a mount syscall.
#[derive(Debug, thiserror::Error)]
pub enum MountError {
    /// The syscall failed.
    #[error("{op} {}: {source}", .target.display())]
    Syscall {
        /// What we were doing (e.g. `mounting overlay on`).
        op: String,
        /// The mount point.
        target: PathBuf,
        /// The `errno`.
        source: io::Error,
    },
    /// The overlay needs more option data than one page holds (old kernels only).
    #[error("mounting overlay on {}: {layers} lower layers do not fit in one page of mount options", .target.display())]
    TooManyLayers {
        /// The mount point.
        target: PathBuf,
        /// How many lower layers were asked for.
        layers: usize,
    },
    /// An overlay needs at least one lower layer.
    #[error("mounting overlay on {}: no lower layers", .target.display())]
    NoLayers {
        /// The mount point.
        target: PathBuf,
    },
}

impl MountError {
    fn syscall(op: impl Into<String>, target: &Path, errno: Errno) -> MountError {
        MountError::Syscall {
            op: op.into(),
            target: target.to_path_buf(),
            source: errno.into(),
        }
    }

    /// The `errno` of a failed syscall, if that is what failed.
    pub fn raw_os_error(&self) -> Option<i32> {
        match self {
            MountError::Syscall { source, .. } => source.raw_os_error(),
            _ => None,
        }
    }
}

/// The directories of an overlay mount.
#[derive(Clone, Copy)]
pub struct Overlay<'a> {
    /// Read-only layers, **top first** (overlayfs' order).
    pub lowers: &'a [PathBuf],
    /// The writable layer.
    pub upper: &'a Path,
    /// overlayfs' scratch directory, on the same filesystem as `upper`.
    pub work: &'a Path,
    /// overlayfs' `volatile`: no syncs of the upper filesystem, on `fsync` nor on unmount
    /// (where an ordinary overlay flushes the whole filesystem the upper layer is on). For
    /// writable layers nobody reads after a crash. Left out on kernels without it (< 5.10).
    pub volatile: bool,
}

impl fmt::Debug for Overlay<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Overlay")
            .field("lowers", &self.lowers.len())
            .field("upper", &self.upper)
            .field("work", &self.work)
            .finish()
    }
}

/// Mount operations, behind a trait so callers' logic can be tested with a fake.
pub trait Mounter {
    /// Mounts an overlay at `target` (an existing directory).
    fn mount_overlay(&self, overlay: Overlay<'_>, target: &Path) -> Result<(), MountError>;
    /// Unmounts `target` (not following a final symbolic link); `detach` is `MNT_DETACH`
    /// (lazy: the mount disappears now, the filesystem when its last user goes).
    fn unmount(&self, target: &Path, detach: bool) -> Result<(), MountError>;
}

/// The real syscalls.
#[derive(Debug, Default, Clone, Copy)]
pub struct HostMounter;

impl Mounter for HostMounter {
    fn mount_overlay(&self, overlay: Overlay<'_>, target: &Path) -> Result<(), MountError> {
        mount_overlay(overlay, target)
    }

    fn unmount(&self, target: &Path, detach: bool) -> Result<(), MountError> {
        unmount(target, detach)
    }
}

/// Mounts a new tmpfs at `target` (an existing directory) with `options` as its data (e.g.
/// `size=1048576`; empty for the kernel's defaults: half of RAM, root mode 1777).
pub fn mount_tmpfs(target: &Path, options: &str) -> Result<(), MountError> {
    tmpfs("tmpfs", target, MountFlags::empty(), options)
}

fn tmpfs(source: &str, target: &Path, flags: MountFlags, data: &str) -> Result<(), MountError> {
    let data = CString::new(data).map_err(|_| {
        MountError::syscall(
            "mounting tmpfs (options with a NUL byte) on",
            target,
            Errno::INVAL,
        )
    })?;
    rustix::mount::mount(source, target, "tmpfs", flags, data.as_c_str())
        .map_err(|errno| MountError::syscall("mounting tmpfs on", target, errno))
}

/// Mounts an overlay at `target` (see the module documentation for how many layers fit).
pub fn mount_overlay(overlay: Overlay<'_>, target: &Path) -> Result<(), MountError> {
    if overlay.lowers.is_empty() {
        return Err(MountError::NoLayers {
            target: target.to_path_buf(),
        });
    }
    match mount_overlay_fsconfig(overlay, target) {
        Err(NewApi::Unsupported) => mount_overlay_legacy(overlay, target),
        Err(NewApi::Failed(err)) => Err(err),
        Ok(()) => Ok(()),
    }
}

enum NewApi {
    /// The kernel lacks `fsopen` or overlayfs' `lowerdir+`: use `mount(2)`.
    Unsupported,
    Failed(MountError),
}

fn mount_overlay_fsconfig(overlay: Overlay<'_>, target: &Path) -> Result<(), NewApi> {
    let failed = |op: String, errno: Errno| NewApi::Failed(MountError::syscall(op, target, errno));
    let fs = match rustix::mount::fsopen("overlay", FsOpenFlags::FSOPEN_CLOEXEC) {
        Ok(fs) => fs,
        // No new mount API (old kernel, or a seccomp filter that refuses it): try mount(2),
        // which reports a genuine lack of privilege the same way.
        Err(Errno::NOSYS | Errno::PERM) => return Err(NewApi::Unsupported),
        Err(errno) => return Err(failed("opening overlayfs to mount on".into(), errno)),
    };
    for (n, lower) in overlay.lowers.iter().enumerate() {
        match rustix::mount::fsconfig_set_string(&fs, "lowerdir+", lower.as_os_str()) {
            Ok(()) => {}
            // Before Linux 6.8 overlayfs does not know the key.
            Err(Errno::INVAL) if n == 0 && !kernel_knows_lowerdir_plus(&fs) => {
                return Err(NewApi::Unsupported);
            }
            Err(errno) => {
                return Err(failed(
                    format!("overlay lower layer {} (lowerdir+) for", lower.display()),
                    errno,
                ));
            }
        }
    }
    for (key, dir) in [("upperdir", overlay.upper), ("workdir", overlay.work)] {
        rustix::mount::fsconfig_set_string(&fs, key, dir.as_os_str())
            .map_err(|errno| failed(format!("overlay {key} {} for", dir.display()), errno))?;
    }
    if overlay.volatile {
        match rustix::mount::fsconfig_set_flag(&fs, "volatile") {
            Ok(()) | Err(Errno::INVAL) => {}
            Err(errno) => return Err(failed("overlay volatile for".into(), errno)),
        }
    }
    rustix::mount::fsconfig_create(&fs)
        .map_err(|errno| failed("creating overlay for".into(), errno))?;
    let mount = rustix::mount::fsmount(&fs, FsMountFlags::FSMOUNT_CLOEXEC, MountAttrFlags::empty())
        .map_err(|errno| failed("making overlay mount for".into(), errno))?;
    rustix::mount::move_mount(
        mount.as_fd(),
        "",
        CWD,
        target,
        MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH,
    )
    .map_err(|errno| failed("attaching overlay at".into(), errno))
}

/// Whether an `EINVAL` for `lowerdir+` means a bad path rather than an unknown key: the
/// kernel answers an unknown key the same way for any value, so we ask about `/`.
fn kernel_knows_lowerdir_plus(fs: &OwnedFd) -> bool {
    rustix::mount::fsconfig_set_string(fs, "lowerdir+", "/").is_ok()
}

fn mount_overlay_legacy(overlay: Overlay<'_>, target: &Path) -> Result<(), MountError> {
    let open = |dir: &Path| {
        rustix::fs::open(
            dir,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|errno| {
            MountError::syscall(
                format!("opening overlay layer {} for", dir.display()),
                target,
                errno,
            )
        })
    };
    let lowers = overlay
        .lowers
        .iter()
        .map(|dir| open(dir))
        .collect::<Result<Vec<_>, _>>()?;
    let upper = open(overlay.upper)?;
    let work = open(overlay.work)?;
    let fd_path = |fd: &OwnedFd| format!("/proc/self/fd/{}", fd.as_raw_fd());
    let data = format!(
        "lowerdir={},upperdir={},workdir={}",
        lowers.iter().map(fd_path).collect::<Vec<_>>().join(":"),
        fd_path(&upper),
        fd_path(&work)
    );
    if data.len() > MOUNT_DATA_MAX {
        return Err(MountError::TooManyLayers {
            target: target.to_path_buf(),
            layers: lowers.len(),
        });
    }
    let mount = |data: String| {
        let data = CString::new(data).map_err(|_| MountError::NoLayers {
            target: target.to_path_buf(),
        })?;
        rustix::mount::mount(
            "overlay",
            target,
            "overlay",
            MountFlags::empty(),
            data.as_c_str(),
        )
        .map_err(|errno| MountError::syscall("mounting overlay on", target, errno))
    };
    if overlay.volatile {
        match mount(format!("{data},volatile")) {
            // A kernel older than `volatile` (5.10) refuses the whole option string.
            Err(err) if err.raw_os_error() == Some(Errno::INVAL.raw_os_error()) => {}
            done => return done,
        }
    }
    mount(data)
}

/// Mounts a tmpfs at `target` (an existing directory), `nosuid,nodev,noexec`, with tmpfs
/// options `data` (e.g. `mode=1777,size=65536k`): a pod's shared `/dev/shm`.
pub fn mount_shm(target: &Path, data: &str) -> Result<(), MountError> {
    tmpfs(
        "shm",
        target,
        MountFlags::NOSUID | MountFlags::NODEV | MountFlags::NOEXEC,
        data,
    )
}

/// Unmounts `target`; see [`Mounter::unmount`].
pub fn unmount(target: &Path, detach: bool) -> Result<(), MountError> {
    let mut flags = UnmountFlags::NOFOLLOW;
    if detach {
        flags |= UnmountFlags::DETACH;
    }
    rustix::mount::unmount(target, flags)
        .map_err(|errno| MountError::syscall("unmounting", target, errno))
}

/// Makes the mount at `target` and every mount under it shared (`mount --make-rshared`), so
/// that mounts made later beneath it propagate to its copies (containers' slave binds).
pub fn make_rshared(target: &Path) -> Result<(), MountError> {
    rustix::mount::mount_change(
        target,
        MountPropagationFlags::SHARED | MountPropagationFlags::REC,
    )
    .map_err(|errno| MountError::syscall("making shared", target, errno))
}

/// Bind-mounts the directory `target` onto itself (with the mounts under it), so that it is a
/// mount point of its own whose propagation can be changed without touching its parent's.
pub fn bind_onto_itself(target: &Path) -> Result<(), MountError> {
    rustix::mount::mount_bind_recursive(target, target)
        .map_err(|errno| MountError::syscall("bind-mounting onto itself", target, errno))
}

/// Whether `errno` from [`unmount`] means "nothing is mounted there" (`EINVAL`) or "no such
/// path" (`ENOENT`), which teardown treats as already done.
pub fn is_not_mounted(err: &MountError) -> bool {
    matches!(err.raw_os_error(), Some(code) if code == Errno::INVAL.raw_os_error() || code == Errno::NOENT.raw_os_error())
}

/// Makes `command` run in a mount namespace of its own in which `mount` is unmounted: between
/// fork and exec the child unshares its mount namespace, makes every mount a slave of the
/// host's (so the unmount does not propagate back) and detaches `mount`. Only that child and
/// what it starts see the difference.
///
/// Used for crun on hybrid cgroup hosts, which refuses to run while a cgroup2 mount with
/// controllers sits beside the v1 hierarchies (it then drives the v1 hierarchies alone).
pub fn hide_mount_from_child(command: &mut Command, mount: &Path) -> io::Result<()> {
    let mount = CString::new(mount.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "a mount path with a NUL byte"))?;
    let hide = move || -> io::Result<()> {
        // SAFETY: CLONE_NEWNS does not share or unshare file descriptor tables, so no thread
        // can observe descriptors from another table (and the forked child has one thread).
        unsafe { rustix::thread::unshare_unsafe(rustix::thread::UnshareFlags::NEWNS) }?;
        // Downstream (slave), not private: our unmount stays in this namespace, while mounts
        // the host makes later (under volumes) still reach it and the containers it creates.
        rustix::mount::mount_change(
            c"/",
            MountPropagationFlags::REC | MountPropagationFlags::DOWNSTREAM,
        )?;
        match rustix::mount::unmount(
            mount.as_c_str(),
            UnmountFlags::DETACH | UnmountFlags::NOFOLLOW,
        ) {
            // Already absent in this namespace: nothing to hide.
            Ok(()) | Err(Errno::INVAL) | Err(Errno::NOENT) => Ok(()),
            Err(errno) => Err(errno.into()),
        }
    };
    // SAFETY: the hook runs in the forked child before exec, where only async-signal-safe
    // work is allowed: it makes three raw syscalls through rustix without allocating (the
    // paths are a CString prepared here and a C string literal) and turns an errno into an
    // io::Error, which does not allocate either.
    unsafe { command.pre_exec(hide) };
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// These tests mount: they need root (CI runs as root).
    fn require_root() {
        assert!(
            rustix::process::geteuid().is_root(),
            "the mount tests need root"
        );
    }

    /// `count` layer directories, each with its own file and its number in `shared`.
    fn make_layers(root: &Path, count: usize) -> Vec<PathBuf> {
        (0..count)
            .map(|n| {
                let dir = root.join("l").join(n.to_string());
                std::fs::create_dir_all(&dir).unwrap();
                std::fs::write(dir.join(format!("layer-{n}")), "").unwrap();
                std::fs::write(dir.join("shared"), n.to_string()).unwrap();
                dir
            })
            .collect()
    }

    fn check_overlay(
        root: &Path,
        bottom_first: &[PathBuf],
        mount: impl Fn(Overlay<'_>, &Path) -> Result<(), MountError>,
    ) {
        let (upper, work, target) = (root.join("upper"), root.join("work"), root.join("merged"));
        for dir in [&upper, &work, &target] {
            std::fs::create_dir_all(dir).unwrap();
        }
        let lowers: Vec<PathBuf> = bottom_first.iter().rev().cloned().collect();
        mount(
            Overlay {
                lowers: &lowers,
                upper: &upper,
                work: &work,
                volatile: true,
            },
            &target,
        )
        .unwrap();
        let top = bottom_first.len() - 1;
        let seen = std::fs::read_to_string(target.join("shared"));
        let all_there = (0..bottom_first.len()).all(|n| target.join(format!("layer-{n}")).exists());
        std::fs::write(target.join("new"), "written").unwrap();
        unmount(&target, false).unwrap();
        assert_eq!(
            seen.unwrap(),
            top.to_string(),
            "the first lower is the top layer"
        );
        assert!(all_there, "every layer is visible");
        assert_eq!(
            std::fs::read_to_string(upper.join("new")).unwrap(),
            "written"
        );
        assert!(!target.join("new").exists());
        std::fs::remove_dir_all(&upper).unwrap();
        std::fs::remove_dir_all(&work).unwrap();
    }

    #[test]
    fn mounts_more_layers_than_a_page_of_options_holds() {
        require_root();
        let tmp = tempfile::tempdir().unwrap();
        let layers = make_layers(tmp.path(), 300);
        let joined: usize = layers.iter().map(|l| l.as_os_str().len() + 1).sum();
        assert!(
            joined > MOUNT_DATA_MAX,
            "the test must exceed the old limit ({joined} bytes)"
        );
        check_overlay(tmp.path(), &layers, mount_overlay);
    }

    #[test]
    fn the_mount2_fallback_names_layers_by_descriptor() {
        require_root();
        let tmp = tempfile::tempdir().unwrap();
        let layers = make_layers(tmp.path(), 150);
        check_overlay(tmp.path(), &layers, mount_overlay_legacy);
        let many = make_layers(&tmp.path().join("many"), 300);
        let lowers: Vec<PathBuf> = many.iter().rev().cloned().collect();
        let dir = tmp.path();
        let err = mount_overlay_legacy(
            Overlay {
                lowers: &lowers,
                upper: dir,
                work: dir,
                volatile: true,
            },
            dir,
        )
        .unwrap_err();
        assert!(
            matches!(err, MountError::TooManyLayers { layers: 300, .. }),
            "{err}"
        );
    }

    #[test]
    fn hides_a_mount_from_a_child_only() {
        require_root();
        let tmp = tempfile::tempdir().unwrap();
        let point = tmp.path().join("hidden");
        std::fs::create_dir(&point).unwrap();
        rustix::mount::mount("tmpfs", &point, "tmpfs", MountFlags::empty(), None).unwrap();
        let mut command = Command::new("cat");
        command.arg("/proc/self/mountinfo");
        hide_mount_from_child(&mut command, &point).unwrap();
        let output = command.output();
        let ours = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        unmount(&point, false).unwrap();
        let theirs = String::from_utf8(output.unwrap().stdout).unwrap();
        let name = point.to_string_lossy().into_owned();
        assert!(ours.contains(&name), "still mounted for us");
        assert!(
            !theirs.is_empty() && !theirs.contains(&name),
            "hidden from the child:\n{theirs}"
        );
    }

    #[test]
    fn an_overlay_needs_a_lower_layer() {
        let dir = Path::new("/nonexistent");
        let err = mount_overlay(
            Overlay {
                lowers: &[],
                upper: dir,
                work: dir,
                volatile: true,
            },
            dir,
        )
        .unwrap_err();
        assert!(matches!(err, MountError::NoLayers { .. }), "{err}");
    }

    #[test]
    fn unmounting_a_plain_directory_is_not_mounted() {
        let dir = std::env::temp_dir();
        let err = unmount(&dir, false).unwrap_err();
        assert!(
            is_not_mounted(&err) || err.raw_os_error() == Some(Errno::PERM.raw_os_error()),
            "{err}"
        );
    }
}

//! [`RootDir`]: the real [`TreeFs`], every path resolved with `openat2(RESOLVE_IN_ROOT)`.

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

use rustix::fs::{
    self as rfs, AtFlags, FileType, Gid, Mode, OFlags, ResolveFlags, Timespec, Timestamps, Uid,
    XattrFlags,
};
use rustix::io::Errno;

use super::{FsError, Kind, Metadata, Special, Times, TreeFs, Xattr};

/// Directories nested deeper than this are not removed by [`TreeFs::remove_all`] (each level
/// holds a descriptor while its children go).
const MAX_REMOVE_DEPTH: u32 = 4096;

/// How often `openat2` is retried when the kernel reports a concurrent rename (`EAGAIN`).
const OPENAT2_RETRIES: usize = 32;

/// A directory every path of which is resolved inside it; see the [module](super) docs.
///
/// Holds a read-only directory descriptor of the root (so the root's own metadata can be
/// changed through it) and the last parent directory it resolved, reused while entries keep
/// landing in the same directory and dropped whenever something is removed.
pub struct RootDir {
    fd: OwnedFd,
    path: PathBuf,
    parent: Option<(OsString, OwnedFd)>,
}

impl fmt::Debug for RootDir {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RootDir")
            .field("path", &self.path)
            .field("fd", &self.fd.as_raw_fd())
            .finish_non_exhaustive()
    }
}

impl RootDir {
    /// Opens directory `path` (trusted: symbolic links in it are followed) as a root.
    pub fn open(path: &Path) -> Result<RootDir, FsError> {
        let fd = rfs::open(
            path,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| FsError::new("open root directory", path, e.raw_os_error()))?;
        Ok(RootDir {
            fd,
            path: path.to_path_buf(),
            parent: None,
        })
    }

    /// The path the root was opened with.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether the root directory has no entries.
    pub fn is_empty(&self) -> Result<bool, FsError> {
        let err = |e: Errno| FsError::new("list root directory", Path::new(""), e.raw_os_error());
        let mut dir = rfs::Dir::read_from(&self.fd).map_err(err)?;
        while let Some(entry) = dir.read() {
            let entry = entry.map_err(err)?;
            let name = entry.file_name().to_bytes();
            if name != b"." && name != b".." {
                return Ok(false);
            }
        }
        Ok(true)
    }

    fn parent_of<'p>(
        &mut self,
        path: &'p Path,
    ) -> Result<Option<(BorrowedFd<'_>, &'p OsStr)>, FsError> {
        parent_of(&self.fd, &mut self.parent, path)
    }

    /// Runs `f` on (parent descriptor, final component) of `path`, which must not be the root.
    fn at<T>(
        &mut self,
        op: &'static str,
        path: &Path,
        f: impl FnOnce(BorrowedFd<'_>, &OsStr) -> rustix::io::Result<T>,
    ) -> Result<T, FsError> {
        match self.parent_of(path)? {
            Some((parent, name)) => f(parent, name).map_err(|e| err(op, path, e)),
            None => Err(err(op, path, Errno::INVAL)),
        }
    }
}

/// The descriptor of `path`'s parent (the root itself, the cached one, or newly resolved)
/// and the final component; `None` for the root itself.
fn parent_of<'a, 'p>(
    root: &'a OwnedFd,
    cache: &'a mut Option<(OsString, OwnedFd)>,
    path: &'p Path,
) -> Result<Option<(BorrowedFd<'a>, &'p OsStr)>, FsError> {
    let Some((parent, name)) = split(path)? else {
        return Ok(None);
    };
    if parent.is_empty() {
        return Ok(Some((root.as_fd(), name)));
    }
    let cached = matches!(cache, Some((p, _)) if p.as_os_str() == parent);
    if !cached {
        let fd = open_in_root(
            root.as_fd(),
            parent,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        )
        .map_err(|e| err("open parent directory of", path, e))?;
        *cache = Some((parent.to_os_string(), fd));
    }
    Ok(cache.as_ref().map(|(_, fd)| (fd.as_fd(), name)))
}

fn err(op: &'static str, path: &Path, errno: Errno) -> FsError {
    FsError::new(op, path, errno.raw_os_error())
}

/// Splits a relative path into parent and final component; `None` for the root itself (an
/// empty path or only slashes). A final `.` or `..` is refused: operating on it relative to
/// the parent descriptor could reach above the root.
fn split(path: &Path) -> Result<Option<(&OsStr, &OsStr)>, FsError> {
    let mut bytes = path.as_os_str().as_bytes();
    while let [rest @ .., b'/'] = bytes {
        bytes = rest;
    }
    if bytes.is_empty() {
        return Ok(None);
    }
    let (parent, name) = match bytes.iter().rposition(|&b| b == b'/') {
        Some(i) => (&bytes[..i], &bytes[i + 1..]),
        None => (&bytes[..0], bytes),
    };
    if name == b"." || name == b".." {
        return Err(err("resolve", path, Errno::INVAL));
    }
    let parent = if parent.iter().all(|&b| b == b'/') {
        &parent[..0]
    } else {
        parent
    };
    Ok(Some((OsStr::from_bytes(parent), OsStr::from_bytes(name))))
}

/// `openat2(root, path, RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)`, retried on `EAGAIN`.
fn open_in_root(root: BorrowedFd<'_>, path: &OsStr, flags: OFlags) -> rustix::io::Result<OwnedFd> {
    let resolve = ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS;
    for _ in 0..OPENAT2_RETRIES {
        match rfs::openat2(root, path, flags, Mode::empty(), resolve) {
            Err(Errno::AGAIN) => continue,
            other => return other,
        }
    }
    Err(Errno::AGAIN)
}

fn kind_of(file_type: FileType) -> Option<Kind> {
    Some(match file_type {
        FileType::Directory => Kind::Dir,
        FileType::RegularFile => Kind::File,
        FileType::Symlink => Kind::Symlink,
        FileType::CharacterDevice => Kind::CharDevice,
        FileType::BlockDevice => Kind::BlockDevice,
        FileType::Fifo => Kind::Fifo,
        FileType::Socket => Kind::Socket,
        FileType::Unknown => return None,
    })
}

fn timestamps(times: Times) -> Timestamps {
    let spec = |t: super::Timestamp| Timespec {
        tv_sec: t.secs,
        tv_nsec: i64::from(t.nanos.min(999_999_999)),
    };
    Timestamps {
        last_access: spec(times.atime),
        last_modification: spec(times.mtime),
    }
}

/// `/proc/self/fd/<fd>` or `/proc/self/fd/<fd>/<name>`: the kernel resolves the descriptor
/// itself (a magic link) and, with the `l*` syscalls, does not follow `name`.
fn proc_path(fd: BorrowedFd<'_>, name: Option<&OsStr>) -> OsString {
    let mut path = format!("/proc/self/fd/{}", fd.as_raw_fd()).into_bytes();
    if let Some(name) = name {
        path.push(b'/');
        path.extend_from_slice(name.as_bytes());
    }
    OsString::from_vec(path)
}

/// Owner, mode, extended attributes and times through a descriptor open on the object.
fn meta_by_fd(fd: BorrowedFd<'_>, meta: &Metadata<'_>) -> Result<(), (&'static str, Errno)> {
    rfs::fchown(
        fd,
        Some(Uid::from_raw(meta.uid)),
        Some(Gid::from_raw(meta.gid)),
    )
    .map_err(|e| ("change owner of", e))?;
    rfs::fchmod(fd, Mode::from_raw_mode(meta.mode & 0o7777)).map_err(|e| ("change mode of", e))?;
    for Xattr { name, value } in meta.xattrs {
        rfs::fsetxattr(fd, name.as_slice(), value, XattrFlags::empty())
            .map_err(|e| ("set extended attribute on", e))?;
    }
    if let Some(times) = meta.times {
        rfs::futimens(fd, &timestamps(times)).map_err(|e| ("set times of", e))?;
    }
    Ok(())
}

/// Owner, mode, extended attributes and times of `name` in `parent`, never following it.
fn meta_by_name(
    parent: BorrowedFd<'_>,
    name: &OsStr,
    kind: Kind,
    meta: &Metadata<'_>,
) -> Result<(), (&'static str, Errno)> {
    rfs::chownat(
        parent,
        name,
        Some(Uid::from_raw(meta.uid)),
        Some(Gid::from_raw(meta.gid)),
        AtFlags::SYMLINK_NOFOLLOW,
    )
    .map_err(|e| ("change owner of", e))?;
    if kind != Kind::Symlink {
        // No fchmodat(AT_SYMLINK_NOFOLLOW) before Linux 6.6: pin the object with O_PATH,
        // check it is not a symbolic link, and chmod it through its /proc magic link.
        let fd = rfs::openat(
            parent,
            name,
            OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| ("change mode of", e))?;
        let stat = rfs::fstat(&fd).map_err(|e| ("change mode of", e))?;
        if FileType::from_raw_mode(stat.st_mode) == FileType::Symlink {
            return Err(("change mode of", Errno::LOOP));
        }
        rfs::chmod(
            proc_path(fd.as_fd(), None),
            Mode::from_raw_mode(meta.mode & 0o7777),
        )
        .map_err(|e| ("change mode of", e))?;
    }
    if !meta.xattrs.is_empty() {
        let path = proc_path(parent, Some(name));
        for Xattr { name, value } in meta.xattrs {
            rfs::lsetxattr(&path, name.as_slice(), value, XattrFlags::empty())
                .map_err(|e| ("set extended attribute on", e))?;
        }
    }
    if let Some(times) = meta.times {
        rfs::utimensat(parent, name, &timestamps(times), AtFlags::SYMLINK_NOFOLLOW)
            .map_err(|e| ("set times of", e))?;
    }
    Ok(())
}

/// Removes directory `name` in `parent` and everything below it, never following links.
fn remove_tree(parent: BorrowedFd<'_>, name: &OsStr, depth: u32) -> rustix::io::Result<()> {
    if depth > MAX_REMOVE_DEPTH {
        return Err(Errno::NAMETOOLONG);
    }
    let fd = rfs::openat(
        parent,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    // Read all names first: removing while reading may skip entries.
    let mut children = Vec::new();
    let mut dir = rfs::Dir::read_from(&fd)?;
    while let Some(entry) = dir.read() {
        let entry = entry?;
        let child = entry.file_name().to_bytes();
        if child != b"." && child != b".." {
            children.push((OsString::from_vec(child.to_vec()), entry.file_type()));
        }
    }
    drop(dir);
    for (child, file_type) in children {
        let file_type = match file_type {
            FileType::Unknown => {
                let stat = rfs::statat(&fd, &child, AtFlags::SYMLINK_NOFOLLOW)?;
                FileType::from_raw_mode(stat.st_mode)
            }
            known => known,
        };
        if file_type == FileType::Directory {
            remove_tree(fd.as_fd(), &child, depth + 1)?;
        } else {
            rfs::unlinkat(&fd, &child, AtFlags::empty())?;
        }
    }
    rfs::unlinkat(parent, name, AtFlags::REMOVEDIR)
}

impl TreeFs for RootDir {
    type File = File;

    fn kind(&mut self, path: &Path) -> Result<Option<Kind>, FsError> {
        let found = match self.parent_of(path) {
            Ok(None) => return Ok(Some(Kind::Dir)),
            Ok(Some((parent, name))) => rfs::statat(parent, name, AtFlags::SYMLINK_NOFOLLOW),
            Err(e) if e.raw_os_error() == Errno::NOENT.raw_os_error() => return Ok(None),
            Err(e) => return Err(e),
        };
        match found {
            Ok(stat) => Ok(kind_of(FileType::from_raw_mode(stat.st_mode))),
            Err(Errno::NOENT) => Ok(None),
            Err(e) => Err(err("inspect", path, e)),
        }
    }

    fn mkdir(&mut self, path: &Path) -> Result<(), FsError> {
        self.at("create directory", path, |parent, name| {
            rfs::mkdirat(parent, name, Mode::from_raw_mode(0o700))
        })
    }

    fn create_file(&mut self, path: &Path) -> Result<File, FsError> {
        let fd = self.at("create file", path, |parent, name| {
            rfs::openat(
                parent,
                name,
                OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::from_raw_mode(0o600),
            )
        })?;
        Ok(File::from(fd))
    }

    fn finish_file(&mut self, path: &Path, file: File, meta: &Metadata<'_>) -> Result<(), FsError> {
        meta_by_fd(file.as_fd(), meta).map_err(|(op, e)| err(op, path, e))
    }

    fn symlink(&mut self, path: &Path, target: &OsStr) -> Result<(), FsError> {
        self.at("create symbolic link", path, |parent, name| {
            rfs::symlinkat(target, parent, name)
        })
    }

    fn hardlink(&mut self, path: &Path, target: &Path) -> Result<(), FsError> {
        let Some((target_parent, target_name)) = split(target)? else {
            return Err(err("create hard link to", target, Errno::PERM));
        };
        let target_parent_fd = if target_parent.is_empty() {
            None
        } else {
            Some(
                open_in_root(
                    self.fd.as_fd(),
                    target_parent,
                    OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
                )
                .map_err(|e| err("open parent directory of", target, e))?,
            )
        };
        let target_dir = target_parent_fd.as_ref().unwrap_or(&self.fd).as_fd();
        match parent_of(&self.fd, &mut self.parent, path)? {
            Some((parent, name)) => {
                rfs::linkat(target_dir, target_name, parent, name, AtFlags::empty())
            }
            None => Err(Errno::EXIST),
        }
        .map_err(|e| err("create hard link", path, e))
    }

    fn mknod(&mut self, path: &Path, special: Special) -> Result<(), FsError> {
        let (file_type, mode, dev) = match special {
            Special::CharDevice { major, minor } => {
                (FileType::CharacterDevice, 0o600, rfs::makedev(major, minor))
            }
            Special::BlockDevice { major, minor } => {
                (FileType::BlockDevice, 0o600, rfs::makedev(major, minor))
            }
            Special::Fifo => (FileType::Fifo, 0o600, 0),
            Special::Whiteout => (FileType::CharacterDevice, 0, rfs::makedev(0, 0)),
        };
        self.at("create special file", path, |parent, name| {
            rfs::mknodat(parent, name, file_type, Mode::from_raw_mode(mode), dev)
        })
    }

    fn remove_all(&mut self, path: &Path) -> Result<(), FsError> {
        let result = self.at("remove", path, |parent, name| {
            let stat = rfs::statat(parent, name, AtFlags::SYMLINK_NOFOLLOW)?;
            if FileType::from_raw_mode(stat.st_mode) == FileType::Directory {
                remove_tree(parent, name, 0)
            } else {
                rfs::unlinkat(parent, name, AtFlags::empty())
            }
        });
        // The cached parent may have been below what went.
        self.parent = None;
        result
    }

    fn set_metadata(
        &mut self,
        path: &Path,
        kind: Kind,
        meta: &Metadata<'_>,
    ) -> Result<(), FsError> {
        let result = match self.parent_of(path)? {
            None => meta_by_fd(self.fd.as_fd(), meta),
            Some((parent, name)) if kind == Kind::Dir => rfs::openat(
                parent,
                name,
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .map_err(|e| ("open directory", e))
            .and_then(|dir| meta_by_fd(dir.as_fd(), meta)),
            Some((parent, name)) => meta_by_name(parent, name, kind, meta),
        };
        result.map_err(|(op, e)| err(op, path, e))
    }

    fn set_xattr(&mut self, path: &Path, name: &[u8], value: &[u8]) -> Result<(), FsError> {
        let op = "set extended attribute on";
        match self.parent_of(path)? {
            None => rfs::fsetxattr(&self.fd, name, value, XattrFlags::empty()),
            Some((parent, child)) => rfs::lsetxattr(
                proc_path(parent, Some(child)),
                name,
                value,
                XattrFlags::empty(),
            ),
        }
        .map_err(|e| err(op, path, e))
    }

    fn set_times(&mut self, path: &Path, times: Times) -> Result<(), FsError> {
        let ts = timestamps(times);
        match self.parent_of(path)? {
            None => rfs::futimens(&self.fd, &ts),
            Some((parent, name)) => rfs::utimensat(parent, name, &ts, AtFlags::SYMLINK_NOFOLLOW),
        }
        .map_err(|e| err("set times of", path, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_paths() {
        let s = |p: &str| {
            split(Path::new(p)).map(|o| {
                o.map(|(a, b)| {
                    (
                        a.to_string_lossy().into_owned(),
                        b.to_string_lossy().into_owned(),
                    )
                })
            })
        };
        assert_eq!(s("").unwrap(), None);
        assert_eq!(s("/").unwrap(), None);
        assert_eq!(s("a").unwrap(), Some(("".into(), "a".into())));
        assert_eq!(s("/a").unwrap(), Some(("".into(), "a".into())));
        assert_eq!(s("a/b/c/").unwrap(), Some(("a/b".into(), "c".into())));
        assert!(s("a/..").is_err());
        assert!(s("..").is_err());
        assert!(s("a/.").is_err());
    }
}

/// Against real temporary directories; needs root (owners, device nodes, `trusted.*`).
#[cfg(test)]
mod real {
    use std::fs;
    use std::io::Write;
    use std::os::unix::fs::{MetadataExt, symlink};

    use super::*;
    use crate::fs::{FsErrorKind, Timestamp, read_xattr};

    struct Bed {
        _tmp: tempfile::TempDir,
        root: PathBuf,
        outside: PathBuf,
        dir: RootDir,
    }

    fn bed() -> Bed {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("root");
        let outside = tmp.path().join("outside");
        fs::create_dir(&root).unwrap();
        fs::create_dir(&outside).unwrap();
        fs::write(outside.join("file"), b"outside").unwrap();
        let dir = RootDir::open(&root).unwrap();
        Bed {
            _tmp: tmp,
            root,
            outside,
            dir,
        }
    }

    fn meta(mode: u32) -> Metadata<'static> {
        Metadata {
            uid: 1234,
            gid: 4321,
            mode,
            xattrs: &[],
            times: Some(Times {
                atime: Timestamp { secs: 5, nanos: 0 },
                mtime: Timestamp { secs: 7, nanos: 9 },
            }),
        }
    }

    #[test]
    fn empty_and_kinds() {
        let mut b = bed();
        assert!(b.dir.is_empty().unwrap());
        assert_eq!(b.dir.kind(Path::new("")).unwrap(), Some(Kind::Dir));
        assert_eq!(b.dir.kind(Path::new("missing/deeper")).unwrap(), None);
        b.dir.mkdir(Path::new("d")).unwrap();
        b.dir.create_file(Path::new("d/f")).unwrap();
        assert!(!b.dir.is_empty().unwrap());
        assert_eq!(b.dir.kind(Path::new("d/f")).unwrap(), Some(Kind::File));
        let err = b.dir.kind(Path::new("d/f/x")).unwrap_err();
        assert_eq!(err.kind(), FsErrorKind::NotADirectory);
    }

    #[test]
    fn symlinks_on_the_way_resolve_inside() {
        let mut b = bed();
        let outside = b.outside.clone();
        b.dir
            .symlink(Path::new("abs"), outside.as_os_str())
            .unwrap();
        b.dir
            .symlink(Path::new("up"), OsStr::new("../../.."))
            .unwrap();
        b.dir.symlink(Path::new("slash"), OsStr::new("/")).unwrap();
        let err = b.dir.create_file(Path::new("abs/file")).unwrap_err();
        assert_eq!(err.kind(), FsErrorKind::NotFound);
        b.dir
            .create_file(Path::new("up/x"))
            .unwrap()
            .write_all(b"x")
            .unwrap();
        b.dir.mkdir(Path::new("slash/etc")).unwrap();
        assert!(b.root.join("x").is_file());
        assert!(b.root.join("etc").is_dir());
        assert_eq!(fs::read(b.outside.join("file")).unwrap(), b"outside");
        assert_eq!(fs::read_dir(&b.outside).unwrap().count(), 1);
    }

    #[test]
    fn final_symlinks_are_never_followed() {
        let mut b = bed();
        let target = b.outside.join("file");
        b.dir.symlink(Path::new("s"), target.as_os_str()).unwrap();
        let before = fs::metadata(&target).unwrap();
        // Creating over it fails instead of writing through it.
        assert_eq!(
            b.dir.create_file(Path::new("s")).unwrap_err().kind(),
            FsErrorKind::AlreadyExists
        );
        assert_eq!(
            b.dir.mkdir(Path::new("s")).unwrap_err().kind(),
            FsErrorKind::AlreadyExists
        );
        // Metadata for a "file" that is really a symlink: owner and times land on the link,
        // the mode change is refused.
        let err = b
            .dir
            .set_metadata(Path::new("s"), Kind::File, &meta(0o777))
            .unwrap_err();
        assert_eq!(err.kind(), FsErrorKind::SymlinkLoop);
        b.dir
            .set_metadata(Path::new("s"), Kind::Symlink, &meta(0o777))
            .unwrap();
        b.dir.set_xattr(Path::new("s"), b"trusted.t", b"v").unwrap();
        b.dir
            .set_times(Path::new("s"), meta(0).times.unwrap())
            .unwrap();
        let link = fs::symlink_metadata(b.root.join("s")).unwrap();
        assert_eq!((link.uid(), link.gid(), link.mtime()), (1234, 4321, 7));
        assert_eq!(
            read_xattr(&b.root.join("s"), b"trusted.t").unwrap(),
            Some(b"v".to_vec())
        );
        let after = fs::metadata(&target).unwrap();
        assert_eq!(
            (
                before.mode(),
                before.uid(),
                before.mtime(),
                before.mtime_nsec()
            ),
            (after.mode(), after.uid(), after.mtime(), after.mtime_nsec())
        );
        assert_eq!(read_xattr(&target, b"trusted.t").unwrap(), None);
        // Removing it removes the link only.
        b.dir.remove_all(Path::new("s")).unwrap();
        assert!(target.is_file());
    }

    #[test]
    fn remove_all_keeps_what_links_point_to() {
        let mut b = bed();
        b.dir.mkdir(Path::new("d")).unwrap();
        b.dir.mkdir(Path::new("d/e")).unwrap();
        b.dir.create_file(Path::new("d/e/f")).unwrap();
        symlink(&b.outside, b.root.join("d/e/out")).unwrap();
        b.dir.remove_all(Path::new("d")).unwrap();
        assert!(!b.root.join("d").exists());
        assert!(b.outside.join("file").is_file());
    }

    #[test]
    fn hardlink_targets_resolve_inside() {
        let mut b = bed();
        b.dir.symlink(Path::new("etc"), OsStr::new("/etc")).unwrap();
        // `etc` -> `/etc` is `etc` itself inside the root: a loop, not the host's file.
        let err = b
            .dir
            .hardlink(Path::new("p"), Path::new("etc/passwd"))
            .unwrap_err();
        assert_eq!(err.kind(), FsErrorKind::SymlinkLoop);
        b.dir.symlink(Path::new("host"), OsStr::new("/")).unwrap();
        let err = b
            .dir
            .hardlink(Path::new("p"), Path::new("host/etc/passwd"))
            .unwrap_err();
        assert_eq!(err.kind(), FsErrorKind::SymlinkLoop);
        b.dir
            .symlink(Path::new("o"), b.outside.as_os_str())
            .unwrap();
        let err = b
            .dir
            .hardlink(Path::new("p"), Path::new("o/file"))
            .unwrap_err();
        assert_eq!(err.kind(), FsErrorKind::NotFound);
        b.dir.create_file(Path::new("f")).unwrap();
        b.dir.hardlink(Path::new("g"), Path::new("/f")).unwrap();
        assert_eq!(fs::metadata(b.root.join("f")).unwrap().nlink(), 2);
    }

    #[test]
    fn dot_and_dotdot_final_components_are_refused() {
        let mut b = bed();
        for path in ["..", "a/..", ".", "x/."] {
            let err = b.dir.mkdir(Path::new(path)).unwrap_err();
            assert_eq!(err.raw_os_error(), Errno::INVAL.raw_os_error(), "{path}");
        }
        assert_eq!(fs::read_dir(b.root.parent().unwrap()).unwrap().count(), 2);
    }

    #[test]
    fn metadata_and_specials() {
        let mut b = bed();
        let mut f = b.dir.create_file(Path::new("suid")).unwrap();
        f.write_all(b"#!").unwrap();
        let caps = Xattr {
            name: b"user.x".to_vec(),
            value: b"1".to_vec(),
        };
        let xattrs = [caps];
        let m = Metadata {
            xattrs: &xattrs,
            ..meta(0o4755)
        };
        b.dir.finish_file(Path::new("suid"), f, &m).unwrap();
        let s = fs::metadata(b.root.join("suid")).unwrap();
        assert_eq!((s.mode() & 0o7777, s.uid(), s.gid()), (0o4755, 1234, 4321));
        assert_eq!((s.mtime(), s.mtime_nsec(), s.atime()), (7, 9, 5));

        b.dir
            .mknod(
                Path::new("null"),
                Special::CharDevice { major: 1, minor: 3 },
            )
            .unwrap();
        b.dir
            .set_metadata(Path::new("null"), Kind::CharDevice, &meta(0o666))
            .unwrap();
        let n = fs::symlink_metadata(b.root.join("null")).unwrap();
        assert_eq!(
            (n.mode() & 0o7777, n.rdev(), n.uid()),
            (0o666, rfs::makedev(1, 3), 1234)
        );

        b.dir.mknod(Path::new("wh"), Special::Whiteout).unwrap();
        let w = fs::symlink_metadata(b.root.join("wh")).unwrap();
        assert_eq!((w.rdev(), w.mode() & 0o7777), (0, 0));

        b.dir.mkdir(Path::new("d")).unwrap();
        b.dir
            .set_metadata(Path::new("d"), Kind::Dir, &meta(0o1777))
            .unwrap();
        b.dir
            .set_xattr(Path::new("d"), b"trusted.overlay.opaque", b"y")
            .unwrap();
        assert_eq!(
            read_xattr(&b.root.join("d"), b"trusted.overlay.opaque").unwrap(),
            Some(b"y".to_vec())
        );
        assert_eq!(
            fs::metadata(b.root.join("d")).unwrap().mode() & 0o7777,
            0o1777
        );

        // The root itself.
        b.dir
            .set_metadata(Path::new(""), Kind::Dir, &meta(0o711))
            .unwrap();
        let r = fs::metadata(&b.root).unwrap();
        assert_eq!((r.mode() & 0o7777, r.mtime()), (0o711, 7));
    }
}

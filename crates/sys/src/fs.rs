//! Filesystem operations resolved inside a root directory.
//!
//! [`RootDir`] is a handle on a directory (for example an empty overlayfs snapshot being filled
//! from an image layer). Every path handed to it is relative to that root and is resolved the
//! same way:
//!
//! - the *parent* directory is opened with `openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)`
//!   on the root's descriptor, so `..` and symbolic links (absolute or relative) met on the way
//!   are interpreted as if the root were `/`: resolution can never leave the root;
//! - the *final component* is then operated on relative to that parent descriptor with the
//!   `*at` syscalls, never following it if it is a symbolic link (`O_NOFOLLOW`,
//!   `AT_SYMLINK_NOFOLLOW`, `O_EXCL`, `linkat` without `AT_SYMLINK_FOLLOW`).
//!
//! The operations are behind the [`TreeFs`] trait so that the logic driving them (layer
//! unpacking) can be tested against a fake. They hold no policy: which names, modes, owners or
//! extended attributes are acceptable is the caller's business.
//!
//! Requirements: Linux 5.6 or later (`openat2`) and `/proc` mounted. Where Linux has no
//! no-follow `*at` call (before 6.6 and 6.13) and no descriptor can be opened safely (device
//! nodes, fifos, symbolic links), the mode is changed through `/proc/self/fd/<O_PATH fd>`
//! after checking the object is not a symbolic link, and extended attributes are set with
//! `lsetxattr("/proc/self/fd/<parent>/<name>")`, which resolves the parent through its
//! descriptor and does not follow the final component. Regular files being written and
//! directories are changed through their own descriptors. Changing owners, creating device
//! nodes and setting `trusted.*` attributes need the usual capabilities (`CAP_CHOWN`,
//! `CAP_MKNOD`, `CAP_SYS_ADMIN`).

mod root;
mod xattr;

use std::ffi::OsStr;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

pub use root::RootDir;
pub use xattr::{list_xattrs, read_xattr};

/// What kind of object a name refers to (the object itself, never a symbolic link's target).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A directory.
    Dir,
    /// A regular file.
    File,
    /// A symbolic link.
    Symlink,
    /// A character device (an overlayfs whiteout is the character device 0:0).
    CharDevice,
    /// A block device.
    BlockDevice,
    /// A named pipe.
    Fifo,
    /// A Unix socket.
    Socket,
}

/// A special file for [`TreeFs::mknod`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Special {
    /// A character device with these numbers.
    CharDevice {
        /// Major number.
        major: u32,
        /// Minor number.
        minor: u32,
    },
    /// A block device with these numbers.
    BlockDevice {
        /// Major number.
        major: u32,
        /// Minor number.
        minor: u32,
    },
    /// A named pipe.
    Fifo,
    /// An overlayfs whiteout: the character device 0:0 with mode 0, owned by the caller.
    Whiteout,
}

/// A point in time, seconds and nanoseconds since the Unix epoch (may be negative).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Timestamp {
    /// Whole seconds since 1970-01-01T00:00:00Z.
    pub secs: i64,
    /// Nanoseconds, below 1_000_000_000.
    pub nanos: u32,
}

/// Access and modification times to set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Times {
    /// Last access.
    pub atime: Timestamp,
    /// Last modification.
    pub mtime: Timestamp,
}

/// One extended attribute: full name (`security.capability`, `user.foo`) and value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Xattr {
    /// Full name including the namespace, without a NUL.
    pub name: Vec<u8>,
    /// Value bytes.
    pub value: Vec<u8>,
}

/// Ownership, permissions, extended attributes and times to give an object.
///
/// They are applied in an order that keeps them all: owner first (a `chown` clears the
/// set-user-ID and set-group-ID bits and file capabilities), then the mode, then the extended
/// attributes, then the times.
#[derive(Debug, Clone, Copy)]
pub struct Metadata<'a> {
    /// Owner user ID.
    pub uid: u32,
    /// Owner group ID.
    pub gid: u32,
    /// Permission bits including set-user-ID, set-group-ID and sticky (`0o7777`); ignored for
    /// symbolic links, whose mode Linux does not keep.
    pub mode: u32,
    /// Extended attributes to set.
    pub xattrs: &'a [Xattr],
    /// Times to set, or `None` to leave them (directories get theirs once their children are
    /// written).
    pub times: Option<Times>,
}

/// A failed filesystem operation: what was attempted, on which path (relative to the root),
/// and the `errno`.
#[derive(Debug, thiserror::Error)]
#[error("{op} `{}`: {}", path.display(), io::Error::from_raw_os_error(*errno))]
pub struct FsError {
    op: &'static str,
    path: PathBuf,
    errno: i32,
}

/// The broad class of an [`FsError`], for callers that react to some of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FsErrorKind {
    /// `ENOENT`: a component (or a symbolic link's target) does not exist.
    NotFound,
    /// `EEXIST`: the name is already taken.
    AlreadyExists,
    /// `ENOTDIR`: a component used as a directory is not one.
    NotADirectory,
    /// `EISDIR`: the object is a directory.
    IsADirectory,
    /// `ELOOP`: too many symbolic links, or a final symbolic link where none may be.
    SymlinkLoop,
    /// `ENAMETOOLONG`.
    NameTooLong,
    /// `EPERM` or `EACCES`.
    PermissionDenied,
    /// `ENOTEMPTY`.
    NotEmpty,
    /// `EOPNOTSUPP`: for example an extended attribute namespace the filesystem refuses.
    Unsupported,
    /// Anything else.
    Other,
}

impl FsError {
    /// Builds an error for `op` on `path` with this `errno` (also useful to fakes).
    pub fn new(op: &'static str, path: &Path, errno: i32) -> FsError {
        FsError {
            op,
            path: path.to_path_buf(),
            errno,
        }
    }

    /// The operation, e.g. `"create file"`.
    pub fn op(&self) -> &'static str {
        self.op
    }

    /// The path the operation was about, relative to the root.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The raw `errno`.
    pub fn raw_os_error(&self) -> i32 {
        self.errno
    }

    /// The class of the `errno`.
    pub fn kind(&self) -> FsErrorKind {
        use rustix::io::Errno;
        let errno = Errno::from_raw_os_error(self.errno);
        match errno {
            Errno::NOENT => FsErrorKind::NotFound,
            Errno::EXIST => FsErrorKind::AlreadyExists,
            Errno::NOTDIR => FsErrorKind::NotADirectory,
            Errno::ISDIR => FsErrorKind::IsADirectory,
            Errno::LOOP => FsErrorKind::SymlinkLoop,
            Errno::NAMETOOLONG => FsErrorKind::NameTooLong,
            Errno::PERM | Errno::ACCESS => FsErrorKind::PermissionDenied,
            Errno::NOTEMPTY => FsErrorKind::NotEmpty,
            Errno::OPNOTSUPP => FsErrorKind::Unsupported,
            _ => FsErrorKind::Other,
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Kind::Dir => "directory",
            Kind::File => "regular file",
            Kind::Symlink => "symbolic link",
            Kind::CharDevice => "character device",
            Kind::BlockDevice => "block device",
            Kind::Fifo => "fifo",
            Kind::Socket => "socket",
        })
    }
}

/// The operations that write a tree under a root, every path relative to the root and
/// resolved inside it (see the module documentation). An empty path names the root itself.
///
/// Creating operations need the parent directory to exist and fail with
/// [`FsErrorKind::AlreadyExists`] if the name is taken (even by a dangling symbolic link);
/// callers remove what they mean to replace.
pub trait TreeFs {
    /// The writable handle [`TreeFs::create_file`] returns.
    type File: io::Write;

    /// What `path` names, without following a final symbolic link; `None` if it (or one of
    /// its parents) does not exist.
    fn kind(&mut self, path: &Path) -> Result<Option<Kind>, FsError>;

    /// Creates directory `path` (mode 0o700 until [`TreeFs::set_metadata`]).
    fn mkdir(&mut self, path: &Path) -> Result<(), FsError>;

    /// Creates regular file `path` (mode 0o600 until [`TreeFs::finish_file`]) and opens it
    /// for writing.
    fn create_file(&mut self, path: &Path) -> Result<Self::File, FsError>;

    /// Gives the file written through `file` its metadata and closes it.
    fn finish_file(
        &mut self,
        path: &Path,
        file: Self::File,
        meta: &Metadata<'_>,
    ) -> Result<(), FsError>;

    /// Creates symbolic link `path` holding `target` (stored as is, never resolved here).
    fn symlink(&mut self, path: &Path, target: &OsStr) -> Result<(), FsError>;

    /// Creates `path` as a hard link to `target`, which is also resolved inside the root; a
    /// final symbolic link in `target` is linked itself, not followed.
    fn hardlink(&mut self, path: &Path, target: &Path) -> Result<(), FsError>;

    /// Creates a device node, fifo or overlayfs whiteout at `path`.
    fn mknod(&mut self, path: &Path, special: Special) -> Result<(), FsError>;

    /// Removes `path`, and everything below it if it is a directory (symbolic links are
    /// removed, never followed).
    fn remove_all(&mut self, path: &Path) -> Result<(), FsError>;

    /// Sets owner, mode, extended attributes and (if given) times of `path`, which is a `kind`
    /// object; never follows a final symbolic link.
    fn set_metadata(&mut self, path: &Path, kind: Kind, meta: &Metadata<'_>)
    -> Result<(), FsError>;

    /// Sets one extended attribute on `path` without following a final symbolic link.
    fn set_xattr(&mut self, path: &Path, name: &[u8], value: &[u8]) -> Result<(), FsError>;

    /// Sets the times of `path` without following a final symbolic link.
    fn set_times(&mut self, path: &Path, times: Times) -> Result<(), FsError>;
}

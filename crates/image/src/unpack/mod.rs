//! Layer unpacking: a (compressed) layer tar streamed into an empty snapshot directory in
//! overlayfs "upper directory" form.
//!
//! [`unpack_layer`] reads the layer as it arrives (any [`Read`]: a file, or a pipe fed by the
//! download on a blocking thread), decompresses it (gzip, zstd or plain, or sniffed), hashes
//! the uncompressed tar on the way (the diff_id, which the caller verifies against the image
//! config) and writes each entry under the snapshot root. Each layer gets its own snapshot
//! directory and another component stacks them as overlay lower directories, so unpacking
//! never deletes anything of a lower layer; it translates the OCI whiteouts instead:
//!
//! - `dir/.wh.name` becomes an overlayfs whiteout `dir/name` (character device 0:0);
//! - `dir/.wh..wh..opq` sets `trusted.overlay.opaque=y` on `dir`;
//! - any other `.wh.`-prefixed name (`.wh.`, `.wh..`, `.wh...`, `.wh..wh.*`), and a `.wh.`
//!   name used as a directory, is an error.
//!
//! # Safety rules
//!
//! Nothing outside the root is ever created, changed or removed, whatever the layer holds:
//!
//! - every filesystem call goes through [`nodelet_sys::fs::RootDir`]: parents are resolved
//!   with `openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)`, so symbolic links written by
//!   earlier entries (`evil -> /tmp/outside`, `up -> ../../..`) resolve inside the root, and
//!   the final component is never followed;
//! - names: absolute names are taken relative to the root (leading `/` dropped, as tar
//!   producers do); any `..` component is refused (even `a/../b`); a NUL byte is refused;
//!   `.` and empty components are dropped;
//! - hard links: the target follows the same name rules, must be a non-directory this layer
//!   already wrote (not anything of a lower layer or the host), and is resolved inside the
//!   root; a symbolic link target is linked itself, never followed;
//! - a path through a non-directory (a file, a dangling symbolic link) fails with the entry
//!   name and `ENOTDIR`/`ENOENT`;
//! - a later entry of the same name replaces an earlier one of this layer (a directory over
//!   a directory merges, keeping the children; anything else removes the old object first,
//!   recursively for a directory, never following links); a whiteout over an entry this
//!   layer wrote is dropped, since OCI whiteouts only apply to lower layers;
//! - extended attributes come from PAX `SCHILY.xattr.*` records; namespaces `user.`,
//!   `security.`, `trusted.` and the POSIX ACLs are set, except `trusted.overlay.*` and
//!   `user.overlay.*` (refused: they steer overlayfs) and `security.selinux` (skipped and
//!   counted: labels are the runtime's business);
//! - tar entry types: regular (also contiguous, and GNU sparse, written out in full with its
//!   holes as zeros), directory, symbolic link, hard link (its own header metadata is
//!   ignored: the inode is the target's), character and block devices, fifo; PAX global
//!   headers are skipped and counted; every other type (sockets cannot be archived; GNU
//!   volume or multi-volume headers, vendor types) is an error, as Docker and containerd do;
//! - missing parent directories are created as `0755 root:root` (counted in
//!   [`UnpackStats::implied_dirs`]);
//! - limits ([`UnpackLimits`]) bound the uncompressed bytes (which catches gzip and zstd
//!   bombs and huge declared sizes before anything is written), the file data written (GNU
//!   sparse files expand), the number of entries, name length and depth, and the metadata
//!   read between two entries (GNU long names and PAX records are buffered in memory by the
//!   tar parser).
//!
//! Every rejection is an [`UnpackError`] naming the entry (or the entry after which the
//! stream broke) and the [`Cause`].
//!
//! The whole source is consumed on success (the end-of-archive blocks, any padding after
//! them, the compression trailer), and the diff_id covers every uncompressed byte.
//!
//! On error the snapshot directory holds whatever was written so far: the caller deletes it.
//!
//! Ownership, modes (with set-user-ID, set-group-ID, sticky), modification times (atime too
//! when PAX carries it), extended attributes (file capabilities are `security.capability`)
//! and device numbers are kept; this needs root (`CAP_CHOWN`, `CAP_MKNOD`, `CAP_FOWNER`,
//! `CAP_SYS_ADMIN` for `trusted.*`). Directory times are set at the end, after their
//! children. Nothing is fsynced: the caller syncs the snapshot once (`syncfs`) if it must.

mod apply;
#[cfg(test)]
mod fake;
mod names;
mod stream;
#[cfg(test)]
mod tests;

use std::fmt;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::rc::Rc;

use nodelet_sys::fs::{FsError, FsErrorKind, RootDir, TreeFs};

/// How a layer blob is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// A plain tar.
    None,
    /// gzip (one or more concatenated members).
    Gzip,
    /// zstd (one or more frames).
    Zstd,
    /// Decide from the first bytes: gzip or zstd magic, else plain tar.
    Detect,
}

impl Compression {
    /// The compression a layer media type names; `None` for a media type that is not a
    /// layer this module can unpack.
    pub fn from_media_type(media_type: &str) -> Option<Compression> {
        Some(match media_type {
            "application/vnd.oci.image.layer.v1.tar"
            | "application/vnd.oci.image.layer.nondistributable.v1.tar"
            | "application/vnd.docker.image.rootfs.diff.tar" => Compression::None,
            "application/vnd.oci.image.layer.v1.tar+gzip"
            | "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
            | "application/vnd.docker.image.rootfs.diff.tar.gzip"
            | "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip" => Compression::Gzip,
            "application/vnd.oci.image.layer.v1.tar+zstd"
            | "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd" => Compression::Zstd,
            _ => return None,
        })
    }
}

/// Bounds on what one layer may make the unpacker do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnpackLimits {
    /// Uncompressed tar bytes, and (separately) file data bytes written. Default 64 GiB.
    pub max_bytes: u64,
    /// Tar entries, plus implied parent directories. Default 1 Mi.
    pub max_files: u64,
    /// Bytes of an entry name or link target as written in the archive. Default 4096
    /// (`PATH_MAX`).
    pub max_path_len: usize,
    /// Components of an entry name. Default 256.
    pub max_depth: usize,
    /// Tar metadata (headers, GNU long names, PAX records, sparse maps) read before one
    /// entry. Default 1 MiB.
    pub max_header_bytes: u64,
}

impl Default for UnpackLimits {
    fn default() -> Self {
        UnpackLimits {
            max_bytes: 64 << 30,
            max_files: 1 << 20,
            max_path_len: 4096,
            max_depth: 256,
            max_header_bytes: 1 << 20,
        }
    }
}

/// What an unpack did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnpackStats {
    /// `sha256:<hex>` of the uncompressed tar stream (including the end-of-archive blocks
    /// and anything after them): compare it with the config's `rootfs.diff_ids`.
    pub diff_id: String,
    /// The compression applied (resolved if [`Compression::Detect`] was asked).
    pub compression: Compression,
    /// Bytes read from the source.
    pub compressed_bytes: u64,
    /// Bytes of the uncompressed tar stream.
    pub tar_bytes: u64,
    /// Bytes of file data written.
    pub data_bytes: u64,
    /// Tar entries read (extension headers not counted).
    pub entries: u64,
    /// Regular files written.
    pub files: u64,
    /// Directories created or updated from entries.
    pub dirs: u64,
    /// Missing parent directories created.
    pub implied_dirs: u64,
    /// Symbolic links.
    pub symlinks: u64,
    /// Hard links.
    pub hardlinks: u64,
    /// Character and block devices and fifos.
    pub devices: u64,
    /// Whiteouts created.
    pub whiteouts: u64,
    /// Directories made opaque.
    pub opaque_dirs: u64,
    /// Entries and attributes skipped: PAX global headers, whiteouts of names this layer
    /// wrote, `security.selinux` attributes.
    pub skipped: u64,
}

/// Why an unpack failed, and where.
#[derive(Debug)]
pub struct UnpackError {
    at: Location,
    cause: Cause,
}

#[derive(Debug)]
enum Location {
    Root(PathBuf),
    Entry(String),
    After(Option<String>),
}

impl UnpackError {
    fn root(path: &Path, cause: Cause) -> UnpackError {
        UnpackError {
            at: Location::Root(path.to_path_buf()),
            cause,
        }
    }

    pub(crate) fn entry(name: &[u8], cause: Cause) -> UnpackError {
        UnpackError {
            at: Location::Entry(String::from_utf8_lossy(name).into_owned()),
            cause,
        }
    }

    pub(crate) fn stream(after: Option<&str>, cause: Cause) -> UnpackError {
        UnpackError {
            at: Location::After(after.map(str::to_owned)),
            cause,
        }
    }

    /// The name of the entry that was rejected or failed, as written in the archive (lossily
    /// decoded). `None` if the failure was about the root or the stream between entries.
    pub fn entry_name(&self) -> Option<&str> {
        match &self.at {
            Location::Entry(name) => Some(name),
            _ => None,
        }
    }

    /// For a failure between entries (malformed tar, corrupt compression, a limit), the last
    /// entry read before it.
    pub fn after_entry(&self) -> Option<&str> {
        match &self.at {
            Location::After(name) => name.as_deref(),
            _ => None,
        }
    }

    /// What went wrong.
    pub fn cause(&self) -> &Cause {
        &self.cause
    }
}

impl fmt::Display for UnpackError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.at {
            Location::Root(path) => write!(f, "snapshot directory `{}`: ", path.display())?,
            Location::Entry(name) => write!(f, "layer entry `{}`: ", Shortened(name))?,
            Location::After(Some(name)) => {
                write!(f, "layer stream after entry `{}`: ", Shortened(name))?
            }
            Location::After(None) => write!(f, "layer stream before the first entry: ")?,
        }
        self.cause.fmt(f)
    }
}

impl std::error::Error for UnpackError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.cause.source()
    }
}

/// An entry name for a message: at most [`SHOWN_NAME`] bytes of it.
struct Shortened<'a>(&'a str);

/// How much of an entry name messages show (names may be up to `max_path_len` long, or much
/// longer when rejected for that).
const SHOWN_NAME: usize = 256;

impl fmt::Display for Shortened<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.len() <= SHOWN_NAME {
            return f.write_str(self.0);
        }
        let mut end = SHOWN_NAME;
        while !self.0.is_char_boundary(end) {
            end -= 1;
        }
        write!(f, "{}… ({} bytes)", &self.0[..end], self.0.len())
    }
}

/// The cause of an [`UnpackError`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Cause {
    /// The snapshot directory already has entries.
    #[error("is not empty")]
    RootNotEmpty,
    /// A filesystem operation failed.
    #[error("{0}{hint}", hint = fs_hint(.0))]
    Fs(#[source] FsError),
    /// Writing file data failed.
    #[error("writing data: {0}")]
    Write(#[source] io::Error),
    /// The name holds a NUL byte.
    #[error("name contains a NUL byte")]
    NulInName,
    /// The name has a `..` component.
    #[error("name has a `..` component (refused: it could lead outside the layer)")]
    ParentDirComponent,
    /// A non-directory entry names the layer root.
    #[error("names the layer root, which only a directory entry may")]
    NamesRoot,
    /// The name is too long.
    #[error("name is {len} bytes, over the limit of {limit}")]
    NameTooLong {
        /// Length of the name.
        len: usize,
        /// [`UnpackLimits::max_path_len`].
        limit: usize,
    },
    /// The name has too many components.
    #[error("name has more than {limit} components")]
    TooDeep {
        /// [`UnpackLimits::max_depth`].
        limit: usize,
    },
    /// Too many entries.
    #[error("layer has more than {limit} entries (implied parent directories included)")]
    TooManyEntries {
        /// [`UnpackLimits::max_files`].
        limit: u64,
    },
    /// The entry's data would take the file data past the limit.
    #[error("entry of {size} bytes would take the layer's file data over {limit} bytes")]
    EntryTooLarge {
        /// Declared size.
        size: u64,
        /// [`UnpackLimits::max_bytes`].
        limit: u64,
    },
    /// The uncompressed stream is larger than the limit.
    #[error("uncompressed layer is larger than {limit} bytes")]
    LayerTooLarge {
        /// [`UnpackLimits::max_bytes`].
        limit: u64,
    },
    /// Too much metadata (long names, PAX records) before one entry.
    #[error("more than {limit} bytes of tar headers before the next entry")]
    HeadersTooLarge {
        /// [`UnpackLimits::max_header_bytes`].
        limit: u64,
    },
    /// A `.wh.` name that is neither a whiteout of a plain name nor the opaque marker.
    #[error("invalid whiteout name `{name}`")]
    InvalidWhiteout {
        /// The offending component.
        name: String,
    },
    /// A `.wh.` name used as a directory.
    #[error("a directory component is a whiteout name")]
    WhiteoutDirectory,
    /// The opaque marker's directory is not a directory.
    #[error("opaque marker in `{0}`, which is not a directory")]
    OpaqueNotDirectory(String),
    /// A hard link's target is not acceptable.
    #[error("hard link target `{target}`: {reason}")]
    HardlinkTarget {
        /// The target as written in the archive.
        target: String,
        /// Why.
        reason: String,
    },
    /// A symbolic link's target is not acceptable.
    #[error("symbolic link target: {0}")]
    SymlinkTarget(&'static str),
    /// An entry type this unpacker does not write.
    #[error("unsupported entry type {}", describe_type(*.0))]
    UnsupportedType(u8),
    /// An extended attribute that is refused.
    #[error("extended attribute `{name}` refused: {reason}")]
    Xattr {
        /// The attribute name.
        name: String,
        /// Why.
        reason: &'static str,
    },
    /// A header field that cannot be used.
    #[error("invalid {field}: {detail}")]
    BadHeader {
        /// The field.
        field: &'static str,
        /// What is wrong with it.
        detail: String,
    },
    /// The entry's data ended early.
    #[error("data truncated: {got} of {expected} bytes")]
    Truncated {
        /// Bytes read.
        got: u64,
        /// Bytes declared.
        expected: u64,
    },
    /// Reading the source failed.
    #[error("reading the layer: {0}")]
    Source(#[source] io::Error),
    /// The compressed stream is corrupt or truncated.
    #[error("decompressing the layer: {0}")]
    Decompress(#[source] io::Error),
    /// The tar stream is malformed.
    #[error("malformed tar: {0}")]
    Malformed(#[source] io::Error),
}

fn fs_hint(err: &FsError) -> &'static str {
    match err.kind() {
        FsErrorKind::NotADirectory => " (a path component is not a directory)",
        FsErrorKind::NotFound => " (a parent is missing or a dangling symbolic link)",
        FsErrorKind::SymlinkLoop => " (symbolic link loop, or too many links)",
        _ => "",
    }
}

fn describe_type(byte: u8) -> String {
    match byte {
        b'V' => "'V' (GNU volume header)".into(),
        b'M' => "'M' (GNU multi-volume continuation)".into(),
        b'D' => "'D' (GNU dump directory)".into(),
        b'N' => "'N' (GNU old long name)".into(),
        b'x' | b'L' | b'K' => format!(
            "'{}' (extension header in a non-POSIX header)",
            byte as char
        ),
        b if b.is_ascii_graphic() => format!("'{}'", b as char),
        b => format!("{b:#04x}"),
    }
}

/// Unpacks one layer from `reader` into the empty directory `root` (see the
/// [module](self) docs for the rules). The caller verifies [`UnpackStats::diff_id`], and
/// deletes `root` if this fails.
pub fn unpack_layer<R: Read>(
    reader: R,
    compression: Compression,
    root: &Path,
    limits: &UnpackLimits,
) -> Result<UnpackStats, UnpackError> {
    let mut dir = RootDir::open(root).map_err(|e| UnpackError::root(root, Cause::Fs(e)))?;
    match dir.is_empty() {
        Ok(true) => {}
        Ok(false) => return Err(UnpackError::root(root, Cause::RootNotEmpty)),
        Err(e) => return Err(UnpackError::root(root, Cause::Fs(e))),
    }
    unpack_into(reader, compression, &mut dir, limits)
}

/// [`unpack_layer`] onto any [`TreeFs`] (a [`RootDir`], or a fake in tests).
pub fn unpack_into<R: Read, F: TreeFs>(
    reader: R,
    compression: Compression,
    fs: &mut F,
    limits: &UnpackLimits,
) -> Result<UnpackStats, UnpackError> {
    let shared = Rc::new(stream::Shared::new(
        limits.max_bytes,
        limits.max_header_bytes,
    ));
    let (tar_reader, compression) =
        stream::open(reader, compression, &shared).map_err(|c| UnpackError::stream(None, c))?;
    let mut stats = UnpackStats {
        diff_id: String::new(),
        compression,
        compressed_bytes: 0,
        tar_bytes: 0,
        data_bytes: 0,
        entries: 0,
        files: 0,
        dirs: 0,
        implied_dirs: 0,
        symlinks: 0,
        hardlinks: 0,
        devices: 0,
        whiteouts: 0,
        opaque_dirs: 0,
        skipped: 0,
    };
    let mut archive = tar::Archive::new(tar_reader);
    let mut applier = apply::Applier::new(fs, limits, &shared, &mut stats);
    let last = applier.run(&mut archive)?;
    let mut buf = applier.into_buffer();
    stats.diff_id = archive
        .into_inner()
        .finish(&mut buf)
        .map_err(|c| UnpackError::stream(last.as_deref(), c))?;
    stats.compressed_bytes = shared.source_bytes();
    stats.tar_bytes = shared.tar_bytes();
    Ok(stats)
}

//! Applying tar entries to a [`TreeFs`]: the replacement rules, whiteouts, metadata, and the
//! accounting against the limits.

use std::collections::HashSet;
use std::ffi::OsStr;
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use nodelet_sys::fs::{FsErrorKind, Kind, Metadata, Special, Times, Timestamp, TreeFs, Xattr};
use tar::EntryType;

use super::names::{self, Target};
use super::stream::Shared;
use super::{Cause, UnpackError, UnpackLimits, UnpackStats};

/// File data is copied through one buffer of this size.
const DATA_BUFFER: usize = 1 << 20;
/// Linux limits on extended attributes (`XATTR_NAME_MAX`, `XATTR_SIZE_MAX`).
const XATTR_NAME_MAX: usize = 255;
const XATTR_SIZE_MAX: usize = 64 * 1024;
const OPAQUE_XATTR: &[u8] = b"trusted.overlay.opaque";

/// Owner, mode and times of one entry (its extended attributes are in `Applier::xattrs`).
#[derive(Debug, Clone, Copy)]
struct Meta {
    uid: u32,
    gid: u32,
    mode: u32,
    times: Times,
}

impl Meta {
    /// What to set on the entry's file: owner, mode, times and `xattrs`.
    fn with_xattrs(self, xattrs: &[Xattr]) -> Metadata<'_> {
        Metadata {
            uid: self.uid,
            gid: self.gid,
            mode: self.mode,
            xattrs,
            times: Some(self.times),
        }
    }
}

/// What missing parent directories get.
const IMPLIED_DIR: Metadata<'static> = Metadata {
    uid: 0,
    gid: 0,
    mode: 0o755,
    xattrs: &[],
    times: None,
};

pub(crate) struct Applier<'a, F: TreeFs> {
    fs: &'a mut F,
    limits: &'a UnpackLimits,
    shared: &'a Shared,
    stats: &'a mut UnpackStats,
    /// Entries plus implied directories, against `max_files`.
    objects: u64,
    /// Non-directories this layer wrote: the only acceptable hard link targets.
    written: HashSet<PathBuf>,
    /// Directory times, set once all entries are written.
    dir_times: Vec<(PathBuf, Times)>,
    /// Whether anything was removed (a directory in `dir_times` may be gone or replaced).
    replaced: bool,
    buf: Vec<u8>,
    name: Vec<u8>,
    link: Vec<u8>,
    xattrs: Vec<Xattr>,
}

impl<'a, F: TreeFs> Applier<'a, F> {
    pub(crate) fn new(
        fs: &'a mut F,
        limits: &'a UnpackLimits,
        shared: &'a Shared,
        stats: &'a mut UnpackStats,
    ) -> Self {
        Applier {
            fs,
            limits,
            shared,
            stats,
            objects: 0,
            written: HashSet::new(),
            dir_times: Vec::new(),
            replaced: false,
            buf: vec![0; DATA_BUFFER],
            name: Vec::new(),
            link: Vec::new(),
            xattrs: Vec::new(),
        }
    }

    /// The data buffer, for draining the end of the stream.
    pub(crate) fn into_buffer(self) -> Vec<u8> {
        self.buf
    }

    /// Applies every entry, then the directory times. Returns the last entry's name.
    pub(crate) fn run<R: Read>(
        &mut self,
        archive: &mut tar::Archive<R>,
    ) -> Result<Option<String>, UnpackError> {
        let mut entries = archive
            .entries()
            .map_err(|e| UnpackError::stream(None, self.shared.classify(e)))?;
        let mut last: Option<String> = None;
        loop {
            self.shared.begin_headers();
            let next = entries.next();
            self.shared.end_headers();
            let mut entry = match next {
                None => break,
                Some(Ok(entry)) => entry,
                Some(Err(e)) => {
                    return Err(UnpackError::stream(
                        last.as_deref(),
                        self.shared.classify(e),
                    ));
                }
            };
            self.name.clear();
            self.name.extend_from_slice(&entry.path_bytes());
            if let Err(cause) = self.entry(&mut entry).and_then(|()| self.drain(&mut entry)) {
                return Err(UnpackError::entry(&self.name, cause));
            }
            let last = last.get_or_insert_with(String::new);
            last.clear();
            last.push_str(&String::from_utf8_lossy(&self.name));
        }
        self.set_dir_times()?;
        Ok(last)
    }

    fn entry<R: Read>(&mut self, entry: &mut tar::Entry<'_, R>) -> Result<(), Cause> {
        self.stats.entries += 1;
        self.count_object()?;
        let entry_type = entry.header().entry_type();
        if entry_type.is_pax_global_extensions() {
            self.stats.skipped += 1;
            return Ok(());
        }
        let path = match names::classify(names::clean(&self.name, self.limits)?)? {
            Target::Opaque(dir) => return self.opaque(&dir),
            Target::Whiteout(path) => return self.whiteout(&path),
            Target::Plain(path) => path,
        };
        let meta = self.metadata(entry)?;
        match entry_type {
            EntryType::Directory => self.dir(path, meta),
            _ if path.as_os_str().is_empty() => Err(Cause::NamesRoot),
            EntryType::Regular | EntryType::Continuous | EntryType::GNUSparse => {
                self.file(entry, path, meta)
            }
            EntryType::Symlink => self.symlink(entry, path, meta),
            EntryType::Link => self.hardlink(entry, path),
            EntryType::Char | EntryType::Block | EntryType::Fifo => {
                self.special(entry, entry_type, path, meta)
            }
            other => Err(Cause::UnsupportedType(other.as_byte())),
        }
    }

    fn count_object(&mut self) -> Result<(), Cause> {
        self.objects += 1;
        if self.objects > self.limits.max_files {
            return Err(Cause::TooManyEntries {
                limit: self.limits.max_files,
            });
        }
        Ok(())
    }

    /// Reads what is left of the entry's data (for entries whose data is not written).
    fn drain<R: Read>(&mut self, entry: &mut tar::Entry<'_, R>) -> Result<(), Cause> {
        loop {
            match entry.read(&mut self.buf) {
                Ok(0) => return Ok(()),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(self.shared.classify(e)),
            }
        }
    }

    /// Runs a creating operation, creating missing parents, and replacing an object of the
    /// same name (a directory over a directory is kept: `Ok(None)`).
    fn create<T>(
        &mut self,
        path: &Path,
        is_dir: bool,
        mut op: impl FnMut(&mut F, &Path) -> Result<T, nodelet_sys::fs::FsError>,
    ) -> Result<Option<T>, Cause> {
        let err = match op(self.fs, path) {
            Ok(done) => return Ok(Some(done)),
            Err(err) => err,
        };
        match err.kind() {
            FsErrorKind::NotFound => {
                if !self.ensure_parent(path)? {
                    return Err(Cause::Fs(err));
                }
            }
            FsErrorKind::AlreadyExists => match self.fs.kind(path).map_err(Cause::Fs)? {
                Some(Kind::Dir) if is_dir => return Ok(None),
                Some(_) => {
                    self.fs.remove_all(path).map_err(Cause::Fs)?;
                    self.replaced = true;
                }
                None => return Err(Cause::Fs(err)),
            },
            _ => return Err(Cause::Fs(err)),
        }
        op(self.fs, path).map(Some).map_err(Cause::Fs)
    }

    /// Creates the missing parents of `path`; whether it created any.
    fn ensure_parent(&mut self, path: &Path) -> Result<bool, Cause> {
        let Some(parent) = names::parent(path) else {
            return Ok(false);
        };
        if parent.as_os_str().is_empty() || self.fs.kind(parent).map_err(Cause::Fs)?.is_some() {
            return Ok(false);
        }
        self.ensure_parent(parent)?;
        self.implied_dir(parent)?;
        Ok(true)
    }

    fn implied_dir(&mut self, path: &Path) -> Result<(), Cause> {
        self.count_object()?;
        self.fs.mkdir(path).map_err(Cause::Fs)?;
        self.fs
            .set_metadata(path, Kind::Dir, &IMPLIED_DIR)
            .map_err(Cause::Fs)?;
        self.stats.implied_dirs += 1;
        Ok(())
    }

    fn opaque(&mut self, dir: &Path) -> Result<(), Cause> {
        match self.fs.kind(dir).map_err(Cause::Fs)? {
            Some(Kind::Dir) => {}
            Some(_) => {
                return Err(Cause::OpaqueNotDirectory(
                    dir.to_string_lossy().into_owned(),
                ));
            }
            None => {
                self.ensure_parent(dir)?;
                self.implied_dir(dir)?;
            }
        }
        self.fs
            .set_xattr(dir, OPAQUE_XATTR, b"y")
            .map_err(Cause::Fs)?;
        self.stats.opaque_dirs += 1;
        Ok(())
    }

    fn whiteout(&mut self, path: &Path) -> Result<(), Cause> {
        if self.fs.kind(path).map_err(Cause::Fs)?.is_some() {
            // This layer wrote the name: whiteouts only hide lower layers.
            self.stats.skipped += 1;
            return Ok(());
        }
        self.create(path, false, |fs, p| fs.mknod(p, Special::Whiteout))?;
        self.stats.whiteouts += 1;
        Ok(())
    }

    fn dir(&mut self, path: PathBuf, meta: Meta) -> Result<(), Cause> {
        if !path.as_os_str().is_empty() {
            self.create(&path, true, |fs, p| fs.mkdir(p))?;
        }
        // Its times wait until its entries are written.
        let metadata = Metadata {
            times: None,
            ..meta.with_xattrs(&self.xattrs)
        };
        self.fs
            .set_metadata(&path, Kind::Dir, &metadata)
            .map_err(Cause::Fs)?;
        self.dir_times.push((path, meta.times));
        self.stats.dirs += 1;
        Ok(())
    }

    fn file<R: Read>(
        &mut self,
        entry: &mut tar::Entry<'_, R>,
        path: PathBuf,
        meta: Meta,
    ) -> Result<(), Cause> {
        let size = entry.size();
        let limit = self.limits.max_bytes;
        if size > limit.saturating_sub(self.stats.data_bytes) {
            return Err(Cause::EntryTooLarge { size, limit });
        }
        let Some(mut file) = self.create(&path, false, |fs, p| fs.create_file(p))? else {
            return Err(Cause::NamesRoot);
        };
        let mut got = 0u64;
        loop {
            let n = match entry.read(&mut self.buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(self.shared.classify(e)),
            };
            got += n as u64;
            file.write_all(&self.buf[..n]).map_err(Cause::Write)?;
        }
        if got != size {
            return Err(Cause::Truncated {
                got,
                expected: size,
            });
        }
        self.stats.data_bytes += got;
        let metadata = meta.with_xattrs(&self.xattrs);
        self.fs
            .finish_file(&path, file, &metadata)
            .map_err(Cause::Fs)?;
        self.written.insert(path);
        self.stats.files += 1;
        Ok(())
    }

    /// Copies the entry's link name into `self.link`.
    fn read_link<R: Read>(&mut self, entry: &tar::Entry<'_, R>) {
        self.link.clear();
        // An empty link name reads as none.
        if let Some(link) = entry.link_name_bytes() {
            self.link.extend_from_slice(&link);
        }
    }

    fn symlink<R: Read>(
        &mut self,
        entry: &tar::Entry<'_, R>,
        path: PathBuf,
        meta: Meta,
    ) -> Result<(), Cause> {
        self.read_link(entry);
        if self.link.is_empty() {
            return Err(Cause::SymlinkTarget("empty"));
        }
        if self.link.contains(&0) {
            return Err(Cause::SymlinkTarget("contains a NUL byte"));
        }
        if self.link.len() > self.limits.max_path_len {
            return Err(Cause::SymlinkTarget("longer than the path length limit"));
        }
        let link = std::mem::take(&mut self.link);
        let created = self.create(&path, false, |fs, p| {
            fs.symlink(p, OsStr::from_bytes(&link))
        });
        self.link = link;
        created?;
        let metadata = meta.with_xattrs(&self.xattrs);
        self.fs
            .set_metadata(&path, Kind::Symlink, &metadata)
            .map_err(Cause::Fs)?;
        self.written.insert(path);
        self.stats.symlinks += 1;
        Ok(())
    }

    fn hardlink<R: Read>(&mut self, entry: &tar::Entry<'_, R>, path: PathBuf) -> Result<(), Cause> {
        self.read_link(entry);
        let refuse = |link: &[u8], reason: String| Cause::HardlinkTarget {
            target: String::from_utf8_lossy(link).into_owned(),
            reason,
        };
        let target =
            names::clean(&self.link, self.limits).map_err(|c| refuse(&self.link, c.to_string()))?;
        if !self.written.contains(&target) {
            return Err(refuse(
                &self.link,
                "not a file this layer wrote before".into(),
            ));
        }
        if target == path {
            return Err(refuse(&self.link, "links to itself".into()));
        }
        self.create(&path, false, |fs, p| fs.hardlink(p, &target))?;
        self.written.insert(path);
        self.stats.hardlinks += 1;
        Ok(())
    }

    fn special<R: Read>(
        &mut self,
        entry: &tar::Entry<'_, R>,
        entry_type: EntryType,
        path: PathBuf,
        meta: Meta,
    ) -> Result<(), Cause> {
        let header = entry.header();
        let number = |value: io::Result<Option<u32>>, field| match value {
            Ok(Some(n)) => Ok(n),
            Ok(None) => Err(Cause::BadHeader {
                field,
                detail: "missing (not a ustar or GNU header)".into(),
            }),
            Err(e) => Err(Cause::BadHeader {
                field,
                detail: e.to_string(),
            }),
        };
        let (special, kind) = match entry_type {
            EntryType::Fifo => (Special::Fifo, Kind::Fifo),
            _ => {
                let major = number(header.device_major(), "device major")?;
                let minor = number(header.device_minor(), "device minor")?;
                if entry_type == EntryType::Char {
                    (Special::CharDevice { major, minor }, Kind::CharDevice)
                } else {
                    (Special::BlockDevice { major, minor }, Kind::BlockDevice)
                }
            }
        };
        self.create(&path, false, |fs, p| fs.mknod(p, special))?;
        let metadata = meta.with_xattrs(&self.xattrs);
        self.fs
            .set_metadata(&path, kind, &metadata)
            .map_err(Cause::Fs)?;
        self.written.insert(path);
        self.stats.devices += 1;
        Ok(())
    }

    /// Owner, mode and times from the header and PAX records; extended attributes into
    /// `self.xattrs`.
    fn metadata<R: Read>(&mut self, entry: &mut tar::Entry<'_, R>) -> Result<Meta, Cause> {
        let header = entry.header();
        let bad = |field: &'static str| {
            move |e: io::Error| Cause::BadHeader {
                field,
                detail: e.to_string(),
            }
        };
        let id = |value: u64, field: &'static str| {
            u32::try_from(value).map_err(|_| Cause::BadHeader {
                field,
                detail: format!("{value} is over 2^32-1"),
            })
        };
        // A blank numeric field reads as 0, as Go's archive/tar (Docker, containerd) has it.
        let old = header.as_old();
        let blank = |field: &[u8]| field.iter().all(|&b| b == 0 || b == b' ');
        let uid = match blank(&old.uid) {
            true => 0,
            false => id(header.uid().map_err(bad("uid"))?, "uid")?,
        };
        let gid = match blank(&old.gid) {
            true => 0,
            false => id(header.gid().map_err(bad("gid"))?, "gid")?,
        };
        let mode = match blank(&old.mode) {
            true => 0,
            false => header.mode().map_err(bad("mode"))? & 0o7777,
        };
        let mtime = match blank(&old.mtime) {
            true => 0,
            false => header.mtime().map_err(bad("mtime"))?,
        };
        let mut mtime = Timestamp {
            secs: i64::try_from(mtime).map_err(|_| Cause::BadHeader {
                field: "mtime",
                detail: format!("{mtime} is out of range"),
            })?,
            nanos: 0,
        };
        let mut atime = None;
        self.xattrs.clear();
        let pax = entry.pax_extensions().map_err(bad("PAX records"))?;
        if let Some(pax) = pax {
            for record in pax {
                let record = record.map_err(bad("PAX record"))?;
                let (key, value) = (record.key_bytes(), record.value_bytes());
                if key == b"mtime" {
                    mtime = pax_time(value, "PAX mtime")?;
                } else if key == b"atime" {
                    atime = Some(pax_time(value, "PAX atime")?);
                } else if let Some(name) = key.strip_prefix(b"SCHILY.xattr.") {
                    if xattr_wanted(name, value)? {
                        self.xattrs.push(Xattr {
                            name: name.to_vec(),
                            value: value.to_vec(),
                        });
                    } else {
                        self.stats.skipped += 1;
                    }
                }
            }
        }
        Ok(Meta {
            uid,
            gid,
            mode,
            times: Times {
                atime: atime.unwrap_or(mtime),
                mtime,
            },
        })
    }

    /// Directory times, now that their children are written.
    fn set_dir_times(&mut self) -> Result<(), UnpackError> {
        for (path, times) in std::mem::take(&mut self.dir_times) {
            let fail = |cause| UnpackError::entry(path.as_os_str().as_bytes(), cause);
            // A later entry may have removed or replaced it (or a parent): nothing to do.
            if self.replaced && !matches!(self.fs.kind(&path), Ok(Some(Kind::Dir))) {
                continue;
            }
            self.fs
                .set_times(&path, times)
                .map_err(|e| fail(Cause::Fs(e)))?;
        }
        Ok(())
    }
}

/// Whether to set an extended attribute from a layer (`false`: skip it), or refuse it.
fn xattr_wanted(name: &[u8], value: &[u8]) -> Result<bool, Cause> {
    let refuse = |reason| {
        Err(Cause::Xattr {
            name: String::from_utf8_lossy(name).into_owned(),
            reason,
        })
    };
    if name.is_empty() || name.contains(&0) || name.len() > XATTR_NAME_MAX {
        return refuse("invalid name");
    }
    if value.len() > XATTR_SIZE_MAX {
        return refuse("value larger than 64 KiB");
    }
    if name.starts_with(b"trusted.overlay.") || name.starts_with(b"user.overlay.") {
        return refuse("reserved for overlayfs");
    }
    if name == b"security.selinux" {
        return Ok(false);
    }
    let allowed = [b"user.".as_slice(), b"security.", b"trusted."]
        .iter()
        .any(|prefix| name.starts_with(prefix) && name.len() > prefix.len())
        || name == b"system.posix_acl_access"
        || name == b"system.posix_acl_default";
    if allowed {
        Ok(true)
    } else {
        refuse("namespace not allowed")
    }
}

/// A PAX time: `[-]seconds[.fraction]`.
fn pax_time(value: &[u8], field: &'static str) -> Result<Timestamp, Cause> {
    let bad = || Cause::BadHeader {
        field,
        detail: format!("`{}`", String::from_utf8_lossy(value)),
    };
    let (negative, rest) = match value.strip_prefix(b"-") {
        Some(rest) => (true, rest),
        None => (false, value),
    };
    let (int, frac) = match rest.iter().position(|&b| b == b'.') {
        Some(i) => (&rest[..i], &rest[i + 1..]),
        None => (rest, &rest[..0]),
    };
    if int.is_empty() || !int.iter().chain(frac).all(u8::is_ascii_digit) || int.len() > 18 {
        return Err(bad());
    }
    let mut secs: i64 = 0;
    for &d in int {
        secs = secs * 10 + i64::from(d - b'0');
    }
    let mut nanos: u32 = 0;
    for i in 0..9 {
        nanos = nanos * 10 + frac.get(i).map_or(0, |&d| u32::from(d - b'0'));
    }
    if negative {
        if nanos > 0 {
            secs = -secs - 1;
            nanos = 1_000_000_000 - nanos;
        } else {
            secs = -secs;
        }
    }
    Ok(Timestamp { secs, nanos })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pax_times() {
        let t = |s: &str| pax_time(s.as_bytes(), "t").map(|t| (t.secs, t.nanos));
        assert_eq!(t("0").unwrap(), (0, 0));
        assert_eq!(t("1700000000").unwrap(), (1_700_000_000, 0));
        assert_eq!(t("1700000000.5").unwrap(), (1_700_000_000, 500_000_000));
        assert_eq!(t("1.123456789123").unwrap(), (1, 123_456_789));
        assert_eq!(t("-1.25").unwrap(), (-2, 750_000_000));
        assert_eq!(t("-3").unwrap(), (-3, 0));
        for bad in ["", ".5", "1e9", "12a", "-", "1.2.3", "9999999999999999999"] {
            assert!(t(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn xattr_policy() {
        let w = |n: &str| xattr_wanted(n.as_bytes(), b"v");
        assert!(w("security.capability").unwrap());
        assert!(w("user.foo").unwrap());
        assert!(w("trusted.foo").unwrap());
        assert!(w("system.posix_acl_access").unwrap());
        assert!(!w("security.selinux").unwrap());
        for bad in [
            "trusted.overlay.opaque",
            "trusted.overlay.redirect",
            "user.overlay.opaque",
            "system.foo",
            "weird",
            "user.",
            "",
        ] {
            assert!(matches!(w(bad), Err(Cause::Xattr { .. })), "{bad}");
        }
        assert!(xattr_wanted(b"user.big", &vec![0; XATTR_SIZE_MAX + 1]).is_err());
    }
}

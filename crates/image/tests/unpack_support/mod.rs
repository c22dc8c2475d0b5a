//! Shared by the unpack tests: layer tars built by hand (including names the `tar` builder
//! refuses), a temporary bed with a root and a sentinel directory beside it, and snapshots
//! proving nothing outside the root changed.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use nodelet_image::unpack::{Compression, UnpackError, UnpackLimits, UnpackStats, unpack_layer};
use tar::{EntryType, Header};

pub const MTIME: u64 = 1_600_000_000;

/// A layer tar under construction.
pub struct Tar {
    builder: tar::Builder<Vec<u8>>,
}

pub fn header(kind: EntryType, mode: u32, size: u64) -> Header {
    let mut h = Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(MTIME);
    h.set_size(size);
    h
}

impl Default for Tar {
    fn default() -> Self {
        Tar::new()
    }
}

impl Tar {
    pub fn new() -> Tar {
        Tar {
            builder: tar::Builder::new(Vec::new()),
        }
    }

    /// An entry whose name and link name bytes go into the header as they are (at most
    /// 100 bytes each), bypassing every check of the builder.
    pub fn raw_with(
        mut self,
        kind: EntryType,
        name: &[u8],
        link: &[u8],
        data: &[u8],
        edit: impl FnOnce(&mut Header),
    ) -> Tar {
        let mode = if kind == EntryType::Directory {
            0o755
        } else {
            0o644
        };
        let mut h = header(kind, mode, data.len() as u64);
        assert!(name.len() <= 100 && link.len() <= 100);
        h.as_old_mut().name[..name.len()].copy_from_slice(name);
        h.as_old_mut().linkname[..link.len()].copy_from_slice(link);
        edit(&mut h);
        h.set_cksum();
        self.builder.append(&h, data).unwrap();
        self
    }

    pub fn raw(self, kind: EntryType, name: &str, link: &str, data: &[u8]) -> Tar {
        self.raw_with(kind, name.as_bytes(), link.as_bytes(), data, |_| {})
    }

    pub fn dir(self, name: &str) -> Tar {
        self.raw(EntryType::Directory, name, "", b"")
    }

    pub fn file(self, name: &str, data: &[u8]) -> Tar {
        self.raw(EntryType::Regular, name, "", data)
    }

    pub fn symlink(self, name: &str, target: &str) -> Tar {
        self.raw_with(
            EntryType::Symlink,
            name.as_bytes(),
            target.as_bytes(),
            b"",
            |h| h.set_mode(0o777),
        )
    }

    pub fn hardlink(self, name: &str, target: &str) -> Tar {
        self.raw(EntryType::Link, name, target, b"")
    }

    /// A GNU long name (`L`) record for the next entry.
    pub fn long_name(self, name: &[u8]) -> Tar {
        self.gnu_long(EntryType::GNULongName, name)
    }

    /// A GNU long link (`K`) record for the next entry.
    pub fn long_link(self, link: &[u8]) -> Tar {
        self.gnu_long(EntryType::GNULongLink, link)
    }

    fn gnu_long(mut self, kind: EntryType, value: &[u8]) -> Tar {
        let mut data = value.to_vec();
        data.push(0);
        let mut h = header(kind, 0, data.len() as u64);
        let name = b"././@LongLink";
        h.as_old_mut().name[..name.len()].copy_from_slice(name);
        h.set_cksum();
        self.builder.append(&h, data.as_slice()).unwrap();
        self
    }

    /// A PAX extended header (`x`) for the next entry.
    pub fn pax(mut self, records: &[(&str, &[u8])]) -> Tar {
        self.builder
            .append_pax_extensions(records.iter().map(|(k, v)| (*k, *v)))
            .unwrap();
        self
    }

    /// Appends raw bytes (must keep 512-byte blocks to stay a tar).
    pub fn raw_bytes(mut self, bytes: &[u8]) -> Tar {
        self.builder.get_mut().extend_from_slice(bytes);
        self
    }

    /// The finished tar (with its two end-of-archive blocks).
    pub fn bytes(self) -> Vec<u8> {
        self.builder.into_inner().unwrap()
    }

    /// The tar without end-of-archive blocks.
    pub fn unfinished(mut self) -> Vec<u8> {
        std::mem::take(self.builder.get_mut())
    }
}

pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(data).unwrap();
    gz.finish().unwrap()
}

pub fn sha256(data: &[u8]) -> String {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, data);
    let hex: String = d.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

/// A temporary directory holding `root` (empty, where layers go) and `outside` (a sentinel
/// tree that must never change), snapshotted at creation.
pub struct Bed {
    pub tmp: tempfile::TempDir,
    pub root: PathBuf,
    pub outside: PathBuf,
    before: BTreeMap<PathBuf, String>,
    passwd_before: String,
}

impl Bed {
    pub fn new() -> Bed {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("root");
        let outside = tmp.path().join("outside");
        fs::create_dir(&root).unwrap();
        fs::create_dir_all(outside.join("dir")).unwrap();
        fs::write(outside.join("sentinel"), b"must not change\n").unwrap();
        fs::write(outside.join("dir/inner"), b"inner sentinel\n").unwrap();
        fs::set_permissions(outside.join("sentinel"), fs::Permissions::from_mode(0o644)).unwrap();
        std::os::unix::fs::symlink("sentinel", outside.join("link")).unwrap();
        let mut bed = Bed {
            before: BTreeMap::new(),
            passwd_before: host_file_state(Path::new("/etc/passwd")),
            tmp,
            root,
            outside,
        };
        bed.before = bed.snapshot();
        bed
    }

    /// `outside`, as an absolute path string (for symbolic link targets).
    pub fn outside_str(&self) -> String {
        self.outside.to_str().unwrap().to_string()
    }

    pub fn unpack(&self, layer: &[u8]) -> Result<UnpackStats, UnpackError> {
        self.unpack_with(layer, &UnpackLimits::default())
    }

    pub fn unpack_with(
        &self,
        layer: &[u8],
        limits: &UnpackLimits,
    ) -> Result<UnpackStats, UnpackError> {
        unpack_layer(layer, Compression::Detect, &self.root, limits)
    }

    /// Everything under the temporary directory except `root`'s contents.
    fn snapshot(&self) -> BTreeMap<PathBuf, String> {
        let mut out = BTreeMap::new();
        walk(self.tmp.path(), self.tmp.path(), &self.root, &mut out);
        out
    }

    /// Asserts that nothing outside `root` changed: the sentinel tree, the temporary
    /// directory itself, and the host's `/etc/passwd`.
    pub fn assert_outside_unchanged(&self) {
        let after = self.snapshot();
        assert_eq!(self.before, after, "something outside the root changed");
        assert_eq!(
            self.passwd_before,
            host_file_state(Path::new("/etc/passwd")),
            "/etc/passwd changed"
        );
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }
}

fn host_file_state(path: &Path) -> String {
    let m = fs::symlink_metadata(path).unwrap();
    format!(
        "ino={} nlink={} len={} mtime={} mode={:o}",
        m.ino(),
        m.nlink(),
        m.len(),
        m.mtime(),
        m.mode()
    )
}

fn walk(base: &Path, dir: &Path, skip: &Path, out: &mut BTreeMap<PathBuf, String>) {
    let describe = |path: &Path| {
        let m = fs::symlink_metadata(path).unwrap();
        let xattrs = nodelet_sys::fs::list_xattrs(path).unwrap();
        let mut s = format!(
            "type={:?} mode={:o} uid={} gid={} len={} mtime={}.{} nlink={} ino={} xattrs={:?}",
            m.file_type(),
            m.mode(),
            m.uid(),
            m.gid(),
            m.len(),
            m.mtime(),
            m.mtime_nsec(),
            m.nlink(),
            m.ino(),
            xattrs
        );
        if m.file_type().is_symlink() {
            s += &format!(" -> {:?}", fs::read_link(path).unwrap());
        } else if m.is_file() {
            let mut data = Vec::new();
            fs::File::open(path)
                .unwrap()
                .read_to_end(&mut data)
                .unwrap();
            s += &format!(" {}", sha256(&data));
        }
        s
    };
    if dir == base {
        out.insert(PathBuf::from("."), describe(dir));
    }
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let rel = path.strip_prefix(base).unwrap().to_path_buf();
        if path == skip {
            // The root itself may change (it is where the layer goes); its contents are
            // checked by each test.
            continue;
        }
        out.insert(rel, describe(&path));
        if fs::symlink_metadata(&path).unwrap().is_dir() {
            walk(base, &path, skip, out);
        }
    }
}

/// Lists the root's tree (relative paths), for assertions and failure messages.
pub fn tree(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    fn go(base: &Path, dir: &Path, out: &mut Vec<String>) {
        let mut entries: Vec<_> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        entries.sort();
        for path in entries {
            let rel = path
                .strip_prefix(base)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            let m = fs::symlink_metadata(&path).unwrap();
            out.push(rel);
            if m.is_dir() {
                go(base, &path, out);
            }
        }
    }
    go(root, root, &mut out);
    out
}

/// Major and minor of a device number (glibc's encoding).
pub fn dev_numbers(rdev: u64) -> (u64, u64) {
    let major = ((rdev >> 8) & 0xfff) | ((rdev >> 32) & !0xfff);
    let minor = (rdev & 0xff) | ((rdev >> 12) & !0xff);
    (major, minor)
}

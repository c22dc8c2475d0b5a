//! An in-memory [`TreeFs`] for unit tests: paths are taken literally (no symbolic link
//! resolution, which the real [`nodelet_sys::fs::RootDir`] and its tests cover), and every
//! call is logged so tests can check the order of operations.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use nodelet_sys::fs::{FsError, Kind, Metadata, Special, Times, TreeFs};

const ENOENT: i32 = 2;
const EEXIST: i32 = 17;
const ENOTDIR: i32 = 20;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Node {
    pub kind: Kind,
    pub data: Vec<u8>,
    pub mode: u32,
    pub owner: (u32, u32),
    pub xattrs: BTreeMap<Vec<u8>, Vec<u8>>,
    pub mtime: Option<i64>,
    pub rdev: Option<(u32, u32)>,
    pub link: Option<PathBuf>,
}

#[derive(Debug, Default)]
pub(crate) struct FakeFs {
    pub nodes: BTreeMap<PathBuf, Node>,
    pub log: Vec<String>,
}

fn node(kind: Kind) -> Node {
    Node {
        kind,
        data: Vec::new(),
        mode: 0,
        owner: (0, 0),
        xattrs: BTreeMap::new(),
        mtime: None,
        rdev: None,
        link: None,
    }
}

impl FakeFs {
    fn check_parent(&self, op: &'static str, path: &Path) -> Result<(), FsError> {
        match path.parent() {
            None => Ok(()),
            Some(p) if p.as_os_str().is_empty() => Ok(()),
            Some(p) => match self.nodes.get(p) {
                Some(n) if n.kind == Kind::Dir => Ok(()),
                Some(_) => Err(FsError::new(op, path, ENOTDIR)),
                None => Err(FsError::new(op, path, ENOENT)),
            },
        }
    }

    fn add(&mut self, op: &'static str, path: &Path, n: Node) -> Result<(), FsError> {
        self.check_parent(op, path)?;
        if self.nodes.contains_key(path) {
            return Err(FsError::new(op, path, EEXIST));
        }
        self.log.push(format!("{op} {}", path.display()));
        self.nodes.insert(path.to_path_buf(), n);
        Ok(())
    }

    fn apply(&mut self, path: &Path, meta: &Metadata<'_>) -> Result<(), FsError> {
        let n = self
            .nodes
            .get_mut(path)
            .ok_or_else(|| FsError::new("metadata", path, ENOENT))?;
        n.owner = (meta.uid, meta.gid);
        n.mode = meta.mode;
        for x in meta.xattrs {
            n.xattrs.insert(x.name.clone(), x.value.clone());
        }
        if let Some(t) = meta.times {
            n.mtime = Some(t.mtime.secs);
        }
        Ok(())
    }
}

/// What [`FakeFs::create_file`] hands out: the data goes into the node on `finish_file`.
#[derive(Debug, Default)]
pub(crate) struct FakeFile(Vec<u8>);

impl std::io::Write for FakeFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl TreeFs for FakeFs {
    type File = FakeFile;

    fn kind(&mut self, path: &Path) -> Result<Option<Kind>, FsError> {
        if path.as_os_str().is_empty() {
            return Ok(Some(Kind::Dir));
        }
        Ok(self.nodes.get(path).map(|n| n.kind))
    }

    fn mkdir(&mut self, path: &Path) -> Result<(), FsError> {
        self.add("mkdir", path, node(Kind::Dir))
    }

    fn create_file(&mut self, path: &Path) -> Result<FakeFile, FsError> {
        self.add("create", path, node(Kind::File))?;
        Ok(FakeFile::default())
    }

    fn finish_file(
        &mut self,
        path: &Path,
        file: FakeFile,
        meta: &Metadata<'_>,
    ) -> Result<(), FsError> {
        self.apply(path, meta)?;
        self.nodes.get_mut(path).unwrap().data = file.0;
        Ok(())
    }

    fn symlink(&mut self, path: &Path, target: &OsStr) -> Result<(), FsError> {
        let mut n = node(Kind::Symlink);
        n.link = Some(target.into());
        self.add("symlink", path, n)
    }

    fn hardlink(&mut self, path: &Path, target: &Path) -> Result<(), FsError> {
        let n = self
            .nodes
            .get(target)
            .cloned()
            .ok_or_else(|| FsError::new("hardlink", path, ENOENT))?;
        self.add("hardlink", path, n)
    }

    fn mknod(&mut self, path: &Path, special: Special) -> Result<(), FsError> {
        let (kind, rdev) = match special {
            Special::CharDevice { major, minor } => (Kind::CharDevice, (major, minor)),
            Special::BlockDevice { major, minor } => (Kind::BlockDevice, (major, minor)),
            Special::Fifo => (Kind::Fifo, (0, 0)),
            Special::Whiteout => (Kind::CharDevice, (0, 0)),
        };
        let mut n = node(kind);
        n.rdev = Some(rdev);
        self.add("mknod", path, n)
    }

    fn remove_all(&mut self, path: &Path) -> Result<(), FsError> {
        self.log.push(format!("remove {}", path.display()));
        self.nodes.retain(|p, _| !p.starts_with(path));
        Ok(())
    }

    fn set_metadata(
        &mut self,
        path: &Path,
        _kind: Kind,
        meta: &Metadata<'_>,
    ) -> Result<(), FsError> {
        if path.as_os_str().is_empty() {
            return Ok(());
        }
        self.apply(path, meta)
    }

    fn set_xattr(&mut self, path: &Path, name: &[u8], value: &[u8]) -> Result<(), FsError> {
        self.log.push(format!("xattr {}", path.display()));
        let n = self
            .nodes
            .get_mut(path)
            .ok_or_else(|| FsError::new("xattr", path, ENOENT))?;
        n.xattrs.insert(name.to_vec(), value.to_vec());
        Ok(())
    }

    fn set_times(&mut self, path: &Path, times: Times) -> Result<(), FsError> {
        self.log.push(format!("times {}", path.display()));
        if let Some(n) = self.nodes.get_mut(path) {
            n.mtime = Some(times.mtime.secs);
        }
        Ok(())
    }
}

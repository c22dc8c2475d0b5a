//! Reading files inside a directory tree that is somebody else's root filesystem (a
//! container image), where symbolic links must resolve as if the tree were `/`.

use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

use rustix::fs::{CWD, Mode, OFlags, ResolveFlags};

/// Reads at most `limit` bytes of `path` as seen from inside `root`: `..` and symbolic links
/// (absolute or relative) met on the way resolve within `root` (`openat2` with
/// `RESOLVE_IN_ROOT`), so an image's `/etc/passwd -> /etc/shadow-of-the-host` stays inside.
/// Returns `Ok(None)` when the file does not exist; an error if it is larger than `limit`.
pub fn read_file_in_root(root: &Path, path: &Path, limit: u64) -> io::Result<Option<Vec<u8>>> {
    let root_fd = rustix::fs::openat(
        CWD,
        root,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    let relative = path.strip_prefix("/").unwrap_or(path);
    let fd = match rustix::fs::openat2(
        &root_fd,
        relative,
        OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOCTTY,
        Mode::empty(),
        ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
    ) {
        Ok(fd) => fd,
        Err(rustix::io::Errno::NOENT) => return Ok(None),
        Err(errno) => return Err(errno.into()),
    };
    let mut bytes = Vec::new();
    File::from(fd)
        .take(limit.saturating_add(1))
        .read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "{} in {} is larger than {limit} bytes",
                path.display(),
                root.display()
            ),
        ));
    }
    Ok(Some(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_resolve_inside_the_root() {
        let outside_dir = tempfile::tempdir().unwrap();
        let outside = outside_dir.path();
        std::fs::write(outside.join("secret"), "host").unwrap();
        let root_dir = tempfile::tempdir().unwrap();
        let root = root_dir.path();
        std::fs::create_dir(root.join("etc")).unwrap();
        std::fs::write(root.join("etc/group"), "inside").unwrap();
        std::os::unix::fs::symlink(outside.join("secret"), root.join("etc/passwd")).unwrap();
        std::os::unix::fs::symlink("../../../../etc/group", root.join("etc/up")).unwrap();
        assert_eq!(
            read_file_in_root(root, Path::new("/etc/passwd"), 100).unwrap(),
            None
        );
        assert_eq!(
            read_file_in_root(root, Path::new("/etc/up"), 100)
                .unwrap()
                .unwrap(),
            b"inside"
        );
        assert!(read_file_in_root(root, Path::new("/etc/group"), 3).is_err());
    }
}

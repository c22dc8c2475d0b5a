//! Reading extended attributes of trusted host paths (never following a final symbolic link).

use std::path::Path;

use rustix::fs as rfs;
use rustix::io::Errno;

use super::FsError;

/// The value of extended attribute `name` of `path` (`lgetxattr`: a final symbolic link is
/// read itself), or `None` if it has none of that name.
pub fn read_xattr(path: &Path, name: &[u8]) -> Result<Option<Vec<u8>>, FsError> {
    let op = "read extended attribute of";
    loop {
        let size = match rfs::lgetxattr_query(path, name) {
            Ok(size) => size,
            Err(Errno::NODATA) => return Ok(None),
            Err(e) => return Err(FsError::new(op, path, e.raw_os_error())),
        };
        let mut value = vec![0u8; size];
        match rfs::lgetxattr(path, name, &mut value[..]) {
            Ok(n) => {
                value.truncate(n);
                return Ok(Some(value));
            }
            // Grew between the two calls.
            Err(Errno::RANGE) => continue,
            Err(Errno::NODATA) => return Ok(None),
            Err(e) => return Err(FsError::new(op, path, e.raw_os_error())),
        }
    }
}

/// The names of the extended attributes of `path` (`llistxattr`), sorted.
pub fn list_xattrs(path: &Path) -> Result<Vec<Vec<u8>>, FsError> {
    let op = "list extended attributes of";
    loop {
        let size =
            rfs::llistxattr_query(path).map_err(|e| FsError::new(op, path, e.raw_os_error()))?;
        let mut list = vec![0u8; size];
        match rfs::llistxattr(path, &mut list[..]) {
            Ok(n) => {
                list.truncate(n);
                let mut names: Vec<Vec<u8>> = list
                    .split(|&b| b == 0)
                    .filter(|n| !n.is_empty())
                    .map(<[u8]>::to_vec)
                    .collect();
                names.sort();
                return Ok(names);
            }
            Err(Errno::RANGE) => continue,
            Err(e) => return Err(FsError::new(op, path, e.raw_os_error())),
        }
    }
}

//! Which cgroup hierarchies the host has mounted.

use std::io;
use std::path::{Path, PathBuf};

use rustix::fs::FsWord;

const CGROUP2_SUPER_MAGIC: FsWord = 0x6367_7270;
const CGROUP_SUPER_MAGIC: FsWord = 0x0027_e0eb;
const TMPFS_MAGIC: FsWord = 0x0102_1994;

/// The usual mount point of the cgroup filesystems.
pub const CGROUP_ROOT: &str = "/sys/fs/cgroup";

/// How the host's cgroups are laid out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CgroupLayout {
    /// cgroup v2 alone at `/sys/fs/cgroup`.
    Unified,
    /// v1 hierarchies under a tmpfs at `/sys/fs/cgroup`, with a cgroup2 mount beside them.
    Hybrid {
        /// Where the cgroup2 filesystem is mounted (usually `/sys/fs/cgroup/unified`).
        cgroup2: PathBuf,
        /// The controllers enabled on it (`cgroup.controllers`), often none or `hugetlb`.
        controllers: Vec<String>,
    },
    /// v1 hierarchies only.
    Legacy,
}

/// Looks at `/sys/fs/cgroup` and, for a v1 layout, at `/sys/fs/cgroup/unified`.
pub fn host_cgroup_layout() -> io::Result<CgroupLayout> {
    cgroup_layout_at(Path::new(CGROUP_ROOT))
}

/// [`host_cgroup_layout`] for a cgroup root mounted elsewhere.
pub fn cgroup_layout_at(root: &Path) -> io::Result<CgroupLayout> {
    let root_kind = rustix::fs::statfs(root)?.f_type;
    if root_kind == CGROUP2_SUPER_MAGIC {
        return Ok(CgroupLayout::Unified);
    }
    if root_kind != TMPFS_MAGIC && root_kind != CGROUP_SUPER_MAGIC {
        return Err(io::Error::other(format!(
            "{} is neither a cgroup mount nor a tmpfs of them",
            root.display()
        )));
    }
    let unified = root.join("unified");
    match rustix::fs::statfs(&unified) {
        Ok(stat) if stat.f_type == CGROUP2_SUPER_MAGIC => {
            let controllers = std::fs::read_to_string(unified.join("cgroup.controllers"))?
                .split_whitespace()
                .map(str::to_string)
                .collect();
            Ok(CgroupLayout::Hybrid {
                cgroup2: unified,
                controllers,
            })
        }
        _ => Ok(CgroupLayout::Legacy),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_host_has_some_layout() {
        // Whatever the machine has, detection must not fail where cgroups are mounted.
        if Path::new(CGROUP_ROOT).exists() {
            let layout = host_cgroup_layout().unwrap();
            if let CgroupLayout::Hybrid { cgroup2, .. } = &layout {
                assert!(cgroup2.starts_with(CGROUP_ROOT));
            }
        }
    }

    #[test]
    fn a_plain_directory_is_not_a_cgroup_root() {
        assert!(cgroup_layout_at(&std::env::temp_dir()).is_err());
    }
}

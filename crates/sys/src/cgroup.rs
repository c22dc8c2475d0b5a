//! Which cgroup hierarchies the host has mounted, and the plain file operations cgroupfs is
//! driven with (directories are cgroups, files are their settings).

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

/// The v1 hierarchies mounted under `root` (one per mount: `cpu` and `cpuacct` linked to one
/// `cpu,cpuacct` mount count once), named ones such as `name=systemd` included; the cgroup2
/// mount of a hybrid layout is not among them.
pub fn v1_hierarchies_at(root: &Path) -> io::Result<Vec<PathBuf>> {
    let mut found: Vec<PathBuf> = Vec::new();
    let mut entries: Vec<PathBuf> = std::fs::read_dir(root)?
        .flatten()
        .map(|e| e.path())
        .collect();
    entries.sort();
    for path in entries {
        let Ok(stat) = rustix::fs::statfs(&path) else {
            continue;
        };
        if stat.f_type != CGROUP_SUPER_MAGIC {
            continue;
        }
        let real = std::fs::canonicalize(&path).unwrap_or(path);
        if !found.contains(&real) {
            found.push(real);
        }
    }
    Ok(found)
}

/// Makes one cgroup (`mkdir`); an existing one is fine.
pub fn make_cgroup(dir: &Path) -> io::Result<()> {
    match std::fs::create_dir(dir) {
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        other => other,
    }
}

/// Removes one empty cgroup (`rmdir`: cgroupfs refuses it while it has processes or
/// children, with `EBUSY`).
pub fn remove_cgroup(dir: &Path) -> io::Result<()> {
    std::fs::remove_dir(dir)
}

/// Writes one setting (`memory.limit_in_bytes`, `cgroup.procs`, ...) in one `write`.
pub fn write_cgroup_file(dir: &Path, name: &str, value: &str) -> io::Result<()> {
    use std::io::Write;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .open(dir.join(name))?;
    file.write_all(value.as_bytes())
}

/// Reads one setting, without its trailing newline.
pub fn read_cgroup_file(dir: &Path, name: &str) -> io::Result<String> {
    Ok(std::fs::read_to_string(dir.join(name))?
        .trim_end()
        .to_string())
}

/// The child cgroups of `dir` (its subdirectories).
pub fn child_cgroups(dir: &Path) -> io::Result<Vec<PathBuf>> {
    Ok(std::fs::read_dir(dir)?
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| e.path())
        .collect())
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
    fn v1_hierarchies_are_cgroup_mounts_only() {
        let layout = host_cgroup_layout();
        if matches!(
            layout,
            Ok(CgroupLayout::Hybrid { .. } | CgroupLayout::Legacy)
        ) {
            let found = v1_hierarchies_at(Path::new(CGROUP_ROOT)).unwrap();
            assert!(!found.is_empty());
            if let Ok(CgroupLayout::Hybrid { cgroup2, .. }) = &layout {
                assert!(!found.contains(cgroup2));
            }
        }
        assert!(v1_hierarchies_at(&std::env::temp_dir()).unwrap().is_empty());
    }

    #[test]
    fn a_plain_directory_is_not_a_cgroup_root() {
        assert!(cgroup_layout_at(&std::env::temp_dir()).is_err());
    }
}

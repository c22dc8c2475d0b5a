//! Host side of `mountPropagation`: a volume's bind only receives (HostToContainer) or sends
//! (Bidirectional) mounts if the host mount its source sits on is shared (or, for
//! HostToContainer, a slave). containerd refuses a source on a private mount; upstream's
//! kubelet avoids that for its own directories by making its root directory an rshared mount
//! at start. We make the source shared when the container starts:
//!
//! - on a shared mount (or a slave one, for HostToContainer): nothing to do;
//! - the source is a mount point itself (a tmpfs emptyDir, a mounted disk): make it rshared,
//!   which changes only its propagation;
//! - outside the pods directory (a hostPath): bind the source onto itself and make that
//!   rshared. The bind stays on the host (as upstream's root-directory bind does): removing it
//!   under a running container would cut the container off from later host mounts;
//! - inside the pods directory and not a mount point: refused with containerd's message, since
//!   a bind there would keep the pod's directory from being removed.

use std::path::{Path, PathBuf};

use crate::spec::MountPropagation;

#[derive(Debug, thiserror::Error)]
pub enum PropagationError {
    #[error("reading /proc/self/mountinfo: {0}")]
    MountInfo(std::io::Error),
    #[error("resolving {}: {source}", .path.display())]
    Resolve {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("no mount holds {}", .0.display())]
    NoMount(PathBuf),
    /// containerd's wording.
    #[error("path {:?} is mounted on {:?} but it is not a {what} mount", .path, .mount_point)]
    NotShared {
        path: PathBuf,
        mount_point: PathBuf,
        what: &'static str,
    },
    #[error(transparent)]
    Mount(#[from] nodelet_sys::mount::MountError),
}

/// One line of `/proc/self/mountinfo`, the parts we use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountEntry {
    pub mount_point: PathBuf,
    /// A member of a peer group (`shared:N`).
    pub shared: bool,
    /// Receives from a master (`master:N`).
    pub slave: bool,
}

/// Parses `/proc/self/mountinfo` text; later lines stack over earlier ones at one point.
pub fn parse_mountinfo(text: &str) -> Vec<MountEntry> {
    text.lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split(' ').collect();
            let mount_point = unescape(fields.get(4)?);
            let optional = fields.get(6..)?.iter().take_while(|f| **f != "-");
            let (mut shared, mut slave) = (false, false);
            for field in optional {
                shared |= field.starts_with("shared:");
                slave |= field.starts_with("master:");
            }
            Some(MountEntry {
                mount_point: PathBuf::from(mount_point),
                shared,
                slave,
            })
        })
        .collect()
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo`.
fn unescape(field: &str) -> String {
    let mut out = String::with_capacity(field.len());
    let mut rest = field;
    while let Some(at) = rest.find('\\') {
        out.push_str(&rest[..at]);
        let code = rest
            .get(at + 1..at + 4)
            .and_then(|o| u8::from_str_radix(o, 8).ok());
        match code {
            Some(byte) => {
                out.push(char::from(byte));
                rest = &rest[at + 4..];
            }
            None => {
                out.push('\\');
                rest = &rest[at + 1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// The mount `path` (absolute, symbolic links resolved) is on: the last one whose mount
/// point is `path` or a parent of it.
pub fn mount_of<'a>(mounts: &'a [MountEntry], path: &Path) -> Option<&'a MountEntry> {
    mounts
        .iter()
        .enumerate()
        .filter(|(_, m)| path.starts_with(&m.mount_point))
        .max_by_key(|(i, m)| (m.mount_point.components().count(), *i))
        .map(|(_, m)| m)
}

/// What has to happen on the host before a bind of `source` with `propagation` works.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    Nothing,
    MakeShared,
    BindAndMakeShared,
    Refuse(&'static str, PathBuf),
}

/// Decides (pure) for a resolved `source` under `pods_dir` or not.
pub fn plan(
    mounts: &[MountEntry],
    source: &Path,
    propagation: MountPropagation,
    pods_dir: &Path,
) -> Result<Plan, PropagationError> {
    let (ok, what) = match propagation {
        MountPropagation::Private => return Ok(Plan::Nothing),
        MountPropagation::HostToContainer => (
            (|m: &MountEntry| m.shared || m.slave) as fn(&MountEntry) -> bool,
            "shared or slave",
        ),
        MountPropagation::Bidirectional => (
            (|m: &MountEntry| m.shared) as fn(&MountEntry) -> bool,
            "shared",
        ),
    };
    let mount = mount_of(mounts, source).ok_or_else(|| PropagationError::NoMount(source.into()))?;
    Ok(if ok(mount) {
        Plan::Nothing
    } else if mount.mount_point == source {
        Plan::MakeShared
    } else if source.starts_with(pods_dir) {
        Plan::Refuse(what, mount.mount_point.clone())
    } else {
        Plan::BindAndMakeShared
    })
}

/// Makes host mounts under `source` reach a container's bind of it with `propagation`
/// (see the module documentation). `pods_dir` is the kubelet's `{root-dir}/pods`.
pub fn prepare_source(
    source: &Path,
    propagation: MountPropagation,
    pods_dir: &Path,
) -> Result<(), PropagationError> {
    if propagation == MountPropagation::Private {
        return Ok(());
    }
    let resolve = |path: &Path| {
        std::fs::canonicalize(path).map_err(|source| PropagationError::Resolve {
            path: path.to_path_buf(),
            source,
        })
    };
    let source = resolve(source)?;
    let pods_dir = resolve(pods_dir).unwrap_or_else(|_| pods_dir.to_path_buf());
    let mounts = parse_mountinfo(
        &std::fs::read_to_string("/proc/self/mountinfo").map_err(PropagationError::MountInfo)?,
    );
    match plan(&mounts, &source, propagation, &pods_dir)? {
        Plan::Nothing => Ok(()),
        Plan::MakeShared => Ok(nodelet_sys::mount::make_rshared(&source)?),
        Plan::BindAndMakeShared => {
            nodelet_sys::mount::bind_onto_itself(&source)?;
            Ok(nodelet_sys::mount::make_rshared(&source)?)
        }
        Plan::Refuse(what, mount_point) => Err(PropagationError::NotShared {
            path: source,
            mount_point,
            what,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MOUNTINFO: &str = "\
22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
30 22 0:25 / /var/lib/nodelet rw - ext4 /dev/sdb1 rw
31 30 0:26 / /var/lib/nodelet/pods/u1/volumes/kubernetes.io~empty-dir/mem rw - tmpfs tmpfs rw
40 22 0:27 / /mnt/with\\040space rw master:7 - ext4 /dev/sdc1 rw
41 22 0:28 / /srv rw - ext4 /dev/sdd1 rw
";

    fn mounts() -> Vec<MountEntry> {
        parse_mountinfo(MOUNTINFO)
    }

    #[test]
    fn mountinfo_lines_and_the_mount_a_path_is_on() {
        let mounts = mounts();
        assert_eq!(mounts.len(), 5);
        assert_eq!(
            mounts[3],
            MountEntry {
                mount_point: "/mnt/with space".into(),
                shared: false,
                slave: true
            }
        );
        let on = |p: &str| mount_of(&mounts, Path::new(p)).unwrap().mount_point.clone();
        assert_eq!(on("/etc"), PathBuf::from("/"));
        assert_eq!(
            on("/var/lib/nodelet/pods/u1"),
            PathBuf::from("/var/lib/nodelet")
        );
        assert_eq!(on("/srvx"), PathBuf::from("/"), "a component, not a prefix");
    }

    #[test]
    fn what_each_source_needs() {
        let mounts = mounts();
        let pods = Path::new("/var/lib/nodelet/pods");
        let plan_for = |source: &str, propagation| {
            plan(&mounts, Path::new(source), propagation, pods).unwrap()
        };
        use MountPropagation::{Bidirectional, HostToContainer, Private};
        assert_eq!(plan_for("/srv/data", Private), Plan::Nothing);
        assert_eq!(plan_for("/etc/data", HostToContainer), Plan::Nothing);
        assert_eq!(
            plan_for("/mnt/with space/x", HostToContainer),
            Plan::Nothing
        );
        assert_eq!(
            plan_for("/mnt/with space/x", Bidirectional),
            Plan::BindAndMakeShared
        );
        assert_eq!(plan_for("/srv", HostToContainer), Plan::MakeShared);
        assert_eq!(
            plan_for("/srv/data", HostToContainer),
            Plan::BindAndMakeShared
        );
        assert_eq!(
            plan_for(
                "/var/lib/nodelet/pods/u1/volumes/kubernetes.io~empty-dir/mem",
                Bidirectional
            ),
            Plan::MakeShared
        );
        assert_eq!(
            plan_for(
                "/var/lib/nodelet/pods/u1/volumes/kubernetes.io~empty-dir/disk",
                HostToContainer
            ),
            Plan::Refuse("shared or slave", "/var/lib/nodelet".into())
        );
        let refused = PropagationError::NotShared {
            path: "/var/lib/nodelet/pods/u1/v".into(),
            mount_point: "/var/lib/nodelet".into(),
            what: "shared",
        };
        assert_eq!(
            refused.to_string(),
            "path \"/var/lib/nodelet/pods/u1/v\" is mounted on \"/var/lib/nodelet\" but it is not a shared mount"
        );
    }
}

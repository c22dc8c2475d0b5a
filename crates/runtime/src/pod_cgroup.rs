//! A pod's cgroup: the parent of its containers' cgroups, holding the pod-level limits
//! (requests/limits summed, plus the RuntimeClass overhead), as the kubelet's cgroupfs driver
//! lays them out: `<parent>/pod<uid>` for Guaranteed pods, `<parent>/burstable/pod<uid>` and
//! `<parent>/besteffort/pod<uid>` for the others. The parent defaults to `nodelet/kubepods`
//! so nodelet never writes into a kubelet's own `kubepods`.
//!
//! The same cgroup is made in every v1 hierarchy the host has, and in the cgroup2 mount of a
//! hybrid host when it has controllers (on a unified host, in the one hierarchy). Its path is
//! a function of the parent, the pod's QoS class and uid, so a restarted nodelet finds it
//! again. Removal also takes the cgroup2 mount of a hybrid host, where runc makes its
//! containers' cgroups (and so their parents) whether or not it has controllers.

use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use nodelet_sys::cgroup::{self, CgroupLayout};

use crate::spec::{CPU_PERIOD_US, Resources};

/// Where pod cgroups go unless configured otherwise (relative to each hierarchy's root).
pub const DEFAULT_PARENT: &str = "nodelet/kubepods";

/// A killed process leaves its cgroup a moment after the signal: removal retries this long.
const BUSY_RETRY: Duration = Duration::from_secs(2);

/// The pod's Kubernetes QoS class, which picks its cgroup's parent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QosClass {
    Guaranteed,
    Burstable,
    BestEffort,
}

impl QosClass {
    /// The QoS level's cgroup under the parent (Guaranteed pods sit directly in it).
    fn dir(self) -> Option<&'static str> {
        match self {
            QosClass::Guaranteed => None,
            QosClass::Burstable => Some("burstable"),
            QosClass::BestEffort => Some("besteffort"),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PodCgroupError {
    #[error("{what} {}: {source}", path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("the cgroup {} is still in use (processes or child cgroups in it)", path.display())]
    Busy { path: PathBuf },
    #[error("reading the host's cgroup layout: {0}")]
    Layout(#[source] io::Error),
}

/// The hierarchies a pod cgroup lives in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hierarchies {
    /// v1 hierarchy roots (`/sys/fs/cgroup/memory`, ...).
    pub v1: Vec<PathBuf>,
    /// The cgroup2 root, with whether the pod cgroup is made (and set) there: always on a
    /// unified host, on a hybrid one only when it has controllers (else only cleaned up).
    pub unified: Option<(PathBuf, bool)>,
}

impl Hierarchies {
    /// This host's, from `/sys/fs/cgroup`.
    pub fn host() -> Result<Hierarchies, PodCgroupError> {
        Hierarchies::at(Path::new(cgroup::CGROUP_ROOT))
    }

    pub fn at(root: &Path) -> Result<Hierarchies, PodCgroupError> {
        let layout = cgroup::cgroup_layout_at(root).map_err(PodCgroupError::Layout)?;
        Ok(match layout {
            CgroupLayout::Unified => Hierarchies {
                v1: Vec::new(),
                unified: Some((root.to_owned(), true)),
            },
            CgroupLayout::Hybrid {
                cgroup2,
                controllers,
            } => Hierarchies {
                v1: cgroup::v1_hierarchies_at(root).map_err(PodCgroupError::Layout)?,
                unified: Some((cgroup2, !controllers.is_empty())),
            },
            CgroupLayout::Legacy => Hierarchies {
                v1: cgroup::v1_hierarchies_at(root).map_err(PodCgroupError::Layout)?,
                unified: None,
            },
        })
    }

    /// Where the pod cgroup is made.
    fn made_in(&self) -> Vec<(&Path, bool)> {
        let v1 = self.v1.iter().map(|p| (p.as_path(), false));
        let v2 = self
            .unified
            .iter()
            .filter(|(_, made)| *made)
            .map(|(p, _)| (p.as_path(), true));
        v1.chain(v2).collect()
    }

    /// Where it is removed from (also the controller-less cgroup2 mount).
    fn all(&self) -> Vec<&Path> {
        self.v1
            .iter()
            .map(PathBuf::as_path)
            .chain(self.unified.iter().map(|(p, _)| p.as_path()))
            .collect()
    }
}

/// One pod's cgroup, by its path relative to the hierarchies' roots.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodCgroup {
    /// The configured parent's components (`nodelet`, `kubepods`).
    parent: Vec<String>,
    /// Below the parent: `[burstable/]pod<uid>`.
    below_parent: Vec<String>,
}

impl PodCgroup {
    /// The pod's cgroup under `parent` (`nodelet/kubepods` by default; slashes separate
    /// levels, leading and trailing ones are ignored).
    pub fn new(parent: &str, qos: QosClass, pod_uid: &str) -> PodCgroup {
        let parent = parent
            .split('/')
            .filter(|c| !c.is_empty())
            .map(str::to_string)
            .collect();
        // Upstream's cgroupfs names use the uid as is (dashes kept).
        let below_parent = qos
            .dir()
            .map(str::to_string)
            .into_iter()
            .chain([format!("pod{pod_uid}")])
            .collect();
        PodCgroup {
            parent,
            below_parent,
        }
    }

    fn components(&self) -> impl Iterator<Item = &String> {
        self.parent.iter().chain(&self.below_parent)
    }

    /// The cgroupfs path (`/nodelet/kubepods/burstable/pod<uid>`), as in `cgroupsPath`.
    pub fn path(&self) -> String {
        self.components().fold(String::new(), |mut path, c| {
            path.push('/');
            path.push_str(c);
            path
        })
    }

    /// A container's cgroup inside the pod's.
    pub fn container_path(&self, container_id: &str) -> String {
        format!("{}/{container_id}", self.path())
    }

    fn relative(&self) -> PathBuf {
        self.components().collect()
    }

    /// Makes the pod cgroup (and the levels above it) in every hierarchy and writes the
    /// pod-level limits; idempotent, so it also updates them.
    pub fn create(
        &self,
        hierarchies: &Hierarchies,
        limits: &Resources,
    ) -> Result<(), PodCgroupError> {
        for (root, unified) in hierarchies.made_in() {
            // A pod being removed may rmdir a shared level between our mkdirs: try again.
            let mut attempts = 0;
            loop {
                match self.make_levels(root, unified) {
                    Err(PodCgroupError::Io { source, .. })
                        if source.kind() == io::ErrorKind::NotFound && attempts < 3 =>
                    {
                        attempts += 1;
                    }
                    other => break other?,
                }
            }
            let dir = root.join(self.relative());
            if unified {
                write_v2_limits(&dir, limits)?;
            } else {
                write_v1_limits(&dir, limits)?;
            }
        }
        Ok(())
    }

    fn make_levels(&self, root: &Path, unified: bool) -> Result<(), PodCgroupError> {
        let mut dir = root.to_owned();
        for component in self.components() {
            if unified {
                enable_v2_controllers(&dir)?;
            }
            let parent = dir.clone();
            dir.push(component);
            cgroup::make_cgroup(&dir).map_err(|source| PodCgroupError::Io {
                what: "making the cgroup",
                path: dir.clone(),
                source,
            })?;
            inherit_cpuset(&parent, &dir)?;
        }
        Ok(())
    }

    /// Moves a process (the sandbox's pause) into the pod cgroup in every hierarchy.
    pub fn add_process(&self, hierarchies: &Hierarchies, pid: u32) -> Result<(), PodCgroupError> {
        for (root, _) in hierarchies.made_in() {
            let dir = root.join(self.relative());
            write(&dir, "cgroup.procs", &pid.to_string())?;
        }
        Ok(())
    }

    /// Removes the pod cgroup from every hierarchy (child cgroups left in it first, deepest
    /// first), then the levels above it that are now empty, up to the parent's first
    /// component. Missing cgroups are fine: it may run any number of times.
    pub fn remove(&self, hierarchies: &Hierarchies) -> Result<(), PodCgroupError> {
        let mut first_error = None;
        for root in hierarchies.all() {
            let dir = root.join(self.relative());
            if let Err(e) = remove_tree(&dir) {
                first_error.get_or_insert(e);
                continue;
            }
            // The shared levels: leave them while other pods use them.
            let mut level = dir;
            while level.pop() && level != root {
                if cgroup::remove_cgroup(&level).is_err() {
                    break;
                }
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// The pod cgroup's directory in one hierarchy root.
    pub fn dir_in(&self, root: &Path) -> PathBuf {
        root.join(self.relative())
    }
}

/// Removes `dir` and the cgroups below it (deepest first); a missing one is not an error.
fn remove_tree(dir: &Path) -> Result<(), PodCgroupError> {
    let children = match cgroup::child_cgroups(dir) {
        Ok(children) => children,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(source) => {
            return Err(PodCgroupError::Io {
                what: "listing the cgroup",
                path: dir.to_owned(),
                source,
            });
        }
    };
    for child in children {
        remove_tree(&child)?;
    }
    let deadline = std::time::Instant::now() + BUSY_RETRY;
    loop {
        match cgroup::remove_cgroup(dir) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::ResourceBusy => {
                if std::time::Instant::now() >= deadline {
                    return Err(PodCgroupError::Busy {
                        path: dir.to_owned(),
                    });
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(source) => {
                return Err(PodCgroupError::Io {
                    what: "removing the cgroup",
                    path: dir.to_owned(),
                    source,
                });
            }
        }
    }
}

fn write(dir: &Path, name: &str, value: &str) -> Result<(), PodCgroupError> {
    cgroup::write_cgroup_file(dir, name, value).map_err(|source| PodCgroupError::Io {
        what: "writing",
        path: dir.join(name),
        source,
    })
}

/// v1: each hierarchy gets the settings of the controllers it carries.
fn write_v1_limits(dir: &Path, limits: &Resources) -> Result<(), PodCgroupError> {
    if dir.join("cpu.shares").exists() {
        if let Some(shares) = limits.cpu_shares {
            write(dir, "cpu.shares", &shares.to_string())?;
        }
        write(dir, "cpu.cfs_period_us", &CPU_PERIOD_US.to_string())?;
        let quota = limits.cpu_quota_us.unwrap_or(-1);
        write(dir, "cpu.cfs_quota_us", &quota.to_string())?;
    }
    if dir.join("memory.limit_in_bytes").exists() {
        let limit = limits.memory_limit_bytes.unwrap_or(-1);
        write(dir, "memory.limit_in_bytes", &limit.to_string())?;
    }
    Ok(())
}

/// cgroup2: `cpu.weight` from the shares (the runtimes' conversion), `cpu.max`, `memory.max`.
fn write_v2_limits(dir: &Path, limits: &Resources) -> Result<(), PodCgroupError> {
    if dir.join("cpu.max").exists() {
        if let Some(shares) = limits.cpu_shares {
            write(dir, "cpu.weight", &shares_to_weight(shares).to_string())?;
        }
        let quota = limits
            .cpu_quota_us
            .map_or("max".to_string(), |q| q.to_string());
        write(dir, "cpu.max", &format!("{quota} {CPU_PERIOD_US}"))?;
    }
    if dir.join("memory.max").exists() {
        let limit = limits
            .memory_limit_bytes
            .map_or("max".to_string(), |l| l.to_string());
        write(dir, "memory.max", &limit)?;
    }
    Ok(())
}

/// `[2, 262144]` shares → `[1, 10000]` weight, as runc and crun map them.
fn shares_to_weight(shares: u64) -> u64 {
    1 + (shares.clamp(2, 262_144) - 2) * 9999 / 262_142
}

/// cgroup2: lets the children of `dir` use its cpu and memory controllers.
fn enable_v2_controllers(dir: &Path) -> Result<(), PodCgroupError> {
    let available = cgroup::read_cgroup_file(dir, "cgroup.controllers").unwrap_or_default();
    for controller in ["cpu", "memory"] {
        if available.split_whitespace().any(|c| c == controller) {
            write(dir, "cgroup.subtree_control", &format!("+{controller}"))?;
        }
    }
    Ok(())
}

/// A new v1 cpuset cgroup starts with no CPUs and memory nodes, and a process cannot join it
/// until they are set: take the parent's.
fn inherit_cpuset(parent: &Path, dir: &Path) -> Result<(), PodCgroupError> {
    for name in ["cpuset.cpus", "cpuset.mems"] {
        let Ok(current) = cgroup::read_cgroup_file(dir, name) else {
            return Ok(());
        };
        if current.is_empty() {
            let from_parent =
                cgroup::read_cgroup_file(parent, name).map_err(|source| PodCgroupError::Io {
                    what: "reading",
                    path: parent.join(name),
                    source,
                })?;
            write(dir, name, &from_parent)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_follow_the_qos_class() {
        let uid = "0f9e-11";
        let cases = [
            (QosClass::Guaranteed, "/nodelet/kubepods/pod0f9e-11"),
            (
                QosClass::Burstable,
                "/nodelet/kubepods/burstable/pod0f9e-11",
            ),
            (
                QosClass::BestEffort,
                "/nodelet/kubepods/besteffort/pod0f9e-11",
            ),
        ];
        for (qos, want) in cases {
            assert_eq!(PodCgroup::new(DEFAULT_PARENT, qos, uid).path(), want);
        }
        let custom = PodCgroup::new("/a/b/", QosClass::Burstable, uid);
        assert_eq!(custom.path(), "/a/b/burstable/pod0f9e-11");
        assert_eq!(
            custom.container_path("main_0_x"),
            "/a/b/burstable/pod0f9e-11/main_0_x"
        );
    }

    #[test]
    fn shares_map_onto_weights() {
        assert_eq!(shares_to_weight(2), 1);
        assert_eq!(shares_to_weight(1024), 39);
        assert_eq!(shares_to_weight(262_144), 10_000);
    }

    #[test]
    fn removing_what_is_not_there_is_fine() {
        let tmp = tempfile::tempdir().unwrap();
        let hierarchies = Hierarchies {
            v1: vec![tmp.path().join("memory")],
            unified: None,
        };
        let pod = PodCgroup::new(DEFAULT_PARENT, QosClass::Burstable, "u");
        pod.remove(&hierarchies).unwrap();
        // Plain directories stand in for cgroups: levels made, then all removed.
        std::fs::create_dir_all(pod.dir_in(&tmp.path().join("memory")).join("c1")).unwrap();
        pod.remove(&hierarchies).unwrap();
        assert!(!tmp.path().join("memory/nodelet").exists());
        assert!(tmp.path().join("memory").exists());
    }
}

/// On this host's real hierarchies (as root).
#[cfg(test)]
mod host_tests {
    use super::*;

    #[test]
    fn made_limited_and_removed_everywhere() {
        if !is_root() || !Path::new(cgroup::CGROUP_ROOT).exists() {
            return;
        }
        let hierarchies = Hierarchies::host().unwrap();
        let parent = format!("nodelet-unit-{}/kubepods", std::process::id());
        let pod = PodCgroup::new(&parent, QosClass::Burstable, "u1");
        let limits = Resources {
            cpu_shares: Some(512),
            cpu_quota_us: Some(150_000),
            memory_limit_bytes: Some(96 << 20),
        };
        pod.create(&hierarchies, &limits).unwrap();
        pod.create(&hierarchies, &limits).unwrap();
        for root in &hierarchies.v1 {
            let dir = pod.dir_in(root);
            assert!(dir.is_dir(), "{}", dir.display());
            if dir.join("memory.limit_in_bytes").exists() {
                let limit = cgroup::read_cgroup_file(&dir, "memory.limit_in_bytes").unwrap();
                assert_eq!(limit, (96u64 << 20).to_string());
            }
            if dir.join("cpu.shares").exists() {
                assert_eq!(cgroup::read_cgroup_file(&dir, "cpu.shares").unwrap(), "512");
                let quota = cgroup::read_cgroup_file(&dir, "cpu.cfs_quota_us").unwrap();
                assert_eq!(quota, "150000");
            }
        }
        // A child cgroup left behind (a runtime's container) goes too.
        let first = &hierarchies.v1[0];
        cgroup::make_cgroup(&pod.dir_in(first).join("c1")).unwrap();
        pod.remove(&hierarchies).unwrap();
        pod.remove(&hierarchies).unwrap();
        for root in hierarchies.all() {
            let top = root.join(format!("nodelet-unit-{}", std::process::id()));
            assert!(!top.exists(), "{} left", top.display());
        }
    }

    fn is_root() -> bool {
        std::fs::read_to_string("/proc/self/status")
            .unwrap_or_default()
            .lines()
            .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"))
    }
}

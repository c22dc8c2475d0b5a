//! The OOM-kill counter of a process's memory cgroup: `oom_kill` in `memory.oom_control`
//! (cgroup v1, kernel 4.13 and later) or in `memory.events` (cgroup v2).

use std::path::{Path, PathBuf};

use nodelet_sys::cgroup::CGROUP_ROOT;

/// Where a container's OOM kills are counted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct OomCounter {
    file: PathBuf,
}

impl OomCounter {
    /// The counter of `pid`'s memory cgroup (from `/proc/<pid>/cgroup`), if it has one we
    /// can read.
    pub(crate) fn of_process(pid: u32) -> Option<OomCounter> {
        let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
        OomCounter::from_proc_cgroup(&text, Path::new(CGROUP_ROOT))
            .filter(|counter| counter.read().is_some())
    }

    /// From the text of `/proc/<pid>/cgroup`: a v1 `memory` hierarchy if there is one, else
    /// the unified (v2) hierarchy at `root`.
    pub(crate) fn from_proc_cgroup(text: &str, root: &Path) -> Option<OomCounter> {
        let mut unified = None;
        for line in text.lines() {
            let mut fields = line.splitn(3, ':');
            let (Some(id), Some(controllers), Some(path)) =
                (fields.next(), fields.next(), fields.next())
            else {
                continue;
            };
            let relative = path.trim_start_matches('/');
            if controllers.split(',').any(|c| c == "memory") {
                return Some(OomCounter {
                    file: root
                        .join("memory")
                        .join(relative)
                        .join("memory.oom_control"),
                });
            }
            if id == "0" && controllers.is_empty() {
                unified = Some(OomCounter {
                    file: root.join(relative).join("memory.events"),
                });
            }
        }
        unified
    }

    /// The number of OOM kills so far.
    pub(crate) fn read(&self) -> Option<u64> {
        let text = std::fs::read_to_string(&self.file).ok()?;
        text.lines()
            .find_map(|l| l.strip_prefix("oom_kill "))
            .and_then(|n| n.trim().parse().ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_v1_memory_hierarchy_first() {
        let text = "12:pids:/k/c1\n5:cpu,cpuacct:/k/c1\n4:memory:/k/c1\n0::/k/c1\n";
        let counter = OomCounter::from_proc_cgroup(text, Path::new("/cg")).unwrap();
        assert_eq!(
            counter.file,
            Path::new("/cg/memory/k/c1/memory.oom_control")
        );
        let counter = OomCounter::from_proc_cgroup("0::/k/c2\n", Path::new("/cg")).unwrap();
        assert_eq!(counter.file, Path::new("/cg/k/c2/memory.events"));
        assert_eq!(OomCounter::from_proc_cgroup("", Path::new("/cg")), None);
    }

    #[test]
    fn reads_the_oom_kill_line() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("memory.oom_control");
        std::fs::write(&file, "oom_kill_disable 0\nunder_oom 0\noom_kill 3\n").unwrap();
        assert_eq!(OomCounter { file }.read(), Some(3));
        let file = dir.path().join("memory.events");
        std::fs::write(&file, "low 0\nhigh 0\nmax 4\noom 2\noom_kill 1\n").unwrap();
        assert_eq!(OomCounter { file }.read(), Some(1));
    }
}

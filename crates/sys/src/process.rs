//! Processes by pidfd: waiting for any process to exit (not only our children), signalling
//! without pid-reuse races, reaping re-parented orphans as a child subreaper.

use std::io;
use std::os::fd::OwnedFd;
use std::path::Path;
use std::time::{Duration, Instant};

use rustix::event::{PollFd, PollFlags, Timespec};
use rustix::fd::AsFd;
use rustix::io::Errno;
use rustix::process::{Pid, PidfdFlags, Signal, WaitId, WaitIdOptions};

/// How a process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    /// It called `exit(code)`.
    Exited(i32),
    /// A signal ended it.
    Killed(i32),
}

impl ExitStatus {
    /// The shell's convention: the exit code, or 128 + the signal number.
    pub fn code(self) -> i32 {
        match self {
            ExitStatus::Exited(code) => code,
            ExitStatus::Killed(signal) => 128 + signal,
        }
    }
}

/// A process handle that stays valid (and never names another process) after the process
/// exits, even if its pid is reused.
#[derive(Debug)]
pub struct PidFd {
    fd: OwnedFd,
    pid: u32,
}

impl PidFd {
    /// Opens a handle on `pid`. Fails with `ESRCH` if no such process exists.
    pub fn open(pid: u32) -> io::Result<PidFd> {
        let raw = i32::try_from(pid).map_err(|_| io::Error::from(Errno::SRCH))?;
        let id = Pid::from_raw(raw).ok_or_else(|| io::Error::from(Errno::SRCH))?;
        let fd = rustix::process::pidfd_open(id, PidfdFlags::empty())?;
        Ok(PidFd { fd, pid })
    }

    /// A handle from a descriptor the kernel gave for `pid` (`CLONE_PIDFD`).
    pub(crate) fn from_owned(fd: OwnedFd, pid: u32) -> PidFd {
        PidFd { fd, pid }
    }

    /// The process id (in our pid namespace).
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Sends signal number `signal`. `ESRCH` once the process has exited.
    pub fn send_signal(&self, signal: i32) -> io::Result<()> {
        let signal = Signal::from_named_raw(signal).ok_or_else(|| io::Error::from(Errno::INVAL))?;
        rustix::process::pidfd_send_signal(&self.fd, signal)?;
        Ok(())
    }

    /// Waits until the process has exited (true) or `timeout` has passed (false); `None`
    /// waits without limit. Works for any process, child or not; the process is not reaped.
    pub fn wait_exited(&self, timeout: Option<Duration>) -> io::Result<bool> {
        let deadline = timeout.map(|t| Instant::now() + t);
        loop {
            let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
            let spec = left.map(|d| Timespec {
                tv_sec: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
                tv_nsec: i64::from(d.subsec_nanos()),
            });
            let mut fds = [PollFd::new(&self.fd, PollFlags::IN)];
            match rustix::event::poll(&mut fds, spec.as_ref()) {
                Ok(0) if left.is_some_and(|l| l.is_zero()) => return Ok(false),
                Ok(0) => continue,
                Ok(_) => return Ok(true),
                Err(Errno::INTR) => continue,
                Err(errno) => return Err(errno.into()),
            }
        }
    }

    /// Reaps the process if it is our child (or re-parented to us as a subreaper) and has
    /// exited: `Ok(None)` while it runs; `ECHILD` when it is not ours to reap (or was reaped).
    pub fn try_reap(&self) -> io::Result<Option<ExitStatus>> {
        let status = rustix::process::waitid(
            WaitId::PidFd(self.fd.as_fd()),
            WaitIdOptions::EXITED | WaitIdOptions::NOHANG,
        )?;
        Ok(
            status.and_then(|s| match (s.exit_status(), s.terminating_signal()) {
                (Some(code), _) if s.exited() => Some(ExitStatus::Exited(code)),
                (_, Some(signal)) => Some(ExitStatus::Killed(signal)),
                _ => None,
            }),
        )
    }
}

impl AsFd for PidFd {
    /// The descriptor, readable once the process has exited (for polling with others).
    fn as_fd(&self) -> rustix::fd::BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// Makes this process the reaper of its orphaned descendants (`PR_SET_CHILD_SUBREAPER`), so
/// a container's init, whose parent (the runtime's `create`) exits, becomes our child and we
/// can collect its exit status.
pub fn become_child_subreaper() -> io::Result<()> {
    rustix::process::set_child_subreaper(Some(rustix::process::getpid()))?;
    Ok(())
}

/// Whether this process is a child subreaper.
pub fn is_child_subreaper() -> io::Result<bool> {
    Ok(rustix::process::child_subreaper()?.is_some())
}

/// Reaps this process's zombie children that belong to a pid namespace nested below ours
/// and are not its init: processes a runtime forked into a container (`exec`) and left to us,
/// the child subreaper, when it exited first. They must go: a container's init cannot finish
/// exiting while any process of its namespace is unreaped. Our own children (commands we ran,
/// in our namespace) and containers' inits (whose status their owner collects) are left
/// alone. Returns how many were reaped.
pub fn reap_container_orphans() -> usize {
    reap_container_orphans_except(&[])
}

/// [`reap_container_orphans`], leaving `keep` alone too: in a pod's shared pid namespace a
/// container's first process is not the namespace's init, and its owner collects it.
pub fn reap_container_orphans_except(keep: &[u32]) -> usize {
    let Some(own_depth) = read_status(Path::new("/proc/self/status")).map(|s| s.ns_pids.len())
    else {
        return 0;
    };
    let mut reaped = 0;
    for pid in own_children() {
        let Some(status) = read_status(&Path::new("/proc").join(pid.to_string()).join("status"))
        else {
            continue;
        };
        let orphan_in_container = status.zombie
            && status.ns_pids.len() > own_depth
            && status.ns_pids.last().is_some_and(|inner| *inner != 1);
        if !orphan_in_container || keep.contains(&pid) {
            continue;
        }
        let Some(id) = i32::try_from(pid).ok().and_then(Pid::from_raw) else {
            continue;
        };
        if matches!(
            rustix::process::waitid(
                WaitId::Pid(id),
                WaitIdOptions::EXITED | WaitIdOptions::NOHANG
            ),
            Ok(Some(_))
        ) {
            reaped += 1;
        }
    }
    reaped
}

struct ProcStatus {
    zombie: bool,
    /// The pid in each pid namespace from ours inwards.
    ns_pids: Vec<u32>,
}

fn read_status(path: &Path) -> Option<ProcStatus> {
    let text = std::fs::read_to_string(path).ok()?;
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .map(str::trim)
    };
    Some(ProcStatus {
        zombie: field("State:")?.starts_with('Z'),
        ns_pids: field("NSpid:")?
            .split_whitespace()
            .filter_map(|p| p.parse().ok())
            .collect(),
    })
}

/// Our children's pids, from every thread's `children` list (or, without that file, a
/// scan of `/proc` for our pid as parent).
fn own_children() -> Vec<u32> {
    let mut children = Vec::new();
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return children;
    };
    let mut listed = false;
    for task in tasks.flatten() {
        if let Ok(text) = std::fs::read_to_string(task.path().join("children")) {
            listed = true;
            children.extend(
                text.split_whitespace()
                    .filter_map(|p| p.parse::<u32>().ok()),
            );
        }
    }
    if !listed {
        let me = std::process::id().to_string();
        let Ok(entries) = std::fs::read_dir("/proc") else {
            return children;
        };
        for entry in entries.flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<u32>().ok())
            else {
                continue;
            };
            let Ok(text) = std::fs::read_to_string(entry.path().join("status")) else {
                continue;
            };
            if text
                .lines()
                .any(|l| l.strip_prefix("PPid:").is_some_and(|p| p.trim() == me))
            {
                children.push(pid);
            }
        }
    }
    children
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    #[test]
    fn waits_for_and_reaps_a_child() {
        let child = Command::new("sh").args(["-c", "exit 7"]).spawn().unwrap();
        let pidfd = PidFd::open(child.id()).unwrap();
        assert!(pidfd.wait_exited(Some(Duration::from_secs(10))).unwrap());
        assert_eq!(pidfd.try_reap().unwrap(), Some(ExitStatus::Exited(7)));
        // Reaped: a second reap is refused.
        assert_eq!(
            pidfd.try_reap().unwrap_err().raw_os_error(),
            Some(Errno::CHILD.raw_os_error())
        );
        drop(child);
    }

    #[test]
    #[expect(clippy::zombie_processes, reason = "reaped through the pidfd")]
    fn times_out_then_signals() {
        let child = Command::new("sleep").arg("100").spawn().unwrap();
        let pidfd = PidFd::open(child.id()).unwrap();
        assert!(!pidfd.wait_exited(Some(Duration::from_millis(50))).unwrap());
        assert_eq!(pidfd.try_reap().unwrap(), None);
        pidfd.send_signal(9).unwrap();
        assert!(pidfd.wait_exited(Some(Duration::from_secs(10))).unwrap());
        let status = pidfd.try_reap().unwrap().unwrap();
        assert_eq!(status, ExitStatus::Killed(9));
        assert_eq!(status.code(), 137);
    }

    #[test]
    fn leaves_our_own_zombies_alone() {
        let mut child = Command::new("true").spawn().unwrap();
        let pidfd = PidFd::open(child.id()).unwrap();
        assert!(pidfd.wait_exited(Some(Duration::from_secs(10))).unwrap());
        assert_eq!(reap_container_orphans(), 0);
        assert!(
            child.wait().unwrap().success(),
            "the child's status must still be ours"
        );
    }
}

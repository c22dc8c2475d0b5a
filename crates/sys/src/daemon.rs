//! What a long-lived monitor process (the per-container shim) needs from the kernel: leaving
//! its parent's session behind (fork, `setsid`), replacing its standard output, collecting
//! every child that exits, and sleeping until one of several descriptors has something to read.

use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::time::Duration;

use rustix::event::{PollFd, PollFlags, Timespec};
use rustix::io::Errno;
use rustix::process::WaitOptions;

use crate::process::ExitStatus;

/// Which side of [`fork_detached`] this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forked {
    /// The original process; `child` is the new one's pid.
    Parent { child: u32 },
    /// The new process, leader of a session of its own (no controlling terminal, no process
    /// group shared with whoever started the parent).
    Child,
}

/// Forks, and in the child starts a new session (`setsid`). Refused unless this process has
/// exactly one thread: only then is the child a faithful copy (no lock can be held by a
/// thread that does not exist there), so it may go on running ordinary Rust code.
pub fn fork_detached() -> io::Result<Forked> {
    let threads = thread_count()?;
    if threads != 1 {
        return Err(io::Error::other(format!(
            "fork_detached needs a single-threaded process; this one has {threads} threads"
        )));
    }
    // SAFETY: fork has no memory-safety preconditions of its own; what makes continuing in
    // the child sound is that the process is single-threaded (checked just above, and no
    // other thread can have been started since: only this thread could start one).
    let pid = unsafe { libc::fork() };
    match pid {
        -1 => Err(io::Error::last_os_error()),
        0 => {
            rustix::process::setsid()?;
            Ok(Forked::Child)
        }
        child => Ok(Forked::Parent {
            child: child.unsigned_abs(),
        }),
    }
}

/// The number of threads of this process (`Threads:` in `/proc/self/status`).
pub fn thread_count() -> io::Result<usize> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .and_then(|n| n.trim().parse().ok())
        .ok_or_else(|| io::Error::other("no Threads: line in /proc/self/status"))
}

/// Makes file descriptor 0 (standard input) a duplicate of `fd`.
pub fn redirect_stdin(fd: impl AsFd) -> io::Result<()> {
    rustix::stdio::dup2_stdin(fd)?;
    Ok(())
}

/// Makes file descriptor 1 (standard output) a duplicate of `fd`.
pub fn redirect_stdout(fd: impl AsFd) -> io::Result<()> {
    rustix::stdio::dup2_stdout(fd)?;
    Ok(())
}

/// Makes file descriptor 2 (standard error) a duplicate of `fd`.
pub fn redirect_stderr(fd: impl AsFd) -> io::Result<()> {
    rustix::stdio::dup2_stderr(fd)?;
    Ok(())
}

/// Drops this process's page-table entries for every read-only file mapping that holds no
/// private copies of pages (code and read-only data of the binary and its libraries), so the
/// pages count in its RSS again only as it touches them. For a long-lived process that ran a
/// lot of code once (argument parsing, set-up) and then loops over a little: its resident
/// size becomes its working set. The pages stay in the page cache; nothing is lost, since
/// every dropped page reads back the same from its file. Returns the bytes advised.
/// Refused unless this process is single-threaded (no other thread may map or unmap
/// memory between the listing and the advice).
pub fn drop_file_mappings() -> io::Result<u64> {
    let threads = thread_count()?;
    if threads != 1 {
        return Err(io::Error::other(format!(
            "drop_file_mappings needs a single-threaded process; this one has {threads} threads"
        )));
    }
    let smaps = std::fs::read_to_string("/proc/self/smaps")?;
    let mut dropped = 0u64;
    for (start, end) in clean_file_mappings(&smaps) {
        let len = end - start;
        // SAFETY: [start, end) is one whole mapping of this process, listed by the kernel
        // just now (single-threaded callers: nothing maps or unmaps in between), backed by a
        // file, not writable, and without anonymous (copied-on-write) pages. MADV_DONTNEED
        // on such a private file mapping only unmaps page-cache pages; the next access
        // faults the identical bytes back in from the file, so no memory changes under Rust.
        let result = unsafe { libc::madvise(start as *mut libc::c_void, len, libc::MADV_DONTNEED) };
        if result == 0 {
            dropped += len as u64;
        }
    }
    Ok(dropped)
}

/// The address ranges of `/proc/self/smaps` entries that are file-backed, not writable and
/// hold no anonymous pages.
fn clean_file_mappings(smaps: &str) -> Vec<(usize, usize)> {
    let mut found = Vec::new();
    let mut current: Option<(usize, usize)> = None;
    for line in smaps.lines() {
        let mut fields = line.split_whitespace();
        let first = fields.next().unwrap_or_default();
        if let Some((start, end)) = first.split_once('-')
            && let (Ok(start), Ok(end)) = (
                usize::from_str_radix(start, 16),
                usize::from_str_radix(end, 16),
            )
        {
            let perms = fields.next().unwrap_or_default();
            let path = fields.nth(3).unwrap_or_default();
            let candidate = perms.starts_with('r')
                && !perms.contains('w')
                && perms.ends_with('p')
                && path.starts_with('/');
            current = candidate.then_some((start, end));
        } else if first == "Anonymous:"
            && let Some(range) = current.take()
            && fields.next() == Some("0")
        {
            found.push(range);
        }
    }
    found
}

/// Collects every child of this process that has exited (and, for a child subreaper, every
/// orphan re-parented to it), without blocking: their pids and how they ended.
///
/// Only for a process that has no `std::process::Child` waiting to be collected at the same
/// time: this would take that child's status.
pub fn reap_exited_children() -> Vec<(u32, ExitStatus)> {
    let mut reaped = Vec::new();
    loop {
        match rustix::process::wait(WaitOptions::NOHANG) {
            Ok(Some((pid, status))) => {
                let ended = match (status.exit_status(), status.terminating_signal()) {
                    (Some(code), _) if status.exited() => ExitStatus::Exited(code),
                    (_, Some(signal)) => ExitStatus::Killed(signal),
                    // Stopped or continued: not an end (we never ask for those).
                    _ => continue,
                };
                reaped.push((pid.as_raw_nonzero().get().unsigned_abs(), ended));
            }
            Err(Errno::INTR) => continue,
            // None: children exist but none has exited; ECHILD: no children at all.
            Ok(None) | Err(_) => return reaped,
        }
    }
}

/// Waits for the next child (or, for a child subreaper, re-parented orphan) to end: its pid
/// and how it ended; `Ok(None)` when there is no child left to wait for. The same caveat as
/// [`reap_exited_children`] about `std::process::Child`.
pub fn wait_for_any_child() -> io::Result<Option<(u32, ExitStatus)>> {
    loop {
        match rustix::process::wait(WaitOptions::empty()) {
            Ok(Some((pid, status))) => {
                let ended = match (status.exit_status(), status.terminating_signal()) {
                    (Some(code), _) if status.exited() => ExitStatus::Exited(code),
                    (_, Some(signal)) => ExitStatus::Killed(signal),
                    _ => continue,
                };
                return Ok(Some((pid.as_raw_nonzero().get().unsigned_abs(), ended)));
            }
            Ok(None) | Err(Errno::CHILD) => return Ok(None),
            Err(Errno::INTR) => continue,
            Err(errno) => return Err(errno.into()),
        }
    }
}

/// Waits until at least one of `fds` is readable, has hung up or failed, or `timeout` has
/// passed (`None`: without limit). Returns, per descriptor, whether it is ready; all `false`
/// after a timeout or an interrupting signal.
pub fn wait_readable(fds: &[BorrowedFd<'_>], timeout: Option<Duration>) -> io::Result<Vec<bool>> {
    let mut polled: Vec<PollFd<'_>> = fds
        .iter()
        .map(|fd| PollFd::new(fd, PollFlags::IN))
        .collect();
    let spec = timeout.map(|t| Timespec {
        tv_sec: i64::try_from(t.as_secs()).unwrap_or(i64::MAX),
        tv_nsec: i64::from(t.subsec_nanos()),
    });
    match rustix::event::poll(&mut polled, spec.as_ref()) {
        Ok(_) => Ok(polled
            .iter()
            .map(|p| {
                p.revents()
                    .intersects(PollFlags::IN | PollFlags::HUP | PollFlags::ERR | PollFlags::NVAL)
            })
            .collect()),
        Err(Errno::INTR) => Ok(vec![false; fds.len()]),
        Err(errno) => Err(errno.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::process::Command;

    #[test]
    fn only_clean_read_only_file_mappings_are_dropped() {
        let smaps = "\
55d0a0000000-55d0a0100000 r--p 00000000 fd:01 123 /usr/bin/x
Rss: 100 kB
Anonymous: 0 kB
55d0a0100000-55d0a0200000 r-xp 00100000 fd:01 123 /usr/bin/x
Anonymous: 0 kB
55d0a0200000-55d0a0300000 r--p 00200000 fd:01 123 /usr/bin/x
Anonymous: 64 kB
55d0a0300000-55d0a0400000 rw-p 00300000 fd:01 123 /usr/bin/x
Anonymous: 0 kB
7f0000000000-7f0000100000 r--s 00000000 fd:01 9 /dev/shm/shared
Anonymous: 0 kB
7f0000100000-7f0000200000 r-xp 00000000 00:00 0 [vdso]
Anonymous: 0 kB
7f0000200000-7f0000300000 rw-p 00000000 00:00 0
Anonymous: 0 kB
";
        assert_eq!(
            clean_file_mappings(smaps),
            [
                (0x55d0_a000_0000, 0x55d0_a010_0000),
                (0x55d0_a010_0000, 0x55d0_a020_0000)
            ]
        );
        // The test harness has threads: refused (the shim tests run it for real).
        let parked = std::thread::spawn(std::thread::park);
        assert!(drop_file_mappings().is_err());
        parked.thread().unpark();
        parked.join().unwrap();
    }

    #[test]
    fn readiness_of_pipes() {
        let (mut reader, mut writer) = std::io::pipe().unwrap();
        let ready = wait_readable(&[reader.as_fd()], Some(Duration::from_millis(20))).unwrap();
        assert_eq!(ready, [false]);
        writer.write_all(b"x").unwrap();
        let ready = wait_readable(&[reader.as_fd()], Some(Duration::from_secs(5))).unwrap();
        assert_eq!(ready, [true]);
        let mut byte = [0u8; 1];
        reader.read_exact(&mut byte).unwrap();
        drop(writer);
        // A closed write end is readable (end of file).
        let ready = wait_readable(&[reader.as_fd()], Some(Duration::from_secs(5))).unwrap();
        assert_eq!(ready, [true]);
        assert_eq!(reader.read(&mut byte).unwrap(), 0);
    }

    #[test]
    fn a_multithreaded_process_is_not_forked() {
        // The test harness runs tests on threads of their own.
        let parked = std::thread::spawn(std::thread::park);
        assert!(thread_count().unwrap() > 1);
        let err = fork_detached().unwrap_err();
        assert!(err.to_string().contains("single-threaded"), "{err}");
        parked.thread().unpark();
        parked.join().unwrap();
    }

    /// Runs alone in its own process under nextest; under `cargo test` other tests' children
    /// could be collected here, so it only looks for its own.
    #[test]
    fn reaps_exited_children() {
        let child = Command::new("sh").args(["-c", "exit 5"]).spawn().unwrap();
        let pid = child.id();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let mut seen = None;
        while seen.is_none() && std::time::Instant::now() < deadline {
            seen = reap_exited_children()
                .into_iter()
                .find(|(p, _)| *p == pid)
                .map(|(_, s)| s);
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(seen, Some(ExitStatus::Exited(5)));
        std::mem::forget(child);
    }
}

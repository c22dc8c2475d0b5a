//! Namespaces that outlive the code that made them: a pod sandbox's network, IPC and UTS
//! namespaces are created on a short-lived thread of our own and kept alive by bind-mounting
//! their nsfs files onto ordinary files (as `ip netns add` does), so no process has to hold
//! them. Containers then join them by path (OCI `linux.namespaces[].path`).
//!
//! Namespaces belong to threads, not to processes: `unshare(2)` on a fresh thread that ends
//! right after changes nothing for nodelet's other (tokio) threads, which keep the node's
//! namespaces. The mount namespace is never unshared, so the bind mounts land in the node's.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rustix::fs::StatFs;
use rustix::thread::UnshareFlags;

use crate::mount::{is_not_mounted, unmount};
use crate::process::PidFd;

/// `NSFS_MAGIC`: the filesystem type of `/proc/*/ns/*` and of their bind mounts.
const NSFS_MAGIC: i64 = 0x6e73_6673;

/// A namespace kind a sandbox can pin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NamespaceKind {
    Network,
    Ipc,
    Uts,
}

impl NamespaceKind {
    /// The file name under `/proc/<pid>/ns/`.
    pub fn proc_name(self) -> &'static str {
        match self {
            NamespaceKind::Network => "net",
            NamespaceKind::Ipc => "ipc",
            NamespaceKind::Uts => "uts",
        }
    }

    fn unshare_flag(self) -> UnshareFlags {
        match self {
            NamespaceKind::Network => UnshareFlags::NEWNET,
            NamespaceKind::Ipc => UnshareFlags::NEWIPC,
            NamespaceKind::Uts => UnshareFlags::NEWUTS,
        }
    }
}

/// New namespaces to create, each pinned at a file path.
#[derive(Debug, Clone, Default)]
pub struct PinRequest {
    /// `(kind, file)`: the file is created if missing and the new namespace bind-mounted on it.
    pub pins: Vec<(NamespaceKind, PathBuf)>,
    /// Set in the new UTS namespace (must be requested in `pins`).
    pub hostname: Option<String>,
}

/// What went wrong creating or removing a pinned namespace.
#[derive(Debug, thiserror::Error)]
#[error("{op} {}: {source}", .path.display())]
pub struct NamespaceError {
    /// What we were doing (e.g. `bind-mounting the network namespace on`).
    pub op: String,
    /// The file concerned.
    pub path: PathBuf,
    /// The `errno`.
    pub source: io::Error,
}

impl NamespaceError {
    fn new(op: impl Into<String>, path: &Path, source: impl Into<io::Error>) -> NamespaceError {
        NamespaceError {
            op: op.into(),
            path: path.to_path_buf(),
            source: source.into(),
        }
    }
}

/// Namespace operations, behind a trait so callers' logic can be tested with a fake.
pub trait NamespacePinner {
    /// Creates the requested namespaces and pins each at its file.
    fn pin_new(&self, request: &PinRequest) -> Result<(), NamespaceError>;
    /// Unmounts a pinned namespace file and deletes it; a missing file or one with nothing
    /// mounted on it is not an error.
    fn unpin(&self, file: &Path) -> Result<(), NamespaceError>;
}

/// The real syscalls.
#[derive(Debug, Default, Clone, Copy)]
pub struct HostNamespaces;

impl NamespacePinner for HostNamespaces {
    fn pin_new(&self, request: &PinRequest) -> Result<(), NamespaceError> {
        pin_new_namespaces(request)
    }

    fn unpin(&self, file: &Path) -> Result<(), NamespaceError> {
        unpin_namespace(file)
    }
}

/// Creates the namespaces of `request` on a thread of their own and bind-mounts each onto
/// its file. On failure, whatever was pinned is undone.
pub fn pin_new_namespaces(request: &PinRequest) -> Result<(), NamespaceError> {
    if request.pins.is_empty() {
        return Ok(());
    }
    for (_, file) in &request.pins {
        create_pin_file(file)?;
    }
    let result = std::thread::scope(|scope| {
        scope
            .spawn(|| pin_on_this_thread(request))
            .join()
            .unwrap_or_else(|_| {
                Err(NamespaceError::new(
                    "creating namespaces (the thread panicked) for",
                    &request.pins[0].1,
                    io::Error::other("panic"),
                ))
            })
    });
    if result.is_err() {
        for (_, file) in &request.pins {
            let _ = unpin_namespace(file);
        }
    }
    result
}

/// Runs on a thread that ends right after: its namespaces are nobody else's.
fn pin_on_this_thread(request: &PinRequest) -> Result<(), NamespaceError> {
    let flags = request
        .pins
        .iter()
        .fold(UnshareFlags::empty(), |flags, (kind, _)| {
            flags | kind.unshare_flag()
        });
    // SAFETY: the flags are only NEWNET, NEWIPC and NEWUTS: nothing unshares the file
    // descriptor table (FILES) or the filesystem context, so no thread can come to observe
    // descriptors from another table. They apply to this thread alone, which ends when this
    // function returns.
    unsafe { rustix::thread::unshare_unsafe(flags) }
        .map_err(|e| NamespaceError::new("unsharing namespaces for", &request.pins[0].1, e))?;
    if let Some(hostname) = &request.hostname {
        let uts_file = request
            .pins
            .iter()
            .find(|(kind, _)| *kind == NamespaceKind::Uts)
            .map(|(_, file)| file.as_path())
            .ok_or_else(|| {
                NamespaceError::new(
                    "setting a hostname without a new UTS namespace for",
                    &request.pins[0].1,
                    io::Error::from(io::ErrorKind::InvalidInput),
                )
            })?;
        rustix::system::sethostname(hostname.as_bytes())
            .map_err(|e| NamespaceError::new("setting the hostname of", uts_file, e))?;
    }
    for (kind, file) in &request.pins {
        let source = format!("/proc/thread-self/ns/{}", kind.proc_name());
        rustix::mount::mount_bind(source.as_str(), file.as_path()).map_err(|e| {
            NamespaceError::new(
                format!("bind-mounting the {} namespace on", kind.proc_name()),
                file,
                e,
            )
        })?;
    }
    Ok(())
}

/// Unmounts a pinned namespace (lazily: a container that joined it keeps it) and deletes
/// the file. Repeatable.
pub fn unpin_namespace(file: &Path) -> Result<(), NamespaceError> {
    // A file may carry more than one mount after a crash between two attempts.
    loop {
        match unmount(file, true) {
            Ok(()) => continue,
            Err(err) if is_not_mounted(&err) => break,
            Err(err) => {
                let code = err.raw_os_error().unwrap_or(0);
                return Err(NamespaceError::new(
                    "unmounting the namespace file",
                    file,
                    io::Error::from_raw_os_error(code),
                ));
            }
        }
    }
    match std::fs::remove_file(file) {
        Ok(()) => Ok(()),
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(err) => Err(NamespaceError::new(
            "removing the namespace file",
            file,
            err,
        )),
    }
}

/// Creates the (empty) file a namespace is bind-mounted on, keeping one that exists.
fn create_pin_file(file: &Path) -> Result<(), NamespaceError> {
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(file)
        .map(drop)
        .map_err(|e| NamespaceError::new("creating the namespace file", file, e))
}

/// Pins the PID namespace of process `pid` at `file` (created if missing). A PID namespace
/// whose first process has died cannot be joined, so the pin never lets a container into a
/// namespace that a reused pid would name.
pub fn pin_pid_namespace_of(pid: u32, file: &Path) -> Result<(), NamespaceError> {
    create_pin_file(file)?;
    let source = format!("/proc/{pid}/ns/pid");
    rustix::mount::mount_bind(source.as_str(), file)
        .map_err(|e| NamespaceError::new("bind-mounting the pid namespace on", file, e))
}

/// Starts `program` with `args` (`args[0]` included) as the first process, PID 1, of a new
/// PID namespace: in a session of its own, standard streams on `/dev/null`, an empty
/// environment, no signals blocked. Safe from a multi-threaded process: between `clone3`
/// and `execve` the child makes only async-signal-safe raw calls on memory prepared before.
pub fn spawn_pid_namespace_init(program: &Path, args: &[&str]) -> io::Result<PidFd> {
    let nul = |_| io::Error::new(io::ErrorKind::InvalidInput, "a NUL byte in the command");
    let program = CString::new(program.as_os_str().as_bytes()).map_err(nul)?;
    let args: Vec<CString> = args
        .iter()
        .map(|a| CString::new(*a))
        .collect::<Result<_, _>>()
        .map_err(nul)?;
    let mut argv: Vec<*const libc::c_char> = args.iter().map(|a| a.as_ptr()).collect();
    argv.push(std::ptr::null());
    let envp: [*const libc::c_char; 1] = [std::ptr::null()];
    let dev_null = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")?;
    let null_fd = dev_null.as_raw_fd();
    let mut pidfd: libc::c_int = -1;
    let clone_args = CloneArgs {
        flags: (libc::CLONE_NEWPID | libc::CLONE_PIDFD) as u64,
        pidfd: std::ptr::addr_of_mut!(pidfd) as u64,
        child_tid: 0,
        parent_tid: 0,
        exit_signal: libc::SIGCHLD as u64,
        stack: 0,
        stack_size: 0,
        tls: 0,
    };
    // SAFETY: the all-zero sigset_t is a valid value for sigemptyset to initialise.
    let mut no_signals: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: `no_signals` is a valid, writable sigset_t.
    unsafe { libc::sigemptyset(&mut no_signals) };
    // SAFETY: clone3 without CLONE_VM and without a stack duplicates this thread into a new
    // process (as fork does) with copied memory; `clone_args` is a valid version-0 argument
    // of its declared size and `pidfd` a writable int that outlives the call.
    let child = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            std::ptr::addr_of!(clone_args),
            std::mem::size_of::<CloneArgs>(),
        )
    };
    if child == 0 {
        // SAFETY: in the child, which has a single thread and a copy of memory whose locks
        // other threads may have held: only async-signal-safe calls follow (setsid, dup2,
        // signal, sigprocmask, execve, _exit), on pointers prepared before the clone that
        // stay valid in the copy. Nothing allocates or takes a lock.
        unsafe {
            libc::setsid();
            for fd in 0..3 {
                libc::dup2(null_fd, fd);
            }
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
            libc::sigprocmask(libc::SIG_SETMASK, &no_signals, std::ptr::null_mut());
            libc::execve(program.as_ptr(), argv.as_ptr(), envp.as_ptr());
            libc::_exit(127);
        }
    }
    if child < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: with CLONE_PIDFD the kernel stored a new descriptor, owned by nobody else.
    let fd = unsafe { OwnedFd::from_raw_fd(pidfd) };
    let pid = u32::try_from(child).map_err(|_| io::Error::other("clone3 returned a bad pid"))?;
    Ok(PidFd::from_owned(fd, pid))
}

/// `struct clone_args`, version 0 (Linux 5.3).
#[repr(C)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
}

/// Whether `file` is a namespace (an nsfs file, such as a pinned one).
pub fn is_namespace_file(file: &Path) -> bool {
    rustix::fs::statfs(file).is_ok_and(|fs: StatFs| fs.f_type == NSFS_MAGIC)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    fn inode(path: impl AsRef<Path>) -> u64 {
        std::fs::metadata(path).unwrap().ino()
    }

    #[test]
    fn pins_new_namespaces_without_touching_ours() {
        assert!(rustix::process::geteuid().is_root(), "needs root");
        let tmp = tempfile::tempdir().unwrap();
        let (net, ipc, uts) = (
            tmp.path().join("net"),
            tmp.path().join("ipc"),
            tmp.path().join("uts"),
        );
        let ours = (inode("/proc/self/ns/net"), inode("/proc/self/ns/uts"));
        let hostname = rustix::system::uname().nodename().to_owned();
        pin_new_namespaces(&PinRequest {
            pins: vec![
                (NamespaceKind::Network, net.clone()),
                (NamespaceKind::Ipc, ipc.clone()),
                (NamespaceKind::Uts, uts.clone()),
            ],
            hostname: Some("pinned-pod".into()),
        })
        .unwrap();
        assert!(is_namespace_file(&net) && is_namespace_file(&ipc) && is_namespace_file(&uts));
        assert!(!is_namespace_file(tmp.path()));
        assert_ne!(inode(&net), ours.0);
        assert_ne!(inode(&uts), ours.1);
        assert_eq!(
            (inode("/proc/self/ns/net"), inode("/proc/self/ns/uts")),
            ours
        );
        assert_eq!(rustix::system::uname().nodename(), hostname.as_c_str());
        let seen = std::process::Command::new("nsenter")
            .arg(format!("--uts={}", uts.display()))
            .arg("hostname")
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&seen.stdout).trim(), "pinned-pod");
        for file in [&net, &ipc, &uts] {
            unpin_namespace(file).unwrap();
            unpin_namespace(file).unwrap();
            assert!(!file.exists());
        }
    }

    #[test]
    fn starts_the_first_process_of_a_new_pid_namespace() {
        assert!(rustix::process::geteuid().is_root(), "needs root");
        let tmp = tempfile::tempdir().unwrap();
        let init = spawn_pid_namespace_init(Path::new("/bin/sleep"), &["sleep", "1000"]).unwrap();
        let status = std::fs::read_to_string(format!("/proc/{}/status", init.pid())).unwrap();
        let nspid = status.lines().find(|l| l.starts_with("NSpid:")).unwrap();
        assert!(nspid.ends_with("\t1"), "PID 1 inside: {nspid}");
        let pinned = tmp.path().join("pid");
        pin_pid_namespace_of(init.pid(), &pinned).unwrap();
        assert!(is_namespace_file(&pinned));
        assert_ne!(inode(&pinned), inode("/proc/self/ns/pid"));
        init.send_signal(libc::SIGKILL).unwrap();
        assert!(
            init.wait_exited(Some(std::time::Duration::from_secs(10)))
                .unwrap()
        );
        assert!(init.try_reap().unwrap().is_some());
        unpin_namespace(&pinned).unwrap();
        let missing = spawn_pid_namespace_init(Path::new("/nonexistent"), &["x"]).unwrap();
        assert!(
            missing
                .wait_exited(Some(std::time::Duration::from_secs(10)))
                .unwrap()
        );
        assert_eq!(
            missing.try_reap().unwrap(),
            Some(crate::process::ExitStatus::Exited(127))
        );
    }
}

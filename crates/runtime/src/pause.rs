//! The pause process: the first process (PID 1) of a pod's shared PID namespace
//! (`shareProcessNamespace: true`). A PID namespace lives only while its first process does,
//! and that process inherits every orphan in it, so it must exist and reap. It is our binary
//! re-executed as `nodelet pause` ([`PauseLauncher::this_binary`]), started by
//! [`crate::sandbox::Sandbox::create`] and killed by [`crate::sandbox::Sandbox::remove`].
//!
//! As PID 1 it gets no signal it has no handler for except SIGKILL from outside its
//! namespace, which is how the sandbox ends it; when it dies the kernel kills every process
//! left in the namespace.

use std::path::PathBuf;
use std::time::Duration;

/// The subcommand of our binary that runs the pause process.
pub const SUBCOMMAND: &str = "pause";

/// How often orphans are collected.
const REAP_INTERVAL: Duration = Duration::from_millis(500);

/// The program (and its arguments, `args[0]` included) that a sandbox starts as PID 1.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PauseLauncher {
    pub program: PathBuf,
    pub args: Vec<String>,
}

impl PauseLauncher {
    /// The running binary (`nodelet`) as `nodelet pause`.
    pub fn this_binary() -> std::io::Result<PauseLauncher> {
        Ok(PauseLauncher {
            program: std::env::current_exe()?,
            args: vec!["nodelet".into(), SUBCOMMAND.into()],
        })
    }
}

/// `nodelet pause`: sleeps and reaps whatever exits in its namespace, until killed.
pub fn main() -> u8 {
    loop {
        nodelet_sys::daemon::reap_exited_children();
        std::thread::sleep(REAP_INTERVAL);
    }
}

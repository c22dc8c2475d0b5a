//! The per-container shim: one small monitor process per container, our own binary
//! re-executed as `nodelet shim <state-dir>`.
//!
//! What it does, in order ([`main`]):
//! 1. reads `shim.json` (a [`ShimConfig`], written by [`ShimHandle::spawn`]);
//! 2. forks and starts a session of its own, so it is neither nodelet's child nor in its
//!    process group or session: nodelet may exit, crash or be SIGKILLed, the shim and its
//!    container go on (the fork's parent exits at once; nodelet reaps it);
//! 3. becomes a child subreaper, writes `shim.pid`;
//! 4. runs the runtime's `create` with the container's stdout and stderr on two pipes it
//!    reads and stdin on `/dev/null`, notes the memory cgroup's OOM-kill count, then (once a
//!    gated launcher says so: [`ShimHandle::spawn_gated`]) `start`;
//!    writes `started.json` and reports success (or the runtime's error) on its standard
//!    output, which [`ShimHandle::spawn`] is reading;
//! 5. copies both pipes into the container's CRI log file ([`crate::logs::CriLogWriter`]:
//!    one writer, line framing, timestamps; rotated at a record boundary by
//!    [`crate::logs::RotatingFile`] per [`ShimConfig::log_rotation`]) while reaping every
//!    process that ends under it;
//! 6. when the container's first process has ended and the pipes are drained, writes
//!    `exit.json` ([`ShimExit`]: code, signal, OOM kill, start and finish times) atomically
//!    and exits.
//!
//! It leaves the container in the runtime's `stopped` state: deleting it (and its cgroup)
//! is the kubelet's decision, as with CRI's RemoveContainer, and the runtime's state is what
//! `Container::open` needs to find it in the meantime.
//!
//! The state directory (the container's bundle directory, or any directory of its own):
//!
//! ```text
//! shim.json     what to run (ShimConfig), written by the launcher
//! shim.log      the shim's own messages (its stderr)
//! shim.pid      the shim's pid, written before `create`
//! started.json  the container's first process and when it started
//! exit.json     how it ended; present once the shim is done
//! ```
//!
//! A restarted nodelet finds everything again with [`ShimHandle::attach`]: the shim's pid
//! (checked against `/proc/<pid>/cmdline`, held through a pidfd) tells whether it still
//! runs, `exit.json` how the container ended.
//!
//! The shim's code path is plain `std` and `nodelet-sys`, single-threaded, with no async
//! runtime, to keep its memory small.

mod handle;
mod monitor;
mod oom;

use std::path::{Path, PathBuf};

use jiff::Timestamp;
use nodelet_sys::process::ExitStatus;
use serde::{Deserialize, Serialize};

use crate::handlers::Handler;
use crate::logs::{DEFAULT_MAX_LINE, LogRotation};

pub use handle::{GatedShim, ShimError, ShimHandle, ShimLauncher};
pub use monitor::main;

/// The subcommand of our binary that runs a shim.
pub const SUBCOMMAND: &str = "shim";
pub const CONFIG_FILE: &str = "shim.json";
pub const PID_FILE: &str = "shim.pid";
pub const STARTED_FILE: &str = "started.json";
pub const EXIT_FILE: &str = "exit.json";
pub const LOG_FILE: &str = "shim.log";

/// What a shim runs (`shim.json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShimConfig {
    /// The runtime's container id.
    pub id: String,
    /// The container's bundle (spec written, root filesystem mounted).
    pub bundle: PathBuf,
    /// The CRI log file (`crate::logs::ContainerLogs::file`).
    pub log_path: PathBuf,
    /// The longest log record; longer lines are split.
    pub max_line: usize,
    /// When the shim rotates the log (the kubelet's defaults for older `shim.json` files).
    #[serde(default)]
    pub log_rotation: LogRotation,
    pub runtime: ShimRuntime,
    /// Between `create` and `start`, wait for the launcher's go (one byte on standard
    /// input; EOF cancels): [`ShimHandle::spawn_gated`].
    #[serde(default)]
    pub gated: bool,
}

impl ShimConfig {
    pub fn new(handler: &Handler, id: &str, bundle: &Path, log_path: &Path) -> ShimConfig {
        ShimConfig {
            id: id.into(),
            bundle: bundle.into(),
            log_path: log_path.into(),
            max_line: DEFAULT_MAX_LINE,
            log_rotation: LogRotation::default(),
            runtime: ShimRuntime::from(handler),
            gated: false,
        }
    }
}

/// The runtime handler, as the shim needs it (a [`Handler`] on disk).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShimRuntime {
    pub handler: String,
    pub binary: PathBuf,
    pub global_args: Vec<String>,
    pub root: Option<PathBuf>,
    pub hidden_cgroup2: Option<PathBuf>,
}

impl From<&Handler> for ShimRuntime {
    fn from(handler: &Handler) -> ShimRuntime {
        ShimRuntime {
            handler: handler.name.clone(),
            binary: handler.binary.clone(),
            global_args: handler.global_args.clone(),
            root: handler.root.clone(),
            hidden_cgroup2: handler.hidden_cgroup2.clone(),
        }
    }
}

impl ShimRuntime {
    pub fn handler(&self) -> Handler {
        Handler {
            name: self.handler.clone(),
            binary: self.binary.clone(),
            global_args: self.global_args.clone(),
            root: self.root.clone(),
            hidden_cgroup2: self.hidden_cgroup2.clone(),
        }
    }
}

/// The container is running (`started.json`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Started {
    /// The host pid of its first process.
    pub init_pid: u32,
    pub started_at: Timestamp,
}

/// How the container ended (`exit.json`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShimExit {
    pub init_pid: u32,
    /// The exit code, or 128 + the signal.
    pub exit_code: i32,
    /// The signal that ended the first process, if one did.
    pub signal: Option<i32>,
    /// The memory cgroup's OOM killer killed a process of the container while it ran.
    pub oom_killed: bool,
    pub started_at: Timestamp,
    pub finished_at: Timestamp,
}

impl ShimExit {
    pub fn status(&self) -> ExitStatus {
        match self.signal {
            Some(signal) => ExitStatus::Killed(signal),
            None => ExitStatus::Exited(self.exit_code),
        }
    }

    /// The kubelet's `state.terminated.reason`.
    pub fn reason(&self) -> &'static str {
        if self.oom_killed {
            "OOMKilled"
        } else if self.exit_code == 0 {
            "Completed"
        } else {
            "Error"
        }
    }
}

/// What the shim tells its launcher once the container runs (one JSON line on its stdout).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Report {
    Started(Started),
    Failed(String),
}

/// Writes `value` as JSON to `dir/file` through a temporary file and a rename.
fn write_json_atomic<T: Serialize>(dir: &Path, file: &str, value: &T) -> std::io::Result<()> {
    let bytes = serde_json::to_vec(value).map_err(std::io::Error::other)?;
    write_atomic(dir, file, &bytes)
}

fn write_atomic(dir: &Path, file: &str, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = dir.join(format!(".{file}.tmp"));
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, dir.join(file))
}

/// `Ok(None)` when the file does not exist.
fn read_json<T: serde::de::DeserializeOwned>(dir: &Path, file: &str) -> std::io::Result<Option<T>> {
    match std::fs::read(dir.join(file)) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e)),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(err) => Err(err),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_reasons_and_statuses() {
        let t = Timestamp::UNIX_EPOCH;
        let exit = |exit_code, signal, oom_killed| ShimExit {
            init_pid: 1,
            exit_code,
            signal,
            oom_killed,
            started_at: t,
            finished_at: t,
        };
        assert_eq!(exit(0, None, false).reason(), "Completed");
        assert_eq!(exit(3, None, false).reason(), "Error");
        assert_eq!(exit(137, Some(9), true).reason(), "OOMKilled");
        assert_eq!(exit(137, Some(9), false).status(), ExitStatus::Killed(9));
        assert_eq!(exit(3, None, false).status(), ExitStatus::Exited(3));
    }

    #[test]
    fn an_older_shim_json_without_log_rotation_still_loads() {
        let text = r#"{"id":"c1","bundle":"/b","log_path":"/l/0.log","max_line":16384,
            "runtime":{"handler":"runc","binary":"/usr/sbin/runc","global_args":[],
            "root":null,"hidden_cgroup2":null}}"#;
        let config: ShimConfig = serde_json::from_str(text).unwrap();
        assert_eq!(config.log_rotation, LogRotation::default());
        assert!(!config.gated);
    }

    #[test]
    fn records_round_trip_through_files() {
        let dir = tempfile::tempdir().unwrap();
        let exit = ShimExit {
            init_pid: 42,
            exit_code: 137,
            signal: Some(9),
            oom_killed: true,
            started_at: Timestamp::new(1, 5).unwrap(),
            finished_at: Timestamp::new(2, 0).unwrap(),
        };
        write_json_atomic(dir.path(), EXIT_FILE, &exit).unwrap();
        assert_eq!(
            read_json::<ShimExit>(dir.path(), EXIT_FILE).unwrap(),
            Some(exit)
        );
        let text = std::fs::read_to_string(dir.path().join(EXIT_FILE)).unwrap();
        assert!(
            text.contains("\"started_at\":\"1970-01-01T00:00:01.000000005Z\""),
            "{text}"
        );
        assert_eq!(read_json::<ShimExit>(dir.path(), "missing").unwrap(), None);
        let report = serde_json::to_string(&Report::Failed("no".into())).unwrap();
        assert_eq!(report, r#"{"failed":"no"}"#);
    }
}

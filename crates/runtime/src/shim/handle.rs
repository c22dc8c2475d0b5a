//! nodelet's side of a shim: starting one and finding it again.

use std::io::Read;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nodelet_sys::process::PidFd;

use super::{
    CONFIG_FILE, EXIT_FILE, LOG_FILE, PID_FILE, Report, STARTED_FILE, SUBCOMMAND, ShimConfig,
    ShimExit, Started, read_json, write_json_atomic,
};
use crate::bundle::Bundle;
use crate::container::{Container, ContainerError};
use crate::oci_runtime::DEFAULT_COMMAND_TIMEOUT;

/// How much of `shim.log` an error quotes.
const LOG_TAIL: usize = 2048;
/// After `exit.json` appears, how long the shim gets to exit (so it can be reaped).
const EXIT_GRACE: Duration = Duration::from_secs(2);

#[derive(Debug, thiserror::Error)]
pub enum ShimError {
    #[error("shim in {}: {what}: {source}", .state_dir.display())]
    Io {
        state_dir: PathBuf,
        what: String,
        source: std::io::Error,
    },
    #[error("cannot run the shim {}: {source}", .program.display())]
    Spawn {
        program: PathBuf,
        source: std::io::Error,
    },
    /// `create` or `start` failed (the runtime's message), or the shim could not set up.
    #[error("container {id:?}: {message}")]
    Failed { id: String, message: String },
    #[error("container {id:?}: the shim did not report within {timeout:?}; it was killed")]
    Timeout { id: String, timeout: Duration },
    #[error("container {id:?}: a shim (pid {pid}) already runs in {}", .state_dir.display())]
    AlreadyRunning {
        id: String,
        pid: u32,
        state_dir: PathBuf,
    },
    /// The shim is gone and left no exit record (it was killed, or the machine restarted).
    #[error("container {id:?}: its shim is gone without recording the exit; its log: {log}")]
    Lost { id: String, log: String },
}

/// How to start a shim: our binary and `shim`, and how long `create` plus `start` may take.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShimLauncher {
    pub program: PathBuf,
    pub timeout: Duration,
}

impl ShimLauncher {
    /// `program shim <state-dir>`.
    pub fn new(program: &Path) -> ShimLauncher {
        ShimLauncher {
            program: program.into(),
            // Two runtime commands, each with its own deadline, and some slack.
            timeout: DEFAULT_COMMAND_TIMEOUT * 2 + Duration::from_secs(10),
        }
    }

    /// The running binary (`nodelet`) as the shim.
    pub fn this_binary() -> std::io::Result<ShimLauncher> {
        Ok(ShimLauncher::new(&std::env::current_exe()?))
    }
}

/// A container's shim, started or found again.
#[derive(Debug)]
pub struct ShimHandle {
    state_dir: PathBuf,
    config: ShimConfig,
    pid: Option<u32>,
    /// While the shim runs (or has exited and is not yet reaped).
    process: Option<PidFd>,
    started: Option<Started>,
}

impl ShimHandle {
    /// Starts a shim for `config` with its state in `state_dir` (created, mode 0700) and
    /// returns once the container runs, or with the runtime's error.
    pub fn spawn(
        launcher: &ShimLauncher,
        state_dir: &Path,
        config: &ShimConfig,
    ) -> Result<ShimHandle, ShimError> {
        let config = ShimConfig {
            gated: false,
            ..config.clone()
        };
        let launched = launch(launcher, state_dir, &config)?;
        finish(launcher, state_dir, &config, launched.reports)
    }

    /// Starts a shim for `config` that runs the runtime's `create` and then waits for
    /// [`GatedShim::start`] before `start`: whatever else the container needs before it
    /// runs (the pod's network) is made meanwhile. Returns once the shim is on its way.
    pub fn spawn_gated(
        launcher: &ShimLauncher,
        state_dir: &Path,
        config: &ShimConfig,
    ) -> Result<GatedShim, ShimError> {
        let config = ShimConfig {
            gated: true,
            ..config.clone()
        };
        let launched = launch(launcher, state_dir, &config)?;
        Ok(GatedShim {
            launcher: launcher.clone(),
            state_dir: state_dir.to_path_buf(),
            config,
            launched,
        })
    }

    /// Finds the shim of `state_dir` again (after nodelet restarted): running or not, with
    /// what it recorded.
    pub fn attach(state_dir: &Path) -> Result<ShimHandle, ShimError> {
        let io = |what: &str| io_error(state_dir, what);
        let config: ShimConfig = read_json(state_dir, CONFIG_FILE)
            .map_err(io("reading shim.json"))?
            .ok_or_else(|| {
                io("reading shim.json")(std::io::Error::from(std::io::ErrorKind::NotFound))
            })?;
        let pid = match std::fs::read_to_string(state_dir.join(PID_FILE)) {
            Ok(text) => text.trim().parse::<u32>().ok(),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => None,
            Err(err) => return Err(io("reading shim.pid")(err)),
        };
        let process = pid.and_then(|pid| open_shim_process(pid, state_dir));
        let started = read_json(state_dir, STARTED_FILE).map_err(io("reading started.json"))?;
        Ok(ShimHandle {
            state_dir: state_dir.into(),
            config,
            pid,
            process,
            started,
        })
    }

    /// The shim's pid, once it has written it.
    pub fn pid(&self) -> Option<u32> {
        self.pid
    }

    pub fn config(&self) -> &ShimConfig {
        &self.config
    }

    pub fn state_dir(&self) -> &Path {
        &self.state_dir
    }

    /// The container's first process and when it started.
    pub fn started(&self) -> Option<&Started> {
        self.started.as_ref()
    }

    pub fn is_running(&self) -> bool {
        self.process
            .as_ref()
            .is_some_and(|p| matches!(p.wait_exited(Some(Duration::ZERO)), Ok(false)))
    }

    /// How the container ended, if the shim has recorded it.
    pub fn exit(&self) -> Result<Option<ShimExit>, ShimError> {
        read_json(&self.state_dir, EXIT_FILE)
            .map_err(io_error(&self.state_dir, "reading exit.json"))
    }

    /// Waits up to `timeout` (`None`: without limit) for the container's exit; `Ok(None)`
    /// while it runs. [`ShimError::Lost`] when the shim ended without recording one.
    pub fn wait_exit(&self, timeout: Option<Duration>) -> Result<Option<ShimExit>, ShimError> {
        let deadline = timeout.map(|t| Instant::now() + t);
        if let Some(exit) = self.exit()? {
            self.collect(EXIT_GRACE);
            return Ok(Some(exit));
        }
        let Some(process) = &self.process else {
            return self.exit()?.map(Some).ok_or_else(|| self.lost());
        };
        let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
        let ended = process
            .wait_exited(left)
            .map_err(io_error(&self.state_dir, "waiting for the shim"))?;
        if !ended {
            return Ok(None);
        }
        self.collect(Duration::ZERO);
        self.exit()?.map(Some).ok_or_else(|| self.lost())
    }

    /// The container, for the runtime's operations (signal, stop, exec, delete), with its
    /// exit taken from this shim.
    pub fn into_container(self) -> Result<Container, ContainerError> {
        let runtime = self.config.runtime.handler().runtime();
        let id = self.config.id.clone();
        let bundle = Bundle::open(&self.config.bundle);
        Container::open_with_shim(&runtime, &id, &bundle, self)
    }

    /// Reaps the shim if it is our child (nodelet started it as a child subreaper, or it
    /// was re-parented to us), once it has exited (waiting up to `grace`).
    fn collect(&self, grace: Duration) {
        if let Some(process) = &self.process {
            let _ = process.wait_exited(Some(grace));
            let _ = process.try_reap();
        }
    }

    fn lost(&self) -> ShimError {
        ShimError::Lost {
            id: self.config.id.clone(),
            log: log_tail(&self.state_dir),
        }
    }
}

/// A shim on its way, made by [`launch`]: the pipe it reports on, and the gate's write end.
#[derive(Debug)]
struct Launched {
    reports: Option<std::process::ChildStdout>,
    gate: Option<std::process::ChildStdin>,
}

/// Writes `shim.json` and starts the shim (which forks away at once).
fn launch(
    launcher: &ShimLauncher,
    state_dir: &Path,
    config: &ShimConfig,
) -> Result<Launched, ShimError> {
    use std::os::unix::fs::DirBuilderExt;
    let io = |what: &str| io_error(state_dir, what);
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(state_dir)
        .map_err(io("creating the directory"))?;
    if let Ok(existing) = ShimHandle::attach(state_dir)
        && existing.is_running()
    {
        return Err(ShimError::AlreadyRunning {
            id: config.id.clone(),
            pid: existing.pid.unwrap_or_default(),
            state_dir: state_dir.into(),
        });
    }
    for stale in [PID_FILE, STARTED_FILE, EXIT_FILE] {
        match std::fs::remove_file(state_dir.join(stale)) {
            Err(err) if err.kind() != std::io::ErrorKind::NotFound => {
                return Err(io(&format!("removing {stale}"))(err));
            }
            _ => {}
        }
    }
    write_json_atomic(state_dir, CONFIG_FILE, config).map_err(io("writing shim.json"))?;
    let shim_log = std::fs::File::options()
        .append(true)
        .create(true)
        .open(state_dir.join(LOG_FILE))
        .map_err(io("opening shim.log"))?;
    let mut intermediate = Command::new(&launcher.program)
        .arg(SUBCOMMAND)
        .arg(state_dir)
        // The gate: the shim reads one byte here before `start`; EOF (nodelet gone, or
        // the start cancelled) means the container is deleted instead.
        .stdin(if config.gated {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(shim_log)
        .spawn()
        .map_err(|source| ShimError::Spawn {
            program: launcher.program.clone(),
            source,
        })?;
    let reports = intermediate.stdout.take();
    let gate = intermediate.stdin.take();
    // It forks the shim and exits at once.
    let _ = intermediate.wait();
    Ok(Launched { reports, gate })
}

/// Reads the shim's report: the running container's handle, or why it could not start.
fn finish(
    launcher: &ShimLauncher,
    state_dir: &Path,
    config: &ShimConfig,
    reports: Option<std::process::ChildStdout>,
) -> Result<ShimHandle, ShimError> {
    let io = |what: &str| io_error(state_dir, what);
    let report = match reports {
        Some(pipe) => read_report(pipe, launcher.timeout).map_err(io("reading its report"))?,
        None => None,
    };
    match report {
        Some(Report::Started(started)) => {
            let mut handle = ShimHandle::attach(state_dir)?;
            handle.started = Some(started);
            Ok(handle)
        }
        Some(Report::Failed(message)) => {
            // It exits after reporting; collect it if it is ours to collect.
            if let Ok(handle) = ShimHandle::attach(state_dir)
                && let Some(process) = &handle.process
            {
                let _ = process.wait_exited(Some(EXIT_GRACE));
                let _ = process.try_reap();
            }
            Err(ShimError::Failed {
                id: config.id.clone(),
                message,
            })
        }
        None => {
            let handle = ShimHandle::attach(state_dir).ok();
            let running = handle.as_ref().is_some_and(ShimHandle::is_running);
            if let Some(process) = handle.as_ref().and_then(|h| h.process.as_ref()) {
                let _ = process.send_signal(9);
                let _ = process.wait_exited(Some(EXIT_GRACE));
                let _ = process.try_reap();
            }
            if running {
                Err(ShimError::Timeout {
                    id: config.id.clone(),
                    timeout: launcher.timeout,
                })
            } else {
                Err(ShimError::Failed {
                    id: config.id.clone(),
                    message: format!(
                        "the shim exited without reporting; its log: {}",
                        log_tail(state_dir)
                    ),
                })
            }
        }
    }
}

/// A shim whose container is being created and waits to be started
/// ([`ShimHandle::spawn_gated`]).
#[derive(Debug)]
pub struct GatedShim {
    launcher: ShimLauncher,
    state_dir: PathBuf,
    config: ShimConfig,
    launched: Launched,
}

impl GatedShim {
    /// Lets the shim `start` the container; returns once it runs, or with the error.
    pub fn start(mut self) -> Result<ShimHandle, ShimError> {
        use std::io::Write;
        if let Some(mut gate) = self.launched.gate.take() {
            // A shim that already failed has closed its end: its report says why.
            let _ = gate.write_all(b"1");
        }
        finish(
            &self.launcher,
            &self.state_dir,
            &self.config,
            self.launched.reports.take(),
        )
    }

    /// The container is not to run: the shim deletes it and exits. Waits for that.
    pub fn cancel(mut self) {
        drop(self.launched.gate.take());
        let _ = finish(
            &self.launcher,
            &self.state_dir,
            &self.config,
            self.launched.reports.take(),
        );
    }
}

/// A pidfd on `pid` if it is the shim of `state_dir`: its command line is checked after the
/// pidfd is opened and the process is seen alive after that, so a reused pid is not taken
/// for the shim.
/// `ShimError::Io` for what failed in the shim of `state_dir`, for `map_err`.
fn io_error(state_dir: &Path, what: &str) -> impl FnOnce(std::io::Error) -> ShimError + use<> {
    let (state_dir, what) = (state_dir.to_path_buf(), what.to_owned());
    move |source| ShimError::Io {
        state_dir,
        what,
        source,
    }
}

fn open_shim_process(pid: u32, state_dir: &Path) -> Option<PidFd> {
    let process = PidFd::open(pid).ok()?;
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
    let state = state_dir.as_os_str().as_encoded_bytes();
    let ours = args
        .windows(2)
        .any(|pair| pair[0] == SUBCOMMAND.as_bytes() && pair[1] == state);
    let alive = matches!(process.wait_exited(Some(Duration::ZERO)), Ok(false));
    // An exited (zombie) shim of ours is still worth holding: it can be reaped.
    (ours || (!alive && cmdline.is_empty())).then_some(process)
}

/// Reads the shim's one-line report, waiting at most `timeout`. `None` when the pipe ends
/// first or the time runs out.
fn read_report(
    mut pipe: std::process::ChildStdout,
    timeout: Duration,
) -> std::io::Result<Option<Report>> {
    let deadline = Instant::now() + timeout;
    let mut line = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(None);
        }
        let ready = nodelet_sys::daemon::wait_readable(&[pipe.as_fd()], Some(left))?;
        if !ready.first().copied().unwrap_or(false) {
            continue;
        }
        let n = match pipe.read(&mut chunk) {
            Ok(n) => n,
            Err(err) if err.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(err) => return Err(err),
        };
        if n == 0 {
            return Ok(None);
        }
        line.extend_from_slice(&chunk[..n]);
        if let Some(end) = line.iter().position(|b| *b == b'\n') {
            return Ok(serde_json::from_slice(&line[..end]).ok());
        }
    }
}

/// The end of `shim.log`, for error messages.
fn log_tail(state_dir: &Path) -> String {
    let text = std::fs::read(state_dir.join(LOG_FILE)).unwrap_or_default();
    let start = text.len().saturating_sub(LOG_TAIL);
    let tail = String::from_utf8_lossy(&text[start..]).trim().to_string();
    if tail.is_empty() {
        "(empty)".into()
    } else {
        tail
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::handlers::Handler;

    fn config() -> ShimConfig {
        let handler = Handler {
            name: "runc".into(),
            binary: "/usr/sbin/runc".into(),
            global_args: Vec::new(),
            root: None,
            hidden_cgroup2: None,
        };
        ShimConfig::new(&handler, "c1", Path::new("/b"), Path::new("/l/0.log"))
    }

    #[test]
    fn a_pid_that_is_not_our_shim_is_not_taken_for_it() {
        let dir = tempfile::tempdir().unwrap();
        write_json_atomic(dir.path(), CONFIG_FILE, &config()).unwrap();
        // This test process: alive, but not `nodelet shim <dir>`.
        std::fs::write(dir.path().join(PID_FILE), std::process::id().to_string()).unwrap();
        std::fs::write(dir.path().join(LOG_FILE), "nodelet shim: killed\n").unwrap();
        let handle = ShimHandle::attach(dir.path()).unwrap();
        assert_eq!(handle.pid(), Some(std::process::id()));
        assert!(!handle.is_running());
        let err = handle.wait_exit(Some(Duration::ZERO)).unwrap_err();
        assert!(
            matches!(&err, ShimError::Lost { log, .. } if log == "nodelet shim: killed"),
            "{err}"
        );
    }

    #[test]
    fn a_recorded_exit_is_read_without_a_shim() {
        let dir = tempfile::tempdir().unwrap();
        write_json_atomic(dir.path(), CONFIG_FILE, &config()).unwrap();
        let exit = ShimExit {
            init_pid: 7,
            exit_code: 0,
            signal: None,
            oom_killed: false,
            started_at: jiff::Timestamp::UNIX_EPOCH,
            finished_at: jiff::Timestamp::UNIX_EPOCH,
        };
        write_json_atomic(dir.path(), EXIT_FILE, &exit).unwrap();
        let handle = ShimHandle::attach(dir.path()).unwrap();
        assert_eq!(handle.pid(), None);
        assert_eq!(handle.wait_exit(None).unwrap(), Some(exit));
        assert!(ShimHandle::attach(&dir.path().join("missing")).is_err());
    }
}

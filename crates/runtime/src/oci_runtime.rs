//! The OCI runtime command line, the one way nodelet drives runc, crun, youki or any other
//! compliant runtime: `create`, `start`, `state`, `kill`, `delete`, `exec`, `list`.
//!
//! Every invocation has a deadline (a hung runtime is killed and reported). Where the
//! runtime's own stdio is the container's (`create`, `exec`), its error messages are taken
//! from a JSON log file (`--log <file> --log-format json`, which runc, crun and youki all
//! accept) rather than from stderr.

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStderr, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use nodelet_sys::process::PidFd;
use oci_spec::runtime::Process;

use crate::command::{Finished, Running, exit_code};
use crate::handlers::Handler;
use crate::oci;
use crate::signal::Signal;

/// How long one runtime command may take unless told otherwise.
pub const DEFAULT_COMMAND_TIMEOUT: Duration = Duration::from_secs(30);
/// After killing a timed-out exec, how long the runtime gets to notice and exit.
const KILL_GRACE: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("runtime handler {handler:?}: cannot run {}: {source}", .binary.display())]
    Spawn {
        handler: String,
        binary: PathBuf,
        source: std::io::Error,
    },
    #[error("runtime handler {handler:?}: `{command}`{} failed ({status}): {message}", for_container(.id))]
    Failed {
        handler: String,
        command: String,
        id: Option<String>,
        status: String,
        message: String,
    },
    #[error("runtime handler {handler:?}: `{command}`{} did not finish within {timeout:?}", for_container(.id))]
    Timeout {
        handler: String,
        command: String,
        id: Option<String>,
        timeout: Duration,
    },
    #[error("runtime handler {handler:?}: `{command}`{}: unexpected output: {problem}", for_container(.id))]
    BadOutput {
        handler: String,
        command: String,
        id: Option<String>,
        problem: String,
    },
    #[error("runtime handler {handler:?}: {what}{}: {source}", for_container(.id))]
    Io {
        handler: String,
        id: Option<String>,
        what: String,
        source: std::io::Error,
    },
    #[error(
        "invalid container id {id:?}: use 1 to 128 letters, digits, '_', '.' and '-', starting with a letter or digit"
    )]
    InvalidId { id: String },
}

fn for_container(id: &Option<String>) -> String {
    id.as_ref()
        .map(|id| format!(" for container {id:?}"))
        .unwrap_or_default()
}

/// The container's stdin, stdout and stderr, handed to `create` (the runtime passes its own
/// stdio to the container). Files, `/dev/null` or pipe ends that someone else reads; never
/// [`Stdio::piped`], whose other end nobody would read.
#[derive(Debug)]
pub struct ContainerStdio {
    pub stdin: Stdio,
    pub stdout: Stdio,
    pub stderr: Stdio,
}

impl ContainerStdio {
    /// Everything to `/dev/null`.
    pub fn null() -> ContainerStdio {
        ContainerStdio {
            stdin: Stdio::null(),
            stdout: Stdio::null(),
            stderr: Stdio::null(),
        }
    }
}

/// The result of a synchronous exec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecOutput {
    /// The process's exit code (128 + the signal when a signal ended it).
    pub exit_code: i32,
    /// At most [`crate::command::OUTPUT_LIMIT`] bytes each.
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

/// Which of an exec'd process's standard streams are pipes to the caller; with `tty` the
/// process gets a terminal instead ([`ExecSession::terminal`]: stdin, stdout and stderr in
/// one, so the three flags are ignored).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ExecStreams {
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
    pub tty: bool,
}

/// The pty master of an exec with a terminal: what is written is the process's input, what
/// is read its output (reads fail with `EIO` once the process and its children are gone).
#[derive(Debug)]
pub struct Terminal {
    master: std::fs::File,
}

impl Terminal {
    /// A handle to read the output from (and another to write input to), for separate threads.
    pub fn try_clone(&self) -> std::io::Result<std::fs::File> {
        self.master.try_clone()
    }

    /// The terminal's window size (the process sees `SIGWINCH`).
    pub fn resize(&self, columns: u16, rows: u16) -> std::io::Result<()> {
        nodelet_sys::terminal::set_window_size(&self.master, columns, rows)
    }
}

/// The files of one `exec` invocation, in the container's bundle.
#[derive(Debug, Clone)]
struct ExecFiles {
    process_file: PathBuf,
    pid_file: PathBuf,
    log: PathBuf,
}

impl ExecFiles {
    /// SIGKILLs the exec'd process, once the runtime has written its pid.
    fn kill_process(&self) {
        let pid = std::fs::read_to_string(&self.pid_file)
            .ok()
            .and_then(|t| t.trim().parse::<u32>().ok());
        if let Some(pidfd) = pid.and_then(|pid| PidFd::open(pid).ok()) {
            let _ = pidfd.send_signal(Signal::KILL.number());
        }
    }

    /// The runtime's error messages; the files are removed.
    fn finish(&self) -> Vec<String> {
        let errors = read_log_errors(&self.log);
        for file in [&self.process_file, &self.pid_file, &self.log] {
            let _ = std::fs::remove_file(file);
        }
        errors
    }
}

/// A process started by [`OciRuntime::spawn_exec`]: its pipes (taken by the caller) and the
/// runtime command that waits for it.
#[derive(Debug)]
pub struct ExecSession {
    pub stdin: Option<ChildStdin>,
    pub stdout: Option<ChildStdout>,
    pub stderr: Option<ChildStderr>,
    /// With [`ExecStreams::tty`]: the process's terminal.
    pub terminal: Option<Terminal>,
    child: Child,
    files: ExecFiles,
    invocation: Invocation,
}

/// Kills a streaming exec's process from another thread (the client went away).
#[derive(Debug, Clone)]
pub struct ExecKiller(ExecFiles);

impl ExecKiller {
    pub fn kill(&self) {
        self.0.kill_process();
    }
}

impl ExecSession {
    pub fn killer(&self) -> ExecKiller {
        ExecKiller(self.files.clone())
    }

    /// Waits (without a deadline) for the process: its exit code (128 + the signal when a
    /// signal ended it), or the runtime's error when it could not run it (no such command).
    pub fn wait(mut self) -> Result<i32, RuntimeError> {
        drop(self.stdin.take());
        drop(self.terminal.take());
        let status = self.child.wait().map_err(|source| RuntimeError::Io {
            handler: self.invocation.handler.clone(),
            id: self.invocation.id.clone(),
            what: format!("waiting for `{}`", self.invocation.command),
            source,
        });
        let errors = self.files.finish();
        let status = status?;
        if !errors.is_empty() {
            return Err(self.invocation.failed(&status, errors.join("; ")));
        }
        Ok(exit_code(&status))
    }
}

/// A driver for one handler's runtime binary.
#[derive(Debug, Clone)]
pub struct OciRuntime {
    handler: String,
    binary: PathBuf,
    global_args: Vec<String>,
    root: Option<PathBuf>,
    hidden_cgroup2: Option<PathBuf>,
    timeout: Duration,
}

impl OciRuntime {
    pub fn new(handler: &Handler) -> OciRuntime {
        OciRuntime {
            handler: handler.name.clone(),
            binary: handler.binary.clone(),
            global_args: handler.global_args.clone(),
            root: handler.root.clone(),
            hidden_cgroup2: handler.hidden_cgroup2.clone(),
            timeout: DEFAULT_COMMAND_TIMEOUT,
        }
    }

    /// The deadline for each runtime command (exec has its own).
    pub fn with_command_timeout(mut self, timeout: Duration) -> OciRuntime {
        self.timeout = timeout;
        self
    }

    pub fn handler(&self) -> &str {
        &self.handler
    }

    pub fn binary(&self) -> &Path {
        &self.binary
    }

    /// The first line of `<runtime> --version`.
    pub fn version(&self) -> Result<String, RuntimeError> {
        let out = self.run_captured(None, &["--version".as_ref()])?;
        let text = String::from_utf8_lossy(&out.stdout);
        text.lines()
            .next()
            .map(|l| l.trim().to_string())
            .filter(|l| !l.is_empty())
            .ok_or_else(|| RuntimeError::BadOutput {
                handler: self.handler.clone(),
                command: "--version".into(),
                id: None,
                problem: "no version printed".into(),
            })
    }

    /// Whether the runtime applies `linux.seccomp` (some builds ignore it without a word, as
    /// youki 0.7 built without libseccomp does): `features` (runc, youki) says so in
    /// `linux.seccomp.enabled`; runtimes without `features` (crun 1.8) flag it in `--version`
    /// (`+SECCOMP` / `-SECCOMP`). Unknown: assumed supported.
    pub fn supports_seccomp(&self) -> bool {
        let features = self
            .run_captured(None, &["features".as_ref()])
            .ok()
            .and_then(|out| serde_json::from_slice::<serde_json::Value>(&out.stdout).ok());
        if let Some(features) = features {
            return features["linux"]["seccomp"]["enabled"] == serde_json::Value::Bool(true);
        }
        match self.run_captured(None, &["--version".as_ref()]) {
            Ok(out) => !String::from_utf8_lossy(&out.stdout).contains("-SECCOMP"),
            Err(_) => true,
        }
    }

    /// `create`: sets the container up from `bundle` (its `config.json` and `rootfs`) with
    /// its process waiting for `start`. Returns the process's pid on the host.
    pub fn create(
        &self,
        id: &str,
        bundle: &Path,
        pid_file: &Path,
        stdio: ContainerStdio,
    ) -> Result<u32, RuntimeError> {
        validate_container_id(id)?;
        let log = unique_path(bundle, "create", "log");
        let args: Vec<&OsStr> = vec![
            "create".as_ref(),
            "--bundle".as_ref(),
            bundle.as_os_str(),
            "--pid-file".as_ref(),
            pid_file.as_os_str(),
            id.as_ref(),
        ];
        let mut command = self.command(Some(&log), &args)?;
        command
            .stdin(stdio.stdin)
            .stdout(stdio.stdout)
            .stderr(stdio.stderr);
        let invocation = Invocation::new(self, "create", Some(id));
        let result = run(command, &invocation, self.timeout, false);
        let errors = read_log_errors(&log);
        let _ = std::fs::remove_file(&log);
        let finished = result?;
        if !finished.status.success() || !errors.is_empty() {
            let message = if errors.is_empty() {
                "no error was logged; the runtime's messages went to the container's stderr"
                    .to_string()
            } else {
                errors.join("; ")
            };
            return Err(invocation.failed(&finished.status, message));
        }
        let pid_text = std::fs::read_to_string(pid_file).map_err(|source| RuntimeError::Io {
            handler: self.handler.clone(),
            id: Some(id.into()),
            what: format!("reading the pid file {}", pid_file.display()),
            source,
        })?;
        pid_text
            .trim()
            .parse::<u32>()
            .map_err(|_| invocation.bad_output(format!("pid file holds {pid_text:?}")))
    }

    /// `start`: runs the created container's process.
    pub fn start(&self, id: &str) -> Result<(), RuntimeError> {
        validate_container_id(id)?;
        self.run_captured(Some(id), &["start".as_ref(), id.as_ref()])
            .map(drop)
    }

    /// `state`: what the runtime knows of the container.
    pub fn state(&self, id: &str) -> Result<oci::State, RuntimeError> {
        validate_container_id(id)?;
        let out = self.run_captured(Some(id), &["state".as_ref(), id.as_ref()])?;
        serde_json::from_slice(&out.stdout).map_err(|e| {
            Invocation::new(self, "state", Some(id))
                .bad_output(format!("{e}: {}", String::from_utf8_lossy(&out.stdout)))
        })
    }

    /// `list --format json`: every container in this handler's state directory. runc and crun
    /// print JSON; youki (0.7) knows no JSON list and prints its table, which we read too.
    pub fn list(&self) -> Result<Vec<oci::ListEntry>, RuntimeError> {
        let out = self.run_captured(
            None,
            &["list".as_ref(), "--format".as_ref(), "json".as_ref()],
        )?;
        let text = String::from_utf8_lossy(&out.stdout);
        parse_list(&text).map_err(|problem| Invocation::new(self, "list", None).bad_output(problem))
    }

    /// The container's `list` entry, if the runtime has it.
    pub fn find(&self, id: &str) -> Result<Option<oci::ListEntry>, RuntimeError> {
        Ok(self.list()?.into_iter().find(|c| c.id == id))
    }

    /// `kill`: sends `signal` to the container's process, or with `all` to every process in
    /// its cgroup (needed when it shares a pid namespace).
    pub fn kill(&self, id: &str, signal: Signal, all: bool) -> Result<(), RuntimeError> {
        validate_container_id(id)?;
        let number = signal.number().to_string();
        let mut args: Vec<&OsStr> = vec!["kill".as_ref()];
        if all {
            args.push("--all".as_ref());
        }
        args.extend([OsStr::new(id), number.as_ref()]);
        self.run_captured(Some(id), &args).map(drop)
    }

    /// `delete`: removes the container's runtime state and cgroup; `force` kills a running
    /// container first.
    pub fn delete(&self, id: &str, force: bool) -> Result<(), RuntimeError> {
        validate_container_id(id)?;
        let mut args: Vec<&OsStr> = vec!["delete".as_ref()];
        if force {
            args.push("--force".as_ref());
        }
        args.push(id.as_ref());
        self.run_captured(Some(id), &args).map(drop)
    }

    /// `exec`: runs `process` in the running container and waits for it, at most `timeout`
    /// (then it is killed and the result is [`RuntimeError::Timeout`]). `scratch` is a
    /// directory of ours for the process file, pid file and log (the container's bundle).
    pub fn exec(
        &self,
        id: &str,
        process: &Process,
        scratch: &Path,
        timeout: Duration,
    ) -> Result<ExecOutput, RuntimeError> {
        let invocation = Invocation::new(self, "exec", Some(id));
        let (mut command, files) = self.exec_command(id, process, scratch, &[])?;
        command.stdin(Stdio::null());
        let result = invocation.spawn(command, true).and_then(|mut running| {
            match invocation.wait(&mut running, timeout)? {
                Some(finished) => Ok(finished),
                None => {
                    // The process first (the runtime then exits with it), the runtime last.
                    files.kill_process();
                    if invocation.wait(&mut running, KILL_GRACE)?.is_none() {
                        running.kill();
                        files.kill_process();
                    }
                    Err(invocation.timeout(timeout))
                }
            }
        });
        let errors = files.finish();
        let finished = result?;
        if !errors.is_empty() {
            return Err(invocation.failed(&finished.status, errors.join("; ")));
        }
        Ok(ExecOutput {
            exit_code: exit_code(&finished.status),
            stdout: finished.stdout,
            stderr: finished.stderr,
        })
    }

    /// `exec` for streaming (`kubectl exec`): starts `process` in the running container with
    /// pipes for the chosen `streams` (the others are `/dev/null`) and returns at once; the
    /// caller pumps the pipes and [`waits`](ExecSession::wait) without a deadline.
    pub fn spawn_exec(
        &self,
        id: &str,
        process: &Process,
        scratch: &Path,
        streams: ExecStreams,
    ) -> Result<ExecSession, RuntimeError> {
        let invocation = Invocation::new(self, "exec", Some(id));
        let console = if streams.tty {
            Some(ConsoleSocket::bind().map_err(|source| RuntimeError::Io {
                handler: self.handler.clone(),
                id: Some(id.to_string()),
                what: "creating a console socket".into(),
                source,
            })?)
        } else {
            None
        };
        // A console socket needs a detached exec, whose process the reaper collects.
        let console_args: Vec<&OsStr> = match &console {
            Some(console) => vec![
                "--detach".as_ref(),
                "--tty".as_ref(),
                "--console-socket".as_ref(),
                console.path.as_os_str(),
            ],
            None => Vec::new(),
        };
        let (mut command, files) = self.exec_command(id, process, scratch, &console_args)?;
        if console.is_some() {
            command = match crate::exec_reaper::program() {
                Ok(reaper) => self.wrapped(&reaper, command)?,
                Err(source) => {
                    files.finish();
                    return Err(RuntimeError::Io {
                        handler: self.handler.clone(),
                        id: Some(id.to_string()),
                        what: "finding our own binary for the exec reaper".into(),
                        source,
                    });
                }
            };
        }
        let pipe = |wanted: bool| {
            if wanted && !streams.tty {
                Stdio::piped()
            } else {
                Stdio::null()
            }
        };
        command
            .stdin(pipe(streams.stdin))
            .stdout(pipe(streams.stdout))
            .stderr(pipe(streams.stderr));
        let mut child = match command.spawn() {
            Ok(child) => child,
            Err(source) => {
                files.finish();
                return Err(RuntimeError::Spawn {
                    handler: self.handler.clone(),
                    binary: self.binary.clone(),
                    source,
                });
            }
        };
        let terminal = match console.map(|c| c.receive(&mut child)) {
            None => None,
            Some(Ok(Some(master))) => Some(Terminal {
                master: master.into(),
            }),
            // The runtime ended without sending a terminal: its error tells why.
            Some(Ok(None)) => None,
            Some(Err(source)) => {
                let _ = child.kill();
                let _ = child.wait();
                files.finish();
                return Err(RuntimeError::Io {
                    handler: self.handler.clone(),
                    id: Some(id.to_string()),
                    what: "receiving the exec's terminal".into(),
                    source,
                });
            }
        };
        Ok(ExecSession {
            stdin: child.stdin.take(),
            stdout: child.stdout.take(),
            stderr: child.stderr.take(),
            terminal,
            child,
            files,
            invocation,
        })
    }

    /// Writes the process file and builds `exec --process F --pid-file P <id>`.
    fn exec_command(
        &self,
        id: &str,
        process: &Process,
        scratch: &Path,
        extra_args: &[&OsStr],
    ) -> Result<(Command, ExecFiles), RuntimeError> {
        validate_container_id(id)?;
        let process_file = unique_path(scratch, "exec", "json");
        let files = ExecFiles {
            pid_file: process_file.with_extension("pid"),
            log: process_file.with_extension("log"),
            process_file,
        };
        let io = |what: String| {
            let (handler, id) = (self.handler.clone(), Some(id.to_string()));
            move |source| RuntimeError::Io {
                handler,
                id,
                what,
                source,
            }
        };
        let json = serde_json::to_vec(process)
            .map_err(|e| io("encoding process.json".into())(std::io::Error::other(e)))?;
        std::fs::write(&files.process_file, json)
            .map_err(io(format!("writing {}", files.process_file.display())))?;
        let mut args: Vec<&OsStr> = vec![
            "exec".as_ref(),
            "--process".as_ref(),
            files.process_file.as_os_str(),
            "--pid-file".as_ref(),
            files.pid_file.as_os_str(),
        ];
        args.extend_from_slice(extra_args);
        args.push(id.as_ref());
        match self.command(Some(&files.log), &args) {
            Ok(command) => Ok((command, files)),
            Err(err) => {
                files.finish();
                Err(err)
            }
        }
    }

    /// `command` run by `reaper exec-reaper` (see [`crate::exec_reaper`]).
    fn wrapped(&self, reaper: &Path, command: Command) -> Result<Command, RuntimeError> {
        let mut wrapped = Command::new(reaper);
        wrapped
            .arg(crate::exec_reaper::SUBCOMMAND)
            .arg(command.get_program())
            .args(command.get_args());
        self.hide_cgroup2(&mut wrapped)?;
        Ok(wrapped)
    }

    /// `<binary> <runtime_args> [--root R] [--log L --log-format json] <args>`, in a mount
    /// namespace without the cgroup2 mount when the handler asks for it.
    fn command(&self, log: Option<&Path>, args: &[&OsStr]) -> Result<Command, RuntimeError> {
        let mut command = Command::new(&self.binary);
        command.args(&self.global_args);
        if let Some(root) = &self.root {
            command.arg("--root").arg(root);
        }
        if let Some(log) = log {
            command.arg("--log").arg(log).args(["--log-format", "json"]);
        }
        command.args(args);
        self.hide_cgroup2(&mut command)?;
        Ok(command)
    }

    fn hide_cgroup2(&self, command: &mut Command) -> Result<(), RuntimeError> {
        if let Some(mount) = &self.hidden_cgroup2 {
            nodelet_sys::mount::hide_mount_from_child(command, mount).map_err(|source| {
                RuntimeError::Io {
                    handler: self.handler.clone(),
                    id: None,
                    what: format!("preparing to hide {}", mount.display()),
                    source,
                }
            })?;
        }
        Ok(())
    }

    /// Runs a command whose stdio is ours; non-zero exit is [`RuntimeError::Failed`] with
    /// its stderr.
    fn run_captured(&self, id: Option<&str>, args: &[&OsStr]) -> Result<Finished, RuntimeError> {
        let subcommand = args
            .first()
            .map(|a| a.to_string_lossy().into_owned())
            .unwrap_or_default();
        let invocation = Invocation::new(self, &subcommand, id);
        let mut command = self.command(None, args)?;
        command.stdin(Stdio::null());
        let finished = run(command, &invocation, self.timeout, true)?;
        if !finished.status.success() {
            let stderr = String::from_utf8_lossy(&finished.stderr).trim().to_string();
            let message = if stderr.is_empty() {
                "no message".to_string()
            } else {
                stderr
            };
            return Err(invocation.failed(&finished.status, message));
        }
        Ok(finished)
    }
}

/// `list` output: JSON (runc prints `null` for none, crun `[]` or nothing) or a table whose
/// header starts with `ID` and whose columns begin `ID PID STATUS`.
fn parse_list(text: &str) -> Result<Vec<oci::ListEntry>, String> {
    let trimmed = text.trim();
    if trimmed.is_empty() || trimmed == "null" {
        return Ok(Vec::new());
    }
    if trimmed.starts_with('[') {
        return serde_json::from_str(trimmed).map_err(|e| format!("{e}: {trimmed}"));
    }
    let mut lines = trimmed.lines();
    let header: Vec<&str> = lines
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    if header.first() != Some(&"ID") {
        return Err(format!("neither JSON nor a table: {trimmed}"));
    }
    let column = |name: &str| header.iter().position(|h| *h == name);
    let (pid_column, status_column) = (column("PID"), column("STATUS"));
    lines
        .filter(|line| !line.trim().is_empty())
        .map(|line| {
            let cells: Vec<&str> = line.split_whitespace().collect();
            let cell =
                |index: Option<usize>| index.and_then(|i| cells.get(i)).copied().unwrap_or("");
            let status = serde_json::from_value(serde_json::Value::String(
                cell(status_column).to_ascii_lowercase(),
            ))
            .unwrap_or(oci::Status::Unknown);
            Ok(oci::ListEntry {
                id: cell(Some(0)).to_string(),
                status,
                pid: cell(pid_column).parse().unwrap_or(0),
            })
        })
        .collect()
}

/// Container ids become file names in the runtime's state directory: keep them plain.
pub fn validate_container_id(id: &str) -> Result<(), RuntimeError> {
    let ok = !id.is_empty()
        && id.len() <= 128
        && id.as_bytes()[0].is_ascii_alphanumeric()
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(RuntimeError::InvalidId { id: id.to_string() })
    }
}

/// What we are running, for error messages.
struct Invocation {
    handler: String,
    command: String,
    id: Option<String>,
}

impl Invocation {
    fn new(runtime: &OciRuntime, subcommand: &str, id: Option<&str>) -> Invocation {
        let name = runtime.binary.file_name().map_or_else(
            || runtime.binary.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        );
        let command = match id {
            Some(id) => format!("{name} {subcommand} {id}"),
            None => format!("{name} {subcommand}"),
        };
        Invocation {
            handler: runtime.handler.clone(),
            command,
            id: id.map(str::to_string),
        }
    }

    fn failed(&self, status: &std::process::ExitStatus, message: String) -> RuntimeError {
        RuntimeError::Failed {
            handler: self.handler.clone(),
            command: self.command.clone(),
            id: self.id.clone(),
            status: status.to_string(),
            message,
        }
    }

    fn timeout(&self, timeout: Duration) -> RuntimeError {
        RuntimeError::Timeout {
            handler: self.handler.clone(),
            command: self.command.clone(),
            id: self.id.clone(),
            timeout,
        }
    }

    fn bad_output(&self, problem: String) -> RuntimeError {
        RuntimeError::BadOutput {
            handler: self.handler.clone(),
            command: self.command.clone(),
            id: self.id.clone(),
            problem,
        }
    }

    fn spawn(&self, command: Command, capture: bool) -> Result<Running, RuntimeError> {
        let binary = PathBuf::from(command.get_program());
        Running::spawn(command, capture).map_err(|source| RuntimeError::Spawn {
            handler: self.handler.clone(),
            binary,
            source,
        })
    }

    fn wait(
        &self,
        running: &mut Running,
        timeout: Duration,
    ) -> Result<Option<Finished>, RuntimeError> {
        running.wait(timeout).map_err(|source| RuntimeError::Io {
            handler: self.handler.clone(),
            id: self.id.clone(),
            what: format!("waiting for `{}`", self.command),
            source,
        })
    }
}

impl fmt::Debug for Invocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.command)
    }
}

/// Runs `command` to completion within `timeout`, killing it after.
fn run(
    command: Command,
    invocation: &Invocation,
    timeout: Duration,
    capture: bool,
) -> Result<Finished, RuntimeError> {
    let mut running = invocation.spawn(command, capture)?;
    match invocation.wait(&mut running, timeout)? {
        Some(finished) => Ok(finished),
        None => {
            running.kill();
            Err(invocation.timeout(timeout))
        }
    }
}

/// The error and fatal messages of a runtime's JSON log: runc and crun write
/// `{"level":"error","msg":...}`, youki `{"level":"ERROR","message":...}`. Lines that are not
/// JSON are kept whole: better an odd message than none.
fn read_log_errors(log: &Path) -> Vec<String> {
    let Ok(text) = std::fs::read_to_string(log) else {
        return Vec::new();
    };
    text.lines()
        .filter(|line| !line.trim().is_empty())
        .filter_map(
            |line| match serde_json::from_str::<serde_json::Value>(line) {
                Ok(entry) => {
                    let field = |name: &str| entry.get(name).and_then(|v| v.as_str());
                    let level = field("level").unwrap_or("").to_ascii_lowercase();
                    // The first line: youki appends a stack backtrace to its last message.
                    let message = field("msg").or_else(|| field("message")).unwrap_or(line);
                    let message = message.lines().next().unwrap_or_default();
                    let message = match field("err") {
                        Some(cause) => format!("{message}: {cause}"),
                        None => message.to_string(),
                    };
                    matches!(level.as_str(), "error" | "fatal" | "panic").then_some(message)
                }
                Err(_) => Some(line.trim().to_string()),
            },
        )
        .collect()
}

/// A fresh file name in `dir`, so concurrent invocations never share one.
fn unique_path(dir: &Path, stem: &str, extension: &str) -> PathBuf {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let mut name = OsString::from(format!(".{stem}-{}-{n}.", std::process::id()));
    name.push(extension);
    dir.join(name)
}

/// The socket an OCI runtime sends an exec's pty master to (`--console-socket`). In the
/// temporary directory: a bundle's path may be longer than a socket path can be.
struct ConsoleSocket {
    path: PathBuf,
    listener: std::os::unix::net::UnixListener,
}

impl ConsoleSocket {
    fn bind() -> std::io::Result<ConsoleSocket> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let path = std::env::temp_dir().join(format!(
            "nodelet-console-{}-{}.sock",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_file(&path);
        let listener = std::os::unix::net::UnixListener::bind(&path)?;
        listener.set_nonblocking(true)?;
        Ok(ConsoleSocket { path, listener })
    }

    /// The pty master, once the runtime connects and sends it; `None` when the runtime ended
    /// first (it could not start the process).
    fn receive(self, runtime: &mut Child) -> std::io::Result<Option<std::os::fd::OwnedFd>> {
        let stream = loop {
            match self.listener.accept() {
                Ok((stream, _)) => break stream,
                Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => {
                    if runtime.try_wait()?.is_some() {
                        return Ok(None);
                    }
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(err) => return Err(err),
            }
        };
        stream.set_nonblocking(false)?;
        nodelet_sys::terminal::receive_fd(&stream).map(Some)
    }
}

impl Drop for ConsoleSocket {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    #[test]
    fn container_ids_are_plain_names() {
        for id in ["a", "pod_1.web-0", &"x".repeat(128)] {
            validate_container_id(id).unwrap();
        }
        for id in ["", "-a", ".a", "a/b", "../x", "a b", &"x".repeat(129)] {
            assert!(validate_container_id(id).is_err(), "{id}");
        }
    }

    #[test]
    fn log_errors_from_runc_and_crun() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("log");
        std::fs::write(
            &log,
            concat!(
                r#"{"level":"warning","msg":"cgroup v1 is deprecated","time":"t"}"#,
                "\n",
                r#"{"level":"error","msg":"runc create failed: exec: \"/x\": no such file","time":"t"}"#,
                "\n",
                r#"{"msg":"executable file `/x` not found","level":"error","time":"t"}"#,
                "\n",
                r#"{"timestamp":"t","level":"ERROR","message":"failed to prepare rootfs\n\nStack backtrace:\n 0: x","err":"Oops","target":"x"}"#,
                "\n",
                r#"{"timestamp":"t","level":"INFO","message":"fine"}"#,
                "\nplain text line\n"
            ),
        )
        .unwrap();
        assert_eq!(
            read_log_errors(&log),
            [
                "runc create failed: exec: \"/x\": no such file",
                "executable file `/x` not found",
                "failed to prepare rootfs: Oops",
                "plain text line"
            ]
        );
        assert!(read_log_errors(&dir.path().join("missing")).is_empty());
    }

    fn fake_runtime(script: &str) -> (tempfile::TempDir, OciRuntime) {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let binary = dir.path().join("fake-runtime");
        std::fs::write(&binary, format!("#!/bin/sh\n{script}\n")).unwrap();
        std::fs::set_permissions(&binary, std::fs::Permissions::from_mode(0o755)).unwrap();
        let handler = Handler {
            name: "fake".into(),
            binary,
            global_args: vec!["--flag".into()],
            root: Some(dir.path().join("state")),
            hidden_cgroup2: None,
        };
        (
            dir,
            OciRuntime::new(&handler).with_command_timeout(Duration::from_secs(2)),
        )
    }

    #[test]
    fn failures_name_the_handler_container_and_stderr() {
        let (_dir, runtime) = fake_runtime("echo \"args: $*\" >&2; exit 1");
        let err = runtime.start("c1").unwrap_err().to_string();
        assert!(
            err.starts_with(
                "runtime handler \"fake\": `fake-runtime start c1` for container \"c1\" failed"
            ),
            "{err}"
        );
        assert!(err.contains("exit status: 1"), "{err}");
        assert!(
            err.contains("args: --flag --root ") && err.ends_with("/state start c1"),
            "{err}"
        );
    }

    #[test]
    fn a_hung_runtime_is_killed_at_the_deadline() {
        let (_dir, runtime) = fake_runtime("exec sleep 100");
        let started = Instant::now();
        let err = runtime.kill("c1", Signal::TERM, true).unwrap_err();
        assert!(matches!(err, RuntimeError::Timeout { .. }), "{err}");
        assert!(started.elapsed() < Duration::from_secs(10));
    }

    #[test]
    fn parses_list_output_of_every_shape() {
        for output in [
            "null",
            "",
            "[]\n",
            "ID  PID  STATUS  BUNDLE  CREATED  CREATOR\n",
        ] {
            assert_eq!(parse_list(output).unwrap(), [], "{output:?}");
        }
        let running = |id: &str, pid| oci::ListEntry {
            id: id.into(),
            status: oci::Status::Running,
            pid,
        };
        let json =
            r#"[{"id":"a","pid":5,"status":"running","bundle":"/b","created":"t","owner":""}]"#;
        assert_eq!(parse_list(json).unwrap(), [running("a", 5)]);
        let table = "ID  PID    STATUS   BUNDLE      CREATED                    CREATOR\n\
                     y1  10381  Running  /tmp/exp/b  2026-11-25T16:16:03+00:00  root\n\
                     y2  0      Stopped  /tmp/exp/c  2026-11-25T16:16:04+00:00  root\n";
        let parsed = parse_list(table).unwrap();
        assert_eq!(parsed[0], running("y1", 10381));
        assert_eq!(
            (parsed[1].id.as_str(), parsed[1].status),
            ("y2", oci::Status::Stopped)
        );
        assert!(parse_list("{not json").is_err());

        let (_dir, runtime) = fake_runtime("echo '{not json'");
        assert!(matches!(
            runtime.list(),
            Err(RuntimeError::BadOutput { .. })
        ));
        let (_dir, runtime) = fake_runtime("printf 'null'");
        assert!(runtime.list().unwrap().is_empty());
    }

    #[test]
    fn a_missing_binary_is_a_spawn_error() {
        let handler = Handler {
            name: "ghost".into(),
            binary: "/nonexistent/runtime".into(),
            global_args: Vec::new(),
            root: None,
            hidden_cgroup2: None,
        };
        let err = handler.probe().unwrap_err().to_string();
        assert!(
            err.contains("\"ghost\"") && err.contains("/nonexistent/runtime"),
            "{err}"
        );
    }
}

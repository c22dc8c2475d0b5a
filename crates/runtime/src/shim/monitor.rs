//! The shim process itself: `nodelet shim <state-dir>` (see the module above for the
//! sequence). Single-threaded, no async runtime.

use std::ffi::OsString;
use std::io::{PipeReader, Read, Write};
use std::os::fd::{AsFd, BorrowedFd};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use jiff::Timestamp;
use nodelet_sys::daemon::{self, Forked};
use nodelet_sys::process::{ExitStatus, PidFd};

use super::oom::OomCounter;
use super::{
    CONFIG_FILE, EXIT_FILE, PID_FILE, Report, STARTED_FILE, ShimConfig, ShimExit, Started,
    read_json, write_atomic, write_json_atomic,
};
use crate::bundle::Bundle;
use crate::container::{Container, delete_if_present};
use crate::logs::{CriLogWriter, RotatingFile, Stream};
use crate::oci_runtime::ContainerStdio;

/// How often the shim wakes without events, to reap orphans re-parented to it (a process
/// left in the container's pid namespace keeps its first process from finishing its exit
/// until someone reaps it).
const REAP_INTERVAL: Duration = Duration::from_secs(1);
/// After the first process has ended, how long the pipes may stay silent before the shim
/// stops waiting for their end (a process outside the container's pid namespace, such as a
/// daemon of a `hostPID` container, may hold them open).
const DRAIN_QUIET: Duration = Duration::from_millis(200);
/// And how long draining may take in all.
const DRAIN_LIMIT: Duration = Duration::from_secs(5);
/// One read from a pipe.
const READ_CHUNK: usize = 16 * 1024;

/// `nodelet shim <state-dir>`: returns the process's exit code (0 in the fork's parent,
/// which returns at once; in the shim, 0 once the container's exit is recorded).
pub fn main(args: Vec<OsString>) -> u8 {
    let [state_dir] = args.as_slice() else {
        eprintln!("usage: nodelet shim <state-dir> (started by nodelet, not by hand)");
        return 2;
    };
    let state_dir = PathBuf::from(state_dir);
    let config = match read_json::<ShimConfig>(&state_dir, CONFIG_FILE) {
        Ok(Some(config)) => config,
        Ok(None) => {
            return fail(&format!(
                "{} is missing",
                state_dir.join(CONFIG_FILE).display()
            ));
        }
        Err(err) => {
            return fail(&format!(
                "reading {}: {err}",
                state_dir.join(CONFIG_FILE).display()
            ));
        }
    };
    match daemon::fork_detached() {
        Ok(Forked::Parent { .. }) => return 0,
        Ok(Forked::Child) => {}
        Err(err) => return fail(&format!("container {:?}: forking: {err}", config.id)),
    }
    match run(&state_dir, &config) {
        Ok(()) => 0,
        Err(message) => {
            eprintln!("nodelet shim: container {:?}: {message}", config.id);
            1
        }
    }
}

/// Reports a failure to the launcher and to our log.
fn fail(message: &str) -> u8 {
    eprintln!("nodelet shim: {message}");
    report(&Report::Failed(message.to_string()));
    1
}

/// One JSON line on our standard output (the launcher's pipe), then standard output is
/// `/dev/null`: the launcher may be gone long before we write anything else.
fn report(report: &Report) {
    let mut line = serde_json::to_vec(report).unwrap_or_default();
    line.push(b'\n');
    let mut stdout = std::io::stdout();
    let _ = stdout.write_all(&line);
    let _ = stdout.flush();
    if let Ok(null) = std::fs::File::options().write(true).open("/dev/null") {
        let _ = daemon::redirect_stdout(&null);
    }
}

/// The shim, after the fork.
fn run(state_dir: &Path, config: &ShimConfig) -> Result<(), String> {
    // Hold no directory busy (the bundle is unmounted and removed under us later).
    let _ = std::env::set_current_dir("/");
    let setup = || -> Result<_, String> {
        nodelet_sys::process::become_child_subreaper()
            .map_err(|e| format!("becoming a child subreaper: {e}"))?;
        write_atomic(
            state_dir,
            PID_FILE,
            std::process::id().to_string().as_bytes(),
        )
        .map_err(|e| format!("writing {PID_FILE}: {e}"))?;
        let log =
            CriLogWriter::create_rotating(&config.log_path, config.max_line, config.log_rotation)
                .map_err(|e| format!("opening the log {}: {e}", config.log_path.display()))?;
        Ok(log)
    };
    let mut log = match setup() {
        Ok(log) => log,
        Err(message) => {
            report(&Report::Failed(message.clone()));
            return Err(message);
        }
    };
    let (container, out, err) = match create_and_start(config) {
        Ok(created) => created,
        Err(message) => {
            report(&Report::Failed(message.clone()));
            return Err(message);
        }
    };
    let init_pid = container.pid.get();
    let started = Started {
        init_pid,
        started_at: Timestamp::now(),
    };
    if let Err(e) = write_json_atomic(state_dir, STARTED_FILE, &started) {
        // Not fatal: the launcher has the same facts from the report.
        eprintln!("nodelet shim: writing {STARTED_FILE}: {e}");
    }
    report(&Report::Started(started));
    // From here on the shim only loops over poll, read, write and wait: let its resident
    // size be that loop's code, not everything the binary ran to get here.
    let _ = daemon::drop_file_mappings();

    let status = monitor(init_pid, [out, err], &mut log);
    let finished_at = Timestamp::now();
    let oom_killed = match (&container.oom, container.oom_before) {
        (Some(counter), Some(before)) => counter.read().is_some_and(|now| now > before),
        _ => false,
    };
    let exit = ShimExit {
        init_pid,
        exit_code: status.code(),
        signal: match status {
            ExitStatus::Killed(signal) => Some(signal),
            ExitStatus::Exited(_) => None,
        },
        oom_killed,
        started_at: started.started_at,
        finished_at,
    };
    write_json_atomic(state_dir, EXIT_FILE, &exit).map_err(|e| format!("writing {EXIT_FILE}: {e}"))
}

/// The pid of the container's first process (a newtype so it is not mixed up with ours).
struct InitPid(u32);

impl InitPid {
    fn get(&self) -> u32 {
        self.0
    }
}

struct Created {
    pid: InitPid,
    oom: Option<OomCounter>,
    oom_before: Option<u64>,
}

/// `create` with stdio on our pipes, the OOM counter's start value, `start`.
fn create_and_start(config: &ShimConfig) -> Result<(Created, PipeReader, PipeReader), String> {
    let runtime = config.runtime.handler().runtime();
    let bundle = Bundle::open(&config.bundle);
    let pipe = || std::io::pipe().map_err(|e| format!("creating a pipe: {e}"));
    let (out_reader, out_writer) = pipe()?;
    let (err_reader, err_writer) = pipe()?;
    let stdio = ContainerStdio {
        stdin: Stdio::null(),
        stdout: out_writer.into(),
        stderr: err_writer.into(),
    };
    // The write ends go to the runtime and are closed here when it exits: the container's
    // processes hold the only ones left, so the pipes end when they do.
    let container =
        Container::create(&runtime, &config.id, &bundle, stdio).map_err(|e| e.to_string())?;
    let pid = container.pid().ok_or("the runtime reported no process")?;
    let oom = OomCounter::of_process(pid);
    let oom_before = oom.as_ref().and_then(OomCounter::read);
    let go = if config.gated { wait_for_go() } else { Ok(()) };
    if let Err(err) = go.and_then(|()| container.start().map_err(|e| e.to_string())) {
        let _ = delete_if_present(&runtime, &config.id);
        // The first process is our child now: collect it.
        let _ = PidFd::open(pid).and_then(|fd| fd.wait_exited(Some(Duration::from_secs(5))));
        daemon::reap_exited_children();
        return Err(err);
    }
    Ok((
        Created {
            pid: InitPid(pid),
            oom,
            oom_before,
        },
        out_reader,
        err_reader,
    ))
}

/// The gated launcher's go: one byte `1` on standard input. Anything else (EOF when it
/// cancelled or is gone) means the container is not to run.
fn wait_for_go() -> Result<(), String> {
    let mut byte = [0u8; 1];
    let go = matches!(std::io::stdin().read(&mut byte), Ok(1) if byte[0] == b'1');
    if let Ok(null) = std::fs::File::open("/dev/null") {
        let _ = daemon::redirect_stdin(&null);
    }
    if go {
        Ok(())
    } else {
        Err("the start was cancelled".into())
    }
}

/// Copies the container's output into the log until its first process has ended (reaping
/// it and every orphan on the way) and the pipes are drained. Returns how it ended.
fn monitor(
    init_pid: u32,
    pipes: [PipeReader; 2],
    log: &mut CriLogWriter<RotatingFile>,
) -> ExitStatus {
    let [out, err] = pipes;
    let mut streams = [(Stream::Stdout, Some(out)), (Stream::Stderr, Some(err))];
    let init = PidFd::open(init_pid).ok();
    let mut chunk = [0u8; READ_CHUNK];
    let mut log_failed = false;
    let status = loop {
        if let Some(status) = reap(init_pid) {
            break status;
        }
        let mut fds: Vec<BorrowedFd<'_>> = streams
            .iter()
            .filter_map(|(_, pipe)| pipe.as_ref().map(AsFd::as_fd))
            .collect();
        if let Some(init) = &init {
            fds.push(init.as_fd());
        }
        let ready = match daemon::wait_readable(&fds, Some(REAP_INTERVAL)) {
            Ok(ready) => ready,
            Err(_) => {
                std::thread::sleep(REAP_INTERVAL);
                continue;
            }
        };
        copy_ready(&mut streams, &ready, &mut chunk, log, &mut log_failed);
    };
    // The first process has ended; the rest of its namespace with it. What they wrote may
    // still be in the pipes.
    let limit = Instant::now() + DRAIN_LIMIT;
    while streams.iter().any(|(_, pipe)| pipe.is_some()) && Instant::now() < limit {
        let fds: Vec<BorrowedFd<'_>> = streams
            .iter()
            .filter_map(|(_, pipe)| pipe.as_ref().map(AsFd::as_fd))
            .collect();
        let Ok(ready) = daemon::wait_readable(&fds, Some(DRAIN_QUIET)) else {
            break;
        };
        if !ready.iter().any(|r| *r) {
            break;
        }
        copy_ready(&mut streams, &ready, &mut chunk, log, &mut log_failed);
        daemon::reap_exited_children();
    }
    for (stream, pipe) in &mut streams {
        if pipe.take().is_some() {
            note_log_error(log.finish(*stream, Timestamp::now()), &mut log_failed);
        }
    }
    daemon::reap_exited_children();
    status
}

/// Reaps everything that has ended; the first process's status if it is among them.
fn reap(init_pid: u32) -> Option<ExitStatus> {
    daemon::reap_exited_children()
        .into_iter()
        .find(|(pid, _)| *pid == init_pid)
        .map(|(_, status)| status)
}

/// Reads once from each ready pipe (`ready` follows the order of the open ones) into the log;
/// a pipe at its end is closed and its last partial line written.
fn copy_ready(
    streams: &mut [(Stream, Option<PipeReader>); 2],
    ready: &[bool],
    chunk: &mut [u8],
    log: &mut CriLogWriter<RotatingFile>,
    log_failed: &mut bool,
) {
    let mut index = 0;
    for (stream, slot) in streams.iter_mut() {
        let Some(pipe) = slot else {
            continue;
        };
        let is_ready = ready.get(index).copied().unwrap_or(false);
        index += 1;
        if !is_ready {
            continue;
        }
        match pipe.read(chunk) {
            Ok(0) => {
                *slot = None;
                note_log_error(log.finish(*stream, Timestamp::now()), log_failed);
            }
            Ok(n) => note_log_error(
                log.write(*stream, &chunk[..n], Timestamp::now()),
                log_failed,
            ),
            Err(err) if err.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => {
                *slot = None;
                note_log_error(log.finish(*stream, Timestamp::now()), log_failed);
            }
        }
    }
}

/// A log that cannot be written (a full disk) must not stop the shim: the container would
/// block on a full pipe. The first error is noted in our own log.
fn note_log_error(result: std::io::Result<()>, failed: &mut bool) {
    if let Err(err) = result
        && !*failed
    {
        *failed = true;
        eprintln!("nodelet shim: writing the container log: {err} (output is dropped)");
    }
}

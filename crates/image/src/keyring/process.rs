//! Running a credential program (docker credential helper or kubelet exec plugin): request on
//! stdin, bounded output, and a deadline after which the program is killed.

use std::io::{self, Read, Write};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

/// Output beyond this is discarded and the run fails: credentials are small, and a runaway
/// program must not exhaust the node's memory.
pub const MAX_OUTPUT_BYTES: usize = 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    #[error("failed to start {}: {source}", program.display())]
    Spawn {
        program: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{} did not finish within {timeout:?}", program.display())]
    TimedOut { program: PathBuf, timeout: Duration },
    #[error("{} wrote more than {MAX_OUTPUT_BYTES} bytes", program.display())]
    OutputTooLarge { program: PathBuf },
    #[error("waiting for {}: {source}", program.display())]
    Wait {
        program: PathBuf,
        #[source]
        source: io::Error,
    },
}

#[derive(Debug)]
pub struct ProcessOutput {
    pub status: ExitStatus,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

enum Stream {
    Stdout,
    Stderr,
}

/// Runs `command` with `stdin` as its input and waits at most `timeout` for it to exit and
/// close its output.
pub fn run_with_timeout(
    mut command: Command,
    stdin: &[u8],
    timeout: Duration,
) -> Result<ProcessOutput, ProcessError> {
    let program = PathBuf::from(command.get_program());
    // Clamped so that an absurd timeout cannot overflow `Instant`.
    let deadline = Instant::now() + timeout.min(Duration::from_secs(365 * 24 * 3600));
    command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = spawn(&mut command).map_err(|source| ProcessError::Spawn {
        program: program.clone(),
        source,
    })?;

    // Feed stdin from a thread: a program that does not read it must not block us. Errors
    // (such as the program exiting first) are irrelevant; its exit status tells.
    if let Some(mut pipe) = child.stdin.take() {
        let input = stdin.to_vec();
        thread::spawn(move || {
            let _ = pipe.write_all(&input);
        });
    }
    let (sender, receiver) = mpsc::channel();
    if let Some(pipe) = child.stdout.take() {
        let sender = sender.clone();
        thread::spawn(move || {
            let _ = sender.send((Stream::Stdout, read_bounded(pipe)));
        });
    }
    if let Some(pipe) = child.stderr.take() {
        thread::spawn(move || {
            let _ = sender.send((Stream::Stderr, read_bounded(pipe)));
        });
    }

    let status = wait_until(&mut child, deadline).map_err(|error| {
        kill(&mut child);
        match error {
            WaitError::TimedOut => ProcessError::TimedOut {
                program: program.clone(),
                timeout,
            },
            WaitError::Io(source) => ProcessError::Wait {
                program: program.clone(),
                source,
            },
        }
    })?;

    // A grandchild may still hold the pipes open; the deadline bounds that wait too.
    let (mut stdout, mut stderr) = (None, None);
    while stdout.is_none() || stderr.is_none() {
        let remaining = deadline.saturating_duration_since(Instant::now());
        let Ok((stream, bounded)) = receiver.recv_timeout(remaining) else {
            return Err(ProcessError::TimedOut { program, timeout });
        };
        let Some(bytes) = bounded else {
            return Err(ProcessError::OutputTooLarge { program });
        };
        match stream {
            Stream::Stdout => stdout = Some(bytes),
            Stream::Stderr => stderr = Some(bytes),
        }
    }
    Ok(ProcessOutput {
        status,
        stdout: stdout.unwrap_or_default(),
        stderr: stderr.unwrap_or_default(),
    })
}

/// Spawns, retrying briefly on "text file busy": an executable written moments ago can still
/// be held open for writing by a concurrent fork in this process.
fn spawn(command: &mut Command) -> io::Result<Child> {
    let mut attempts = 0;
    loop {
        match command.spawn() {
            Err(error) if error.kind() == io::ErrorKind::ExecutableFileBusy && attempts < 50 => {
                attempts += 1;
                thread::sleep(Duration::from_millis(10));
            }
            result => return result,
        }
    }
}

enum WaitError {
    TimedOut,
    Io(io::Error),
}

fn wait_until(child: &mut Child, deadline: Instant) -> Result<ExitStatus, WaitError> {
    let mut pause = Duration::from_millis(1);
    loop {
        if let Some(status) = child.try_wait().map_err(WaitError::Io)? {
            return Ok(status);
        }
        let now = Instant::now();
        if now >= deadline {
            return Err(WaitError::TimedOut);
        }
        thread::sleep(pause.min(deadline - now));
        pause = (pause * 2).min(Duration::from_millis(50));
    }
}

fn kill(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// Reads to the end, keeping at most [`MAX_OUTPUT_BYTES`]; `None` if there was more. Keeps
/// draining past the limit so the program is not blocked on a full pipe.
fn read_bounded(mut pipe: impl Read) -> Option<Vec<u8>> {
    let mut kept = Vec::new();
    let mut overflowed = false;
    let mut buffer = [0_u8; 8192];
    loop {
        match pipe.read(&mut buffer) {
            Ok(0) => break,
            Ok(read) => {
                if kept.len() + read > MAX_OUTPUT_BYTES {
                    overflowed = true;
                } else {
                    kept.extend_from_slice(&buffer[..read]);
                }
            }
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    (!overflowed).then_some(kept)
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use crate::keyring::test_support::write_script;

    #[test]
    fn passes_stdin_and_collects_output() {
        let dir = tempfile::tempdir().unwrap();
        let script = write_script(
            dir.path(),
            "echo-back",
            "input=$(cat)\nprintf 'got:%s' \"$input\"\necho oops >&2\nexit 3\n",
        );
        let output =
            run_with_timeout(Command::new(script), b"hello", Duration::from_secs(10)).unwrap();
        assert_eq!(output.stdout, b"got:hello");
        assert_eq!(output.stderr, b"oops\n");
        assert_eq!(output.status.code(), Some(3));
    }

    #[test]
    fn kills_programs_that_overrun_the_deadline() {
        let dir = tempfile::tempdir().unwrap();
        let script = write_script(dir.path(), "slow", "exec sleep 30\n");
        let started = Instant::now();
        let error =
            run_with_timeout(Command::new(script), b"", Duration::from_millis(200)).unwrap_err();
        assert!(matches!(error, ProcessError::TimedOut { .. }), "{error}");
        assert!(started.elapsed() < Duration::from_secs(10));
    }

    #[test]
    fn rejects_oversized_output_and_missing_programs() {
        let dir = tempfile::tempdir().unwrap();
        let script = write_script(dir.path(), "noisy", "head -c 2000000 /dev/zero\n");
        let error =
            run_with_timeout(Command::new(script), b"", Duration::from_secs(10)).unwrap_err();
        assert!(
            matches!(error, ProcessError::OutputTooLarge { .. }),
            "{error}"
        );
        let error = run_with_timeout(
            Command::new(dir.path().join("absent")),
            b"",
            Duration::from_secs(10),
        )
        .unwrap_err();
        assert!(matches!(error, ProcessError::Spawn { .. }), "{error}");
    }
}

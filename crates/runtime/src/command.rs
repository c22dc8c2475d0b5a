//! Running a command with a deadline: its exit is watched through a pidfd (so a wait can
//! time out), its output is collected by threads (so a full pipe never blocks it), and it is
//! killed and reaped if dropped while running.

use std::io::{self, Read};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use nodelet_sys::process::PidFd;

/// Output kept per stream of a captured command (more is read and dropped).
pub const OUTPUT_LIMIT: usize = 1 << 20;
/// After a command exits, how long we wait for its output pipes to close: a process it left
/// behind (`sh -c 'sleep 100 &'` in an exec) may hold them open.
const OUTPUT_GRACE: Duration = Duration::from_millis(500);

/// A command that ended, with what it printed (when captured).
#[derive(Debug)]
pub struct Finished {
    pub status: std::process::ExitStatus,
    /// At most [`OUTPUT_LIMIT`] bytes each.
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

/// What a reader thread has collected of one output stream so far, and its end.
#[derive(Debug)]
struct CollectedOutput {
    buffer: Arc<Mutex<Vec<u8>>>,
    finished: mpsc::Receiver<()>,
}

/// A spawned command whose output threads collect what it prints.
#[derive(Debug)]
pub struct Running {
    child: Child,
    pidfd: PidFd,
    outputs: Vec<CollectedOutput>,
}

impl Running {
    /// Starts `command`; with `capture`, its stdout and stderr are collected (else they are
    /// whatever the command was given).
    pub fn spawn(mut command: Command, capture: bool) -> io::Result<Running> {
        if capture {
            command.stdout(Stdio::piped()).stderr(Stdio::piped());
        }
        let mut child = command.spawn()?;
        let pidfd = match PidFd::open(child.id()) {
            Ok(pidfd) => pidfd,
            Err(err) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(err);
            }
        };
        let mut outputs = Vec::new();
        let streams: [Option<Box<dyn Read + Send>>; 2] = [
            child
                .stdout
                .take()
                .map(|s| Box::new(s) as Box<dyn Read + Send>),
            child
                .stderr
                .take()
                .map(|s| Box::new(s) as Box<dyn Read + Send>),
        ];
        for stream in streams.into_iter().flatten() {
            let buffer = Arc::new(Mutex::new(Vec::new()));
            let (done, finished) = mpsc::channel();
            let sink = buffer.clone();
            std::thread::spawn(move || {
                collect(stream, &sink);
                let _ = done.send(());
            });
            outputs.push(CollectedOutput { buffer, finished });
        }
        Ok(Running {
            child,
            pidfd,
            outputs,
        })
    }

    /// The command's standard input, when it was spawned with `Stdio::piped()` there (once).
    pub fn take_stdin(&mut self) -> Option<std::process::ChildStdin> {
        self.child.stdin.take()
    }

    /// The finished command, or `None` if it is still running after `timeout`.
    pub fn wait(&mut self, timeout: Duration) -> io::Result<Option<Finished>> {
        if !self.pidfd.wait_exited(Some(timeout))? {
            return Ok(None);
        }
        let status = self.child.wait()?;
        let grace = Instant::now() + OUTPUT_GRACE;
        let mut streams = self.outputs.iter().map(|output| {
            let _ = output
                .finished
                .recv_timeout(grace.saturating_duration_since(Instant::now()));
            output.buffer.lock().map(|b| b.clone()).unwrap_or_default()
        });
        let stdout = streams.next().unwrap_or_default();
        let stderr = streams.next().unwrap_or_default();
        Ok(Some(Finished {
            status,
            stdout,
            stderr,
        }))
    }

    /// Kills and reaps the command.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Running {
    /// Never leave a zombie or a runaway runtime behind on an early return.
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            self.kill();
        }
    }
}

/// Reads `stream` to its end, keeping the first [`OUTPUT_LIMIT`] bytes.
fn collect(mut stream: Box<dyn Read + Send>, sink: &Mutex<Vec<u8>>) {
    let mut chunk = [0u8; 8192];
    loop {
        match stream.read(&mut chunk) {
            Ok(0) => return,
            Ok(n) => {
                if let Ok(mut buffer) = sink.lock() {
                    let room = OUTPUT_LIMIT.saturating_sub(buffer.len());
                    buffer.extend_from_slice(&chunk[..n.min(room)]);
                }
            }
            Err(err) if err.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return,
        }
    }
}

/// The exit code, or 128 + the signal that ended the command.
pub fn exit_code(status: &std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status
        .code()
        .or_else(|| status.signal().map(|s| 128 + s))
        .unwrap_or(-1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collects_output_and_times_out() {
        let mut command = Command::new("sh");
        command.args(["-c", "echo out; echo err >&2; exit 3"]);
        let finished = Running::spawn(command, true)
            .unwrap()
            .wait(Duration::from_secs(10))
            .unwrap()
            .unwrap();
        assert_eq!(
            (
                exit_code(&finished.status),
                &finished.stdout[..],
                &finished.stderr[..]
            ),
            (3, &b"out\n"[..], &b"err\n"[..])
        );

        let mut command = Command::new("sleep");
        command.arg("100");
        let mut running = Running::spawn(command, true).unwrap();
        assert!(running.wait(Duration::from_millis(50)).unwrap().is_none());
        running.kill();
    }

    #[test]
    fn a_leftover_holding_the_pipes_does_not_block_the_result() {
        let mut command = Command::new("sh");
        command.args(["-c", "echo started; sleep 6 & exit 0"]);
        let begun = Instant::now();
        let finished = Running::spawn(command, true)
            .unwrap()
            .wait(Duration::from_secs(10))
            .unwrap()
            .unwrap();
        assert_eq!(finished.stdout, b"started\n");
        assert!(
            begun.elapsed() < Duration::from_secs(3),
            "{:?}",
            begun.elapsed()
        );
    }
}

//! Where a container's stdout and stderr go. For now: two pipes whose other ends the runtime
//! hands to the container, and a thread per pipe that passes each line to the
//! [`PodReporter`](super::PodReporter). This is the one place to change when containers run
//! under the per-container shim with CRI-format log files: attach to the shim's log instead.

use std::io::{BufRead, BufReader, PipeReader};
use std::process::Stdio;
use std::sync::Arc;
use std::thread::JoinHandle;

use nodelet_runtime::oci_runtime::ContainerStdio;

use super::PodReporter;

/// Which of a container's output streams a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

/// The readers of one container's output; they end when every process holding the write ends
/// (the container's, and processes exec'd into it) is gone.
#[derive(Debug)]
pub struct ContainerOutput {
    readers: Vec<JoinHandle<()>>,
}

impl ContainerOutput {
    /// Waits for the readers to pass on the last lines. Call after the container is deleted.
    pub fn finish(self) {
        for reader in self.readers {
            let _ = reader.join();
        }
    }
}

/// The stdio to create container `name` with, and the readers of its output.
pub fn attach(
    name: &str,
    reporter: &Arc<dyn PodReporter>,
) -> std::io::Result<(ContainerStdio, ContainerOutput)> {
    let (out_reader, out_writer) = std::io::pipe()?;
    let (err_reader, err_writer) = std::io::pipe()?;
    let readers = vec![
        spawn_reader(name, Stream::Stdout, out_reader, reporter.clone())?,
        spawn_reader(name, Stream::Stderr, err_reader, reporter.clone())?,
    ];
    let stdio = ContainerStdio {
        stdin: Stdio::null(),
        stdout: Stdio::from(out_writer),
        stderr: Stdio::from(err_writer),
    };
    Ok((stdio, ContainerOutput { readers }))
}

fn spawn_reader(
    name: &str,
    stream: Stream,
    reader: PipeReader,
    reporter: Arc<dyn PodReporter>,
) -> std::io::Result<JoinHandle<()>> {
    let name = name.to_owned();
    std::thread::Builder::new()
        .name(format!("log-{name}"))
        .spawn(move || {
            let mut reader = BufReader::new(reader);
            let mut line = Vec::new();
            loop {
                line.clear();
                match reader.read_until(b'\n', &mut line) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {
                        if line.last() == Some(&b'\n') {
                            line.pop();
                        }
                        reporter.output(&name, stream, &line);
                    }
                }
            }
        })
}

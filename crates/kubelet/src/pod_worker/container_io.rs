//! Where a container's stdout and stderr go: its shim writes them to the container's CRI log
//! file, and a follower thread per container reads that file as it grows and passes each line
//! to the [`PodReporter`](super::PodReporter) (the terminal under `nodelet run`).
//!
//! The follower stops once the container's exit is known: the shim records the exit only
//! after the container's pipes are drained into the log, so a last read then sees every line.

use std::path::Path;
use std::sync::Arc;
use std::thread::JoinHandle;

use nodelet_runtime::logs::{LogOptions, LogReader};

pub use nodelet_runtime::logs::Stream;

use super::PodReporter;
use super::lifecycle::ExitSlot;

/// Where a follower begins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FollowFrom {
    /// The first line: a container this worker started.
    Start,
    /// What is written from now on: a container adopted after a restart, whose earlier
    /// lines were passed on by the previous nodelet.
    End,
}

/// The follower of one container's log.
#[derive(Debug)]
pub struct ContainerOutput {
    /// `None` when the log could not be opened (the error went to the reporter).
    follower: Option<JoinHandle<()>>,
}

impl ContainerOutput {
    /// Waits for the follower to pass on the last lines. Call once `exit` (given to
    /// [`follow`]) is set, or the follower never ends.
    pub fn finish(&mut self) {
        if let Some(follower) = self.follower.take() {
            let _ = follower.join();
        }
    }
}

/// Follows container `name`'s log at `log_path` until `exit` is set.
pub fn follow(
    name: &str,
    log_path: &Path,
    from: FollowFrom,
    exit: Arc<ExitSlot>,
    reporter: &Arc<dyn PodReporter>,
) -> ContainerOutput {
    if !reporter.wants_output() {
        return ContainerOutput { follower: None };
    }
    match spawn_follower(name, log_path, from, exit, reporter) {
        Ok(follower) => ContainerOutput {
            follower: Some(follower),
        },
        Err(err) => {
            reporter.log(&format!(
                "following the log {} of container {name}: {err}",
                log_path.display()
            ));
            ContainerOutput { follower: None }
        }
    }
}

fn spawn_follower(
    name: &str,
    log_path: &Path,
    from: FollowFrom,
    exit: Arc<ExitSlot>,
    reporter: &Arc<dyn PodReporter>,
) -> std::io::Result<JoinHandle<()>> {
    let options = LogOptions {
        follow: true,
        tail_lines: (from == FollowFrom::End).then_some(0),
        ..LogOptions::default()
    };
    let reader = LogReader::open(
        log_path,
        options,
        Some(Box::new(move |pause| exit.wait(pause).is_some())),
    )?;
    let name = name.to_owned();
    let reporter = reporter.clone();
    std::thread::Builder::new()
        .name(format!("log-{name}"))
        .spawn(move || {
            for line in reader {
                match line {
                    Ok(line) => reporter.output(&name, line.stream, &line.content),
                    Err(err) => {
                        reporter.log(&format!("reading the log of container {name}: {err}"));
                        break;
                    }
                }
            }
        })
}

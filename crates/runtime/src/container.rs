//! One container's lifecycle over the OCI runtime: create, start, wait, signal, stop (the
//! stop signal, a grace period, then SIGKILL), exec, delete.
//!
//! Exit statuses: the container's first process is a child of the runtime's `create`, which
//! exits at once; the process is then re-parented to the nearest child subreaper. The process
//! that should collect exit codes (the per-container shim, or a test) calls
//! [`nodelet_sys::process::become_child_subreaper`] before `create`. Without it a container's
//! end is still seen (through a pidfd), but its status is [`Exit::Unknown`].
//!
//! A container run by a shim ([`crate::shim`]) is the shim's child: its exit comes from the
//! shim's record ([`Container::open_with_shim`]), everything else from the runtime as here.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use nodelet_sys::process::{ExitStatus, PidFd};
use oci_spec::runtime::Process;

use crate::bundle::{Bundle, BundleError};
use crate::oci;
use crate::oci_runtime::{
    ContainerStdio, ExecOutput, ExecSession, ExecStreams, OciRuntime, RuntimeError,
};
use crate::shim::{ShimError, ShimHandle};
use crate::signal::Signal;
use crate::spec::{self, ContainerMetadata};

/// How long a SIGKILLed container gets to be gone before we call it stuck.
const KILL_TIMEOUT: Duration = Duration::from_secs(10);
/// How long `delete` waits to collect the status of a process it killed.
const REAP_TIMEOUT: Duration = Duration::from_secs(10);
/// How often a wait looks for orphans to reap.
const REAP_INTERVAL: Duration = Duration::from_millis(100);

/// How a container's process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Status(ExitStatus),
    /// It ended, but its status went to another reaper (we are not a child subreaper).
    Unknown,
}

impl Exit {
    /// The exit code (128 + the signal for a signal), when known.
    pub fn code(self) -> Option<i32> {
        match self {
            Exit::Status(status) => Some(status.code()),
            Exit::Unknown => None,
        }
    }
}

/// The end of [`Container::stop`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stopped {
    pub exit: Exit,
    /// Whether SIGKILL was needed (the stop signal did not end it within the grace period).
    pub killed: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum ContainerError {
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    #[error(transparent)]
    Bundle(#[from] BundleError),
    #[error(transparent)]
    Shim(#[from] ShimError),
    #[error("container {id:?} (runtime handler {handler:?}): {what}: {source}")]
    Io {
        id: String,
        handler: String,
        what: String,
        source: std::io::Error,
    },
    #[error(
        "container {id:?} (runtime handler {handler:?}): still running {after:?} after SIGKILL"
    )]
    Unkillable {
        id: String,
        handler: String,
        after: Duration,
    },
}

/// A created container.
#[derive(Debug)]
pub struct Container {
    id: String,
    runtime: OciRuntime,
    bundle: Bundle,
    metadata: ContainerMetadata,
    /// The container's first process; `None` once the runtime reports it stopped before we
    /// could open it (after a restart).
    init: Option<PidFd>,
    exit: Mutex<Option<Exit>>,
    /// The shim that collects the exit, for a container run by one.
    shim: Option<ShimHandle>,
}

impl Container {
    /// `create`s container `id` from `bundle` (spec written): its process exists, waiting
    /// for [`Container::start`].
    pub fn create(
        runtime: &OciRuntime,
        id: &str,
        bundle: &Bundle,
        stdio: ContainerStdio,
    ) -> Result<Container, ContainerError> {
        let metadata = bundle.metadata()?;
        let pid = match runtime.create(id, bundle.dir(), &bundle.pid_file(), stdio) {
            Ok(pid) => pid,
            Err(err) => {
                // A create that failed half-way (or timed out) may leave runtime state behind.
                let _ = delete_if_present(runtime, id);
                return Err(err.into());
            }
        };
        let init = match PidFd::open(pid) {
            Ok(pidfd) => pidfd,
            Err(source) => {
                let _ = runtime.delete(id, true);
                return Err(ContainerError::Io {
                    id: id.into(),
                    handler: runtime.handler().into(),
                    what: format!("opening its process {pid}"),
                    source,
                });
            }
        };
        Ok(Container {
            id: id.into(),
            runtime: runtime.clone(),
            bundle: bundle.clone(),
            metadata,
            init: Some(init),
            exit: Mutex::new(None),
            shim: None,
        })
    }

    /// Finds container `id` again (after a restart) from the runtime's state and its bundle.
    pub fn open(
        runtime: &OciRuntime,
        id: &str,
        bundle: &Bundle,
    ) -> Result<Container, ContainerError> {
        let metadata = bundle.metadata()?;
        let state = runtime.state(id)?;
        let init = match state.status {
            oci::Status::Stopped => None,
            _ => PidFd::open(state.pid).ok(),
        };
        let exit = if init.is_none() {
            Some(Exit::Unknown)
        } else {
            None
        };
        Ok(Container {
            id: id.into(),
            runtime: runtime.clone(),
            bundle: bundle.clone(),
            metadata,
            init,
            exit: Mutex::new(exit),
            shim: None,
        })
    }

    /// Container `id`, run by `shim` (started or found again): waits end with the shim's
    /// record of the exit.
    pub fn open_with_shim(
        runtime: &OciRuntime,
        id: &str,
        bundle: &Bundle,
        shim: ShimHandle,
    ) -> Result<Container, ContainerError> {
        let metadata = bundle.metadata()?;
        // While the shim runs, its container's first process is alive or its unreaped
        // child, so the pid names it.
        let init = if shim.is_running() {
            shim.started().and_then(|s| PidFd::open(s.init_pid).ok())
        } else {
            None
        };
        Ok(Container {
            id: id.into(),
            runtime: runtime.clone(),
            bundle: bundle.clone(),
            metadata,
            init,
            exit: Mutex::new(None),
            shim: Some(shim),
        })
    }

    /// The shim running this container, if one does.
    pub fn shim(&self) -> Option<&ShimHandle> {
        self.shim.as_ref()
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn handler(&self) -> &str {
        self.runtime.handler()
    }

    /// The host pid of the container's first process, while it is known.
    pub fn pid(&self) -> Option<u32> {
        self.init.as_ref().map(PidFd::pid)
    }

    pub fn bundle(&self) -> &Bundle {
        &self.bundle
    }

    pub fn metadata(&self) -> &ContainerMetadata {
        &self.metadata
    }

    pub fn start(&self) -> Result<(), ContainerError> {
        Ok(self.runtime.start(&self.id)?)
    }

    pub fn state(&self) -> Result<oci::State, ContainerError> {
        Ok(self.runtime.state(&self.id)?)
    }

    /// Waits up to `timeout` (`None`: without limit) for the container's process to end.
    /// `Ok(None)`: still running.
    pub fn wait(&self, timeout: Option<Duration>) -> Result<Option<Exit>, ContainerError> {
        let mut exit = self
            .exit
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(known) = *exit {
            return Ok(Some(known));
        }
        if let Some(shim) = &self.shim {
            let ended = match shim.wait_exit(timeout) {
                Ok(Some(recorded)) => Exit::Status(recorded.status()),
                Ok(None) => return Ok(None),
                Err(ShimError::Lost { .. }) => Exit::Unknown,
                Err(err) => return Err(err.into()),
            };
            *exit = Some(ended);
            return Ok(Some(ended));
        }
        let Some(init) = &self.init else {
            return Ok(Some(Exit::Unknown));
        };
        if !self.wait_exited(init, timeout)? {
            return Ok(None);
        }
        let ended = match init.try_reap() {
            Ok(Some(status)) => Exit::Status(status),
            // Exited (the pidfd said so) but not ours to reap.
            Ok(None) | Err(_) => Exit::Unknown,
        };
        *exit = Some(ended);
        Ok(Some(ended))
    }

    /// Waits for `init` to exit, reaping on the way the processes of the container's pid
    /// namespace that a runtime left to us (a failed `crun exec` leaves its forked child):
    /// the kernel lets a namespace's init finish exiting only once all of them are reaped.
    fn wait_exited(&self, init: &PidFd, timeout: Option<Duration>) -> Result<bool, ContainerError> {
        let deadline = timeout.map(|t| Instant::now() + t);
        loop {
            nodelet_sys::process::reap_container_orphans_except(&[init.pid()]);
            let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
            let slice = left.map_or(REAP_INTERVAL, |l| l.min(REAP_INTERVAL));
            if init
                .wait_exited(Some(slice))
                .map_err(|e| self.io("waiting for its process", e))?
            {
                return Ok(true);
            }
            if left.is_some_and(|l| l <= slice) {
                return Ok(false);
            }
        }
    }

    /// Sends `signal` to the container's first process (to all of its processes with `all`).
    /// A container that has already ended is not an error.
    pub fn signal(&self, signal: Signal, all: bool) -> Result<(), ContainerError> {
        match self.runtime.kill(&self.id, signal, all) {
            Ok(()) => Ok(()),
            Err(_) if self.wait(Some(Duration::ZERO))?.is_some() => Ok(()),
            Err(err) => Err(err.into()),
        }
    }

    /// Stops the container the way the kubelet does: its stop signal, up to `grace` for it to
    /// end, then SIGKILL.
    pub fn stop(&self, grace: Duration) -> Result<Stopped, ContainerError> {
        if let Some(exit) = self.wait(Some(Duration::ZERO))? {
            return Ok(Stopped {
                exit,
                killed: false,
            });
        }
        self.signal(self.metadata.stop_signal, false)?;
        if let Some(exit) = self.wait(Some(grace))? {
            return Ok(Stopped {
                exit,
                killed: false,
            });
        }
        self.signal(Signal::KILL, self.metadata.kill_all)?;
        match self.wait(Some(KILL_TIMEOUT))? {
            Some(exit) => Ok(Stopped { exit, killed: true }),
            None => Err(ContainerError::Unkillable {
                id: self.id.clone(),
                handler: self.handler().into(),
                after: KILL_TIMEOUT,
            }),
        }
    }

    /// Runs `args` in the running container as its own process runs (user, environment,
    /// working directory, capabilities), waiting at most `timeout`.
    pub fn exec(&self, args: &[String], timeout: Duration) -> Result<ExecOutput, ContainerError> {
        self.exec_process(&self.exec_spec(args, false)?, timeout)
    }

    /// Starts `args` in the running container as [`exec`](Self::exec) does, with pipes for
    /// `streams` (or a terminal with `tty`), for the caller to stream (`kubectl exec`); no
    /// deadline.
    pub fn spawn_exec(
        &self,
        args: &[String],
        streams: ExecStreams,
    ) -> Result<ExecSession, ContainerError> {
        let process = self.exec_spec(args, streams.tty)?;
        Ok(self
            .runtime
            .spawn_exec(&self.id, &process, self.bundle.dir(), streams)?)
    }

    /// The container's own process spec (user, environment, working directory,
    /// capabilities) with `args`, on a terminal if `terminal`.
    fn exec_spec(&self, args: &[String], terminal: bool) -> Result<Process, ContainerError> {
        Ok(spec::exec_process(
            &self.bundle.init_process()?,
            args,
            terminal,
        ))
    }

    /// Runs an arbitrary `process` in the running container.
    pub fn exec_process(
        &self,
        process: &Process,
        timeout: Duration,
    ) -> Result<ExecOutput, ContainerError> {
        Ok(self
            .runtime
            .exec(&self.id, process, self.bundle.dir(), timeout)?)
    }

    /// Removes the container from the runtime (killing it if it runs) and collects its exit.
    /// The bundle stays: [`Bundle::remove`] unmounts and deletes it.
    pub fn delete(self) -> Result<Exit, ContainerError> {
        self.runtime.delete(&self.id, true)?;
        Ok(self.wait(Some(REAP_TIMEOUT))?.unwrap_or(Exit::Unknown))
    }

    fn io(&self, what: &str, source: std::io::Error) -> ContainerError {
        ContainerError::Io {
            id: self.id.clone(),
            handler: self.handler().into(),
            what: what.into(),
            source,
        }
    }
}

/// Removes container `id` from the runtime if the runtime still has it (for cleanup after a
/// crash, when no [`Container`] is at hand). True if there was one.
pub fn delete_if_present(runtime: &OciRuntime, id: &str) -> Result<bool, ContainerError> {
    if runtime.find(id)?.is_none() {
        return Ok(false);
    }
    runtime.delete(id, true)?;
    Ok(true)
}

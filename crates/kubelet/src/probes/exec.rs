//! `exec` probes (upstream `pkg/probe/exec`): the command runs in the container through the
//! runtime, which the pod worker provides as an [`ExecInContainer`]; exit code 0 passes.
//! Output (stdout then stderr) is kept up to [`MAX_OUTPUT`]; a timeout fails the probe with
//! `command "<argv>" timed out` (the `ExecProbeTimeout` behaviour, GA since 1.20).

use std::sync::Arc;
use std::time::Duration;

use nodelet_api::field_errors::go_quote;
use nodelet_api::k8s::api::core::v1::ExecAction;
use nodelet_runtime::container::{Container as RuntimeContainer, ContainerError};
use nodelet_runtime::oci_runtime::RuntimeError;

use super::{MAX_OUTPUT, Outcome};

/// How a synchronous exec in the container ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExecResult {
    Exited {
        code: i32,
        stdout: Vec<u8>,
        stderr: Vec<u8>,
    },
    /// Still running after the timeout (the runtime killed it).
    TimedOut,
    /// It could not be run at all (the error's text).
    Failed(String),
}

/// The runtime's synchronous exec with a timeout, as the pod worker provides it; closures
/// `Fn(&[String], Duration) -> ExecResult` qualify.
pub trait ExecInContainer: Send + Sync {
    fn exec(&self, command: &[String], timeout: Duration) -> ExecResult;
}

impl<F> ExecInContainer for F
where
    F: Fn(&[String], Duration) -> ExecResult + Send + Sync,
{
    fn exec(&self, command: &[String], timeout: Duration) -> ExecResult {
        self(command, timeout)
    }
}

/// The runtime's exec in a running container (`Container::exec`, the process settings of the
/// container's own process), as probes use it.
#[derive(Debug, Clone)]
pub struct RuntimeExec(pub Arc<RuntimeContainer>);

impl ExecInContainer for RuntimeExec {
    fn exec(&self, command: &[String], timeout: Duration) -> ExecResult {
        match self.0.exec(command, timeout) {
            Ok(out) => ExecResult::Exited {
                code: out.exit_code,
                stdout: out.stdout,
                stderr: out.stderr,
            },
            Err(ContainerError::Runtime(RuntimeError::Timeout { .. })) => ExecResult::TimedOut,
            Err(e) => ExecResult::Failed(e.to_string()),
        }
    }
}

/// Runs one `exec` probe.
pub fn run(action: &ExecAction, timeout: Duration, runner: &dyn ExecInContainer) -> Outcome {
    let command = action.command.clone().unwrap_or_default();
    match runner.exec(&command, timeout) {
        ExecResult::Exited {
            code,
            stdout,
            stderr,
        } => {
            let mut output = stdout;
            output.extend_from_slice(&stderr);
            output.truncate(MAX_OUTPUT);
            let output = String::from_utf8_lossy(&output).into_owned();
            if code == 0 {
                Outcome::Success(output)
            } else {
                Outcome::Failure(output)
            }
        }
        ExecResult::TimedOut => Outcome::Failure(format!(
            "command {} timed out",
            go_quote(&command.join(" "))
        )),
        ExecResult::Failed(error) => Outcome::Error(error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn action(argv: &[&str]) -> ExecAction {
        ExecAction {
            command: Some(argv.iter().map(|s| s.to_string()).collect()),
        }
    }

    #[test]
    fn exit_codes_and_output() {
        let runner = |command: &[String], _timeout: Duration| -> ExecResult {
            match command[0].as_str() {
                "true" => ExecResult::Exited {
                    code: 0,
                    stdout: b"ok\n".to_vec(),
                    stderr: Vec::new(),
                },
                "cat" => ExecResult::Exited {
                    code: 1,
                    stdout: Vec::new(),
                    stderr: b"cat: can't open '/tmp/health': No such file or directory\n".to_vec(),
                },
                "sleep" => ExecResult::TimedOut,
                "big" => ExecResult::Exited {
                    code: 2,
                    stdout: vec![b'a'; MAX_OUTPUT],
                    stderr: b"tail".to_vec(),
                },
                _ => ExecResult::Failed("exec: not running".into()),
            }
        };
        assert_eq!(
            run(&action(&["true"]), Duration::from_secs(1), &runner),
            Outcome::Success("ok\n".into())
        );
        assert_eq!(
            run(
                &action(&["cat", "/tmp/health"]),
                Duration::from_secs(1),
                &runner
            ),
            Outcome::Failure("cat: can't open '/tmp/health': No such file or directory\n".into())
        );
        assert_eq!(
            run(&action(&["sleep", "10"]), Duration::from_secs(1), &runner),
            Outcome::Failure("command \"sleep 10\" timed out".into())
        );
        assert_eq!(
            run(&action(&["big"]), Duration::from_secs(1), &runner),
            Outcome::Failure("a".repeat(MAX_OUTPUT))
        );
        assert_eq!(
            run(&action(&["gone"]), Duration::from_secs(1), &runner),
            Outcome::Error("exec: not running".into())
        );
    }

    #[test]
    fn the_timeout_reaches_the_runtime() {
        let runner = |_: &[String], timeout: Duration| ExecResult::Exited {
            code: i32::from(timeout != Duration::from_secs(7)),
            stdout: Vec::new(),
            stderr: Vec::new(),
        };
        assert_eq!(
            run(&action(&["x"]), Duration::from_secs(7), &runner),
            Outcome::Success(String::new())
        );
    }
}

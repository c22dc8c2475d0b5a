//! The termination message of an exited container (spec §5.8): what it wrote to
//! `terminationMessagePath`, or — with `FallbackToLogsOnError` after a failure that left the
//! file empty — the tail of its log. The text is appended to the runtime's message.
//!
//! Reading the file and the log is the caller's I/O; the rules about which to read and how
//! much to keep are here.

/// At most this many bytes of the file are used (its end).
pub const MAX_FILE_BYTES: usize = 4096;
/// At most this many log lines are considered…
pub const MAX_LOG_LINES: usize = 80;
/// …and of them at most this many bytes (the end) are kept.
pub const MAX_LOG_BYTES: usize = 2048;
/// `terminationMessagePath` when the pod does not say.
pub const DEFAULT_PATH: &str = "/dev/termination-log";

/// `terminationMessagePolicy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    /// `File` (the default): only the file.
    File,
    /// `FallbackToLogsOnError`: the log tail when the container failed and the file is empty.
    FallbackToLogsOnError,
}

impl Policy {
    pub fn parse(value: Option<&str>) -> Policy {
        match value {
            Some("FallbackToLogsOnError") => Policy::FallbackToLogsOnError,
            _ => Policy::File,
        }
    }
}

/// What reading the message file gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MessageFile {
    /// No path, no mount for it, or the file does not exist.
    Missing,
    /// The file's last [`MAX_FILE_BYTES`] bytes (see [`tail_bytes`]).
    Read(Vec<u8>),
    /// Reading failed for another reason; `path` is the host path.
    Error { path: String, error: String },
}

/// What the termination message is, or that the log must be read to know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Message(String),
    /// Read the last [`MAX_LOG_LINES`] lines of the log and pass them to [`from_log_lines`].
    ReadLogs,
}

/// Decides the message from the file (`kuberuntime` `getTerminationMessage`): logs are used only
/// with `FallbackToLogsOnError`, a non-zero exit, a reason other than `ContainerCannotRun` (a
/// container that never ran has no logs), and a missing or empty file.
pub fn decide(policy: Policy, exit_code: i32, reason: &str, file: &MessageFile) -> Outcome {
    let fallback = policy == Policy::FallbackToLogsOnError
        && exit_code != 0
        && reason != crate::status::terminated_reason::CONTAINER_CANNOT_RUN;
    match file {
        MessageFile::Missing if fallback => Outcome::ReadLogs,
        MessageFile::Missing => Outcome::Message(String::new()),
        MessageFile::Read(data) if data.is_empty() && fallback => Outcome::ReadLogs,
        MessageFile::Read(data) => {
            Outcome::Message(String::from_utf8_lossy(tail_bytes(data, MAX_FILE_BYTES)).into_owned())
        }
        MessageFile::Error { path, error } => {
            Outcome::Message(format!("Error on reading termination log {path}: {error}"))
        }
    }
}

/// The last `max` bytes of `data`.
pub fn tail_bytes(data: &[u8], max: usize) -> &[u8] {
    &data[data.len().saturating_sub(max)..]
}

/// The message from the log: the last [`MAX_LOG_LINES`] lines (each with its newline, as the
/// container wrote them), cut to their last [`MAX_LOG_BYTES`] bytes.
pub fn from_log_lines<S: AsRef<[u8]>>(lines: &[S]) -> String {
    let start = lines.len().saturating_sub(MAX_LOG_LINES);
    let joined: Vec<u8> = lines[start..]
        .iter()
        .flat_map(|l| l.as_ref().iter().copied())
        .collect();
    String::from_utf8_lossy(tail_bytes(&joined, MAX_LOG_BYTES)).into_owned()
}

/// The error text when the log could not be read.
pub fn log_read_error(error: &str) -> String {
    format!("Error on reading termination message from logs: {error}")
}

/// `state.terminated.message`: the runtime's message, then `: ` and the termination message
/// when both are there.
pub fn combine(runtime_message: &str, termination_message: &str) -> String {
    match (runtime_message.is_empty(), termination_message.is_empty()) {
        (_, true) => runtime_message.to_owned(),
        (true, false) => termination_message.to_owned(),
        (false, false) => format!("{runtime_message}: {termination_message}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(s: &str) -> MessageFile {
        MessageFile::Read(s.as_bytes().to_vec())
    }

    #[test]
    fn which_source() {
        use Outcome::*;
        use Policy::*;
        let msg = |s: &str| Message(s.to_owned());
        let cases = vec![
            // e2e "Container Runtime": DONE in the file
            (File, 0, "Completed", read("DONE"), msg("DONE")),
            // FallbackToLogsOnError: `echo -n DONE; /bin/false` → logs
            (FallbackToLogsOnError, 1, "Error", read(""), ReadLogs),
            (
                FallbackToLogsOnError,
                1,
                "Error",
                MessageFile::Missing,
                ReadLogs,
            ),
            // succeeded: no fallback, empty message
            (FallbackToLogsOnError, 0, "Completed", read(""), msg("")),
            // the file wins when it has something
            (FallbackToLogsOnError, 1, "Error", read("OK"), msg("OK")),
            // never ran: no logs to read
            (
                FallbackToLogsOnError,
                1,
                "ContainerCannotRun",
                read(""),
                msg(""),
            ),
            (File, 1, "Error", read(""), msg("")),
            (File, 1, "Error", MessageFile::Missing, msg("")),
            (
                File,
                1,
                "Error",
                MessageFile::Error {
                    path: "/var/lib/kubelet/pods/u/containers/c/1a2b".into(),
                    error: "permission denied".into(),
                },
                msg(
                    "Error on reading termination log /var/lib/kubelet/pods/u/containers/c/1a2b: permission denied",
                ),
            ),
        ];
        for (policy, code, reason, file, want) in cases {
            assert_eq!(
                decide(policy, code, reason, &file),
                want,
                "{policy:?} {code} {reason} {file:?}"
            );
        }
    }

    #[test]
    fn limits() {
        let big = format!("{}END", "x".repeat(5000));
        match decide(Policy::File, 0, "Completed", &read(&big)) {
            Outcome::Message(m) => {
                assert_eq!(m.len(), MAX_FILE_BYTES);
                assert!(m.ends_with("END"));
            }
            other => panic!("{other:?}"),
        }
        let lines: Vec<String> = (0..100).map(|i| format!("line {i}\n")).collect();
        let m = from_log_lines(&lines);
        assert!(
            m.starts_with("line 20\n") && m.ends_with("line 99\n"),
            "{m}"
        );
        let long: Vec<String> = (0..10)
            .map(|i| format!("{i}{}\n", "y".repeat(499)))
            .collect();
        let m = from_log_lines(&long);
        assert_eq!(m.len(), MAX_LOG_BYTES);
        assert!(m.ends_with("y\n"));
        assert_eq!(from_log_lines(&["DONE"]), "DONE");
        assert_eq!(from_log_lines::<&str>(&[]), "");
        assert_eq!(
            Policy::parse(Some("FallbackToLogsOnError")),
            Policy::FallbackToLogsOnError
        );
        assert_eq!(Policy::parse(None), Policy::File);
    }

    #[test]
    fn combining() {
        assert_eq!(combine("", "DONE"), "DONE");
        assert_eq!(combine("runtime said", ""), "runtime said");
        assert_eq!(combine("runtime said", "DONE"), "runtime said: DONE");
        assert_eq!(combine("", ""), "");
        assert_eq!(
            log_read_error("EOF"),
            "Error on reading termination message from logs: EOF"
        );
    }
}

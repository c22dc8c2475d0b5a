//! Pod events and container output on the terminal, for the commands that run pods without
//! a server: [`TerminalReporter`] for `nodelet run`'s one pod, [`PodTerminalReporter`] for
//! each of `nodelet agent --pod-manifest-path`'s pods.

use std::io::Write;

use nodelet_api::k8s::api::core::v1::Pod;
use nodelet_kubelet::events::Event;
use nodelet_kubelet::pod_worker::{PodReporter, Stream};

/// Events as `Type  Reason  Message` on stderr; container output as `[container] line` on
/// stdout (the container's stderr on stderr).
#[derive(Debug)]
pub(crate) struct TerminalReporter;

impl PodReporter for TerminalReporter {
    fn event(&self, _field_path: Option<&str>, event: &Event) {
        print_event("", event);
    }

    fn output(&self, container: &str, stream: Stream, line: &[u8]) {
        print_output(&format!("[{container}] "), stream, line);
    }

    fn log(&self, message: &str) {
        eprintln!("nodelet: {message}");
    }
}

/// As [`TerminalReporter`], each line naming its pod: `[pod] Type  Reason  Message` and
/// `[pod/container] line`, the pod as `name` in the default namespace, `namespace/name`
/// elsewhere.
#[derive(Debug)]
pub(crate) struct PodTerminalReporter {
    pod: String,
}

impl PodTerminalReporter {
    pub(crate) fn new(pod: &Pod) -> PodTerminalReporter {
        let name = pod.metadata.name.as_deref().unwrap_or_default();
        let pod = match pod.metadata.namespace.as_deref() {
            None | Some("default") => name.to_owned(),
            Some(namespace) => format!("{namespace}/{name}"),
        };
        PodTerminalReporter { pod }
    }
}

impl PodReporter for PodTerminalReporter {
    fn event(&self, _field_path: Option<&str>, event: &Event) {
        print_event(&format!("[{}] ", self.pod), event);
    }

    fn output(&self, container: &str, stream: Stream, line: &[u8]) {
        print_output(&format!("[{}/{container}] ", self.pod), stream, line);
    }

    fn log(&self, message: &str) {
        eprintln!("nodelet: pod {}: {message}", self.pod);
    }
}

fn print_event(prefix: &str, event: &Event) {
    eprintln!(
        "{prefix}{}  {}  {}",
        event.kind.as_str(),
        event.reason,
        event.message
    );
}

/// One line, written whole so the lines of concurrent containers do not mix.
fn print_output(prefix: &str, stream: Stream, line: &[u8]) {
    let mut text = prefix.as_bytes().to_vec();
    text.extend_from_slice(line);
    text.push(b'\n');
    let _ = match stream {
        Stream::Stdout => std::io::stdout().lock().write_all(&text),
        Stream::Stderr => std::io::stderr().lock().write_all(&text),
    };
}
